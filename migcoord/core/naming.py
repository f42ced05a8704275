"""Parse and format migration file names: `{version}_{name}.{up|down}.sql`.

Existing files are read exactly as golang-migrate reads them (its regex
`^([0-9]+)_(.*)\\.(up|down)\\.sql$`): names may hold dots, dashes or capitals and versions
compare as numbers (so 10- and 14-digit timestamp versions work). Names that `create`
writes are stricter: `[a-z0-9_]+`, at most 100 characters.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import attrs

from migcoord.core.model import Direction
from migcoord.errors import InvalidName

#: Versions this wide are timestamps (golang-migrate's -format): they never form a
#: dense sequence, so `gap` does not apply.
TIMESTAMP_WIDTH = 10

#: golang-migrate's own regex. Used with `fullmatch`: Python's `$` would also match
#: before a trailing newline, which Go's does not.
FILENAME = re.compile(r"^([0-9]+)_(.*)\.(up|down)\.sql$")
#: A verify-data companion of a migration (`-- migcoord:verify-data`), read by `verify`.
VERIFY_FILENAME = re.compile(r"^([0-9]+_.+)\.verify\.sql$")
#: The largest version PostgreSQL's bigint (migcoord_history.version) can hold.
MAX_VERSION = 2**63 - 1
NEW_NAME = re.compile(r"^[a-z0-9_]+$")
MAX_NAME_LENGTH = 100
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@attrs.frozen
class ParsedName:
    version: int
    version_text: str
    name: str
    direction: Direction


@functools.lru_cache(maxsize=65536)
def parse_filename(filename: str) -> ParsedName | None:
    """The parts of a migration file name, or None when golang-migrate would not read it.

    A name golang-migrate reads is a migration here too, even where migcoord cannot run
    it (an empty name, a version above bigint): `name_problem` says why, and `check`,
    `up` and `down` report it instead of skipping the file.
    """
    match = FILENAME.fullmatch(filename)
    if match is None:
        return None
    version_text, name, direction = match.groups()
    return ParsedName(
        version=int(version_text),
        version_text=version_text,
        name=name,
        direction="up" if direction == "up" else "down",
    )


def name_problem(parsed: ParsedName) -> str | None:
    """Why migcoord cannot run a file golang-migrate would read (for `bad-filename`), or
    None when it can."""
    if parsed.version > MAX_VERSION:
        return (f"its version {parsed.version_text} is above {MAX_VERSION}, the largest "
                "number PostgreSQL's bigint (migcoord_history.version) can hold")
    if not parsed.name:
        return "the name part after the version is empty"
    if not _encodable(parsed.name):
        # os.listdir hands undecodable bytes over as lone surrogates.
        return "the name is not valid UTF-8, so it cannot be recorded in the database"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def verify_file_label(filename: str) -> str | None:
    """`000004_name` for `000004_name.verify.sql`, else None."""
    match = VERIFY_FILENAME.fullmatch(filename)
    return match.group(1) if match else None


_LOOKS_LIKE_MIGRATION = re.compile(r"^[0-9]|\.sql$|\.(up|down)\b", re.IGNORECASE)


def looks_like_migration(filename: str) -> bool:
    """Whether a name that is not a migration's was meant as one (or as SQL to run): it
    starts with a digit, ends in `.sql`, or says `.up`/`.down`. Other tools' files that
    live beside migrations (Atlas's `atlas.sum`, notes, a `testdata` folder) are left
    alone, as golang-migrate leaves them."""
    return _LOOKS_LIKE_MIGRATION.search(filename) is not None


def stray_reason(filename: str) -> str:
    """Why a file in a migrations folder is not a migration (for `bad-filename`)."""
    if filename.endswith(".sql"):
        if re.match(r"^[0-9]+_.*\.sql$", filename):
            return "it ends in .sql but not in .up.sql or .down.sql"
        if re.match(r"^[0-9]+[^_0-9]", filename):
            return "the version is not followed by '_'"
        return "it does not start with a version number followed by '_'"
    return "only {version}_{name}.up.sql and .down.sql files belong in a migrations folder"


def format_filename(version: int, name: str, direction: Direction, width: int) -> str:
    return f"{str(version).zfill(width)}_{name}.{direction}.sql"


def normalize_name(raw: str) -> str:
    """Turn what a person typed into a file-name-safe NAME, or raise InvalidName saying why.

    Lower-cases, and turns spaces and `-` into `_`; everything else outside `[a-z0-9_]`
    is refused rather than silently dropped, so the file is named as the person expects.
    """
    text = raw.strip()
    if not text:
        raise InvalidName(
            "the migration name is empty",
            hint="give a short description, e.g. `migcoord create add_email_index --service S`",
        )
    if "/" in text or "\\" in text or ".." in text:
        raise InvalidName(
            f"the migration name {raw!r} contains a path separator or '..'",
            hint="a name is a single word like add_email_index; the folder comes from --service",
        )
    # Only ASCII letters are lower-cased: str.lower() would turn the Kelvin sign into "k".
    text = re.sub(r"[\s\-]+", "_", text.translate(_ASCII_LOWER))
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"the migration name is {len(text)} characters long; at most {MAX_NAME_LENGTH} are allowed",
            hint="shorten it; the file name only needs to say what the migration does",
        )
    if not NEW_NAME.match(text):
        bad = sorted({c for c in text if not re.match(r"[a-z0-9_]", c)})
        shown = " ".join(_describe_char(c) for c in bad)
        raise InvalidName(
            f"the migration name {raw!r} contains characters outside [a-z0-9_]: {shown}",
            hint="use lower-case ASCII letters, digits and '_' (spaces and '-' become '_')",
        )
    return text


def _describe_char(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return repr(char)
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'unnamed')})"


def humanize(name: str) -> str:
    """`remove_email_from_rules` -> `Remove email from rules` (for generated docs)."""
    words = re.sub(r"[_\-]+", " ", name).strip()
    return words[:1].upper() + words[1:]
