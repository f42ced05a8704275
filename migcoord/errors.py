"""Every error migcoord raises on purpose.

Each error renders as a sentence that says what happened and what to do next, and
carries the same facts as fields a program can read without parsing the sentence:
`path`, `line`, `column`, `version`, `service`, `direction`, `sqlstate` (None when not
known), and `hint`; an error that stops a run of `up` or `down` part-way has room for
what committed before it (`applied`). `as_json()` gives all of it as one JSON-ready dict.

Each error knows the process exit code the CLI uses for it (DESIGN.md, "Exit codes"):
1 for a failed or refused migration, 2 for bad invocation or config, 3 for "could not
connect or could not get the lock in time" (worth retrying). An error that carries the
server's SQLSTATE takes its exit code from `exit_code_for`, the one map from SQLSTATE to
exit code: 3 only where running the same command again can succeed.

Every subclass accepts the message alone as its one positional argument, so an error
raised in a worker process comes back whole (pickle rebuilds it from `args` and then
restores the fields).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, Protocol, Self


class CommittedStep(Protocol):
    """A migration that a run applied (or rolled back) and committed: a
    `migcoord.StepResult`. Declared here so that errors import nothing of migcoord."""

    @property
    def version(self) -> int: ...
    @property
    def service(self) -> str: ...
    @property
    def name(self) -> str: ...
    def as_json(self) -> dict[str, object]: ...


class ReportedFinding(Protocol):
    """A `migcoord.Finding` that refused a run (declared here for the same reason)."""

    @property
    def code(self) -> str: ...
    @property
    def message(self) -> str: ...
    def as_json(self) -> dict[str, object]: ...


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RETRY = 3
#: Interrupted (Ctrl-C, SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130

#: SQLSTATEs (five characters) and classes (two) after which the same command can
#: succeed when run again, with nothing changed: the server cut the session or another
#: session was in the way. Documented in docs/operations.md, "Exit codes".
RETRY_SQLSTATES = (
    "08",  # connection exception: the connection really was lost
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available: lock_timeout, NOWAIT
    "57P01",  # admin_shutdown: pg_terminate_backend, a fast shutdown
    "57P02",  # crash_shutdown: another backend crashed
    "57P03",  # cannot_connect_now: the server is starting or shutting down
    "53300",  # too_many_connections
)
#: What a server says while connecting when the DSN names a wrong user, password or
#: database: running the same command again cannot help (exit 2).
WRONG_DSN_SQLSTATES = (
    "28",  # invalid_authorization_specification, invalid_password (28P01)
    "3D000",  # invalid_catalog_name: no such database
)


def _in(sqlstate: str, codes: tuple[str, ...]) -> bool:
    return any(sqlstate == code or (len(code) == 2 and sqlstate.startswith(code))
               for code in codes)


def exit_code_for(sqlstate: str | None, *, default: int, connecting: bool = False) -> int:
    """THE exit code of a failure the server reported with `sqlstate`.

    3 where a retry can succeed (RETRY_SQLSTATES); 2 for a wrong user, password or
    database while `connecting`; else 1 (the statement, the grants or the data must be
    fixed first). Without a SQLSTATE, `default`: the kind of error decides.
    """
    if sqlstate is None:
        return default
    if _in(sqlstate, RETRY_SQLSTATES):
        return EXIT_RETRY
    if connecting and _in(sqlstate, WRONG_DSN_SQLSTATES):
        return EXIT_USAGE
    return EXIT_FAILED


class MigcoordError(Exception):
    """Base of every error raised on purpose; `str(err)` is a complete message.

    The keyword fields locate what failed; they never change the message.
    """

    exit_code: int = EXIT_FAILED
    #: Whether a SQLSTATE on this error came from a failed attempt to connect.
    connecting: ClassVar[bool] = False
    #: Whether a SQLSTATE on this error decides its exit code (`exit_code_for`); False
    #: where the state left behind decides it whatever the server said.
    sqlstate_decides: ClassVar[bool] = True
    #: The attributes `as_json()` reports when they are not None (or empty); subclasses
    #: add theirs.
    fields: ClassVar[tuple[str, ...]] = (
        "path", "line", "column", "version", "service", "direction", "sqlstate", "applied")
    #: When the error stopped a run of `up` or `down` part-way: the steps of that run
    #: that committed before it (goose's PartialError). They stay applied (or rolled back).
    applied: tuple[CommittedStep, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: Path | None = None,
        line: int | None = None,
        column: int | None = None,
        version: int | None = None,
        service: str | None = None,
        direction: str | None = None,
        sqlstate: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: The file the error is about (a migration, migcoord.toml, a lock file).
        self.path = path
        #: 1-based line and column in `path`.
        self.line = line
        self.column = column
        #: The migration's version and service.
        self.version = version
        self.service = service
        #: "up" or "down": which file of the migration was running.
        self.direction = direction
        #: The server's SQLSTATE for a statement the database refused.
        self.sqlstate = sqlstate
        if sqlstate is not None and self.sqlstate_decides:
            self.exit_code = exit_code_for(sqlstate, default=self.exit_code,
                                           connecting=self.connecting)

    def with_applied(self, steps: Iterable[CommittedStep]) -> Self:
        """This same error, now saying that `steps` committed before it. The loop that
        runs the steps adds them on the way out: `raise error.with_applied(done)`."""
        self.applied = tuple(steps)
        return self

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def as_json(self) -> dict[str, object]:
        """{"type", "message", "hint", "exit_code"} and each field that is not None.

        Paths become strings and steps their own JSON; the texts are as raised, so a
        caller that prints them to others redacts them as it does any other text.
        """
        document: dict[str, object] = {"type": type(self).__name__, "message": self.message,
                                       "hint": self.hint, "exit_code": self.exit_code}
        for name in self.fields:
            value = getattr(self, name, None)
            if value is None or value == ():
                continue
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [item.as_json() if hasattr(item, "as_json") else item for item in value]
            document[name] = value
        return document


class UsageError(MigcoordError):
    """The command line or API call is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(MigcoordError):
    """migcoord.toml is missing or wrong (exit 2). Names the file and, where known, the key."""

    exit_code = EXIT_USAGE
    fields = (*MigcoordError.fields, "key")

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        key: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}: "
        if key is not None:
            where += f"[{key}] "
        super().__init__(f"{where}{message}", hint=hint, path=path)
        self.key = key


