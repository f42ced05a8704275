"""Read every service's migrations folder into a Catalog (the only directory walker).

Reading never fails on bad content: undecodable files, stray names and unpaired files
are recorded in the catalog for `check` to report, so one bad file does not hide the rest.
"""

from __future__ import annotations

import functools
import hashlib
import os
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
    Migration,
    ServiceConfig,
    ServiceFolder,
    SqlFile,
    StrayFile,
)
from migcoord.core.naming import ParsedName, parse_filename, stray_reason, verify_file_label
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
    text: str | None
    error: str | None = None
    try:
        text = normalized.decode("utf-8")
    except UnicodeDecodeError as err:
        text = None
        line = normalized.count(b"\n", 0, err.start) + 1
        error = (f"byte 0x{normalized[err.start]:02x} at line {line} (offset {err.start}) "
                 "is not UTF-8")
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
    )


#: Files already read by one Coordinator, by path, with the stat they had:
#: (size, mtime_ns, inode) -> SqlFile. A changed file has another stat and is read again.
FileCache = dict[str, tuple[tuple[int, int, int], SqlFile]]


def read_catalog(config: Config, *, services: Iterable[str] | None = None,
                 up_only: bool = False, cache: FileCache | None = None) -> Catalog:
    """Read the folders of all services (or only `services`); absent folders are fine.

    With `up_only`, down files are skipped (every Migration.down is None): `up` and
    `status` never need them, and a service boots faster without them.
    """
    wanted = set(services) if services is not None else None
    folders = [
        read_service(service, up_only=up_only, cache=cache)
        for service in config.services
        if wanted is None or service.name in wanted
    ]
    return Catalog.of(folders)


def read_service(service: ServiceConfig, *, up_only: bool = False,
                 cache: FileCache | None = None) -> ServiceFolder:
    folder = service.migrations
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return ServiceFolder(config=service, present=False)
    except NotADirectoryError:
        stray = StrayFile(path=folder, service=service.name,
                          reason="the configured migrations path is a file, not a folder")
        return ServiceFolder(config=service, present=False, strays=(stray,))
    files: list[SqlFile] = []
    strays: list[StrayFile] = []
    verify_files: list[Path] = []
    for entry in entries:
        name = entry.name
        if name in _IGNORED or name.startswith(".") or (up_only and name.endswith(".down.sql")):
            continue
        parsed = parse_filename(name)
        try:
            if entry.is_dir():
                strays.append(StrayFile(path=Path(entry.path), service=service.name,
                                        reason="a folder inside a migrations folder is never read"))
                continue
            if parsed is None:
                if verify_file_label(name) is not None:
                    verify_files.append(Path(entry.path))
                    continue
                strays.append(StrayFile(path=Path(entry.path), service=service.name,
                                        reason=stray_reason(name)))
                continue
            if up_only and parsed.direction == "down":
                continue
            files.append(_read_entry(entry, service.name, parsed, cache))
        except OSError as err:
            strays.append(StrayFile(path=Path(entry.path), service=service.name,
                                    reason=f"it cannot be read: {err.strerror}"))
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


def _read_entry(entry: os.DirEntry[str], service: str, parsed: ParsedName,
                cache: FileCache | None) -> SqlFile:
    if cache is None:
        with open(entry.path, "rb") as handle:
            return _sql_file(Path(entry.path), service, parsed, handle.read())
    info = entry.stat()
    key = (info.st_size, info.st_mtime_ns, info.st_ino)
    cached = cache.get(entry.path)
    if cached is not None and cached[0] == key:
        return cached[1]
    with open(entry.path, "rb") as handle:
        sql_file = _sql_file(Path(entry.path), service, parsed, handle.read())
    cache[entry.path] = (key, sql_file)
    return sql_file


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
    if sql_file is None or sql_file.text is None:
        return Directives(), ()
    return parse_directives(sql_file.text)


@functools.lru_cache(maxsize=16384)
def parse_directives(text: str) -> tuple[Directives, tuple[Finding, ...]]:
    """A file's `-- migcoord:` directives and the problems with them, as `check`, `up`
    and `down` read them (PostgreSQL's scanner finds the header)."""
    # Values are frozen, so a service re-reading unchanged files at every `up` (or a
    # long-lived process calling it often) reuses them.
    comments = sql_reader.line_comments(text, mentioning="migcoord")
    directives, problems = directive_parser.parse(
        comments.header, body_line=comments.body_line, later=comments.later)
    return directives, tuple(problems)


def pair_files(service: str, files: Iterable[SqlFile]) -> list[Migration]:
    """Group files into up/down pairs by (version, name); unpaired halves stay None."""
    groups: dict[tuple[int, str, str], dict[str, SqlFile]] = defaultdict(dict)
    for sql_file in files:
        key = (sql_file.version, sql_file.version_text, sql_file.name)
        groups[key][sql_file.direction] = sql_file
    migrations = []
    for (version, version_text, name), pair in sorted(groups.items()):
        up, down = pair.get("up"), pair.get("down")
        directives, problems = _directives(up)
        down_directives, down_problems = _directives(down)
        migrations.append(
            Migration(
                version=version,
                service=service,
                name=name,
                version_text=version_text,
                up=up,
                down=down,
                directives=directives,
                directive_findings=problems,
                down_directives=down_directives,
                down_directive_findings=down_problems
                + directive_parser.misplaced_in_down(down_directives),
            )
        )
    return migrations
