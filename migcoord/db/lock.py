"""The advisory lock that serialises `up`, `down`, `mark` and `adopt` on one database.

Key: the first 8 bytes of sha256(b"migcoord:" + history_schema), as a signed bigint,
taken with `pg_try_advisory_lock(key)`. Advisory locks are per database, so two
databases on one server never block each other; the CLI and the library derive the
same key. `migcoord status` and `pg_locks` show it (classid/objid hold the two halves).

We poll `pg_try_advisory_lock` with jittered backoff instead of blocking in
`pg_advisory_lock`: a waiter blocked inside the server can deadlock with a
`CREATE INDEX CONCURRENTLY` in the holder, which waits for every open transaction
(golang-migrate #960, Flyway #1654). Polling also makes the timeout exact.

Session locks need one server session for the whole run. Behind PgBouncer in transaction
pooling mode each transaction may land on another server session, and the lock would
protect nothing (Flyway #2895, Atlas #2447). Before and after taking the lock we check that two
separate transactions see the same backend pid, and every migration's history insert
returns the backend pid and is compared again; a mismatch stops the run with an
explanation before anything is committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator

import attrs
import psycopg

from migcoord.errors import LockTimeout, PoolerDetected

log = logging.getLogger("migcoord")


def lock_key(history_schema: str) -> int:
    digest = hashlib.sha256(b"migcoord:" + history_schema.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@attrs.frozen
class Holder:
    pid: int
    application_name: str | None
    client: str | None
    user: str | None
    held_s: float | None
    state: str | None

    def describe(self) -> str:
        parts = [f"pid {self.pid}"]
        if self.application_name:
            parts.append(f"application_name {self.application_name!r}")
        if self.user:
            parts.append(f"user {self.user}")
        parts.append(f"client {self.client or 'local socket'}")
        if self.held_s is not None:
            parts.append(f"holding it for {self.held_s:.0f} s")
        if self.state:
            parts.append(f"state {self.state}")
        return ", ".join(parts)


POOLER_HINT = (
    "migcoord holds a session-level advisory lock across several transactions, which a "
    "transaction-pooling proxy such as PgBouncer (pool_mode = transaction) cannot keep. "
    "Point --dsn / DATABASE_URL at the PostgreSQL server directly, or at a PgBouncer pool "
    "in session mode, for migrations")


def backend_pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    return int(row[0]) if row else -1


def _session_pid(conn: psycopg.Connection) -> int:
    """The backend pid, seen the same in two transactions; else PoolerDetected."""
    pid = backend_pid(conn)
    if backend_pid(conn) != pid:
        raise PoolerDetected(
            "two transactions on one connection ran in different server sessions",
            hint=POOLER_HINT)
    return pid


def find_holder(conn: psycopg.Connection, key: int) -> Holder | None:
    """Who holds the lock now, from pg_locks and pg_stat_activity (None if nobody).

    migcoord takes the lock right after connecting, so the holder's connection age is
    how long it has held the lock (for other clients, at most that long).
    """
    classid = (key >> 32) & 0xFFFFFFFF
    objid = key & 0xFFFFFFFF
    row = conn.execute(
        """
        SELECT l.pid, a.application_name, a.client_addr::text, a.usename,
               extract(epoch FROM now() - a.backend_start)::float8, a.state
          FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.classid::bigint = %s AND l.objid::bigint = %s
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         LIMIT 1
        """,
        (classid, objid),
    ).fetchone()
    if row is None:
        return None
    pid, app, client, user, held, state = row
    return Holder(pid=int(pid), application_name=app, client=client, user=user,
                  held_s=float(held) if held is not None else None, state=state)


def _release_promptly_if_killed(conn: psycopg.Connection) -> None:
    """Have the server notice within a second when this client dies mid-migration.

    Without it a backend whose client was killed (SIGKILL, an evicted pod) runs the
    rest of a long statement before it sees the dead socket, holding the lock all the
    while. PostgreSQL 14+ polls the socket during queries when this is set.
    """
    if conn.info.server_version >= 140000:
        conn.execute("SET client_connection_check_interval = '1s'")


@contextlib.contextmanager
def advisory_lock(conn: psycopg.Connection, key: int, *, timeout: float,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> Iterator[int]:
    """Hold the advisory lock `key` on `conn`; yields the backend pid that holds it.

    Polls with jittered backoff; raises LockTimeout (exit 3) naming the holder after
    `timeout` seconds. Released in `finally`, also when the body fails.
    """
    # Refuse a transaction pooler before taking the lock too: taken there, the lock stays
    # in a pooled server session that this connection may never reach again to release it.
    _session_pid(conn)
    started = clock()
    delay = 0.02
    attempts = 0
    while True:
        attempts += 1
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if row and row[0]:
            break
        waited = clock() - started
        if waited >= timeout:
            holder = find_holder(conn, key)
            who = holder.describe() if holder else "a session that has since let go"
            raise LockTimeout(
                f"gave up waiting for the migration lock after {waited:.1f} s; it is held by "
                f"{who}",
                hint="another migcoord is migrating this database: wait and retry, or raise "
                "--lock-timeout; if that process is stuck, end it with "
                f"SELECT pg_terminate_backend({holder.pid if holder else 'PID'}) (its current "
                "migration rolls back)",
                holder_pid=holder.pid if holder else None,
                application_name=holder.application_name if holder else None,
                waited_s=waited)
        if attempts == 1:
            log.info("waiting for the migration lock (another migcoord is running)")
        sleep(min(delay * random.uniform(0.75, 1.25), max(timeout - waited, 0.001)))
        delay = min(delay * 1.6, 1.0)
    try:
        _release_promptly_if_killed(conn)
        yield _session_pid(conn)
    finally:
        with contextlib.suppress(psycopg.Error):
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
