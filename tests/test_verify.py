"""`migcoord verify`: every down must undo its up, on a throwaway database (real server).

Each planted fault is a tiny repository: a base migration and one faulty migration. The
tests assert the exact diff lines verify reports, and that the throwaway database is gone
afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PgServer

from helpers import REPO, copy_example, make_tree, pair, run
from migcoord.verify.plan import (
    RebuildRoute,
    VerifyStep,
    plan,
    rebuild_route,
    split_verify_script,
)

RULES = pair("rule-service", "000001", "create_rules",
             up="CREATE TABLE rules (id bigint PRIMARY KEY, email text, priority integer "
             "DEFAULT 0);\n",
             down="DROP TABLE rules;\n")


def verify(root: Path, pg_server: PgServer, *args: str) -> Any:
    """Run `verify --format json` on the test server; check its database is gone."""
    result = run(["verify", "--dsn", pg_server.admin_dsn, "--format", "json", *args], cwd=root)
    assert result.code in (0, 1), result.stderr
    report = result.json()
    assert report["ok"] == (result.code == 0)
    assert not database_exists(pg_server, report["database"]) or "--keep" in args
    assert not database_exists(pg_server, report["database"] + "_saved")
    return report


def database_exists(pg_server: PgServer, name: str) -> bool:
    with pg_server.admin() as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def verdict(report: Any, version: int) -> Any:
    (found,) = [m for m in report["migrations"] if m["version"] == version]
    return found


def problems(report: Any, version: int) -> dict[str, Any]:
    return {p["stage"]: p for p in verdict(report, version)["problems"]}


def tree(tmp_path: Path, *pairs: dict[str, str], extra: dict[str, str] | None = None) -> Path:
    files: dict[str, str] = {}
    for one in pairs:
        files.update(one)
    files.update(extra or {})
    return make_tree(tmp_path / "repo", files)


# -- the example and the report ----------------------------------------------------------------


def test_the_alerting_example_passes_verify(tmp_path: Path, pg_server: PgServer) -> None:
    """Every migration of examples/alerting round-trips, and so does the whole sequence."""
    root = copy_example(tmp_path / "alerting")
    report = verify(root, pg_server)
    assert report["ok"] is True
    assert [m["version"] for m in report["migrations"]] == [1, 2, 3, 4, 5, 6]
    assert all(m["status"] == "ok" and m["problems"] == [] for m in report["migrations"])
    assert all(isinstance(m["up_ms"], int) and isinstance(m["down_ms"], int)
               for m in report["migrations"])
    assert report["sequence"]["ran"] is True and report["sequence"]["ok"] is True
    assert report["database"].startswith("migcoord_verify_")
    assert report["server_kind"] == "given"


def test_text_report_names_the_migration_and_prints_the_diff(tmp_path: Path,
                                                             pg_server: PgServer) -> None:
    """Text output: FAILED line, the stage, the diff; progress per migration on stderr; exit 1."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "index_email",
        up="CREATE INDEX IF NOT EXISTS rules_email_idx ON rules (email);\n", down="SELECT 1;\n"))
    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1
    assert "FAILED 000002 rule-service index_email\n" in result.stdout
    assert "  down-restore: the down did not restore" in result.stdout
    assert "    + index public.rules_email_idx ON public.rules USING btree (email)\n" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("verify failed: 2 migrations "
                                                              "round-tripped, 1 failed")
    assert "000001 rule-service create_rules: ok" in result.stderr
    assert "000002 rule-service index_email: FAILED (down-restore)" in result.stderr


# -- planted faults ----------------------------------------------------------------------------