class MissingDependency(UsageError):
    """A library this command needs is not installed or cannot load (exit 2); the hint
    names the exact `pip install`."""


class InvalidName(UsageError):
    """A migration NAME given to `create` cannot be used."""


class WorkspaceError(MigcoordError):
    """A file could not be written or read; nothing was left half-written."""


class FileExists(WorkspaceError):
    """`create` or `renumber` would overwrite a file; nothing was written."""


class LockTimeout(MigcoordError):
    """A lock (file lock or advisory lock) was not obtained in time (exit 3).

    Names who holds it where that is known: the holder's backend pid and
    application_name for the migration lock; `path` for the repository's file lock.
    """

    exit_code = EXIT_RETRY
    fields = (*MigcoordError.fields, "holder_pid", "application_name", "waited_s")

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: Path | None = None,
        holder_pid: int | None = None,
        application_name: str | None = None,
        waited_s: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint, path=path)
        self.holder_pid = holder_pid
        self.application_name = application_name
        self.waited_s = waited_s


class ConnectError(MigcoordError):
    """The database could not be reached (exit 3: worth retrying), or refused the DSN's
    user, password or database (`sqlstate` 28xxx or 3D000: exit 2, fix the DSN)."""

    exit_code = EXIT_RETRY
    connecting = True


class ConnectSettingsRefused(ConnectError):
    """libpq refused the DSN's own SSL, GSS or option settings against that server (SSL
    required but not offered, a certificate that cannot be checked), or the server refused
    a setting the DSN sends (`options=-c ...`): exit 2 whatever the SQLSTATE, since the
    same settings fail the same way every time."""

    exit_code = EXIT_USAGE
    sqlstate_decides = False


class DevServerNotRunning(ConnectError):
    """`embedded` was asked for and this repository's dev server is not running (exit 3)."""


class NoDatabaseUrl(UsageError):
    """A command needs a database and none was given (exit 2)."""


class GitError(UsageError):
    """`check --against` could not read the git ref."""


class RefusedError(MigcoordError):
    """The plan was refused before anything ran (exit 1): dirty, modified, missing, ..."""


