"""Frozen value objects shared by the pure core and the edges.

Nothing here does I/O. Paths are absolute; discovery fills them in.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, Literal

import attrs

from migcoord.core.ddl import DdlPolicy, DdlSettings, resolve
from migcoord.core.findings import Severity, registered
from migcoord.errors import RefusedError

Direction = Literal["up", "down"]


def _registered_code(instance: Finding, attribute: attrs.Attribute[str], code: str) -> None:
    registered(code)


def _registered_severity(instance: Finding, attribute: attrs.Attribute[Severity],
                         severity: Severity) -> None:
    declared = registered(instance.code).severity
    if severity != declared:
        raise ValueError(f"{instance.code} is declared as {declared}, not {severity}, in "
                         "migcoord/core/findings.py")


@attrs.frozen
class Finding:
    """One problem found by `check`: a stable code, where it is, and what to do.

    The code must be declared in `migcoord.core.findings`, with this severity; build
    findings with `Finding.of`, which takes the severity from there.
    """

    code: str = attrs.field(validator=_registered_code)
    severity: Severity = attrs.field(validator=_registered_severity)
    message: str
    path: Path | None = None
    line: int | None = None
    column: int | None = None
    service: str | None = None
    version: int | None = None
    hint: str | None = None

    @classmethod
    def of(cls, code: str, message: str, *, path: Path | None = None, line: int | None = None,
           column: int | None = None, service: str | None = None, version: int | None = None,
           hint: str | None = None) -> Finding:
        """A finding of `code` with the severity migcoord.core.findings declares for it."""
        return cls(code=code, severity=registered(code).severity, message=message, path=path,
                   line=line, column=column, service=service, version=version, hint=hint)

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def as_json(self, relative_to: Path | None = None) -> dict[str, object]:
        """The finding as `check --format json` shows it: paths relative to `relative_to`
        (the config's folder) when inside it, else as they are."""
        path = None
        if self.path is not None:
            path = str(self.path)
            if relative_to is not None and self.path.is_relative_to(relative_to):
                path = self.path.relative_to(relative_to).as_posix()
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "path": path, "line": self.line, "column": self.column,
                "service": self.service, "version": self.version, "hint": self.hint}


@attrs.frozen
class Reservation:
    """An inclusive range of versions only one service may use (`reserved = "1-5"`)."""

    first: int
    last: int

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.first <= version <= self.last

    def overlaps(self, other: Reservation) -> bool:
        return self.first <= other.last and other.first <= self.last


@attrs.frozen
class ServiceConfig:
    """One `[services.NAME]` table of migcoord.toml."""

    name: str
    migrations: Path
    owns: tuple[str, ...] = ()
    reserved: Reservation | None = None
    role: str | None = None
    #: Its `[services.NAME.ddl]` table: lock and statement timeouts, retries.
    ddl: DdlSettings = attrs.field(factory=DdlSettings)


@attrs.frozen
class Config:
    """A loaded migcoord.toml (or the implicit config of `Coordinator.for_service`)."""

    root: Path
    services: tuple[ServiceConfig, ...]
    path: Path | None = None
    database_url_env: str = "DATABASE_URL"
    version_width: int = 6
    history_schema: str = "public"
    default_schema: str = "public"
    docs: Path | None = None
    #: `docs` also writes the schema registry (`docs --schema`: needs a server).
    docs_schema: bool = False
    #: Versions up to this one were numbered before migcoord (a history adopted from
    #: golang-migrate): gaps among them are history, not `gap` errors.
    adopted_through: int | None = None
    allow: frozenset[str] = frozenset()
    synchronous_commit: str = "last"
    lock_timeout: float = 60.0
    #: The `[ddl]` table: each migration's lock and statement timeouts and retries.
    ddl: DdlSettings = attrs.field(factory=DdlSettings)

    @property
    def sum_path(self) -> Path | None:
        """migcoord.sum lives beside the config; an implicit config has none."""
        if self.path is None:
            return None
        return self.path.parent / "migcoord.sum"

    @property
    def state_dir(self) -> Path:
        """`.migcoord/` beside the config: lock file, embedded server (git-ignored)."""
        return self.root / ".migcoord"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "repo.lock"

    def service(self, name: str) -> ServiceConfig | None:
        for service in self.services:
            if service.name == name:
                return service
        return None

    @property
    def service_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def ddl_policy(self, migration: Migration, direction: Direction,
                   override: DdlSettings | None = None) -> DdlPolicy:
        """The timeouts and retries `migration`'s file of `direction` runs with: `override`
        (the command line), then the file's directives, its service's `[ddl]`, the
        config's `[ddl]`, the defaults (migcoord.core.ddl)."""
        directives = migration.directives if direction == "up" else migration.down_directives
        service = self.service(migration.service)
        return resolve(override or DdlSettings(), directives.ddl,
                       service.ddl if service is not None else DdlSettings(), self.ddl)


