"""The migration lock is released on every way out, also on the caller's own connection.

With `conn=`, migcoord's session lock lives as long as the caller's connection: a lock
left behind by a failure makes every other replica wait until that connection closes,
which for a service's pool may be never. `pg_advisory_unlock` fails inside an aborted
transaction, and the caller's later ROLLBACK does not release a session lock.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from helpers import make_tree, pair
from migcoord import Coordinator, Interrupted, MigrationFailed
from migcoord.db import script
from migcoord.db.lock import advisory_lock, lock_key, release
from test_engine_support import (
    AB_CONFIG,
    backend_gone,
    execute,
    history,
    lock_holders,
    query,
    sleeping_migcoord,
    wait_until,
)

KEY = lock_key("public")
T = TypeVar("T")


def sleepers(dsn: str) -> list[tuple[Any, ...]]:
    return query(dsn, "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                 "AND datname = current_database()")


def coordinator(root: Path) -> Coordinator:
    return Coordinator.load(root / "migcoord.toml", environ={})


def test_an_aborted_transaction_in_the_body_does_not_keep_the_lock(dsn: str) -> None:
    """The body fails inside a transaction: the lock is gone and the connection is idle."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero), \
                advisory_lock(conn, KEY, timeout=1) as pid:
            assert lock_holders(dsn) == [pid]
            conn.execute("BEGIN")
            conn.execute("SELECT 1 / 0")

        assert lock_holders(dsn) == []
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_failed_up_on_the_callers_connection_leaves_no_lock(tmp_path: Path, dsn: str) -> None:
    """A lock timeout in a migration run on the caller's connection: the caller keeps the
    connection open, and another replica still gets the lock at once."""
    execute(dsn, "CREATE TABLE t (id int)")
    root = make_tree(tmp_path, pair("a", "000001", "m", "-- migcoord:retries 0\n"
                                    "SET LOCAL lock_timeout = '100ms';\n"
                                    "ALTER TABLE t ADD COLUMN x int;\n"), config=AB_CONFIG)

    with psycopg.connect(dsn) as callers, psycopg.connect(dsn) as blocker:
        blocker.execute("LOCK TABLE t")
        with pytest.raises(MigrationFailed) as raised:
            coordinator(root).up("a", conn=callers)
        blocker.rollback()
        callers.rollback()

        assert raised.value.sqlstate == "55P03"
        assert lock_holders(dsn) == []
        assert callers.autocommit is False
        result = coordinator(root).up("a", dsn=dsn, lock_timeout=1)
        assert [step.version for step in result.applied] == [1]


def test_an_interrupted_up_on_the_callers_connection_leaves_no_lock(
    tmp_path: Path, dsn: str
) -> None:
    """Ctrl-C (SIGINT) while a migration runs on the caller's connection: psycopg cancels
    the statement, the transaction is aborted, and the lock is still released."""
    execute(dsn, "CREATE TABLE control (sleep_s float8 NOT NULL); INSERT INTO control VALUES (30)")
    root = make_tree(tmp_path, pair("a", "000001", "slow", "CREATE TABLE half (id int);\n"
                                    "SELECT pg_sleep((SELECT sleep_s FROM control));\n"),
                     config=AB_CONFIG)

    def interrupt_when_sleeping() -> None:
        wait_until(lambda: sleeping_migcoord(dsn), what="the migration in pg_sleep")
        os.kill(os.getpid(), signal.SIGINT)

    with psycopg.connect(dsn, application_name="migcoord up from a service") as callers:
        interrupter = threading.Thread(target=interrupt_when_sleeping)
        interrupter.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                coordinator(root).up("a", conn=callers)
        finally:
            interrupter.join()

        assert lock_holders(dsn) == []
        assert not callers.closed
        assert history(dsn) == []
        execute(dsn, "UPDATE control SET sleep_s = 0")
        assert [s.version for s in coordinator(root).up("a", dsn=dsn, lock_timeout=1).applied] == [1]


