"""The advisory lock that serialises `up`, `down`, `mark` and `adopt` on one database.

Key: the first 8 bytes of sha256(b"migcoord:" + history_schema), as a signed bigint,
taken with `pg_try_advisory_lock(key)`. Advisory locks are per database, so two
databases on one server never block each other; the CLI and the library derive the
same key. `migcoord status` and `pg_locks` show it (classid/objid hold the two halves).

We poll `pg_try_advisory_lock` with jittered backoff instead of blocking in
`pg_advisory_lock`: a waiter blocked inside the server can deadlock with a
`CREATE INDEX CONCURRENTLY` in the holder, which waits for every open transaction
(golang-migrate #960, Flyway #1654). Polling also makes the timeout exact.

The lock is released on every way out: a transaction the failure left open (aborted) is
rolled back first, since `pg_advisory_unlock` fails inside an aborted transaction and a
session lock outlives the caller's own rollback of `conn=`.

Session locks need one server session for the whole run. Behind PgBouncer in transaction
pooling mode each transaction may land on another server session, and the lock would
protect nothing (Flyway #2895, Atlas #2447); worse, released through another session it
stays behind in the pooled one, and every later run waits for it. So, before any lock:

- A pooler is there when the server's `pg_backend_pid()` differs from the pid the
  connection was given at startup (PgBouncer, pgcat, Odyssey and Supavisor hand out keys
  of their own; a direct connection, or a TCP proxy, never differs). A direct connection
  needs nothing more.
- Behind a pooler, transaction pooling shows when two transactions of this connection run
  in different server sessions (busy or round-robin pools), or when a second client of
  the same pool is handed this connection's server session while this one sits between
  transactions (an idle pool hands the same session to whoever asks next). Either is
  refused before anything is locked.

An idle transaction pool can still look like a session pool to both checks by chance, so
the lock is then taken together with the pid that holds it, confirmed on the next
statement, checked on every migration's history insert, and released only from that
session: landing anywhere else, the release ends the holding server session once it is
idle (`pg_terminate_backend`), so no run ever leaves the lock behind in a pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import select
import time
from collections.abc import Callable, Iterator

import attrs
import psycopg
from psycopg.conninfo import make_conninfo

from migcoord.db import script
from migcoord.db.diagnosis import lost
from migcoord.db.dsn import first_line, hide_password
from migcoord.errors import LockTimeout, MigcoordError, PoolerDetected

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

#: How long a second client may wait for the pool to serve it (a full session pool queues
#: it), and how long a release may wait for a pooled session to become idle.
PROBE_TIMEOUT_S = 1.0
RELEASE_TIMEOUT_S = 5.0
_LANDING_TRIES = 3

# The advisory lock with key %(classid)s/%(objid)s, granted to pid %(pid)s in this database
# (a key is two int4 halves in pg_locks, objsubid 1 for a bigint key).
_HELD_BY = """
    SELECT 1 FROM pg_locks l
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid = {pid}
       AND l.classid::bigint = %(classid)s AND l.objid::bigint = %(objid)s
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _key_params(key: int, **extra: int) -> dict[str, int]:
    return {"key": key, "classid": (key >> 32) & 0xFFFFFFFF, "objid": key & 0xFFFFFFFF,
            **extra}


def backend_pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    return int(row[0]) if row else -1


def _refuse_transaction_pooling(conn: psycopg.Connection, pid: int) -> None:
    """Raise PoolerDetected when `conn` (whose server session said `pid`) goes through a
    transaction-pooling proxy, as far as can be told without taking a lock."""
    if conn.info.backend_pid == pid:
        return  # no pooler: the server itself answered the startup
    log.debug("the connection goes through a pooler (startup pid %d, server pid %d)",
              conn.info.backend_pid, pid)
    for _ in range(2):
        if backend_pid(conn) != pid:
            raise PoolerDetected(
                "two transactions on one connection ran in different server sessions",
                hint=POOLER_HINT)
    if _pid_of_another_client(conn, PROBE_TIMEOUT_S) == pid:
        raise PoolerDetected(
            f"a second client of the same pool was handed server session {pid}, which this "
            "connection had used a moment before: the pool hands out server sessions per "
            "transaction", hint=POOLER_HINT)