def test_down_that_forgets_an_index_is_caught(tmp_path: Path, pg_server: PgServer) -> None:
    """The index the down left behind is the diff; the up (IF NOT EXISTS) runs again fine."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "index_email",
        up="CREATE INDEX IF NOT EXISTS rules_email_idx ON rules (email);\n", down="SELECT 1;\n"))
    report = verify(root, pg_server)
    assert verdict(report, 1)["ok"] is True
    found = problems(report, 2)
    assert list(found) == ["down-restore"]
    assert found["down-restore"]["diff"] == [
        "+ index public.rules_email_idx ON public.rules USING btree (email)"]
    # Rolling everything back drops the table and its index with it: only the
    # per-migration round trip can see this fault.
    assert report["sequence"]["ran"] is True and report["sequence"]["ok"] is True


def test_down_that_drops_a_column_the_up_did_not_add_is_caught(tmp_path: Path,
                                                              pg_server: PgServer) -> None:
    """`- column public.rules.email text`, both after the down and after the up again."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "add_name",
        up="ALTER TABLE rules ADD COLUMN IF NOT EXISTS name text;\n",
        down="ALTER TABLE rules DROP COLUMN name;\nALTER TABLE rules DROP COLUMN email;\n"))
    found = problems(verify(root, pg_server), 2)
    assert found["down-restore"]["diff"] == ["- column public.rules.email text"]
    assert found["up-again-restore"]["diff"] == ["- column public.rules.email text"]


def test_down_that_leaves_a_default_changed_is_caught(tmp_path: Path, pg_server: PgServer) -> None:
    """`~ default of column public.rules.priority: 0 -> 1`."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "priority_default",
        up="ALTER TABLE rules ALTER COLUMN priority SET DEFAULT 1;\n", down="SELECT 1;\n"))
    found = problems(verify(root, pg_server), 2)
    assert found["down-restore"]["diff"] == ["~ default of column public.rules.priority: 0 -> 1"]


def test_enum_value_added_and_not_removed_is_caught(tmp_path: Path, pg_server: PgServer) -> None:
    """PostgreSQL cannot drop an enum value; a down that ignores it is reported."""
    root = tree(tmp_path, pair(
        "rule-service", "000001", "mood", up="CREATE TYPE mood AS ENUM ('sad', 'happy');\n",
        down="DROP TYPE mood;\n"), pair(
        "rule-service", "000002", "angry",
        up="ALTER TYPE mood ADD VALUE IF NOT EXISTS 'angry';\n", down="SELECT 1;\n"))
    found = problems(verify(root, pg_server), 2)
    assert found["down-restore"]["diff"] == [
        "~ values of enum public.mood: 'sad', 'happy' -> 'sad', 'happy', 'angry'"]


def test_function_body_changed_and_not_restored_is_caught(tmp_path: Path,
                                                         pg_server: PgServer) -> None:
    """`~ function public.f(integer) body changed`."""
    function = "CREATE OR REPLACE FUNCTION f(x integer) RETURNS integer LANGUAGE sql AS 'SELECT x + {}';\n"
    root = tree(tmp_path, pair(
        "rule-service", "000001", "f", up=function.format(1), down="DROP FUNCTION f(integer);\n"),
        pair("rule-service", "000002", "f_plus_two", up=function.format(2), down="SELECT 1;\n"))
    found = problems(verify(root, pg_server), 2)
    assert found["down-restore"]["diff"] == ["~ function public.f(integer) body changed"]


def test_no_transaction_migration_whose_down_forgets_its_index_is_caught(
        tmp_path: Path, pg_server: PgServer) -> None:
    """CREATE INDEX CONCURRENTLY runs outside a transaction and is round-tripped all the same."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "index_concurrently",
        up="-- migcoord:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS rules_email_idx ON rules (email);\n",
        down="SELECT 1;\n"))
    report = verify(root, pg_server)
    assert problems(report, 2)["down-restore"]["diff"] == [
        "+ index public.rules_email_idx ON public.rules USING btree (email)"]