def test_a_lock_stranded_in_another_idle_session_is_released_by_ending_that_session(
    dsn: str
) -> None:
    """What a transaction pooler does to a session lock: it stays in a server session this
    connection no longer reaches. The release ends that session once it is idle."""
    with psycopg.connect(dsn, autocommit=True) as stranded, \
            psycopg.connect(dsn, autocommit=True) as conn:
        stranded.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        pid = stranded.info.backend_pid

        assert release(conn, KEY, pid) is None

        assert lock_holders(dsn) == []
        assert backend_gone(dsn, pid)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_stranded_lock_in_a_busy_session_is_named_with_the_command_that_ends_it(
    dsn: str
) -> None:
    """The session holding the lock stays busy: no one's transaction is cut short; the
    problem names the session and the exact command."""
    ticks = iter(range(1000))
    with psycopg.connect(dsn) as busy, psycopg.connect(dsn, autocommit=True) as conn:
        busy.execute("SELECT pg_advisory_lock(%s)", (KEY,))  # opens a transaction: not idle
        pid = busy.info.backend_pid

        problem = release(conn, KEY, pid, clock=lambda: float(next(ticks)), sleep=lambda s: None)

        assert problem is not None
        assert f"SELECT pg_terminate_backend({pid})" in problem
        assert lock_holders(dsn) == [pid]
        busy.rollback()
        busy.execute("SELECT pg_advisory_unlock_all()")


def interrupted_first(wait: Callable[..., T]) -> Callable[..., T]:
    """`wait`, but the first call raises KeyboardInterrupt before waiting: a Ctrl-C that
    lands after the query was sent and before psycopg's wait, which cancels the query
    itself, has begun."""
    calls = iter(range(1_000_000))

    def waiting(*args: Any, **kwargs: Any) -> T:
        if next(calls) == 0:
            raise KeyboardInterrupt
        return wait(*args, **kwargs)

    return waiting


def test_an_interrupt_before_psycopgs_wait_still_cancels_the_running_statement(
    dsn: str
) -> None:
    """The statement is cancelled and its answer read: the connection is usable at once,
    and nothing is left sleeping in the server."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.wait = interrupted_first(conn.wait)  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            script.run(conn, "SELECT 1; SELECT pg_sleep(60);")

        assert time.monotonic() - started < 30
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 2").fetchone() == (2,)
        assert sleepers(dsn) == []


def test_a_cancel_the_server_dropped_is_sent_again(dsn: str) -> None:
    """A cancel that reaches the server before its backend has begun the query (it was
    only just sent) is dropped, and the query would run to its end: settling sends it
    again until the answer comes. Here the first cancel is never sent at all."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.wait = interrupted_first(conn.wait)  # type: ignore[method-assign]
        conn.cancel = dropping_the_first(conn.cancel)  # type: ignore[method-assign]
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            script.run(conn, "SELECT pg_sleep(60);")

        assert time.monotonic() - started < 30
        assert conn.execute("SELECT 2").fetchone() == (2,)
        assert sleepers(dsn) == []


def dropping_the_first(cancel: Callable[[], None]) -> Callable[[], None]:
    """`cancel`, but its first call does nothing, as a cancel the server dropped."""
    calls = iter(range(1_000_000))

    def cancelling() -> None:
        if next(calls) > 0:
            cancel()

    return cancelling


