"""What a failed migration leaves behind: a statement error, a killed process, a lost server.

A normal migration and its history row share one transaction, so after any of these the
database is exactly as before the migration, the lock is free, and a retry applies it.
The slow migrations sleep for as long as the test's `control` table says, so the retry
runs the very same files quickly.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
import pytest

from helpers import make_tree, pair, run
from test_engine_support import (
    AB_CONFIG,
    QUICK,
    backend_gone,
    dbname,
    env,
    events,
    execute,
    history,
    history_versions,
    lock_holders,
    query,
    schema_snapshot,
    sleeping_migcoord,
    spawn,
    table_exists,
    wait_until,
)

THREE_STATEMENTS = """\
-- Add an email to accounts and an audit table; the audit table has a typo.
ALTER TABLE accounts ADD COLUMN email text;
CREATE TABLE audit (
    id bigint PRIMARY KEY,
    happened_at timestampz NOT NULL
);
CREATE INDEX audit_happened_at_idx ON audit (happened_at);
"""

SLOW = """\
CREATE TABLE half_done (id int);
INSERT INTO half_done VALUES (1);
SELECT pg_sleep((SELECT sleep_s FROM control));
CREATE TABLE after_sleep (id int);
"""


def accounts_tree(root: Path, second_up: str) -> Path:
    return make_tree(root, {
        **pair("a", "000001", "accounts", "CREATE TABLE accounts (id bigint PRIMARY KEY);\n",
               "DROP TABLE accounts;\n"),
        **pair("a", "000002", "second", second_up,
               "DROP TABLE IF EXISTS after_sleep, audit, half_done;\n"),
    }, config=AB_CONFIG)


def test_failing_middle_statement_leaves_the_schema_exactly_as_before(
    tmp_path: Path, dsn: str
) -> None:
    """A syntax-valid middle statement fails: nothing of the migration stays, nothing recorded."""
    root = accounts_tree(tmp_path, THREE_STATEMENTS)
    assert run(["up", "--service", "a", "--to", "1"], cwd=root, environ=env(dsn)).code == 0
    before = schema_snapshot(dsn)
    assert ("public", "accounts", "r", "id", "bigint", "true") in before

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    up_file = root / "a" / "migrations" / "000002_second.up.sql"
    assert re.search(rf"(^|\s){re.escape(str(up_file))}:5:17: ERROR: type \"timestampz\" "
                     r"does not exist \(SQLSTATE 42704\)", result.stderr), result.stderr
    assert "nothing of this migration was applied" in result.stderr
    assert "Traceback" not in result.stderr
    assert schema_snapshot(dsn) == before
    failed = [e for e in events(dsn) if e["action"] == "up-failed"]
    assert [(e["version"], e["detail"]["sqlstate"]) for e in failed] == [(2, "42704")]
    rows = history(dsn)
    assert [(r["version"], r["status"]) for r in rows] == [(1, "applied")]
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 0
    assert status.json()["dirty"] is False
    assert {m["version"]: m["state"] for m in status.json()["migrations"]} == {
        1: "applied", 2: "pending"}


FAILING_DOWN = "DROP TABLE t;\nCREATE TABLE t_archive (x nosuchtype);\n"


def test_failing_down_keeps_the_migration_applied(tmp_path: Path, dsn: str) -> None:
    """A down file that fails rolls back with its history delete: still applied, still there."""
    root = make_tree(tmp_path, pair("a", "000001", "t", "CREATE TABLE t (id int);\n",
                                    FAILING_DOWN), config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    result = run(["down", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "000001_t.down.sql:2:27: ERROR: type \"nosuchtype\" does not exist" in result.stderr
    assert "SQLSTATE 42704" in result.stderr
    assert table_exists(dsn, "t")
    assert history_versions(dsn) == [1]


def test_failing_down_says_the_migration_is_still_applied_and_to_retry_down(
    tmp_path: Path, dsn: str
) -> None:
    """The advice after a failed down is about down, not up."""
    root = make_tree(tmp_path, pair("a", "000001", "t", "CREATE TABLE t (id int);\n",
                                    FAILING_DOWN), config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    result = run(["down", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "migcoord up" not in result.stderr
    assert "migcoord down --service a" in result.stderr


@pytest.fixture
def slow_tree(tmp_path: Path, dsn: str) -> Path:
    """Version 1 applied, version 2 pending and sleeping 30 s while `control` says so."""
    root = accounts_tree(tmp_path, SLOW)
    assert run(["up", "--service", "a", "--to", "1"], cwd=root, environ=env(dsn)).code == 0
    execute(dsn, "CREATE TABLE control (sleep_s float8 NOT NULL)")
    execute(dsn, "INSERT INTO control VALUES (30)")
    return root


def start_slow_up(root: Path, dsn: str) -> tuple[subprocess.Popen[str], int]:
    """`migcoord up` in its own process, once its backend sleeps holding the lock."""
    process = spawn(["up", "--service", "a"], cwd=root, environ=env(dsn))
    try:
        pid = wait_until(lambda: sleeping_migcoord(dsn), what="migcoord's backend in pg_sleep")
        wait_until(lambda: lock_holders(dsn) == [pid], what="the lock held by that backend")
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, pid


def assert_nothing_of_the_second_migration(dsn: str) -> None:
    assert not table_exists(dsn, "half_done")
    assert not table_exists(dsn, "after_sleep")
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "applied")]
    assert [e["version"] for e in events(dsn) if e["action"] == "up"] == [1]


def retry_applies_it(root: Path, dsn: str) -> None:
    execute(dsn, "UPDATE control SET sleep_s = 0")
    result = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))
    assert result.code == 0, result.stderr
    assert [s["version"] for s in result.json()["applied"]] == [2]
    assert query(dsn, "SELECT id FROM half_done") == [(1,)]
    assert table_exists(dsn, "after_sleep")
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "applied"), (2, "applied")]


def test_killed_process_leaves_no_trace_and_frees_the_lock_promptly(
    slow_tree: Path, dsn: str
) -> None:
    """SIGKILL mid-migration: transaction and lock vanish within seconds; next up applies it."""
    process, pid = start_slow_up(slow_tree, dsn)

    process.kill()
    process.communicate(timeout=QUICK)

    # The backend would otherwise sleep on for 30 s holding the lock: migcoord's session
    # sets client_connection_check_interval, so the server notices the dead client.
    wait_until(lambda: backend_gone(dsn, pid), what=f"backend {pid} to end", timeout=5)
    wait_until(lambda: lock_holders(dsn) == [], what="the advisory lock to be released",
               timeout=5)
    assert_nothing_of_the_second_migration(dsn)
    retry_applies_it(slow_tree, dsn)


def test_server_ending_the_connection_is_a_clear_error_and_a_retry_succeeds(
    slow_tree: Path, dsn: str
) -> None:
    """pg_terminate_backend mid-migration: exit 3 saying the connection was lost, no traceback."""
    process, pid = start_slow_up(slow_tree, dsn)

    assert query(dsn, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    _, stderr = process.communicate(timeout=QUICK)

    assert process.returncode == 3, stderr
    assert "lost the connection while running a 000002_second" in stderr
    assert "rolled back" in stderr
    assert "Traceback" not in stderr
    wait_until(lambda: lock_holders(dsn) == [], what="the advisory lock to be released")
    assert_nothing_of_the_second_migration(dsn)
    retry_applies_it(slow_tree, dsn)


def test_a_read_only_database_is_a_clear_error(tmp_path: Path, dsn: str) -> None:
    """Pointed at a read-only database (a standby): exit 1 naming it, not a traceback."""
    root = make_tree(tmp_path, pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
                     config=AB_CONFIG)
    execute(dsn, f'ALTER DATABASE "{dbname(dsn)}" SET default_transaction_read_only = on')

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "read-only transaction (SQLSTATE 25006)" in result.stderr
    assert "point --dsn / DATABASE_URL at the primary" in result.stderr
    assert "Traceback" not in result.stderr
    assert not table_exists(dsn, "one")
    assert lock_holders(dsn) == []


def test_a_partial_up_says_what_committed_before_the_failure(tmp_path: Path, dsn: str) -> None:
    """`up` stops at 000002: the JSON and the library's error both list 000001 as applied."""
    from migcoord import Coordinator, MigrationFailed

    root = accounts_tree(tmp_path, THREE_STATEMENTS)

    result = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    document = result.json()
    assert document["ok"] is False
    assert [(s["version"], s["name"]) for s in document["applied"]] == [(1, "accounts")]
    error = document["error"]
    assert (error["type"], error["version"], error["service"], error["direction"],
            error["line"], error["sqlstate"]) == ("MigrationFailed", 2, "a", "up", 5, "42704")
    assert error["path"].endswith("000002_second.up.sql")
    assert history_versions(dsn) == [1]

    execute(dsn, "DROP TABLE accounts; DELETE FROM migcoord_history")
    coordinator = Coordinator.load(root / "migcoord.toml")
    with pytest.raises(MigrationFailed) as raised:
        coordinator.up("a", dsn=dsn)
    assert [(s.version, s.service) for s in raised.value.applied] == [(1, "a")]


