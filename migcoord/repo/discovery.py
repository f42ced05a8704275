"""Read every service's migrations folder into a Catalog (the only directory walker).

Reading never fails on bad content: undecodable files, files that cannot be read, stray
names and unpaired files are recorded in the catalog for `check` to report (and for
`up`, `down` and `verify` to refuse: checks/runnable.py), so one bad file does not hide
the rest and none is skipped without a word.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import attrs

from migcoord.core import directives as directive_parser
from migcoord.core.model import (
    Catalog,
    Config,
    Directives,
    Finding,
    LaterText,
    Migration,
    ServiceConfig,
    ServiceFolder,
    SqlFile,
    StrayFile,
)
from migcoord.core.naming import (
    ParsedName,
    looks_like_migration,
    parse_filename,
    stray_reason,
    verify_file_label,
)
from migcoord.errors import RefusedError
from migcoord.repo import filefacts
from migcoord.sql import reader as sql_reader

_BOM = b"\xef\xbb\xbf"
#: Names an editor, OS or VCS leaves behind; never reported as stray.
_IGNORED = {".DS_Store", ".gitkeep", ".keep", "Thumbs.db", "README.md", "README"}


def normalize(content: bytes) -> bytes:
    """Content as checksummed: no UTF-8 BOM, `\\r\\n` and lone `\\r` made `\\n`."""
    if content.startswith(_BOM):
        content = content[len(_BOM):]
    if b"\r" in content:
        content = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return content


def checksum(content: bytes) -> str:
    return hashlib.sha256(normalize(content)).hexdigest()


def read_sql_file(path: Path, service: str) -> SqlFile | None:
    """One migration file, or None when its name is not a migration name.

    Raises OSError when the file cannot be read.
    """
    if parse_filename(path.name) is None:
        return None
    return sql_file_from_bytes(path, service, path.read_bytes())


def read_pair(service: str, up: Path, down: Path) -> Migration:
    """The migration made of two files just written."""
    files = [f for f in (read_sql_file(up, service), read_sql_file(down, service)) if f]
    return pair_files(service, files)[0]


def sql_file_from_bytes(path: Path, service: str, raw: bytes) -> SqlFile:
    """Build an SqlFile from content already read (also used for files read from git)."""
    parsed = parse_filename(path.name)
    assert parsed is not None, path
    return _sql_file(path, service, parsed, raw)


def _sql_file(path: Path, service: str, parsed: ParsedName, raw: bytes) -> SqlFile:
    normalized = normalize(raw)
    # The text keeps the file's own line endings: it is what is sent to the server, as
    # golang-migrate sends it (a `\r\n` inside a string literal is data). Only the
    # checksum is taken of the normalised content.
    sent = raw[len(_BOM):] if raw.startswith(_BOM) else raw
    text: str | None
    error: str | None = None
    line: int | None = None
    try:
        text = sent.decode("utf-8")
    except UnicodeDecodeError as err:
        text = None
        line = _line_at(sent, err.start)
        error = (f"byte 0x{sent[err.start]:02x} at line {line} (offset {err.start}) "
                 "is not UTF-8")
    else:
        nul = sent.find(b"\x00")
        if nul >= 0:
            # PostgreSQL refuses a NUL in SQL text, and its parser would stop reading there.
            text = None
            line = _line_at(sent, nul)
            error = (f"a NUL byte at line {line} (offset {nul}), which PostgreSQL does not "
                     "accept in SQL text")
    return SqlFile(
        path=path,
        service=service,
        version=parsed.version,
        version_text=parsed.version_text,
        name=parsed.name,
        direction=parsed.direction,
        text=text,
        checksum=hashlib.sha256(normalized).hexdigest(),
        encoding_error=error,
        encoding_line=line,
    )


def _holds_migrations(folder: str) -> bool:
    """Whether a subfolder holds files named like migrations (moved there, they would
    never run); a folder of other things, such as a tool's test data, is left alone."""
    try:
        with os.scandir(folder) as entries:
            return any(parse_filename(entry.name) is not None for entry in entries)
    except OSError:
        return False


def _line_at(content: bytes, offset: int) -> int:
    """The 1-based line of byte `offset`, counting `\r\n`, `\n` and a lone `\r` as one
    line end each (as an editor does)."""
    return normalize(content[:offset]).count(b"\n") + 1


def _unread_file(path: Path, service: str, parsed: ParsedName, reason: str) -> SqlFile:
    """A file named like a migration that is not read: `reason` says why."""
    return SqlFile(path=path, service=service, version=parsed.version,
                   version_text=parsed.version_text, name=parsed.name,
                   direction=parsed.direction, text=None, checksum="", read_error=reason)


