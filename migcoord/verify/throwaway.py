"""The throwaway database of `migcoord verify`, as the round trips see it: the session
migrations run in, starting the database over, what a step on it can fail with, and how
two of its schemas are told apart.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol

import attrs

from migcoord.core import snapshot as snapshots
from migcoord.core.model import Migration
from migcoord.errors import ConnectionLost, MigrationFailed, ThrowawayConnectionLost

if TYPE_CHECKING:
    import psycopg

    from migcoord.db.history import History
    from migcoord.db.scratch import Observer
    from migcoord.db.snapshot_sql import CatalogRows

#: What a migration step can fail with and verify still report as that step's problem: the
#: migration failed (rolled back or left dirty), or it ended its own connection. Verify
#: reports the message without its hint, which is advice for a real database (`migcoord
#: up` again, `mark`), not for the throwaway one.
StepFailed = (MigrationFailed, ConnectionLost)


#: A file that ends server sessions may end its own: then losing the connection is its
#: doing, a problem of that step, like any other failure.
_ENDS_SESSIONS = re.compile(r"\bpg_terminate_backend\b", re.IGNORECASE)


def lost_not_failed(failure: MigrationFailed | ConnectionLost, migration: Migration,
                    direction: str, conn: psycopg.Connection, *, command: str
                    ) -> ThrowawayConnectionLost | None:
    """When a step failed because its connection is gone, and its file ends no sessions
    itself (a restart, an outside pg_terminate_backend, a network cut did it): the error
    that stops the run, saying so (exit 3: run it again), instead of calling the migration
    broken. None when the step's failure is the migration's own."""
    if not (conn.closed or conn.broken):
        return None
    text = migration.up_sql if direction == "up" else migration.down_sql
    if _ENDS_SESSIONS.search(text):
        return None
    reason = failure.message.split(": ", 1)[-1] if isinstance(failure, ConnectionLost) \
        else failure.message
    return ThrowawayConnectionLost(
        f"lost the connection to the throwaway database while running the {direction} of "
        f"{who(migration)}, so {command} cannot go on (this is not a fault of the "
        f"migration): {reason}",
        hint=f"check the server (a restart, pg_terminate_backend, idle_session_timeout, a "
        f"network cut), then run `migcoord {command}` again; no other database was touched",
        sqlstate=failure.sqlstate, version=migration.version, service=migration.service,
        direction=direction)


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