def test_no_transaction_migration_with_a_correct_down_passes(tmp_path: Path,
                                                            pg_server: PgServer) -> None:
    """The same migration with `DROP INDEX CONCURRENTLY` in its (no-transaction) down
    round-trips cleanly."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "index_concurrently",
        up="-- migcoord:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS rules_email_idx ON rules (email);\n",
        down="-- migcoord:no-transaction\n"
        "DROP INDEX CONCURRENTLY IF EXISTS rules_email_idx;\n"))
    report = verify(root, pg_server)
    assert report["ok"] is True, report


def test_up_that_cannot_run_again_after_its_down_is_caught(tmp_path: Path,
                                                          pg_server: PgServer) -> None:
    """The down forgets a sequence the up creates without IF NOT EXISTS: the second up fails,
    the migration is reported with both problems, the database is built again up to it,
    and the later migrations are still verified."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "invoice_numbers", up="CREATE SEQUENCE invoice_numbers;\n",
        down="SELECT 1;\n"), pair("rule-service", "000003", "later"))
    report = verify(root, pg_server)
    found = problems(report, 2)
    assert found["down-restore"]["diff"] == ["+ sequence public.invoice_numbers bigint"]
    assert "the up failed when run again after the down" in found["up-again"]["message"]
    assert 'relation "invoice_numbers" already exists' in found["up-again"]["message"]
    assert verdict(report, 2)["rebuilt"] is True
    assert isinstance(verdict(report, 2)["rebuild_ms"], int)
    assert verdict(report, 3)["status"] == "ok" and verdict(report, 3)["rebuilt"] is False
    # The whole sequence runs, and finds the same fault from its side.
    assert report["sequence"]["ran"] is True
    assert [p["stage"] for p in report["sequence"]["problems"]] == ["sequence-down", "sequence-up"]


def test_a_down_that_fails_is_reported_and_the_run_goes_on(tmp_path: Path,
                                                          pg_server: PgServer) -> None:
    """A failing down is a problem of its migration; the next migrations are still verified."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "bad_down", up="CREATE TABLE t (id int);\n",
        down="DROP TABLE no_such_table;\n"), pair("rule-service", "000003", "later"))
    report = verify(root, pg_server)
    found = problems(report, 2)
    assert list(found) == ["down"]
    assert 'table "no_such_table" does not exist' in found["down"]["message"]
    assert verdict(report, 3)["status"] == "ok"
    assert verdict(report, 2)["rebuilt"] is False  # rolled back: still applied, as it was
    # Rolling everything back stops at the same down.
    (stop,) = report["sequence"]["problems"]
    assert stop["message"].startswith(
        "rolling everything back stopped at rule-service 000002_bad_down: ")


def test_python_api_reports_progress_per_migration(tmp_path: Path, pg_server: PgServer) -> None:
    """Coordinator.verify returns the report and calls on_progress once per migration,
    then once for the whole sequence."""
    from migcoord import Coordinator
    from migcoord.verify import MigrationVerdict, SequenceVerdict

    root = tree(tmp_path, RULES, pair("aggregator", "000002", "n"))
    seen: list[object] = []
    report = Coordinator.load(root / "migcoord.toml", environ={}).verify(
        dsn=pg_server.admin_dsn, on_progress=seen.append)
    assert report.ok
    assert [type(item) for item in seen] == [MigrationVerdict, MigrationVerdict, SequenceVerdict]
    assert [m.version for m in report.migrations] == [1, 2]


# -- --service and --keep ---------------------------------------------------------------------


def test_service_round_trips_only_its_own_after_applying_what_it_needs(
        tmp_path: Path, pg_server: PgServer) -> None:
    """--service aggregator applies rule-service's 000001 once, round-trips 000002 only,
    and stops before later migrations."""
    root = tree(tmp_path, RULES, pair(
        "aggregator", "000002", "notifications",
        up="-- migcoord:depends rule-service:000001\n"
        "CREATE TABLE notifications (rule_id bigint REFERENCES rules (id));\n",
        down="DROP TABLE notifications;\n"), pair("rule-service", "000003", "later"))
    report = verify(root, pg_server, "--service", "aggregator")
    assert report["ok"] is True
    assert [(m["version"], m["status"], m["round_trip"]) for m in report["migrations"]] == [
        (1, "applied", False), (2, "ok", True)]


def test_keep_leaves_the_database_and_prints_its_dsn_without_password(
        tmp_path: Path, pg_server: PgServer) -> None:
    """--keep: the throwaway database stays, holding the migrations, and its DSN is printed."""
    root = tree(tmp_path, RULES)
    result = run(["verify", "--dsn", pg_server.admin_dsn, "--keep"], cwd=root)
    assert result.code == 0, result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("kept the throwaway database: ")]
    dsn = line[0].removeprefix("kept the throwaway database: ")
    name = dsn.rsplit("/", 1)[1]
    try:
        assert name.startswith("migcoord_verify_")
        assert ":" not in dsn.removeprefix("postgresql://").split("@")[0]
        with psycopg.connect(pg_server.dsn_for(name)) as conn:
            assert conn.execute("SELECT to_regclass('public.rules') IS NOT NULL").fetchone() == (True,)
    finally:
        with pg_server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- data round trip (verify-data) --------------------------------------------------------------

RENAME_UP = ("-- migcoord:verify-data\n"
             "ALTER TABLE rules RENAME COLUMN email TO address;\n")
VERIFY_SQL = ("INSERT INTO rules (id, address) VALUES (1, 'a@example.com');\n"
              "-- migcoord:check\n"
              "SELECT 'lost' AS problem WHERE NOT EXISTS (\n"
              "    SELECT 1 FROM rules WHERE id = 1 AND address = 'a@example.com');\n")


def test_verify_data_passes_when_the_down_keeps_the_data(tmp_path: Path,
                                                        pg_server: PgServer) -> None:
    """A rename whose down renames back keeps the row the verify file inserted."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "rename_email", up=RENAME_UP,
        down="ALTER TABLE rules RENAME COLUMN address TO email;\n"),
        extra={"rule-service/migrations/000002_rename_email.verify.sql": VERIFY_SQL})
    report = verify(root, pg_server)
    assert report["ok"] is True, report
    check = run(["check"], cwd=root)
    assert "bad-filename" not in check.stdout