#: Files already read by one Coordinator, by path, with the stat they had
#: (filefacts.Stat) -> SqlFile. A changed file has another stat and is read again.
FileCache = dict[str, tuple[filefacts.Stat, SqlFile]]


def read_catalog(config: Config, *, services: Iterable[str] | None = None,
                 up_only: bool = False, cache: FileCache | None = None,
                 facts: filefacts.FileFacts | None = None) -> Catalog:
    """Read the folders of all services (or only `services`); absent folders are fine.

    With `up_only`, a down file is read only when no up file has its version and name
    (a down-only migration must not vanish from `up` and `status`, which report it as
    `check` does): `up` and `status` never run downs, and a service boots faster
    without them. With `facts`, a file whose stat is recorded there is not read until
    its text is asked for (repo/filefacts.py), and what is read is recorded.
    """
    wanted = set(services) if services is not None else None
    reading = _Reading(config.root, cache, facts)
    folders = [
        read_service(service, reading, up_only=up_only)
        for service in config.services
        if wanted is None or service.name in wanted
    ]
    return Catalog.of(folders)


@attrs.frozen
class _Reading:
    """How one catalog read reads files: the repository (no symlink leads out of it),
    and the stat-keyed knowledge it may use instead of a file's content."""

    root: Path
    cache: FileCache | None = None
    facts: filefacts.FileFacts | None = None
    #: When the read began: a file changed near it is not kept (filefacts.settled).
    started_ns: int = attrs.field(factory=time.time_ns)


def read_service(service: ServiceConfig, reading: _Reading, *,
                 up_only: bool = False) -> ServiceFolder:
    """One service's folder. Every entry named like a migration becomes part of one, also
    when it cannot be read (`SqlFile.read_error`): `check`, `up`, `down` and `status`
    then name it instead of skipping it. A symlink leading out of the repository
    (`reading.root`, the config's folder) is not followed."""
    folder = service.migrations
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return ServiceFolder(config=service, present=False)
    except NotADirectoryError:
        return ServiceFolder(config=service, present=False,
                             problem="the configured migrations path is a file, not a folder")
    except OSError as err:
        return ServiceFolder(config=service, present=False,
                             problem=f"the migrations folder cannot be read: {err.strerror}")
    files: list[SqlFile] = []
    strays: list[StrayFile] = []
    verify_files: list[Path] = []
    downs: list[os.DirEntry[str]] = []
    for entry in entries:
        name = entry.name
        if name in _IGNORED or name.startswith("."):
            continue
        if up_only and name.endswith(".down.sql"):
            # Read later only when no up file pairs with it; not even its name parsed
            # meanwhile, since a service's start-up reads every folder.
            downs.append(entry)
            continue
        parsed = parse_filename(name)
        path = folder / name  # a join costs half of parsing the whole path again
        if parsed is None:
            label = verify_file_label(name)
            if label is None and not looks_like_migration(name) and not (
                    _is_dir(entry) and _holds_migrations(entry.path)):
                continue
            if label is None:
                strays.append(StrayFile(path=path, service=service.name, reason=(
                    "a folder inside a migrations folder is never read" if _is_dir(entry)
                    else stray_reason(name))))
                continue
            problem = _entry_problem(entry, reading.root)
            if problem is None:
                verify_files.append(path)
            else:
                strays.append(StrayFile(path=path, service=service.name, reason=problem,
                                        code="unreadable-file"))
            continue
        files.append(_read_entry(entry, path, service.name, parsed, reading))
    # Only the downs no up file of their own name pairs with (rare): the rest are not read.
    paired = {f"{f.version_text}_{f.name}.down.sql" for f in files}
    for entry in downs:
        parsed = parse_filename(entry.name) if entry.name not in paired else None
        if parsed is not None:
            files.append(_read_entry(entry, folder / entry.name, service.name, parsed, reading))
    # A verify-data file is legal beside its migration's up file, and a stray elsewhere.
    by_label = {path.name.removesuffix(".verify.sql"): path for path in verify_files}
    migrations = [attrs.evolve(m, verify_path=by_label.pop(m.label))
                  if m.up is not None and m.label in by_label else m
                  for m in pair_files(service.name, files)]
    strays.extend(StrayFile(path=path, service=service.name,
                            reason=f"a .verify.sql file belongs beside its migration, and there "
                            f"is no {label}.up.sql here")
                  for label, path in by_label.items())
    strays.sort(key=lambda s: s.path.name)
    return ServiceFolder(
        config=service,
        present=True,
        migrations=tuple(migrations),
        strays=tuple(strays),
    )


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _entry_problem(entry: os.DirEntry[str], root: Path) -> str | None:
    """Why the entry named like a migration file is not read, or None when it can be.

    Only a regular file inside the repository is read: a folder or a pipe is not SQL, a
    broken symlink has nothing to read, and a symlink out of the repository would send
    whatever it points at (say /etc/passwd) to the server.
    """
    try:
        if entry.is_symlink():
            target = Path(os.path.realpath(entry.path))
            if not target.exists():
                return (f"it is a symbolic link to {os.readlink(entry.path)}, which does not "
                        "exist")
            if not target.is_relative_to(root):
                return (f"it is a symbolic link to {target}, outside the repository "
                        f"({root}); migration files must live in the repository")
        if entry.is_dir():
            return "it is a folder, not a file"
        if not entry.is_file():
            return "it is not a regular file (a pipe, socket or device)"
    except OSError as err:
        return f"it cannot be read: {err.strerror}"
    return None


