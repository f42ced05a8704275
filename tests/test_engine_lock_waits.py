"""Bounded lock waits: each migration runs with a lock_timeout, is retried after a pause
when it fires, and after the last attempt fails naming the sessions in its way.

Real contention on the test's server: an application session holds a lock in an open
transaction while `up` runs. The tests synchronise on what the server shows and on the
log lines of the retries, never on sleeps; the pauses are the config's own (`[ddl]
retry_delay = "10ms"`), as a user could set them.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

from helpers import make_tree, pair, run
from migcoord import Coordinator, MigrationLockTimeout
from migcoord.db import lockwait
from migcoord.errors import MigrationLeftDirty
from test_engine_support import (
    AB_CONFIG,
    QUICK,
    capture_migcoord_log,
    env,
    execute,
    history,
    holding_lock,
    lock_holders,
    query,
    scalar,
    wait_until,
    with_params,
)

FAST_RETRIES = """\
[ddl]
lock_timeout = "300ms"
retries = {retries}
retry_delay = "10ms"
retry_delay_max = "20ms"

""" + AB_CONFIG


def tree(root: Path, up: str, *, retries: int = 2, down: str = "SELECT 1;\n",
         config: str | None = None) -> Path:
    return make_tree(root, pair("a", "000001", "m", up, down),
                     config=config if config is not None else FAST_RETRIES.format(retries=retries))


def coordinator(root: Path) -> Coordinator:
    return Coordinator.load(root / "migcoord.toml", environ={})


@pytest.fixture
def blocker(dsn: str) -> Iterator[psycopg.Connection]:
    """An application session named `billing-app`, left open (the test starts its
    transaction), rolled back and closed afterwards."""
    execute(dsn, "CREATE TABLE t (id int)")
    conn = psycopg.connect(with_params(dsn, application_name="billing-app"))
    try:
        yield conn
    finally:
        # A test may have ended it with pg_terminate_backend.
        with contextlib.suppress(psycopg.OperationalError):
            conn.rollback()
        conn.close()


def migration_waiting(dsn: str) -> bool:
    """Whether a `migcoord up` backend waits for a lock now."""
    return bool(query(dsn, """
        SELECT 1 FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE 'migcoord up%%'
           AND wait_event_type = 'Lock'"""))


def test_a_blocked_migration_fails_after_its_retries_naming_the_blocker(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """An open transaction holds the table: every attempt times out; exit 1, with the
    blocker's pid, application, state, query, the lock waited for and what to do; the
    file's position; nothing applied, no history row, the migration lock free."""
    root = tree(tmp_path, "ALTER TABLE t ADD COLUMN x int;\n")
    blocker.execute("SELECT count(*) FROM t WHERE id > 0")
    holder_pid = blocker.info.backend_pid

    result = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    stderr = result.stderr
    up_file = root / "a" / "migrations" / "000001_m.up.sql"
    assert f"{up_file}:1:1: ERROR: canceling statement due to lock timeout" in stderr
    assert "3 attempts, each rolled back after waiting 300ms (lock_timeout)" in stderr
    assert "it waited for AccessExclusiveLock on public.t" in stderr
    assert f'pid {holder_pid} (application "billing-app"' in stderr
    assert "idle in transaction" in stderr
    assert "SELECT count(*) FROM t WHERE id > 0" in stderr
    assert f"SELECT pg_terminate_backend({holder_pid});" in stderr
    assert "-- migcoord:lock-timeout" in stderr
    assert "Traceback" not in stderr
    error = result.json()["error"]
    assert (error["type"], error["exit_code"], error["sqlstate"], error["line"]) == (
        "MigrationLockTimeout", 1, "55P03", 1)
    wait = error["lock_wait"]
    assert (wait["attempts"], wait["lock_timeout"], wait["table"], wait["mode"]) == (
        3, "300ms", "public.t", "AccessExclusiveLock")
    assert [b["pid"] for b in wait["blockers"]] == [holder_pid]
    assert wait["blockers"][0]["application_name"] == "billing-app"
    retries = [line for line in stderr.splitlines() if "; rolled back, retry" in line]
    assert len(retries) == 2, stderr
    assert all(f"pid {holder_pid}" in line for line in retries), retries
    assert history(dsn) == []
    assert lock_holders(dsn) == []
    assert scalar(dsn, "SELECT count(*) FROM information_schema.columns "
                       "WHERE table_name = 't' AND column_name = 'x'") == 0


