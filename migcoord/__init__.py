"""migcoord: coordinate SQL migrations for several services sharing one PostgreSQL database.

    import migcoord
    coord = migcoord.Coordinator.load()
    coord.up("aggregator", dsn=dsn)
"""

from migcoord.coordinator import Coordinator, Created, Renumbered
from migcoord.core.model import Catalog, Config, Finding, Migration, Status
from migcoord.core.progress import StepStarted
from migcoord.errors import (
    ConfigError,
    ConnectError,
    DependencyNotApplied,
    Interrupted,
    InvalidMigrationFiles,
    LockTimeout,
    MigcoordError,
    MigrationFailed,
    MigrationLockTimeout,
    RefusedError,
    UsageError,
)
from migcoord.results import (
    AdoptResult,
    DownResult,
    MarkResult,
    MigrationState,
    StatusReport,
    StepResult,
    UpResult,
)

__all__ = [
    "AdoptResult",
    "Catalog",
    "Config",
    "ConfigError",
    "ConnectError",
    "Coordinator",
    "Created",
    "DependencyNotApplied",
    "DownResult",
    "Finding",
    "Interrupted",
    "InvalidMigrationFiles",
    "LockTimeout",
    "MarkResult",
    "MigcoordError",
    "Migration",
    "MigrationFailed",
    "MigrationLockTimeout",
    "MigrationState",
    "RefusedError",
    "Renumbered",
    "Status",
    "StatusReport",
    "StepResult",
    "StepStarted",
    "UpResult",
    "UsageError",
    "VerifyReport",
    "__version__",
]

#: What `__version__` is when the package has no installed metadata (a source tree on
#: PYTHONPATH): a valid PEP 440 version that sorts below every release.
UNKNOWN_VERSION = "0+unknown"


def _installed_version() -> str:
    """The version pip installed (the package metadata), else UNKNOWN_VERSION."""
    from importlib import metadata

    try:
        return metadata.version("migcoord")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


def __getattr__(name: str) -> object:
    # Looked up when asked for: reading the metadata costs a directory scan at import.
    if name == "__version__":
        return _installed_version()
    # `verify` pulls in the schema snapshot code; service start-up never needs it.
    if name == "VerifyReport":
        from migcoord.verify import VerifyReport

        return VerifyReport
    raise AttributeError(f"module 'migcoord' has no attribute {name!r}")