class InvalidMigrationFiles(RefusedError):
    """Files a run would read have errors that `check` reports (encoding, duplicate-version,
    unreadable-file, explicit-transaction, ...): refused before anything was sent (exit 1).

    `findings` are `check`'s findings for them, with the same codes and messages.
    """

    fields = (*RefusedError.fields, "findings")

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        path: Path | None = None,
        line: int | None = None,
        column: int | None = None,
        version: int | None = None,
        service: str | None = None,
        direction: str | None = None,
        findings: tuple[ReportedFinding, ...] = (),
    ) -> None:
        super().__init__(message, hint=hint, path=path, line=line, column=column,
                         version=version, service=service, direction=direction)
        self.findings = findings


class DependencyNotApplied(RefusedError):
    """A migration needs another service's migration that is not applied.

    `version` and `service` name the migration that needs it; `needs` is the
    (service, version) it needs, the service None when nothing here owns that version.
    """

    fields = (*RefusedError.fields, "needs")

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        version: int | None = None,
        service: str | None = None,
        needs: tuple[str | None, int] | None = None,
    ) -> None:
        super().__init__(message, hint=hint, version=version, service=service)
        self.needs = needs


class PoolerDetected(MigcoordError):
    """The connection goes through a transaction-pooling proxy (exit 2: fix the DSN)."""

    exit_code = EXIT_USAGE


class DatabaseRefused(MigcoordError):
    """The server would not create the throwaway database (exit 2: use another DSN)."""

    exit_code = EXIT_USAGE


class EmbeddedServerError(MigcoordError):
    """The local server could not be set up, started or stopped; the message says why."""


class MigrationFailed(MigcoordError):
    """A statement failed; the migration's transaction was rolled back (exit 1; exit 3
    when its SQLSTATE says a retry can succeed: a deadlock, a serialization failure...).

    `lock_wait`, when its lock_timeout fired: what it waited for, how many attempts, and
    the sessions that were in its way (JSON-ready)."""

    fields = (*MigcoordError.fields, "lock_wait")
    lock_wait: dict[str, object] | None = None


class MigrationLockTimeout(MigrationFailed):
    """A migration's lock_timeout fired on every attempt: each was rolled back, and the
    last one too (exit 1: running it again in the same moment would wait for the same
    sessions; the message names them and what to do)."""

    sqlstate_decides = False


class MigrationLeftDirty(MigrationFailed):
    """A no-transaction migration stopped part-way and is recorded `dirty` (exit 1, whatever
    the SQLSTATE): `up` refuses it until an operator finishes or undoes it and runs
    `migcoord mark`, so running the same command again cannot succeed."""

    sqlstate_decides = False


class ConnectionLost(MigcoordError):
    """The connection dropped while migrating (exit 3: nothing was half-recorded; retry)."""

    exit_code = EXIT_RETRY
    # The session is gone, so whatever it was doing was rolled back: a retry can succeed.
    sqlstate_decides = False


class ThrowawayConnectionLost(MigcoordError):
    """verify (or `docs --schema`) lost its connection to the throwaway database while a
    migration ran, not by the migration's doing (a restart, an outside
    pg_terminate_backend, a network cut): the run stops, exit 3, run it again. Not a
    ConnectionLost, which verify reports as the step's own failure."""

    exit_code = EXIT_RETRY
    sqlstate_decides = False


class ThrowawayLeft(MigcoordError):
    """verify (or `docs --schema`) could not drop its throwaway database(s), say because
    the server went away: `databases` are left on that server, and the hint is the
    command that drops them (exit 3 when the server could not be reached)."""

    exit_code = EXIT_RETRY
    fields = (*MigcoordError.fields, "databases")

    def __init__(self, message: str, *, databases: Iterable[str] = (), hint: str | None = None,
                 sqlstate: str | None = None) -> None:
        super().__init__(message, hint=hint, sqlstate=sqlstate)
        self.databases = tuple(databases)


class Interrupted(KeyboardInterrupt):
    """`up` or `down` was interrupted (Ctrl-C): still a KeyboardInterrupt for a caller that
    stops on one, now carrying the steps that committed before it (`applied`). Each
    migration commits together with its history row or not at all.

    `left`: when a verify (or `docs --schema`) was interrupted and its throwaway database
    could not be dropped on the way out, which and how to drop it."""

    def __init__(self, applied: Iterable[CommittedStep],
                 left: ThrowawayLeft | None = None) -> None:
        super().__init__()
        self.applied = tuple(applied)
        self.left = left