def _read_entry(entry: os.DirEntry[str], path: Path, service: str, parsed: ParsedName,
                reading: _Reading) -> SqlFile:
    problem = _entry_problem(entry, reading.root)
    if problem is not None:
        return _unread_file(path, service, parsed, problem)
    cache, facts = reading.cache, reading.facts
    stat: filefacts.Stat | None = None
    try:
        if cache is not None or facts is not None:
            stat = filefacts.stat_of(entry.stat())
            cached = cache.get(entry.path) if cache is not None else None
            if cached is not None and cached[0] == stat:
                return cached[1]
            if facts is not None:
                fact = facts.get(facts.key(entry.path), stat)
                if fact is not None:  # known by its stat: read only if asked for
                    return _known_file(path, service, parsed, fact, facts)
        with open(entry.path, "rb") as handle:
            sql_file = _sql_file(path, service, parsed, handle.read())
    except OSError as err:
        return _unread_file(path, service, parsed, f"it cannot be read: {err.strerror}")
    if stat is not None and filefacts.settled(stat, reading.started_ns):
        # Only a file read in full: a text left for later is checked when it is read,
        # and one that failed that check must be read again next time.
        if cache is not None:
            cache[entry.path] = (stat, sql_file)
        if facts is not None:
            _learn(facts, facts.key(entry.path), stat, sql_file)
    return sql_file


def _learn(facts: filefacts.FileFacts, key: str, stat: filefacts.Stat,
           sql_file: SqlFile) -> None:
    """Record what was read of a file, unless its directives need its text."""
    text = sql_file.text
    if text is not None and "migcoord" in text:
        return
    body_line = parse_directives(text)[0].body_line if text is not None else 1
    facts.learn(key, (stat, sql_file.checksum, sql_file.encoding_error,
                      sql_file.encoding_line, body_line))


def _known_file(path: Path, service: str, parsed: ParsedName, fact: filefacts.Fact,
                facts: filefacts.FileFacts) -> SqlFile:
    """A file known by its stat (repo/filefacts.py): its text is read if asked for."""
    _, checksum_, encoding_error, encoding_line, body_line = fact
    text: str | LaterText | None = None
    if encoding_error is None:
        text = LaterText(_read_known, (path, checksum_, facts), body_line)
    return SqlFile(path=path, service=service, version=parsed.version,
                   version_text=parsed.version_text, name=parsed.name,
                   direction=parsed.direction, text=text, checksum=checksum_,
                   encoding_error=encoding_error, encoding_line=encoding_line)


def _read_known(known: tuple[Path, str, filefacts.FileFacts]) -> str:
    """The text of a file known by its stat (its path and checksum), read now; refused
    when it is no longer the file that was known (it changed, or went, after migcoord
    looked at it). Every fact is dropped then: the next run reads the files again, also
    where a stat failed to show a change."""
    path, expected, facts = known
    try:
        raw = path.read_bytes()
    except OSError as err:
        facts.discard()
        raise RefusedError(f"{path} cannot be read any more ({err.strerror}): it changed "
                           "since migcoord looked at it; nothing was run from it",
                           hint="run the command again", path=path) from None
    if checksum(raw) != expected:
        facts.discard()
        raise RefusedError(f"{path} changed since migcoord looked at it; nothing was run "
                           "from it", hint="run the command again: it reads the file as "
                           "it is now", path=path)
    return (raw[len(_BOM):] if raw.startswith(_BOM) else raw).decode("utf-8")