def test_the_lock_is_released_even_when_a_statement_still_runs_on_its_connection(
    dsn: str
) -> None:
    """A statement left running (read by no one) is cancelled before the lock is released,
    not reported as a lock that could not be released."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (KEY,))
        pid = conn.info.backend_pid
        conn.pgconn.send_query(b"SELECT pg_sleep(60)")
        wait_until(lambda: sleepers(dsn), what="the statement in pg_sleep")

        assert release(conn, KEY, pid) is None

        assert lock_holders(dsn) == []
        assert sleepers(dsn) == []
        assert conn.execute("SELECT 1").fetchone() == (1,)


def interrupted_after_a_migration(wait: Callable[..., T]) -> Callable[..., T]:
    """`wait`, but raising KeyboardInterrupt once the first migration's query has been
    answered: psycopg notices a Ctrl-C only between waits, so a signal that came near
    the end of the migration is raised after the server answered it, COMMIT included.
    (A migration's query is the only one answered with more than five results.)"""
    fired: list[bool] = []

    def waiting(*args: Any, **kwargs: Any) -> T:
        answer = wait(*args, **kwargs)
        if not fired and isinstance(answer, list) and len(answer) > 5:
            fired.append(True)
            raise KeyboardInterrupt
        return answer

    return waiting


def two_tables(tmp_path: Path) -> Path:
    return make_tree(tmp_path, {
        **pair("a", "000001", "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n"),
        **pair("a", "000002", "two", "CREATE TABLE two (id int);\n", "DROP TABLE two;\n"),
    }, config=AB_CONFIG)


def test_a_migration_that_committed_before_the_interrupt_was_noticed_is_reported_applied(
        tmp_path: Path, dsn: str) -> None:
    """The interrupt stops the run, and the migration whose COMMIT the server had already
    answered is among `applied`, as the history and the schema say."""
    root = two_tables(tmp_path)
    with psycopg.connect(dsn) as conn:
        conn.wait = interrupted_after_a_migration(conn.wait)  # type: ignore[method-assign]
        with pytest.raises(Interrupted) as raised:
            coordinator(root).up("a", conn=conn)

        assert [step.version for step in raised.value.applied] == [1]
        assert [row["version"] for row in history(dsn)] == [1]
        assert query(dsn, "SELECT to_regclass('one') IS NOT NULL, "
                          "to_regclass('two') IS NOT NULL") == [(True, False)]
        assert lock_holders(dsn) == []
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_rollback_that_committed_before_the_interrupt_was_noticed_is_reported(
        tmp_path: Path, dsn: str) -> None:
    """The same for `down`: the migration rolled back is among `applied`."""
    root = two_tables(tmp_path)
    coordinator(root).up("a", dsn=dsn)
    with psycopg.connect(dsn) as conn:
        conn.wait = interrupted_after_a_migration(conn.wait)  # type: ignore[method-assign]
        with pytest.raises(Interrupted) as raised:
            coordinator(root).down("a", conn=conn, steps=2)

        assert [step.version for step in raised.value.applied] == [2]
        assert [row["version"] for row in history(dsn)] == [1]
        assert lock_holders(dsn) == []


def test_a_second_interrupt_while_the_lock_is_released_keeps_the_first(
        tmp_path: Path, dsn: str) -> None:
    """Ctrl-C twice: the second lands while the lock is released. The caller still gets
    `Interrupted` with the step that committed; the connection is closed, which frees
    the lock."""
    root = two_tables(tmp_path)
    conn = psycopg.connect(dsn)
    try:
        conn.wait = interrupted_after_a_migration(conn.wait)  # type: ignore[method-assign]
        execute_sql = conn.execute

        def interrupted_unlock(query: Any, *args: Any, **kwargs: Any) -> Any:
            if "pg_advisory_unlock" in str(query):
                raise KeyboardInterrupt
            return execute_sql(query, *args, **kwargs)

        conn.execute = interrupted_unlock  # type: ignore[method-assign]
        stopped: KeyboardInterrupt | None = None
        try:
            coordinator(root).up("a", conn=conn)
        except KeyboardInterrupt as stop:  # a bare one would end the test session
            stopped = stop

        assert isinstance(stopped, Interrupted), repr(stopped)
        assert [step.version for step in stopped.applied] == [1]
        assert conn.closed
        wait_until(lambda: lock_holders(dsn) == [], what="the lock freed with the session")
        assert [row["version"] for row in history(dsn)] == [1]
    finally:
        conn.close()
