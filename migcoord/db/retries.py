"""Attempting a migration again after its lock timeout fired (docs/operations.md, "Lock
waits").

A migration in one transaction is rolled back whole, so it is simply run again
(`in_transaction`). A no-transaction file commits statement by statement, so only the
statement that timed out runs again (`one_statement`), and only when that is safe. Between
attempts: a pause from migcoord.core.ddl, logged with who blocked the attempt
(db/lockwait watches while it waits).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import attrs
import psycopg
from psycopg import sql

from migcoord.core import ddl
from migcoord.core.ddl import DdlPolicy
from migcoord.core.model import Migration
from migcoord.db import failures, indexes, lockwait
from migcoord.db.diagnosis import lost
from migcoord.db.history import History
from migcoord.errors import MigrationFailed, PoolerDetected
from migcoord.sql.reader import Statement as SqlStatement

log = logging.getLogger("migcoord")

#: lock_not_available: a lock_timeout fired (or a NOWAIT found the lock taken).
LOCK_NOT_AVAILABLE = "55P03"


def in_transaction(history: History, migration: Migration, direction: str, policy: DdlPolicy,
                   watch: lockwait.LockWatch, attempt: Callable[[], None]) -> None:
    """Run `attempt` (one whole transaction) until no lock timeout stops it, at most
    `policy.attempts` times, pausing between attempts; after the last one, the failure
    names what it waited for and who was in its way."""
    for number in range(1, policy.attempts + 1):
        with watch.watching(history.conn.info.backend_pid, policy) as seen:
            try:
                attempt()
                return
            except MigrationFailed as failure:
                if failure.sqlstate != LOCK_NOT_AVAILABLE or isinstance(failure, PoolerDetected):
                    raise
                timed_out, blocked = failure, seen()
        if number == policy.attempts:
            raise failures.lock_wait_exhausted(timed_out, migration, direction, policy, blocked,
                                               attempts=number) from None
        _pause(migration, policy, watch, number, blocked)


def _pause(migration: Migration, policy: DdlPolicy, watch: lockwait.LockWatch, retry: int,
           blocked: lockwait.Blocked | None) -> None:
    pause = ddl.pause_before_retry(policy, retry, watch.rng)
    log.warning("%s %s: %s", migration.service, migration.label,
                lockwait.retrying_note(policy, retry, pause, blocked))
    watch.pause(pause)


@attrs.frozen
class Stopped:
    """A no-transaction statement that a lock timeout stopped for good."""

    error: psycopg.Error
    blocked: lockwait.Blocked | None
    attempts: int
    #: Why it was not run again (None: it was, as often as the policy allows).
    not_again: str | None = None


#: `ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`: stopped part-way, it is finished
#: with `... FINALIZE`, and running it again fails.
_DETACH_CONCURRENTLY = re.compile(r"\bdetach\s+partition\b.*\bconcurrently\b",
                                  re.IGNORECASE | re.DOTALL)


def one_statement(conn: psycopg.Connection, migration: Migration, statement: SqlStatement, *,
                  role: str | None, unrole: sql.Composed, policy: DdlPolicy,
                  watch: lockwait.LockWatch, before: frozenset[int]) -> Stopped | None:
    """Run one statement of a no-transaction file (as `role`); None once it ran.

    A lock timeout rolled the statement back, so it runs again after a pause, as often
    as `policy` allows, when that is safe: an INVALID index a timed-out concurrent build
    left behind is dropped first (concurrently, and said so; a drop that times out too
    is one more attempt that timed out); a DETACH PARTITION CONCURRENTLY is not run
    again. Any other error is raised."""
    number = 0
    while True:
        number += 1
        with watch.watching(conn.info.backend_pid, policy) as seen:
            try:
                if number > 1:
                    _drop_left_behind(conn, migration, before)
                if role:
                    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
                conn.execute(statement.text)
                if role:
                    conn.execute(unrole)
                return None
            except psycopg.Error as err:
                if lost(conn) or err.sqlstate != LOCK_NOT_AVAILABLE:
                    raise
                timed_out, blocked = err, seen()
        if number >= policy.attempts:
            return Stopped(timed_out, blocked, number)
        if _DETACH_CONCURRENTLY.search(statement.text):
            return Stopped(timed_out, blocked, number, not_again=(
                "a DETACH PARTITION ... CONCURRENTLY that stopped part-way is finished with "
                "`ALTER TABLE ... DETACH PARTITION ... FINALIZE`, not run again"))
        _pause(migration, policy, watch, number, blocked)


def _drop_left_behind(conn: psycopg.Connection, migration: Migration,
                      before: frozenset[int]) -> None:
    """Drop the INVALID indexes that appeared since `before`: what the statement that timed
    out left behind (a concurrent build stopped part-way), which `IF NOT EXISTS` would
    skip and which enforces nothing; each drop is logged."""
    for index in indexes.left_behind(conn, before):
        # The name comes quoted from the server (quote_ident).
        conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
            sql.SQL(index.name)))
        log.warning("%s %s: dropped %s, left behind by the attempt that timed out, before "
                    "the next attempt", migration.service, migration.label,
                    indexes.described([index]))