def test_a_partial_down_says_what_it_rolled_back(tmp_path: Path, dsn: str) -> None:
    """`down --steps 2` fails on the second: the JSON lists the first as rolled back."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "t", "CREATE TABLE t (id int);\n", FAILING_DOWN),
        **pair("a", "000002", "u", "CREATE TABLE u (id int);\n", "DROP TABLE u;\n"),
    }, config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    result = run(["down", "--service", "a", "--steps", "2", "--format", "json"], cwd=root,
                 environ=env(dsn))

    assert result.code == 1, result
    assert [s["version"] for s in result.json()["rolled_back"]] == [2]
    assert result.json()["error"]["direction"] == "down"
    assert history_versions(dsn) == [1]


NO_TRANSACTION_SLOW = """\
-- migcoord:no-transaction
CREATE TABLE half_done (id int);
SELECT pg_sleep((SELECT sleep_s FROM control));
CREATE TABLE after_sleep (id int);
"""


@pytest.fixture
def slow_no_transaction_tree(tmp_path: Path, dsn: str) -> Path:
    """Version 1 applied; version 2, a no-transaction file, sleeps in its second statement."""
    root = accounts_tree(tmp_path, NO_TRANSACTION_SLOW)
    assert run(["up", "--service", "a", "--to", "1"], cwd=root, environ=env(dsn)).code == 0
    execute(dsn, "CREATE TABLE control (sleep_s float8 NOT NULL)")
    execute(dsn, "INSERT INTO control VALUES (30)")
    return root


def assert_dirty_after_the_first_statement(root: Path, dsn: str) -> None:
    """The history says what the schema shows: statement 1 of 3 done, and nothing else."""
    assert table_exists(dsn, "half_done")
    assert not table_exists(dsn, "after_sleep")
    rows = {r["version"]: r for r in history(dsn)}
    assert (rows[2]["status"], rows[2]["statements_done"], rows[2]["statement_count"]) == (
        "dirty", 1, 3)
    # The next up does not wait for a lock: it says at once what needs an operator.
    result = run(["up", "--service", "a", "--lock-timeout", "1"], cwd=root, environ=env(dsn))
    assert result.code == 1, result
    assert "dirty" in result.stderr
    assert "migcoord mark 000002" in result.stderr


@pytest.mark.parametrize("how", ["kill", "terminate"])
def test_a_no_transaction_migration_cut_short_is_dirty_where_it_stopped(
    slow_no_transaction_tree: Path, dsn: str, how: str
) -> None:
    """SIGKILL of migcoord, or pg_terminate_backend of its backend, in statement 2 of 3:
    the lock is free, the row records statement 1 as done, and up says what to do."""
    process, pid = start_slow_up(slow_no_transaction_tree, dsn)

    if how == "kill":
        process.kill()
        process.communicate(timeout=QUICK)
    else:
        assert query(dsn, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
        _, stderr = process.communicate(timeout=QUICK)
        assert process.returncode == 1, stderr  # dirty: a retry alone cannot help
        assert "lost the connection while running statement 2 of 3" in stderr
        assert "stays recorded as dirty after 1 completed statement" in stderr
        assert "Traceback" not in stderr

    wait_until(lambda: backend_gone(dsn, pid), what=f"backend {pid} to end", timeout=5)
    wait_until(lambda: lock_holders(dsn) == [], what="the lock to be released", timeout=5)
    assert_dirty_after_the_first_statement(slow_no_transaction_tree, dsn)


def test_a_killed_concurrent_build_is_not_recorded_over_its_invalid_index(
    tmp_path: Path, dsn: str
) -> None:
    """SIGKILL while CREATE UNIQUE INDEX CONCURRENTLY waits: the server cancels the build,
    which leaves an INVALID index; marked pending and run again, IF NOT EXISTS would skip it,
    so up refuses to record it and names the DROP."""
    execute(dsn, "CREATE TABLE users (id int, email text)")
    root = make_tree(tmp_path, pair("a", "000001", "unique_email",
                                    "-- migcoord:no-transaction\n"
                                    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "
                                    "users_email_key ON users (email);\n"), config=AB_CONFIG)
    with psycopg.connect(dsn, autocommit=True) as reader:
        # An older snapshot: the build waits for it at its end, after creating the index.
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM users")
        process = spawn(["up", "--service", "a"], cwd=root, environ=env(dsn))
        try:
            pid = wait_until(lambda: building_index(dsn), what="the build to wait")
        finally:
            process.kill()
            process.communicate(timeout=QUICK)
        wait_until(lambda: backend_gone(dsn, pid), what=f"backend {pid} to end", timeout=5)
        reader.execute("ROLLBACK")
    assert query(dsn, "SELECT indisvalid FROM pg_index "
                      "WHERE indexrelid = 'users_email_key'::regclass") == [(False,)]
    assert lock_holders(dsn) == []
    assert run(["mark", "1", "--pending"], cwd=root, environ=env(dsn)).code == 0

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "`DROP INDEX CONCURRENTLY public.users_email_key;`" in result.stderr
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "dirty")]


def building_index(dsn: str) -> int | None:
    """The pid of a `migcoord up` backend whose index build waits for older transactions."""
    rows = query(dsn, """
        SELECT a.pid FROM pg_stat_activity a JOIN pg_stat_progress_create_index p USING (pid)
         WHERE a.datname = current_database() AND a.application_name LIKE 'migcoord up%%'
           AND a.wait_event_type = 'Lock'
    """)
    return int(rows[0][0]) if rows else None


def test_a_vanished_client_is_noticed_within_a_minute_not_two_hours(
    tmp_path: Path, dsn: str
) -> None:
    """A lost node sends nothing: the server finds out by TCP keepalive, which migcoord's
    session sets to give up after about a minute (the OS default is two hours), and polls
    the socket during statements. What the migration's own session sees, recorded."""
    root = make_tree(tmp_path, pair("a", "000001", "seen",
                                    "CREATE TABLE seen AS SELECT\n"
                                    "  current_setting('tcp_keepalives_idle') AS idle,\n"
                                    "  current_setting('tcp_keepalives_interval') AS every,\n"
                                    "  current_setting('tcp_keepalives_count') AS count,\n"
                                    "  current_setting('client_connection_check_interval')"
                                    " AS polled,\n"
                                    "  inet_server_addr() IS NULL AS unix_socket;\n"),
                     config=AB_CONFIG)

    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    [(idle, every, count, polled, unix_socket)] = query(dsn, "SELECT * FROM seen")
    assert polled == "1s"
    # Keepalives apply to TCP only; over a unix socket the server always reads them as 0.
    assert (idle, every, count) == (("0", "0", "0") if unix_socket else ("30", "10", "3"))
