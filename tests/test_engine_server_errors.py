"""Server errors are reported as what they are, with the exit code that fits them.

A lock timeout, a statement timeout, a deadlock, a serialization failure or a missing
privilege is a failed migration: its file position, its SQLSTATE and the true cause,
never "lost the connection". Exit 3 ("worth retrying") only where running the same
command again can succeed; a wrong password or database name is exit 2. Each fault here
is a real one, made to happen on the test's server, never a RAISE that imitates it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import psycopg
import pytest
from conftest import PgServer
from psycopg import sql

from helpers import Result, make_tree, pair, run
from migcoord import Coordinator, MigrationFailed
from migcoord.errors import MigrationLeftDirty
from test_engine_support import (
    AB_CONFIG,
    QUICK,
    env,
    events,
    execute,
    history,
    lock_holders,
    query,
    table_exists,
    temporary_role,
    wait_until,
    with_params,
)

NOT_LOST = ("lost the connection", "network cut", "connection failed", "Traceback")


def one_migration(root: Path, up: str, *, no_transaction: bool = False) -> Path:
    header = "-- migcoord:no-transaction\n" if no_transaction else ""
    return make_tree(root, pair("a", "000001", "m", header + up, "SELECT 1;\n"),
                     config=AB_CONFIG)


def up_file(root: Path) -> Path:
    return root / "a" / "migrations" / "000001_m.up.sql"


def assert_reported_as_itself(stderr: str) -> None:
    for words in NOT_LOST:
        assert words not in stderr, stderr


def waiting_backend(dsn: str, what: str) -> int | None:
    """The pid of a `migcoord up` backend that waits for `what` (Lock, advisory...)."""
    rows = query(dsn, """
        SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE 'migcoord up%%'
           AND wait_event_type = 'Lock' AND wait_event = %s
    """, (what,))
    return int(rows[0][0]) if rows else None


LOCKED_ALTER = "SET lock_timeout = '200ms';\nALTER TABLE t ADD COLUMN x int;\n"


def test_a_lock_timeout_is_a_failed_migration_at_its_position(tmp_path: Path, dsn: str) -> None:
    """55P03 on the last attempt: exit 1 (DESIGN.md: a failed migration), the statement's
    file:line:col, the cause; nothing applied; run again once the lock is free, it works.
    (Its retries and the blocker it names: test_engine_lock_waits.py.)"""
    execute(dsn, "CREATE TABLE t (id int)")
    root = one_migration(tmp_path, "-- migcoord:retries 0\nALTER TABLE t ADD COLUMN x int;\n")

    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE t")
        result = run(["up", "--service", "a", "--format", "json", "--ddl-lock-timeout",
                      "200ms"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert_reported_as_itself(result.stderr)
    assert re.search(rf"{re.escape(str(up_file(root)))}:2:1: ERROR: canceling statement due "
                     r"to lock timeout \(SQLSTATE 55P03\)", result.stderr), result.stderr
    assert "waited longer than lock_timeout" in result.stderr
    assert "nothing of this migration was applied" in result.stderr
    assert "run `migcoord up --service a` again" in result.stderr
    error = result.json()["error"]
    assert (error["type"], error["sqlstate"], error["exit_code"], error["line"]) == (
        "MigrationLockTimeout", "55P03", 1, 2)
    assert history(dsn) == []
    assert lock_holders(dsn) == []

    again = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert again.code == 0, again.stderr
    assert [r["version"] for r in history(dsn)] == [1]


def test_a_statement_timeout_is_not_worth_retrying_as_it_is(tmp_path: Path, dsn: str) -> None:
    """57014: exit 1, and the advice is to raise the timeout, not to run it again unchanged."""
    root = one_migration(tmp_path, "SET LOCAL statement_timeout = '100ms';\n"
                                   "CREATE TABLE t (id int);\nSELECT pg_sleep(5);\n")

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert_reported_as_itself(result.stderr)
    assert "canceling statement due to statement timeout (SQLSTATE 57014)" in result.stderr
    assert "ran longer than statement_timeout" in result.stderr
    assert "raise statement_timeout" in result.stderr
    assert not table_exists(dsn, "t")
    assert history(dsn) == []


def test_a_cancelled_statement_is_not_reported_as_a_statement_timeout(
        tmp_path: Path, dsn: str) -> None:
    """57014 from pg_cancel_backend: the cause is the cancel, and the advice is not to
    raise a timeout that was never reached."""
    root = one_migration(tmp_path, "CREATE TABLE t (id int);\nSELECT pg_sleep(60);\n")

    def cancel_when_sleeping() -> None:
        pid = wait_until(lambda: query(
            dsn, "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                 "AND application_name LIKE 'migcoord up%%'"), what="the migration in pg_sleep")
        execute(dsn, f"SELECT pg_cancel_backend({int(pid[0][0])})")

    canceller = threading.Thread(target=cancel_when_sleeping)
    canceller.start()
    try:
        result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    finally:
        canceller.join(QUICK)

    assert result.code == 1, result
    assert "canceling statement due to user request (SQLSTATE 57014)" in result.stderr
    assert "someone cancelled it (pg_cancel_backend" in result.stderr
    assert "statement_timeout" not in result.stderr
    assert not table_exists(dsn, "t")
    assert history(dsn) == []


def test_a_deadlock_is_reported_as_one_and_worth_retrying(tmp_path: Path, dsn: str) -> None:
    """40P01 from a real deadlock with another session: exit 3, rolled back, retry works."""
    execute(dsn, "CREATE TABLE first (id int); CREATE TABLE second (id int)")
    root = one_migration(tmp_path, "LOCK TABLE first;\nLOCK TABLE second;\n"
                                   "ALTER TABLE first ADD COLUMN x int;\n")
    other = psycopg.connect(dsn)
    # The other session never runs the deadlock check: migcoord's backend does, and is
    # the one cancelled.
    other.execute("SET deadlock_timeout = '1min'")
    other.execute("LOCK TABLE second")
    blocked = threading.Thread(target=lambda: other.execute("LOCK TABLE first"))
    process_result: list[Result] = []

    def up() -> None:
        process_result.append(run(["up", "--service", "a"], cwd=root, environ=env(dsn)))

    runner = threading.Thread(target=up)
    runner.start()
    try:
        wait_until(lambda: waiting_backend(dsn, "relation"), what="migcoord waiting for second")
        blocked.start()
        runner.join(QUICK)
        blocked.join(QUICK)
    finally:
        other.rollback()
        other.close()

    [result] = process_result
    assert result.code == 3, result
    stderr = result.stderr
    assert_reported_as_itself(stderr)
    assert "deadlock detected (SQLSTATE 40P01)" in stderr
    assert "nothing of this migration was applied" in stderr
    assert history(dsn) == []
    assert lock_holders(dsn) == []
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0


def test_a_serialization_failure_is_reported_as_one_and_worth_retrying(
    tmp_path: Path, dsn: str
) -> None:
    """40001 from a real concurrent update under REPEATABLE READ: exit 3, retry works."""
    execute(dsn, "CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)")
    root = one_migration(tmp_path, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;\n"
                                   "SELECT n FROM counter;\n"
                                   "SELECT pg_advisory_xact_lock(4711);\n"
                                   "UPDATE counter SET n = n + 10;\n")
    with psycopg.connect(dsn, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(4711)")
        process_result: list[Result] = []
        runner = threading.Thread(target=lambda: process_result.append(
            run(["up", "--service", "a"], cwd=root, environ=env(dsn))))
        runner.start()
        wait_until(lambda: waiting_backend(dsn, "advisory"), what="migcoord at the gate")
        gate.execute("UPDATE counter SET n = n + 1")
        gate.execute("SELECT pg_advisory_unlock(4711)")
        runner.join(QUICK)

    [result] = process_result
    assert result.code == 3, result
    stderr = result.stderr
    assert_reported_as_itself(stderr)
    assert "(SQLSTATE 40001)" in stderr
    assert "serialization failure" in stderr
    assert query(dsn, "SELECT n FROM counter") == [(1,)]
    assert history(dsn) == []
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert query(dsn, "SELECT n FROM counter") == [(11,)]


def test_an_object_not_in_prerequisite_state_is_a_failed_migration(
    tmp_path: Path, dsn: str
) -> None:
    """55000 (psycopg's OperationalError, like a lost connection): exit 1; the server gives
    no position, so the file's only statement is named."""
    execute(dsn, "CREATE SEQUENCE s")
    root = one_migration(tmp_path, "-- the sequence's current value\nSELECT currval('s');\n")

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert_reported_as_itself(result.stderr)
    assert f"{up_file(root)}:2:1: ERROR: currval of sequence" in result.stderr
    assert "(SQLSTATE 55000)" in result.stderr
    assert history(dsn) == []


def test_a_lock_timeout_in_a_no_transaction_file_leaves_it_dirty_saying_why(
    tmp_path: Path, dsn: str
) -> None:
    """Outside a transaction the first statement stays: exit 1 (dirty needs an operator)."""
    execute(dsn, "CREATE TABLE t (id int)")
    root = one_migration(tmp_path, "-- migcoord:retries 0\nCREATE TABLE audit (id int);\n"
                         + LOCKED_ALTER, no_transaction=True)

    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE t")
        with pytest.raises(MigrationLeftDirty) as raised:
            Coordinator.load(root / "migcoord.toml", environ={}).up("a", dsn=dsn)

    error = raised.value
    assert isinstance(error, MigrationFailed)
    assert (error.sqlstate, error.exit_code, error.line, error.column) == ("55P03", 1, 5, 1)
    assert "lock timeout" in error.message
    assert "lost the connection" not in str(error)
    assert "migcoord mark 000001 --pending" in str(error.hint)
    [row] = history(dsn)
    assert (row["status"], row["statements_done"], row["statement_count"]) == ("dirty", 2, 3)
    assert "SQLSTATE 55P03" in row["error"]
    assert [e["detail"]["sqlstate"] for e in events(dsn) if e["action"] == "up-failed"] == [
        "55P03"]
    assert lock_holders(dsn) == []


def test_a_lock_timeout_on_the_history_table_is_not_a_lost_connection(
    tmp_path: Path, dsn: str
) -> None:
    """The history table is locked by someone else: the server's refusal, exit 3."""
    root = one_migration(tmp_path, "CREATE TABLE t (id int);\n")
    assert run(["status"], cwd=root, environ=env(dsn)).code == 0
    execute(dsn, "CREATE TABLE IF NOT EXISTS migcoord_history (version bigint)")
    execute(dsn, "ALTER DATABASE {} SET lock_timeout = '200ms'".format(
        query(dsn, "SELECT quote_ident(current_database())")[0][0]))

    with psycopg.connect(dsn) as holder:
        holder.execute("LOCK TABLE migcoord_history")
        result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 3, result
    assert_reported_as_itself(result.stderr)
    assert "lock timeout (SQLSTATE 55P03)" in result.stderr
    assert not table_exists(dsn, "t")
    assert lock_holders(dsn) == []


def test_no_privilege_on_the_history_table_is_named_before_anything_runs(
    tmp_path: Path, dsn: str, pg_server: PgServer
) -> None:
    """A role that may read migcoord_history but not write it: exit 1, 42501, the grants to
    make, and the migration's own statements never ran."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
        **pair("a", "000002", "two", "CREATE TABLE two (id int);\n"),
    }, config=AB_CONFIG)
    assert run(["up", "--service", "a", "--to", "1"], cwd=root, environ=env(dsn)).code == 0
    with temporary_role(pg_server, dsn, "mc_reader") as role:
        execute(dsn, sql.SQL("GRANT CREATE ON SCHEMA public TO {0}; "
                             "GRANT SELECT ON migcoord_history, migcoord_events TO {0}")
                .format(sql.Identifier(role)).as_string())
        as_role = env(with_params(dsn, user=role))

        result = run(["up", "--service", "a"], cwd=root, environ=as_role)

        assert result.code == 1, result
        assert_reported_as_itself(result.stderr)
        assert "(SQLSTATE 42501)" in result.stderr
        assert "INSERT ON \"public\".\"migcoord_history\"" in result.stderr
        assert not table_exists(dsn, "two")
        assert [r["version"] for r in history(dsn)] == [1]

        # The hint is the fix: run as the owner, it lets the role migrate.
        grants = result.stderr.split("as the tables' owner: ", 1)[1].strip()
        execute(dsn, grants)
        assert run(["up", "--service", "a"], cwd=root, environ=as_role).code == 0
        assert [r["version"] for r in history(dsn)] == [1, 2]


# -- connecting ---------------------------------------------------------------------------


def test_a_missing_database_is_exit_2_not_worth_retrying(tmp_path: Path, dsn: str) -> None:
    root = one_migration(tmp_path, "SELECT 1;\n")

    result = run(["up", "--service", "a", "--format", "json"], cwd=root,
                 environ=env(with_params(dsn, dbname="no_such_database_here")))

    assert result.code == 2, result
    assert 'database "no_such_database_here" does not exist' in result.stderr
    assert "(SQLSTATE 3D000)" in result.stderr
    assert "check the database name in the DSN" in result.stderr
    assert "worth retrying" not in result.stderr
    assert result.json()["error"]["exit_code"] == 2


def test_an_unknown_user_is_exit_2(tmp_path: Path, dsn: str) -> None:
    root = one_migration(tmp_path, "SELECT 1;\n")

    result = run(["status"], cwd=root, environ=env(with_params(dsn, user="no_such_role_here")))

    assert result.code == 2, result
    assert "(SQLSTATE 28000)" in result.stderr
    assert "check the user name and credentials in the DSN" in result.stderr


def test_no_server_at_all_is_still_worth_retrying(tmp_path: Path, dsn: str) -> None:
    root = one_migration(tmp_path, "SELECT 1;\n")

    result = run(["status"], cwd=root,
                 environ=env(with_params(dsn, host="127.0.0.1", port=1, connect_timeout=2)))

    assert result.code == 3, result
    assert "worth retrying" in result.stderr