def test_verify_data_catches_a_down_that_loses_the_data(tmp_path: Path,
                                                       pg_server: PgServer) -> None:
    """A down that drops and re-adds the column restores the schema but not the rows."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "rename_email", up=RENAME_UP,
        down="ALTER TABLE rules DROP COLUMN address;\nALTER TABLE rules ADD COLUMN email text;\n"),
        extra={"rule-service/migrations/000002_rename_email.verify.sql": VERIFY_SQL})
    found = problems(verify(root, pg_server), 2)
    assert list(found) == ["verify-data"]
    assert "returned rows after down and up again" in found["verify-data"]["message"]
    assert found["verify-data"]["diff"] == ["problem='lost'"]


def test_verify_data_directive_without_its_file_is_a_problem(tmp_path: Path,
                                                            pg_server: PgServer) -> None:
    """`-- migcoord:verify-data` promises a verify file; its absence is not silently ignored."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "rename_email", up=RENAME_UP,
        down="ALTER TABLE rules RENAME COLUMN address TO email;\n"))
    found = problems(verify(root, pg_server), 2)
    assert "no 000002_rename_email.verify.sql beside it" in found["verify-data"]["message"]


def test_verify_file_that_is_not_utf8_or_holds_nul_is_not_run(tmp_path: Path,
                                                               pg_server: PgServer) -> None:
    """A verify file is run as written or not at all: not UTF-8 (was run with replacement
    characters, silently) or with a NUL byte (was cut there by the server), it is a
    problem naming its line."""
    up = "-- migcoord:verify-data\nALTER TABLE rules ADD COLUMN {} int;\n"
    root = tree(tmp_path, RULES,
                pair("rule-service", "000002", "x", up=up.format("x"),
                     down="ALTER TABLE rules DROP COLUMN x;\n"),
                pair("rule-service", "000003", "y", up=up.format("y"),
                     down="ALTER TABLE rules DROP COLUMN y;\n"))
    folder = root / "rule-service" / "migrations"
    (folder / "000002_x.verify.sql").write_bytes(
        b"-- seed\nINSERT INTO rules (id, email) VALUES (1, 'caf\xe9');\n-- migcoord:check\n"
        b"SELECT 1 WHERE false;\n")
    (folder / "000003_y.verify.sql").write_bytes(
        b"INSERT INTO rules (id, email) VALUES (2, 'a\x00b');\n-- migcoord:check\n"
        b"SELECT 1 WHERE false;\n")
    report = verify(root, pg_server)
    assert problems(report, 2)["verify-data"]["message"] == (
        "000002_x.verify.sql:2: is not UTF-8, so it was not run; save it as UTF-8")
    assert problems(report, 3)["verify-data"]["message"] == (
        "000003_y.verify.sql:1: holds a NUL byte, which PostgreSQL cannot take, so it was not "
        "run; remove it")


