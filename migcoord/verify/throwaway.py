"""The throwaway database of `migcoord verify`, as the round trips see it: the session
migrations run in, starting the database over, what a step on it can fail with, and how
two of its schemas are told apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import attrs

from migcoord.core import snapshot as snapshots
from migcoord.core.model import Migration
from migcoord.errors import ConnectionLost, MigrationFailed

if TYPE_CHECKING:
    from migcoord.db.history import History
    from migcoord.db.scratch import Observer
    from migcoord.db.snapshot_sql import CatalogRows

#: What a migration step can fail with and verify still report as that step's problem: the
#: migration failed (rolled back or left dirty), or it ended its own connection. Verify
#: reports the message without its hint, which is advice for a real database (`migcoord
#: up` again, `mark`), not for the throwaway one.
StepFailed = (MigrationFailed, ConnectionLost)


@attrs.frozen(eq=False)
class Session:
    """The connections to the throwaway database: migrations run on `history`'s, which
    holds the migration lock as backend `lock_pid`; snapshots are read by `observer`."""

    history: History
    lock_pid: int
    observer: Observer


class Database(Protocol):
    """The throwaway database, as the round trips start it over."""

    #: How long copying a database took, the last time (ms).
    copy_ms: int

    def rebuild(self, *, from_saved: bool) -> Session:
        """Drop it and create it again, empty or as the saved copy; a session in it."""

    def save(self) -> Session:
        """Save a copy of it as it is now, to rebuild from; a session in it."""


def schema_changes(before: CatalogRows, after: CatalogRows) -> tuple[str, ...]:
    """The rendered diff between two states; empty when they are the same schema."""
    if before == after:  # the common case, decided without building any object
        return ()
    return tuple(snapshots.render(snapshots.diff(before.snapshot(), after.snapshot())))


def elapsed_ms(seconds: float) -> int:
    """`seconds` of the clock, in whole milliseconds as the verdicts show them."""
    return round(seconds * 1000)


def who(migration: Migration) -> str:
    """A migration as the verdicts name it: its service and label."""
    return f"{migration.service} {migration.label}"
