"""migcoord: coordinate SQL migrations for several services sharing one PostgreSQL database.

    import migcoord
    coord = migcoord.Coordinator.load()
    coord.up("aggregator", dsn=dsn)
"""

from migcoord.coordinator import Coordinator, Created, Renumbered
from migcoord.core.model import Catalog, Config, Finding, Migration, Status
from migcoord.errors import (
    ConfigError,
    ConnectError,
    DependencyNotApplied,
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
    "UpResult",
    "UsageError",
    "VerifyReport",
]


def __getattr__(name: str) -> object:
    # `verify` pulls in the schema snapshot code; service start-up never needs it.
    if name == "VerifyReport":
        from migcoord.verify import VerifyReport

        return VerifyReport
    raise AttributeError(f"module 'migcoord' has no attribute {name!r}")