def test_verify_file_with_transaction_control_is_not_run(tmp_path: Path,
                                                        pg_server: PgServer) -> None:
    """A COMMIT in the check half would keep what the check changes (it deleted the rows
    for good): a problem naming the line, and nothing of the file runs."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "x", up="-- migcoord:verify-data\nALTER TABLE rules ADD x int;\n",
        down="ALTER TABLE rules DROP COLUMN x;\n"), pair(
        "rule-service", "000003", "y", up="-- migcoord:verify-data\nALTER TABLE rules ADD y int;\n",
        down="ALTER TABLE rules DROP COLUMN y;\n"), extra={
            "rule-service/migrations/000002_x.verify.sql":
                "INSERT INTO rules (id) VALUES (1);\n-- migcoord:check\n"
                "DELETE FROM rules;\nCOMMIT;\nSELECT 1 WHERE false;\n",
            "rule-service/migrations/000003_y.verify.sql":
                "-- the row of 000002 is still there\n-- migcoord:check\n"
                "SELECT 'lost' WHERE NOT EXISTS (SELECT 1 FROM rules);\n"})
    report = verify(root, pg_server)
    assert problems(report, 2)["verify-data"]["message"].startswith(
        "000002_x.verify.sql:4: COMMIT controls the transaction, so the file was not run")
    assert list(problems(report, 3)) == ["verify-data"]  # nothing was seeded either


def test_verify_file_without_its_migration_is_a_bad_filename(tmp_path: Path) -> None:
    """A .verify.sql file is legal only beside its migration's up file."""
    root = tree(tmp_path, RULES,
                extra={"rule-service/migrations/000009_gone.verify.sql": VERIFY_SQL})
    result = run(["check", "--format", "json"], cwd=root)
    bad = [f for f in result.json()["findings"] if f["code"] == "bad-filename"]
    assert len(bad) == 1 and "no 000009_gone.up.sql here" in bad[0]["message"]


# -- refusing and cleaning up ------------------------------------------------------------------


def test_verify_refuses_migrations_that_cannot_run(tmp_path: Path, pg_server: PgServer) -> None:
    """A missing down file stops verify before any database is created (exit 1)."""
    root = tree(tmp_path, RULES, extra={
        "rule-service/migrations/000002_no_down.up.sql": "SELECT 1;\n"})
    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1
    assert ("rule-service/migrations/000002_no_down.up.sql: error: missing-down: "
            "000002_no_down.up.sql has no 000002_no_down.down.sql" in result.stderr)
    assert "migcoord check" in result.stderr