@attrs.frozen
class DependencyRef:
    """One entry of a `-- migcoord:depends` line: `rule-service:000002` or `000003`."""

    version: int
    service: str | None
    line: int
    text: str

    def render(self, width: int = 6) -> str:
        number = format_version(self.version, width)
        return f"{self.service}:{number}" if self.service else number


@attrs.frozen
class Directives:
    """What the leading `-- migcoord:` lines of an up file say."""

    depends: tuple[DependencyRef, ...] = ()
    no_transaction: bool = False
    allow: frozenset[str] = frozenset()
    verify_data: bool = False
    #: `-- migcoord:lock-timeout`, `statement-timeout`, `retries`: this file's own.
    ddl: DdlSettings = attrs.field(factory=DdlSettings)
    #: Line where the first statement starts (1-based); directives must come before it.
    body_line: int = 1


class LaterText:
    """A file's text read on first use by `load`, which raises RefusedError when the
    file can no longer be read as it was known (changed or gone since). Only a text
    with no `-- migcoord:` directive is left for later: all its directives say is the
    line its first statement is on, `body_line`."""

    __slots__ = ("_argument", "_load", "_text", "body_line")

    def __init__(self, load: Callable[[Any], str], argument: Any, body_line: int) -> None:
        self._load = load
        self._argument = argument  # no closure per file: a boot makes one per up file
        self._text: str | None = None
        self.body_line = body_line

    def value(self) -> str:
        if self._text is None:
            self._text = self._load(self._argument)
        return self._text

    def __repr__(self) -> str:
        return "LaterText(not read yet)" if self._text is None else f"LaterText({self._text!r})"


def _plain_text(text: str | LaterText | None) -> str | LaterText | None:
    """What an SqlFile's text compares and hashes by: the text, read if need be; a file
    that can no longer be read as it was known is equal only to itself."""
    if not isinstance(text, LaterText):
        return text
    try:
        return text.value()
    except RefusedError:
        return text


@attrs.frozen
class SqlFile:
    """One `{version}_{name}.{up|down}.sql` file as read from disk.

    `text` is the decoded content with a BOM removed and the file's own line endings: it
    is what the server is sent, as golang-migrate sends it (a `\r\n` inside a string
    literal is data). It is None when the file cannot be run as SQL text: it is not UTF-8
    or holds a NUL byte (`encoding_error` says where), or it could not be read at all
    (`read_error` says why: a folder, a broken symlink or one leading out of the
    repository, no permission). `checksum` is the sha256 of the content with the BOM
    removed and line endings made `\n` (of the raw bytes when undecodable; empty when
    unread), so a checkout with `autocrlf` does not look modified.

    The text may be given as a `LaterText`: the file was known by its stat (repo/
    filefacts.py) and is read only when something asks for its text.
    """

    path: Path
    service: str
    version: int
    version_text: str
    name: str
    direction: Direction
    _text: str | LaterText | None = attrs.field(alias="text", eq=_plain_text)
    checksum: str
    encoding_error: str | None = None
    #: The line `encoding_error` is about.
    encoding_line: int | None = None
    read_error: str | None = None

    @property
    def text(self) -> str | None:
        text = self._text
        return text.value() if isinstance(text, LaterText) else text

    @property
    def later(self) -> LaterText | None:
        """The text still to be read, when it was left for later (see LaterText)."""
        text = self._text
        return text if isinstance(text, LaterText) else None


@attrs.frozen
class StrayFile:
    """An entry of a migrations folder that is no part of a migration: its name does not
    parse (`bad-filename`), or it is a `.verify.sql` file that cannot be read
    (`unreadable-file`); `reason` says which."""

    path: Path
    service: str
    reason: str
    code: str = "bad-filename"


@attrs.frozen
class Migration:
    """An up/down pair of one service, as the rest of migcoord sees it.

    Either path may be None when its file is missing (reported by `check`).
    """

    version: int
    service: str
    name: str
    version_text: str
    up: SqlFile | None
    down: SqlFile | None
    directives: Directives = Directives()
    #: Problems with the directive lines (unknown key, unreadable depends), without path.
    directive_findings: tuple[Finding, ...] = ()
    #: The down file's own directives: `no-transaction` (and `allow`) apply to it alone.
    down_directives: Directives = Directives()
    down_directive_findings: tuple[Finding, ...] = ()
    #: `{version}_{name}.verify.sql` beside the up file, for `verify`'s data round trip.
    verify_path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.version_text}_{self.name}"

    @property
    def checksum(self) -> str:
        """The checksum recorded in history: sha256 of the normalised up file."""
        return self.up.checksum if self.up is not None else ""

    @property
    def up_sql(self) -> str:
        """The up file's SQL; RefusedError when there is none to run."""
        return _runnable_text(self, self.up, "up")

    @property
    def down_sql(self) -> str:
        """The down file's SQL; RefusedError when there is none to run."""
        return _runnable_text(self, self.down, "down")

    @property
    def depends_on(self) -> tuple[int, ...]:
        return tuple(ref.version for ref in self.directives.depends)

    @property
    def path(self) -> Path | None:
        return self.up.path if self.up is not None else (self.down.path if self.down else None)


