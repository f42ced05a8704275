"""Shared helpers for the engine tests (tests/test_engine_*.py). Holds no tests.

Everything here talks to the real server through plain psycopg, never through migcoord,
so a test that reads the database with these helpers checks migcoord from outside.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from conftest import PgServer
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from helpers import REPO
from migcoord.db.lock import lock_key

T = TypeVar("T")

#: Two services with no dependencies on each other, for scenarios of our own.
AB_CONFIG = """\
[services.a]
migrations = "a/migrations"

[services.b]
migrations = "b/migrations"
"""

#: An upper bound for anything that should be quick; generous for a busy 2-core machine.
QUICK = 15.0


def env(dsn: str, **extra: str) -> dict[str, str]:
    """The environment a migcoord command gets: the DSN in $DATABASE_URL."""
    return {"DATABASE_URL": dsn, **extra}


def query(dsn: str, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(text, params).fetchall()  # type: ignore[arg-type]


def scalar(dsn: str, text: str, params: Sequence[Any] = ()) -> Any:
    rows = query(dsn, text, params)
    assert len(rows) == 1, rows
    return rows[0][0]


def execute(dsn: str, text: str, params: Sequence[Any] | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(text, params)  # type: ignore[arg-type]


def table_exists(dsn: str, name: str) -> bool:
    return bool(scalar(dsn, "SELECT to_regclass(%s) IS NOT NULL", (name,)))


def history(dsn: str) -> list[dict[str, Any]]:
    """migcoord_history as dicts by version; [] when the table does not exist."""
    if not table_exists(dsn, "public.migcoord_history"):
        return []
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM public.migcoord_history ORDER BY version").fetchall()


def history_versions(dsn: str) -> list[int]:
    return [row["version"] for row in history(dsn)]


def events(dsn: str) -> list[dict[str, Any]]:
    """migcoord_events in order; [] when the table does not exist."""
    if not table_exists(dsn, "public.migcoord_events"):
        return []
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM public.migcoord_events ORDER BY id").fetchall()


def schema_snapshot(dsn: str) -> list[tuple[str, ...]]:
    """Every user relation (with its kind) and column (with its type), from pg_catalog."""
    rows = query(dsn, """
        SELECT n.nspname, c.relname, c.relkind::text,
               coalesce(a.attname, ''), coalesce(format_type(a.atttypid, a.atttypmod), ''),
               coalesce(a.attnotnull::text, '')
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
         ORDER BY 1, 2, 4
    """)
    return [tuple(str(v) for v in row) for row in rows]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_until(predicate: Callable[[], T], *, what: str, timeout: float = QUICK,
               interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


def with_params(dsn: str, **params: Any) -> str:
    """The same DSN with some parameters replaced (key=value form)."""
    return make_conninfo(dsn, **params)


def lock_holders(dsn: str, schema: str = "public") -> list[int]:
    """Backend pids holding migcoord's advisory lock for `schema` in dsn's database."""
    key = lock_key(schema)
    rows = query(dsn, """
        SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND d.datname = current_database()
           AND l.classid::bigint = %s AND l.objid::bigint = %s
    """, ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF))
    return [int(r[0]) for r in rows]


def sleeping_migcoord(dsn: str) -> int | None:
    """The pid of a `migcoord up` backend that is inside pg_sleep in dsn's database."""
    rows = query(dsn, """
        SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE 'migcoord up%%'
           AND state = 'active' AND wait_event = 'PgSleep'
    """)
    return int(rows[0][0]) if rows else None


def backend_gone(dsn: str, pid: int) -> bool:
    return not query(dsn, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,))


@contextlib.contextmanager
def holding_lock(dsn: str, *, application_name: str,
                 schema: str = "public") -> Iterator[psycopg.Connection]:
    """Hold migcoord's advisory lock from a connection of our own, named `application_name`."""
    with psycopg.connect(with_params(dsn, application_name=application_name),
                         autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(schema),))
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.execute("SELECT pg_advisory_unlock_all()")


@contextlib.contextmanager
def temporary_role(pg_server: PgServer, dsn: str, prefix: str, *, attributes: str = "LOGIN",
                   password: str | None = None) -> Iterator[str]:
    """A role of this test's own (roles are cluster-wide), dropped with what it owns."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    create = sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(name))
    if password is not None:
        create = sql.SQL("{} PASSWORD {}").format(create, sql.Literal(password))
    with pg_server.admin() as admin:
        admin.execute(create)
    try:
        yield name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        with pg_server.admin() as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def process_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment `helpers.run_process` gives `python -m migcoord`, plus `environ`."""
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **environ}


def spawn(args: Sequence[str], *, cwd: Path, environ: Mapping[str, str]) -> subprocess.Popen[str]:
    """`python -m migcoord ARGS` started in the background (the caller waits or kills it)."""
    return subprocess.Popen([sys.executable, "-m", "migcoord", *args], cwd=cwd,
                            env=process_env(environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


class LogCapture(logging.Handler):
    """Every record of the `migcoord` logger, formatted, for assertions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@contextlib.contextmanager
def capture_migcoord_log() -> Iterator[LogCapture]:
    """Attach a handler to `logging.getLogger("migcoord")` directly at DEBUG.

    Directly, not through caplog: an in-process CLI run sets propagate=False on it.
    """
    logger = logging.getLogger("migcoord")
    handler = LogCapture()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
