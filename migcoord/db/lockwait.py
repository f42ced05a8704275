"""A migration's lock waits: its timeouts, who blocks it, and the pauses between attempts.

Each migration runs with the `lock_timeout` (and `statement_timeout`) of its
migcoord.core.ddl policy: `SET LOCAL` in the round trip that opens its transaction, or,
for a no-transaction migration, a session `SET` before its first statement that
db/settings puts back afterwards. Neither reaches the next migration or the caller.

When the lock timeout fires, the waiting is over and PostgreSQL no longer shows whom the
migration waited for. So `LockWatch` looks while it waits: a thread with a connection of
its own wakes a few times per lock_timeout (at most once a second) while an attempt runs,
and when the migrating backend waits for a lock it reads the lock (`pg_locks`), the
sessions in the way (`pg_blocking_pids`) and what they are doing (`pg_stat_activity`).
A lock wait lasts a whole lock_timeout, so it is seen several times before it ends. A
migration that never runs longer than that interval costs one condition variable per
attempt, and no connection is opened until one does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from random import Random
from typing import Any

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from migcoord.core.ddl import DdlPolicy, format_ms

log = logging.getLogger("migcoord")

_PASSWORD = re.compile(r"(\bpassword)\s+'(?:[^']|'')*'?", re.IGNORECASE)
#: Sampling a wait: at least this often per lock_timeout, and at most once a second.
_SAMPLES_PER_TIMEOUT = 4
_LONGEST_INTERVAL = 1.0
_SHORTEST_INTERVAL = 0.005


def timeouts_sql(policy: DdlPolicy, *, local: bool) -> str:
    """`SET [LOCAL] lock_timeout = ...;` and, when the policy sets one, statement_timeout:
    integer milliseconds, so nothing of the user's text reaches the SQL."""
    scope = "SET LOCAL" if local else "SET"
    text = f"{scope} lock_timeout = {int(policy.lock_timeout_ms)};\n"
    if policy.statement_timeout_ms is not None:
        text += f"{scope} statement_timeout = {int(policy.statement_timeout_ms)};\n"
    return text


@attrs.frozen
class Blocker:
    """A session that held (or queued ahead for) the lock a migration waited for."""

    pid: int
    application_name: str | None = None
    user: str | None = None
    client_addr: str | None = None
    state: str | None = None
    #: How long its transaction had been open when it was seen, in seconds.
    transaction_seconds: float | None = None
    #: The start of its current (or last) query.
    query: str | None = None

    def describe(self) -> str:
        """`pid 4242 (application "psql", user app, client 10.0.0.5, idle in transaction,
        transaction open 12.3 s): UPDATE t SET ...`"""
        parts = [f'application "{self.application_name or ""}"']
        if self.user:
            parts.append(f"user {self.user}")
        parts.append(f"client {self.client_addr or 'local socket'}")
        if self.state:
            parts.append(self.state)
        if self.transaction_seconds is not None:
            parts.append(f"transaction open {self.transaction_seconds:.1f} s")
        text = f"pid {self.pid} ({', '.join(parts)})"
        if self.query:
            text += ": " + _PASSWORD.sub(r"\1 '***'", " ".join(self.query.split()))
        return text

    def as_json(self) -> dict[str, object]:
        return attrs.asdict(self)


@attrs.frozen
class Blocked:
    """What a migration's backend was seen waiting for, and who was in its way."""

    #: `relation`, `transactionid`, `tuple`, ... as pg_locks names it.
    locktype: str
    mode: str
    #: The relation waited for, schema-qualified (None for a row or transaction lock).
    relation: str | None
    blockers: tuple[Blocker, ...] = ()

    @property
    def what(self) -> str:
        """`AccessExclusiveLock on public.t`, or the lock type when no relation is known."""
        if self.relation is not None:
            return f"{self.mode} on {self.relation}"
        if self.locktype == "transactionid":
            return f"{self.mode} on a row another transaction changed (locktype transactionid)"
        if self.locktype == "virtualxid":
            return ("the end of older transactions on the table (a concurrent index build or "
                    "drop waits for them; locktype virtualxid)")
        return f"{self.mode} (locktype {self.locktype})"

    def who(self) -> str:
        if not self.blockers:
            return "a session that was no longer visible"
        return "; ".join(blocker.describe() for blocker in self.blockers)

    def as_json(self) -> dict[str, object]:
        return {"locktype": self.locktype, "mode": self.mode, "table": self.relation,
                "blockers": [blocker.as_json() for blocker in self.blockers]}


_SAMPLE = sql.SQL("""
SELECT w.locktype, w.mode,
       (SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = w.relation),
       coalesce((SELECT json_agg(json_build_object(
                   'pid', a.pid, 'application_name', a.application_name, 'user', a.usename,
                   'client_addr', host(a.client_addr), 'state', a.state,
                   'transaction_seconds', extract(epoch FROM now() - a.xact_start)::float8,
                   'query', left(a.query, 160)) ORDER BY a.pid)
                   FROM pg_catalog.pg_stat_activity a
                  WHERE a.pid = ANY (pg_catalog.pg_blocking_pids(w.pid))), '[]')::text
  FROM pg_catalog.pg_locks w
 WHERE w.pid = {pid} AND NOT w.granted
 LIMIT 1
""")