def _pid_of_another_client(conn: psycopg.Connection, timeout: float) -> int | None:
    """The server pid that a new client with `conn`'s parameters is served by, or None
    when that cannot be learnt within `timeout` (a full session pool queues the client)."""
    conninfo = make_conninfo(conn.info.dsn, password=conn.info.password or None,
                             application_name="migcoord pooler check",
                             connect_timeout=max(1, math.ceil(timeout)))
    try:
        probe = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
    except psycopg.Error as err:
        log.debug("could not open a second connection to check the pooler: %s",
                  hide_password(first_line(err), conninfo))
        return None
    try:
        # The blocking API cannot be bounded: a pooler ignores a cancel request from a
        # client that waits for a server session. Wait on the socket instead.
        pgconn = probe.pgconn
        pgconn.send_query(b"SELECT pg_backend_pid()")
        deadline = time.monotonic() + timeout
        pgconn.consume_input()
        while pgconn.is_busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.debug("the pool did not serve a second client within %.1f s", timeout)
                return None
            select.select([pgconn.socket], [], [], remaining)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            return None
        value = result.get_value(0, 0)
        return int(value) if value is not None else None
    except (psycopg.Error, OSError) as err:
        log.debug("the second connection to check the pooler failed: %s",
                  hide_password(first_line(err), conninfo))
        return None
    finally:
        probe.close()


def find_holder(conn: psycopg.Connection, key: int) -> Holder | None:
    """Who holds the lock now, from pg_locks and pg_stat_activity (None if nobody).

    migcoord takes the lock right after connecting, so the holder's connection age is
    how long it has held the lock (for other clients, at most that long).
    """
    row = conn.execute(
        """
        SELECT l.pid, a.application_name, a.client_addr::text, a.usename,
               extract(epoch FROM now() - a.backend_start)::float8, a.state
          FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.classid::bigint = %(classid)s AND l.objid::bigint = %(objid)s
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         LIMIT 1
        """,
        _key_params(key),
    ).fetchone()
    if row is None:
        return None
    pid, app, client, user, held, state = row
    return Holder(pid=int(pid), application_name=app, client=client, user=user,
                  held_s=float(held) if held is not None else None, state=state)


def _release_promptly_if_lost(conn: psycopg.Connection) -> int:
    """Have the server notice soon when this client dies or vanishes mid-migration; returns
    the pid of the server session that took the settings.

    Without it a backend whose client was killed (SIGKILL, an evicted pod) runs the rest of
    a long statement before it sees the dead socket, holding the lock all the while:
    PostgreSQL 14+ polls the socket during queries with client_connection_check_interval.
    A client whose host vanished (a lost node, a network cut) sends nothing at all: the
    session and its lock would stay until the operating system's TCP keepalive gives up,
    two hours by default; these keepalives give up after about a minute of silence.
    """
    settings = ["SET tcp_keepalives_idle = 30", "SET tcp_keepalives_interval = 10",
                "SET tcp_keepalives_count = 3"]
    if conn.info.server_version >= 140000:
        settings.append("SET client_connection_check_interval = '1s'")
    # One simple query, one round trip; its last result is the pid.
    cursor = conn.execute("; ".join([*settings, "SELECT pg_backend_pid()"]))
    while cursor.nextset():
        pass
    row = cursor.fetchone()
    return int(row[0]) if row else -1


def _try_lock(conn: psycopg.Connection, key: int) -> tuple[int, bool | None]:
    """One attempt: (the server pid, whether it got the lock), the pid read in the same
    statement. None instead of a bool when this server session holds the lock already."""
    row = conn.execute(
        "SELECT pg_backend_pid(), CASE WHEN EXISTS (" + _HELD_BY.format(pid="pg_backend_pid()")
        + ") THEN NULL ELSE pg_try_advisory_lock(%(key)s) END", _key_params(key)).fetchone()
    assert row is not None
    return int(row[0]), row[1]


class NothingLeft(Exception):
    """Raised instead of taking the lock when `needless()` said the wait is pointless."""