def up_ending_the_blocker_at_the_first_retry(root: Path, dsn: str,
                                            blocker: psycopg.Connection) -> tuple[Any, Any]:
    """`up`, while a thread commits `blocker` once the first retry is logged: the result
    and the captured log."""
    with capture_migcoord_log() as log:
        def end_blocker() -> None:
            wait_until(lambda: any("retry 1 of 20" in line for line in log.at(30)),
                       what="the first retry")
            blocker.commit()

        ender = threading.Thread(target=end_blocker)
        ender.start()
        try:
            result = coordinator(root).up("a", dsn=dsn)
        finally:
            ender.join(QUICK)
    return result, log


def test_a_blocked_migration_succeeds_on_a_retry_once_the_blocker_ends(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """The blocker commits after the first retry is logged: a later attempt applies it."""
    root = tree(tmp_path, "ALTER TABLE t ADD COLUMN x int;\n", retries=20)
    blocker.execute("INSERT INTO t VALUES (1)")

    result, _log = up_ending_the_blocker_at_the_first_retry(root, dsn, blocker)

    assert [step.version for step in result.applied] == [1]
    assert [row["status"] for row in history(dsn)] == ["applied"]
    assert scalar(dsn, "SELECT count(*) FROM information_schema.columns "
                       "WHERE table_name = 't' AND column_name = 'x'") == 1


def test_application_queries_behind_a_blocked_migration_get_through(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """An application query that queues behind the waiting ALTER TABLE (an ACCESS
    EXCLUSIVE request blocks every later reader) runs once the lock timeout ends the
    wait, while the long transaction is still open. Without a lock timeout it would wait
    for as long as that transaction stays open."""
    root = tree(tmp_path, "ALTER TABLE t ADD COLUMN x int;\n", retries=0)
    blocker.execute("SELECT 1 FROM t")
    outcome: list[object] = []

    def migrate() -> None:
        try:
            coordinator(root).up("a", dsn=dsn, ddl_lock_timeout="2s")
        except MigrationLockTimeout as error:
            outcome.append(error)

    migrating = threading.Thread(target=migrate)
    migrating.start()
    try:
        wait_until(lambda: migration_waiting(dsn), what="the migration to wait for its lock")
        # Queued behind the migration's ACCESS EXCLUSIVE request.
        with psycopg.connect(dsn, autocommit=True) as app:
            app.execute("SET statement_timeout = '60s'")
            assert app.execute("SELECT count(*) FROM t").fetchone() == (0,)
        assert blocker.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    finally:
        migrating.join(QUICK)
    assert [type(error) for error in outcome] == [MigrationLockTimeout]


@pytest.mark.parametrize("caller_value", ["0", "42s"])
def test_a_callers_connection_keeps_its_lock_timeout(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection, caller_value: str) -> None:
    """The migration ran with 300ms; the caller's `conn=` comes back with its own
    setting, after a success and after a failure."""
    root = tree(tmp_path, "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS v;\n"
                "ALTER TABLE t ADD COLUMN x int;\n", retries=0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SET lock_timeout = '{caller_value}'")
        shown = conn.execute("SHOW lock_timeout").fetchone()
        blocker.execute("SELECT 1 FROM t")
        with pytest.raises(MigrationLockTimeout):
            coordinator(root).up("a", conn=conn)
        assert conn.execute("SHOW lock_timeout").fetchone() == shown
        blocker.rollback()
        assert [s.version for s in coordinator(root).up("a", conn=conn).applied] == [1]
        assert conn.execute("SHOW lock_timeout").fetchone() == shown
    assert scalar(dsn, "SELECT v FROM seen") == "300ms"


NO_TRANSACTION_INDEX = "-- migcoord:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n"


def test_a_timed_out_concurrent_build_is_dropped_and_built_again(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """A no-transaction CREATE INDEX CONCURRENTLY waits for an open writing transaction,
    times out and leaves an INVALID index; the retry drops it (concurrently, and says
    so) and builds it once the writer has committed."""
    root = tree(tmp_path, NO_TRANSACTION_INDEX, retries=20)
    blocker.execute("INSERT INTO t VALUES (1)")

    result, log = up_ending_the_blocker_at_the_first_retry(root, dsn, blocker)

    assert [step.version for step in result.applied] == [1]
    assert any("dropped the INVALID index public.t_id (on public.t)" in line
               for line in log.at(30)), log.text
    assert query(dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass") == [
        (True,)]
    assert [row["status"] for row in history(dsn)] == ["applied"]


def test_a_no_transaction_migration_that_stays_blocked_is_dirty_naming_the_blocker(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """The writer never commits: dirty (exit 1), the blocker named, the INVALID index it
    left named with its DROP; the session's lock_timeout put back."""
    root = tree(tmp_path, NO_TRANSACTION_INDEX, retries=1)
    blocker.execute("INSERT INTO t VALUES (1)")
    holder_pid = blocker.info.backend_pid

    with pytest.raises(MigrationLeftDirty) as raised:
        coordinator(root).up("a", dsn=dsn)

    error = raised.value
    assert error.exit_code == 1
    assert "2 attempts" in error.message
    assert f'pid {holder_pid} (application "billing-app"' in error.message
    assert "DROP INDEX CONCURRENTLY public.t_id;" in str(error.hint)
    assert "migcoord mark 000001 --pending" in str(error.hint)
    assert error.lock_wait is not None
    blockers = error.lock_wait["blockers"]
    assert isinstance(blockers, list)
    assert [b["pid"] for b in blockers] == [holder_pid]
    [row] = history(dsn)
    assert row["status"] == "dirty"
    assert lock_holders(dsn) == []


LAYERED = """\
[ddl]
lock_timeout = "300ms"

[services.a]
migrations = "a/migrations"
ddl = { lock_timeout = "400ms" }

[services.b]
migrations = "b/migrations"
"""


def recorder(number: int) -> str:
    return (f"CREATE TABLE seen_{number} AS SELECT current_setting('lock_timeout') AS lock, "
            "current_setting('statement_timeout') AS statement;\n")


def seen(dsn: str, number: int) -> tuple[str, str]:
    [row] = query(dsn, f"SELECT lock, statement FROM seen_{number}")
    return str(row[0]), str(row[1])


@pytest.mark.parametrize("mode", ["transaction", "no-transaction"])
def test_the_first_layer_that_sets_a_timeout_wins(
        tmp_path: Path, dsn: str, other_dsn: str, mode: str) -> None:
    """Command line over the file's directive over the service's `ddl` over `[ddl]`; no
    statement_timeout unless one is set; `0` turns the lock timeout off."""
    header = "-- migcoord:no-transaction\n" if mode == "no-transaction" else ""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "service", header + recorder(1)),
        **pair("a", "000002", "file", header + "-- migcoord:lock-timeout 1.5s\n"
               "-- migcoord:statement-timeout 10min\n" + recorder(2)),
        **pair("b", "000003", "config", header + recorder(3)),
    }, config=LAYERED)

    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert [seen(dsn, n) for n in (1, 2, 3)] == [
        ("400ms", "0"), ("1500ms", "10min"), ("300ms", "0")]

    result = run(["up", "--all", "--ddl-lock-timeout", "0"], cwd=root, environ=env(other_dsn))
    assert result.code == 0, result.stderr
    assert [seen(other_dsn, n) for n in (1, 2, 3)] == [("0", "0"), ("0", "10min"), ("0", "0")]


def test_the_hints_of_a_lock_timeout_work_when_followed(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """End the blocker with the hint's own SQL, then run the hint's command: applied."""
    root = tree(tmp_path, "ALTER TABLE t ADD COLUMN x int;\n", retries=0)
    blocker.execute("SELECT 1 FROM t")
    failed = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))
    assert failed.code == 1, failed
    hint = failed.json()["error"]["hint"]
    [terminate] = re.findall(r"`(SELECT pg_terminate_backend\(\d+\);)`", hint)
    [command] = re.findall(r"run `migcoord ([^`]+)` again", hint)

    execute(dsn, terminate)
    wait_until(lambda: blocker.closed or blocker.broken or not query(
        dsn, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (blocker.info.backend_pid,)),
        what="the blocker to end")
    again = run(command.split(), cwd=root, environ=env(dsn))
    assert again.code == 0, again.stderr
    assert [row["version"] for row in history(dsn)] == [1]


def test_a_password_in_the_dsn_never_shows_in_a_lock_timeout(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """The watching connection connects as the migrating one did (password included),
    names the blocker, and the password appears nowhere in the output."""
    secret = "s3cret-Lock-Wait-pw"
    root = tree(tmp_path, "ALTER TABLE t ADD COLUMN x int;\n", retries=1)
    blocker.execute("SELECT 1 FROM t")
    result = run(["up", "--service", "a", "--format", "json", "-v"], cwd=root,
                 environ=env(with_params(dsn, password=secret)))
    assert result.code == 1, result
    assert f"pid {blocker.info.backend_pid}" in result.stderr
    assert secret not in result.stdout + result.stderr


def test_a_crlf_file_with_a_byte_order_mark_keeps_its_directive(tmp_path: Path,
                                                                dsn: str) -> None:
    up = "\ufeff-- migcoord:lock-timeout 1.5s\r\n-- migcoord:retries 0\r\n" + recorder(1).replace(
        "\n", "\r\n")
    root = make_tree(tmp_path, {"a/migrations/000001_m.up.sql": up.encode("utf-8"),
                                "a/migrations/000001_m.down.sql": "SELECT 1;\n"},
                     config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert seen(dsn, 1) == ("1500ms", "0")


def test_the_migration_lock_wait_keeps_exit_3_under_either_spelling(tmp_path: Path,
                                                                    dsn: str) -> None:
    """`--lock-timeout` (also `--migration-lock-timeout`) bounds the wait for another
    migcoord: that stays exit 3, worth retrying as it is."""
    root = tree(tmp_path, "CREATE TABLE x (id int);\n")
    assert run(["status"], cwd=root, environ=env(dsn)).code == 0
    with holding_lock(dsn, application_name="another migcoord"):
        for spelling in ("--lock-timeout", "--migration-lock-timeout"):
            result = run(["up", "--service", "a", spelling, "0.2"], cwd=root, environ=env(dsn))
            assert result.code == 3, result
            assert "another migcoord" in result.stderr
    assert history(dsn) == []


def test_a_timed_out_detach_concurrently_is_not_run_again_saying_why(
        tmp_path: Path, dsn: str, blocker: psycopg.Connection) -> None:
    """Stopped part-way, a DETACH PARTITION ... CONCURRENTLY is finished with FINALIZE,
    not run again: one attempt despite `retries = 3`, and the reason given."""
    execute(dsn, "CREATE TABLE p (id int) PARTITION BY RANGE (id); "
                 "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10)")
    root = tree(tmp_path, "-- migcoord:no-transaction\n"
                "ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY;\n", retries=3)
    blocker.execute("LOCK TABLE p IN SHARE MODE")

    with pytest.raises(MigrationLeftDirty) as raised:
        coordinator(root).up("a", dsn=dsn)

    error = raised.value
    assert error.lock_wait is not None
    assert error.lock_wait["attempts"] == 1
    assert "not tried again: a DETACH PARTITION ... CONCURRENTLY" in error.message
    assert "FINALIZE" in error.message


def test_a_wait_read_as_its_holder_ended_does_not_hide_the_one_that_named_it(
        dsn: str, blocker: psycopg.Connection) -> None:
    """A concurrent index build waits for each older transaction in turn; a sample taken
    just as one ends shows the wait with nobody in it. The report keeps the session seen
    holding the migration up."""
    blocker.execute("SELECT count(*) FROM t")
    with psycopg.connect(dsn) as waiting, psycopg.connect(dsn, autocommit=True) as watch:
        waiting.execute("SET lock_timeout = '30s'")  # LOCK TABLE runs in this transaction
        pid = waiting.info.backend_pid
        locking = threading.Thread(target=lambda: waiting.execute("LOCK TABLE t"))
        locking.start()
        try:
            seen = wait_until(lambda: lockwait.sample(watch, pid), what="the LOCK to wait")
        finally:
            blocker.rollback()
            locking.join(QUICK)
            waiting.rollback()
    assert [b.pid for b in seen.blockers] == [blocker.info.backend_pid]
    gone = attrs.evolve(seen, blockers=())

    assert lockwait.more_telling(seen, gone) is seen
    assert lockwait.more_telling(gone, seen) is seen
    assert lockwait.more_telling(None, gone) is gone
    again = attrs.evolve(seen, mode="ShareLock")
    assert lockwait.more_telling(seen, again) is again