def sample(conn: psycopg.Connection[Any], pid: int) -> Blocked | None:
    """What backend `pid` waits for now, and who is in its way; None when it is not
    waiting for a lock."""
    row = conn.execute(_SAMPLE.format(pid=sql.Literal(pid))).fetchone()
    if row is None:
        return None
    blockers = tuple(Blocker(**{key: value for key, value in item.items()})
                     for item in json.loads(row[3]))
    return Blocked(locktype=str(row[0]), mode=str(row[1]),
                   relation=None if row[2] is None else str(row[2]), blockers=blockers)


def more_telling(earlier: Blocked | None, later: Blocked) -> Blocked:
    """The wait to report of two seen in one attempt: the later one, unless only the
    earlier names a session in the way. A wait can be read just as its holder ends (a
    concurrent index build waits for each older transaction in turn, some of them brief),
    and "no longer visible" must not replace the session that held the migration up."""
    if earlier is not None and earlier.blockers and not later.blockers:
        return earlier
    return later


class LockWatch:
    """Watches the migrating backend from a connection of its own (see the module), and
    paces the attempts: `pause` sleeps, `rng` jitters.

    `conninfo` None watches nothing (a throwaway database where nobody else is).
    """

    def __init__(self, conninfo: str | None, *, sleep: Callable[[float], None] = time.sleep,
                 rng: Random | None = None) -> None:
        self.conninfo = conninfo
        self.pause = sleep
        self.rng = rng if rng is not None else Random()
        self._cond = threading.Condition()
        #: (pid, interval, attempt number, when it started) of the attempt being watched.
        self._target: tuple[int, float, int, float] | None = None
        self._attempt = 0
        #: Whether the thread waits for an attempt to start (only then is it woken: a
        #: thread woken at every migration's start and end cost a run of 1,000 trivial
        #: migrations ~40 ms of CPU and the main thread the GIL).
        self._idle = False
        self._seen: Blocked | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: psycopg.Connection[Any] | None = None

    @classmethod
    def of(cls, conn: psycopg.Connection[Any]) -> LockWatch:
        """A watch that connects as `conn` did (its password included, never printed)."""
        conninfo = make_conninfo(conn.info.dsn, password=conn.info.password or None,
                                 application_name="migcoord lock watch")
        return cls(conninfo)

    @contextlib.contextmanager
    def watching(self, pid: int, policy: DdlPolicy) -> Iterator[Callable[[], Blocked | None]]:
        """Watch backend `pid` for one attempt; yields what returns the last lock wait seen
        in it (None when none was seen)."""
        if self.conninfo is None or policy.lock_timeout_ms == 0:
            yield lambda: None
            return
        interval = min(_LONGEST_INTERVAL, max(
            _SHORTEST_INTERVAL, policy.lock_timeout_ms / 1000 / _SAMPLES_PER_TIMEOUT))
        with self._cond:
            self._attempt += 1
            self._target = (pid, interval, self._attempt, time.monotonic())
            self._seen = None
            if self._idle:
                self._cond.notify_all()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="migcoord lock watch",
                                                daemon=True)
                self._thread.start()

        def seen() -> Blocked | None:
            with self._cond:
                return self._seen

        try:
            yield seen
        finally:
            with self._cond:
                self._target = None

    def close(self) -> None:
        """Stop the thread and close its connection."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()

    def _run(self) -> None:
        """Sample the attempt being watched once it has run for its interval, and again
        each interval after; an attempt that ends sooner is never looked at."""
        watched, due = 0, 0.0
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if self._target is None:
                        self._idle = True
                        self._cond.wait()
                        self._idle = False
                        continue
                    pid, interval, attempt, started = self._target
                    if attempt != watched:
                        watched, due = attempt, started + interval
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
                due = time.monotonic() + interval
            blocked = self._look(pid)
            with self._cond:
                if blocked is not None and self._target is not None \
                        and self._target[2] == attempt:
                    self._seen = more_telling(self._seen, blocked)

    def _look(self, pid: int) -> Blocked | None:
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                assert self.conninfo is not None
                self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5,
                                             prepare_threshold=None)
            return sample(self._conn, pid)
        except psycopg.Error as err:
            # Without a second connection (too many clients, a pooler) migrations still
            # run; their failure just cannot name the blocker.
            log.debug("cannot watch the migration's lock waits: %s", str(err).strip())
            self.conninfo = None
            with self._cond:
                self._target = None
            return None


def retrying_note(policy: DdlPolicy, retry: int, pause: float, blocked: Blocked | None) -> str:
    """The log line of one retry: what it waited for, who blocked it, when it tries again."""
    waited = f"waited {format_ms(policy.lock_timeout_ms)} (lock_timeout)"
    if blocked is not None:
        waited += f" for {blocked.what}, held by {blocked.who()}"
    return (f"{waited}; rolled back, retry {retry} of {policy.retries} in "
            f"{pause:.2f} s")