@contextlib.contextmanager
def advisory_lock(conn: psycopg.Connection, key: int, *, timeout: float,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep,
                  needless: Callable[[], bool] | None = None) -> Iterator[int]:
    """Hold the advisory lock `key` on `conn`; yields the backend pid that holds it.

    Refuses a transaction-pooling proxy (PoolerDetected) before taking anything. Polls
    with jittered backoff; raises LockTimeout (exit 3) naming the holder after `timeout`
    seconds. Released on the way out, whatever the body did to the session: an open or
    aborted transaction is rolled back first, and a lock stranded in another server
    session behind a pooler is released there.

    While it waits, `needless` (if given) is asked after each attempt; when it says the
    work the lock was wanted for is done (by the holder), NothingLeft is raised without
    taking the lock, so a crowd of replicas that booted at once leaves together instead
    of queueing for the lock one by one.
    """
    _refuse_transaction_pooling(conn, backend_pid(conn))
    started = clock()
    delay = 0.02
    attempts = 0
    while True:
        attempts += 1
        pid, got = _try_lock(conn, key)
        if got is None:
            if conn.info.backend_pid != pid:
                raise PoolerDetected(
                    f"server session {pid}, which the pooler handed this connection, already "
                    "holds the migration lock for another client of the pool", hint=POOLER_HINT)
            # The caller took the lock on its own connection before calling us: it is
            # theirs to release.
            yield pid
            return
        if got:
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
        elif needless is not None and needless():
            raise NothingLeft
        sleep(min(delay * random.uniform(0.75, 1.25), max(timeout - waited, 0.001)))
        # Capped at a quarter second: a waiter notices the holder's end that soon.
        delay = min(delay * 1.6, 0.25)
    try:
        if _release_promptly_if_lost(conn) != pid:
            raise PoolerDetected(
                f"the migration lock was taken in server session {pid}, and the next "
                "statement ran in another one", hint=POOLER_HINT)
        yield pid
    except BaseException as error:
        try:
            problem = release(conn, key, pid, clock=clock, sleep=sleep)
        except KeyboardInterrupt:
            # Interrupted again while releasing: end the session, which frees its locks,
            # and let the first error (with what it carries, such as the steps that
            # committed) go on rather than this second interrupt.
            conn.close()
            problem = ("interrupted again while releasing the migration lock: the "
                       "connection was closed, and the server frees the lock with it")
        if problem is not None:
            log.error("%s", problem)
            if isinstance(error, MigcoordError):
                error.hint = f"{error.hint}; also: {problem}" if error.hint else problem
        raise
    problem = release(conn, key, pid, clock=clock, sleep=sleep)
    if problem is not None:
        # The work is done; the lock stranded in the pool would make every later run wait.
        raise PoolerDetected(f"the run finished, but {problem}", hint=POOLER_HINT)


def release(conn: psycopg.Connection, key: int, pid: int, *,
            clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Release the lock `key` that server session `pid` holds for `conn`; None when it is
    released (or went with a lost session), else what is left and how to end it.

    Rolls back a transaction left open first. A statement that lands in another server
    session (a pooler moved this connection) cannot release it there; the holding session
    is then ended as soon as it sits idle, so the lock cannot outlive the run.
    """
    script.settle(conn)  # a statement an interrupt left running
    if lost(conn):
        return None  # the server ends the session, and its locks with it
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
    deadline = clock() + RELEASE_TIMEOUT_S
    attempts = 0
    try:
        while True:
            attempts += 1
            # One statement per try, as each may land in another session: unlock if this
            # is the holder's; else end the holder if it sits idle (only after a few
            # tries: a round-robin pool soon hands the holding session back).
            row = conn.execute(
                "SELECT pg_backend_pid(), CASE WHEN pg_backend_pid() = %(pid)s "
                "THEN pg_advisory_unlock(%(key)s) END, "
                "(SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a "
                "  WHERE %(end)s AND a.pid = %(pid)s AND a.pid <> pg_backend_pid() "
                "    AND a.state = 'idle' AND EXISTS (" + _HELD_BY.format(pid="a.pid") + ")), "
                "EXISTS (" + _HELD_BY.format(pid="%(pid)s") + ")",
                {**_key_params(key, pid=pid), "end": attempts > _LANDING_TRIES}).fetchone()
            assert row is not None
            here, unlocked, terminated, still_held = row
            if here == pid:
                if not unlocked:
                    log.warning("the migration lock was no longer held by session %d", pid)
                return None
            if terminated:
                log.warning("ended server session %d behind the pooler to release the "
                            "migration lock stranded there", pid)
                _wait_for_release(conn, key, pid, clock() + RELEASE_TIMEOUT_S, sleep, clock)
                return None
            if not still_held:
                return None
            if clock() >= deadline:
                break
            if attempts > _LANDING_TRIES:
                sleep(0.05)
    except psycopg.Error as err:
        if lost(conn):
            return None
        return (f"could not release the migration lock held by server session {pid}: "
                f"{first_line(err)}; end that session with SELECT pg_terminate_backend({pid})")
    return (f"the migration lock is still held by server session {pid}, which a pooler keeps "
            f"open and which was busy for {RELEASE_TIMEOUT_S:.0f} s; end it with "
            f"SELECT pg_terminate_backend({pid})")


def _wait_for_release(conn: psycopg.Connection, key: int, pid: int, deadline: float,
                      sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
    """Until the terminated session `pid` has let go of the lock (it exits at once)."""
    while clock() < deadline:
        holder = find_holder(conn, key)
        if holder is None or holder.pid != pid:
            return
        sleep(0.02)