def read_verify_file(migration: Migration) -> str | None:
    """The text of `{version}_{name}.verify.sql` beside the migration's up file, or None.

    Raises OSError when it exists but cannot be read, UnicodeDecodeError when it is not
    UTF-8 (never run with replacement characters in place of what it says).
    """
    if migration.verify_path is None:
        return None
    try:
        raw = migration.verify_path.read_bytes()
    except FileNotFoundError:
        return None
    return normalize(raw).decode("utf-8")


def _directives(sql_file: SqlFile | None) -> tuple[Directives, tuple[Finding, ...]]:
    if sql_file is None:
        return _none_but_body_line(1)
    later = sql_file.later
    if later is not None:  # a text with no directive, not read (see filefacts)
        return _none_but_body_line(later.body_line)
    if sql_file.text is None:
        return _none_but_body_line(1)
    return parse_directives(sql_file.text)


@functools.lru_cache(maxsize=256)
def _none_but_body_line(body_line: int) -> tuple[Directives, tuple[Finding, ...]]:
    """The directives of a file that has none (frozen values: one each is enough)."""
    return Directives(body_line=body_line), ()


@functools.lru_cache(maxsize=16384)
def parse_directives(text: str) -> tuple[Directives, tuple[Finding, ...]]:
    """A file's `-- migcoord:` directives and the problems with them, as `check`, `up`
    and `down` read them (PostgreSQL's scanner finds the header)."""
    # Values are frozen, so a service re-reading unchanged files at every `up` (or a
    # long-lived process calling it often) reuses them.
    if "migcoord" not in text:
        # Nothing to read and nothing to report (every directive, and every misplaced
        # one, says `migcoord`): only where the first statement starts. Most files.
        return _none_but_body_line(sql_reader.body_line(text) or 1)
    comments = sql_reader.line_comments(text, mentioning="migcoord")
    directives, problems = directive_parser.parse(
        comments.header, body_line=comments.body_line, later=comments.later)
    return directives, tuple(problems)


def pair_files(service: str, files: Iterable[SqlFile]) -> list[Migration]:
    """Group files into migrations by version, as golang-migrate pairs them: an up and a
    down of one version are one migration even when their names differ (the up's name
    is the migration's). Where a version has several ups or downs (a duplicate-version),
    halves with the same name pair, a last pair of leftovers pairs, and every other file
    is a migration of its own; unpaired halves stay None."""
    by_version: dict[int, list[SqlFile]] = defaultdict(list)
    for sql_file in files:
        by_version[sql_file.version].append(sql_file)
    migrations = []
    for version in sorted(by_version):
        for up, down in _pairs(by_version[version]):
            migrations.append(_migration(service, up, down))
    return migrations


def _pairs(group: list[SqlFile]) -> list[tuple[SqlFile | None, SqlFile | None]]:
    """The (up, down) pairs of the files of one version, in name order."""
    if len(group) == 1:  # as nearly every version is, or
        return [(group[0], None)] if group[0].direction == "up" else [(None, group[0])]
    if len(group) == 2 and group[0].direction != group[1].direction:  # an up and a down
        first, second = group
        return [(first, second)] if first.direction == "up" else [(second, first)]
    ups = sorted((f for f in group if f.direction == "up"), key=_order)
    downs = sorted((f for f in group if f.direction == "down"), key=_order)
    pairs: list[tuple[SqlFile | None, SqlFile | None]] = []
    for up in list(ups):
        same = next((d for d in downs if (d.version_text, d.name) == (up.version_text, up.name)),
                    None)
        if same is not None:
            pairs.append((up, same))
            ups.remove(up)
            downs.remove(same)
    if len(ups) == 1 and len(downs) == 1:
        pairs.append((ups.pop(), downs.pop()))
    pairs.extend((up, None) for up in ups)
    pairs.extend((None, down) for down in downs)
    pairs.sort(key=lambda pair: _order(pair[0] if pair[0] is not None else pair[1]))
    return pairs


def _order(sql_file: SqlFile | None) -> tuple[str, str]:
    return ("", "") if sql_file is None else (sql_file.name, sql_file.version_text)


def _migration(service: str, up: SqlFile | None, down: SqlFile | None) -> Migration:
    named = up if up is not None else down
    assert named is not None
    directives, problems = _directives(up)
    down_directives, down_problems = _directives(down)
    return Migration(
        version=named.version,
        service=service,
        name=named.name,
        version_text=named.version_text,
        up=up,
        down=down,
        directives=directives,
        directive_findings=problems,
        down_directives=down_directives,
        down_directive_findings=down_problems
        + directive_parser.misplaced_in_down(down_directives),
    )