def _runnable_text(migration: Migration, sql_file: SqlFile | None, direction: Direction) -> str:
    # Reached only past the file checks of `up`, `down` and `verify`: never run an empty
    # text in place of a file that is missing or unreadable.
    if sql_file is None or sql_file.text is None:
        where = sql_file.path if sql_file is not None else f"{migration.label}.{direction}.sql"
        why = "is missing" if sql_file is None else "cannot be read as SQL text"
        raise RefusedError(f"{where} {why}; nothing was run",
                           hint="`migcoord check` says what is wrong with it",
                           path=sql_file.path if sql_file is not None else None,
                           version=migration.version, service=migration.service,
                           direction=direction)
    return sql_file.text


@attrs.frozen
class ServiceFolder:
    """A configured service and what its folder holds (possibly nothing: no folder yet).

    `problem` says why a configured folder that exists could not be listed (then
    `present` is False and nothing of it is known).
    """

    config: ServiceConfig
    present: bool
    migrations: tuple[Migration, ...] = ()
    strays: tuple[StrayFile, ...] = ()
    problem: str | None = None

    @property
    def name(self) -> str:
        return self.config.name


@attrs.frozen
class Catalog:
    """Every service's migrations, in version order. Duplicate versions are kept (and reported)."""

    folders: tuple[ServiceFolder, ...]
    #: Every migration of every folder, by (version, service, name); see `Catalog.of`.
    migrations: tuple[Migration, ...] = ()

    @classmethod
    def of(cls, folders: Iterable[ServiceFolder]) -> Catalog:
        """A catalog of these folders, with the sorted list of all their migrations."""
        folders = tuple(folders)
        every = [m for folder in folders for m in folder.migrations]
        every.sort(key=lambda m: (m.version, m.service, m.name))
        return cls(folders=folders, migrations=tuple(every))

    def by_version(self) -> dict[int, Migration]:
        """The first migration with each version (duplicates are a `check` error)."""
        index: dict[int, Migration] = {}
        for migration in self.migrations:
            index.setdefault(migration.version, migration)
        return index

    def folder(self, service: str) -> ServiceFolder | None:
        for folder in self.folders:
            if folder.name == service:
                return folder
        return None

    def for_service(self, service: str) -> tuple[Migration, ...]:
        folder = self.folder(service)
        return folder.migrations if folder is not None else ()

    def has_unreadable(self, services: Collection[str] | None = None) -> bool:
        """Whether a folder (of `services`, None: all) could not be listed or holds an
        entry named like a migration that could not be read. Looks only at what discovery
        recorded, so it costs nothing at a service's boot."""
        for folder in self.folders:
            if services is not None and folder.name not in services:
                continue
            if folder.problem is not None or any(s.code == "unreadable-file"
                                                 for s in folder.strays):
                return True
            if any(f is not None and f.read_error is not None
                   for m in folder.migrations for f in (m.up, m.down)):
                return True
        return False

    @property
    def absent_services(self) -> tuple[str, ...]:
        """Configured services whose folder is not in this checkout (a deployed image
        holds only its own), in configured order. Their migrations are unknown here."""
        return tuple(folder.name for folder in self.folders if not folder.present)


class Status(enum.StrEnum):
    """State of one migration, reconciled from files and history (DESIGN.md, `status`)."""

    APPLIED = "applied"
    PENDING = "pending"
    DIRTY = "dirty"
    MODIFIED = "modified"
    MISSING = "missing"
    FUTURE = "future"


@attrs.frozen
class HistoryRow:
    """One row of migcoord_history."""

    version: int
    service: str
    name: str
    checksum: str
    status: str
    depends: tuple[int, ...] = ()
    applied_at: Any = None
    applied_by: str = ""
    duration_ms: int = 0
    #: For a dirty no-transaction migration: how many statements had completed.
    statements_done: int | None = None
    statement_count: int | None = None
    error: str | None = None

    @property
    def dirty(self) -> bool:
        return self.status == "dirty"


def format_version(version: int, width: int = 6) -> str:
    return str(version).zfill(width)