def test_a_user_without_createdb_is_told_what_to_do(tmp_path: Path, pg_server: PgServer) -> None:
    """No CREATEDB: exit 2 with the grant to make, and the password never printed."""
    from psycopg.conninfo import make_conninfo

    root = tree(tmp_path, RULES)
    with pg_server.admin() as conn:
        conn.execute("DROP ROLE IF EXISTS mc_verify_nocreate")
        conn.execute("CREATE ROLE mc_verify_nocreate LOGIN PASSWORD 'hunter2-secret'")
    try:
        dsn = make_conninfo(pg_server.admin_dsn, user="mc_verify_nocreate",
                            password="hunter2-secret")
        result = run(["verify", "--dsn", dsn], cwd=root)
    finally:
        with pg_server.admin() as conn:
            conn.execute("DROP ROLE mc_verify_nocreate")
    assert result.code == 2, result.stderr
    assert "mc_verify_nocreate may not create databases" in result.stderr
    assert "ALTER ROLE mc_verify_nocreate CREATEDB" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_ctrl_c_during_a_slow_migration_leaves_no_throwaway_database(
        tmp_path: Path, pg_server: PgServer) -> None:
    """SIGINT while a migration runs: verify exits 130 and its database is dropped."""
    marker = "pg_sleep(600.25)"
    root = tree(tmp_path, pair("rule-service", "000001", "slow", up=f"SELECT {marker};\n"))
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "migcoord", "verify", "--dsn", pg_server.admin_dsn], cwd=root,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        name = wait_for_query(pg_server, marker, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert "verify interrupted; no throwaway database is left" in stderr
    assert not database_exists(pg_server, name)
    with pg_server.admin() as conn:
        running = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s",
                               (f"%{marker}%",)).fetchone()
    assert running == (0,)


def wait_for_query(pg_server: PgServer, marker: str, process: subprocess.Popen[str]) -> str:
    """The database in which a backend runs a query containing `marker`, once it does.

    Polls pg_stat_activity (the real event), failing fast if the process ends first.
    """
    deadline = time.monotonic() + 60
    with pg_server.admin() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT datname FROM pg_stat_activity WHERE query LIKE %s "
                "AND datname LIKE 'migcoord_verify_%%' AND pid <> pg_backend_pid()",
                (f"%{marker}%",)).fetchone()
            if row is not None:
                return str(row[0])
            if process.poll() is not None:
                pytest.fail(f"verify ended before the slow migration ran: {process.communicate()}")
    pytest.fail("the slow migration never started")


# -- pure planning -----------------------------------------------------------------------------


def test_plan_round_trips_everything_without_a_service(tmp_path: Path) -> None:
    """Without --service every migration is round-tripped, in version order."""
    from migcoord import Coordinator

    root = tree(tmp_path, RULES, pair("aggregator", "000002", "n"), pair("rule-service", "000003", "x"))
    catalog = Coordinator.load(root / "migcoord.toml").catalog()
    assert [(s.migration.version, s.round_trip) for s in plan(catalog, None)] == [
        (1, True), (2, True), (3, True)]
    assert [(s.migration.version, s.round_trip) for s in plan(catalog, "aggregator")] == [
        (1, False), (2, True)]
    assert plan(catalog, "sender") == ()
    steps: tuple[VerifyStep, ...] = plan(catalog, None)
    assert len(steps) == 3


def test_split_verify_script_at_the_check_line() -> None:
    """The verify file's two halves; None when the separator line is missing."""
    assert split_verify_script("INSERT 1;\n-- migcoord:check\nSELECT 2;\n") == (
        "INSERT 1;", "SELECT 2;\n")
    assert split_verify_script("INSERT 1;\n  -- migcoord:check  \nSELECT 2;") == (
        "INSERT 1;", "SELECT 2;")
    assert split_verify_script("INSERT 1;\nSELECT 2;\n") is None


def test_rebuild_route_copies_only_when_it_is_cheaper() -> None:
    """From the saved copy when one copy and the ups after it cost less than every up;
    saved when the ups since the last copy cost more than two copies."""
    ups = [100, 100, 100, 5, 5]
    assert rebuild_route(ups, saved=0, copy_ms=50) == RebuildRoute(False, True)
    assert rebuild_route(ups, saved=3, copy_ms=50) == RebuildRoute(True, False)
    assert rebuild_route(ups, saved=3, copy_ms=400) == RebuildRoute(False, False)
    assert rebuild_route([1] * 20, saved=0, copy_ms=30) == RebuildRoute(False, False)
    assert rebuild_route([1] * 20, saved=5, copy_ms=30) == RebuildRoute(False, False)
