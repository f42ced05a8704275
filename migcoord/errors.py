"""Every error migcoord raises on purpose.

Each error carries data and renders as a sentence that says what happened and what to do
next. Each knows the process exit code the CLI uses for it (DESIGN.md, "Exit codes"):
1 for a failed or refused migration, 2 for bad invocation or config, 3 for "could not
connect or could not get the lock in time" (worth retrying).
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_RETRY = 3


class MigcoordError(Exception):
    """Base of every error raised on purpose; `str(err)` is a complete message."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class UsageError(MigcoordError):
    """The command line or API call is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(MigcoordError):
    """migcoord.toml is missing or wrong (exit 2). Names the file and, where known, the key."""

    exit_code = EXIT_USAGE

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
        super().__init__(f"{where}{message}", hint=hint)
        self.path = path
        self.key = key


class InvalidName(UsageError):
    """A migration NAME given to `create` cannot be used."""


class WorkspaceError(MigcoordError):
    """A file could not be written or read; nothing was left half-written."""


class FileExists(WorkspaceError):
    """`create` or `renumber` would overwrite a file; nothing was written."""


class LockTimeout(MigcoordError):
    """A lock (file lock or advisory lock) was not obtained in time (exit 3)."""

    exit_code = EXIT_RETRY


class ConnectError(MigcoordError):
    """The database could not be reached (exit 3: worth retrying)."""

    exit_code = EXIT_RETRY


class NoDatabaseUrl(UsageError):
    """A command needs a database and none was given (exit 2)."""


class GitError(UsageError):
    """`check --against` could not read the git ref."""


class RefusedError(MigcoordError):
    """The plan was refused before anything ran (exit 1): dirty, modified, missing, ..."""


class DependencyNotApplied(RefusedError):
    """A migration needs another service's migration that is not applied."""


class MigrationFailed(MigcoordError):
    """A statement failed; the migration's transaction was rolled back (exit 1)."""

    def __init__(self, message: str, *, hint: str | None = None,
                 sqlstate: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.sqlstate = sqlstate


class ConnectionLost(MigcoordError):
    """The connection dropped while migrating (exit 3: state was re-checked; retry)."""

    exit_code = EXIT_RETRY
