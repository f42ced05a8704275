"""`migcoord verify` reports every broken down in one run, and counts honestly (real server).

After a round trip that does not leave the migration applied as its up made it, the
throwaway database is built again up to it and the run goes on; only an up that fails
stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import PgServer
from test_verify import RULES, database_exists, problems, tree, verdict, verify

from helpers import REPO, pair, run

NO_TX = "-- migcoord:no-transaction\n"


def test_one_run_reports_every_broken_down(tmp_path: Path, pg_server: PgServer) -> None:
    """Five broken downs of five kinds in one history: each is reported, every other
    migration round-trips, and the ones after a down that took too much still find the
    schema they need."""
    root = tree(
        tmp_path, RULES,
        pair("rule-service", "000002", "down_fails", up="CREATE TABLE audit (id int);\n",
             down="DROP TABLE no_such_table;\n"),
        pair("rule-service", "000003", "forgets_sequence", up="CREATE SEQUENCE invoice_numbers;\n",
             down="SELECT 1;\n"),
        pair("rule-service", "000004", "index_email",
             up="CREATE INDEX rules_email_idx ON rules (email);\n",
             down="DROP INDEX rules_email_idx;\n"),
        pair("rule-service", "000005", "drops_too_much", up="ALTER TABLE rules ADD COLUMN name text;\n",
             down="ALTER TABLE rules DROP COLUMN name;\nALTER TABLE rules DROP COLUMN email;\n"),
        pair("rule-service", "000006", "needs_email",
             up="ALTER TABLE rules ADD CONSTRAINT email_set CHECK (email <> '');\n",
             down="ALTER TABLE rules DROP CONSTRAINT email_set;\n"),
        pair("rule-service", "000007", "no_transaction_down_fails",
             up=NO_TX + "CREATE INDEX CONCURRENTLY rules_priority_idx ON rules (priority);\n",
             down=NO_TX + "DROP INDEX CONCURRENTLY rules_priority_idx;\n"
             "DROP INDEX CONCURRENTLY no_such_idx;\n"),
        pair("rule-service", "000008", "forgets_index",
             up="CREATE INDEX IF NOT EXISTS rules_id_priority_idx ON rules (id, priority);\n",
             down="SELECT 1;\n"),
        pair("rule-service", "000009", "later", up="CREATE TABLE later (id int);\n",
             down="DROP TABLE later;\n"))
    report = verify(root, pg_server)
    assert [(m["version"], m["status"], m["rebuilt"]) for m in report["migrations"]] == [
        (1, "ok", False),
        (2, "failed", False),  # rolled back: applied as before, nothing to rebuild
        (3, "failed", True),   # the up again failed
        (4, "ok", False),
        (5, "failed", True),   # the up again could not bring email back
        (6, "ok", False),      # ... which this one needs
        (7, "failed", True),   # the down stopped half-way, dirty
        (8, "failed", False),  # the up again (IF NOT EXISTS) made the same schema
        (9, "ok", False)]
    assert list(problems(report, 2)) == ["down"]
    assert list(problems(report, 3)) == ["down-restore", "up-again"]
    assert problems(report, 5)["down-restore"]["diff"] == [
        "- column public.rules.email text", "- index public.rules_email_idx ON public.rules "
        "USING btree (email)"]
    assert list(problems(report, 7)) == ["down"]
    assert "statement 2 of 2 failed" in problems(report, 7)["down"]["message"]
    assert list(problems(report, 8)) == ["down-restore"]
    # The executor's hints (`migcoord up` again, `mark`) are for a real database.
    assert not any("hint:" in p["message"] for m in report["migrations"] for p in m["problems"])
    assert report["counts"] == {"round_tripped": 9, "ok": 4, "failed": 5, "skipped": 0,
                                "applied": 0, "rebuilt": 3}
    # The whole sequence runs all the same, and stops at the newest down that fails.
    (stop,) = report["sequence"]["problems"]
    assert stop["stage"] == "sequence-down"
    assert stop["message"].startswith("rolling everything back stopped at rule-service "
                                      "000007_no_transaction_down_fails: ")


def test_text_summary_counts_skipped_migrations_as_skipped(tmp_path: Path,
                                                           pg_server: PgServer) -> None:
    """An up that fails stops the run: the migrations after it are `skipped`, listed once
    with the reason, never FAILED, never counted as round-tripped."""
    root = tree(
        tmp_path, RULES,
        pair("rule-service", "000002", "bad_down", up="CREATE TABLE t (id int);\n",
             down="DROP TABLE no_such_table;\n"),
        pair("rule-service", "000003", "bad_up", up="ALTER TABLE no_such ADD COLUMN x int;\n"),
        pair("rule-service", "000004", "later_a"), pair("rule-service", "000005", "later_b"))
    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1, result.stderr
    assert "FAILED 000002 rule-service bad_down\n" in result.stdout
    assert "FAILED 000003 rule-service bad_up\n" in result.stdout
    assert "FAILED 000004" not in result.stdout and "FAILED 000005" not in result.stdout
    reason = ("not run: the up of rule-service 000003_bad_up failed, so nothing after it "
              "could be applied")
    assert (f"skipped 2 migrations (000004 rule-service later_a to 000005 rule-service "
            f"later_b): {reason}\n") in result.stdout
    assert result.stdout.splitlines()[-1].startswith(
        "verify failed: 3 migrations round-tripped, 2 failed, 2 skipped; whole sequence "
        "not run: the up of rule-service 000003_bad_up failed (")
    assert "000004 rule-service later_a: skipped (not run)" in result.stderr

    report = verify(root, pg_server)
    assert report["counts"] == {"round_tripped": 3, "ok": 1, "failed": 2, "skipped": 2,
                                "applied": 0, "rebuilt": 0}
    later = verdict(report, 4)
    assert later["status"] == "skipped" and later["ok"] is False
    assert later["problems"] == [{"stage": "skipped", "message": reason, "diff": []}]


def test_a_rebuild_replays_the_verify_data_seeds(tmp_path: Path, pg_server: PgServer) -> None:
    """Rows a verify file seeded stay for later migrations, also across a rebuild: the
    check of 000004 finds the row 000002 seeded, after 000003 made verify start over."""
    root = tree(
        tmp_path, RULES,
        pair("rule-service", "000002", "rename_email",
             up="-- migcoord:verify-data\nALTER TABLE rules RENAME COLUMN email TO address;\n",
             down="ALTER TABLE rules RENAME COLUMN address TO email;\n"),
        pair("rule-service", "000003", "forgets_sequence", up="CREATE SEQUENCE n;\n",
             down="SELECT 1;\n"),
        pair("rule-service", "000004", "add_note",
             up="-- migcoord:verify-data\nALTER TABLE rules ADD COLUMN note text;\n",
             down="ALTER TABLE rules DROP COLUMN note;\n"),
        extra={
            "rule-service/migrations/000002_rename_email.verify.sql":
                "INSERT INTO rules (id, address) VALUES (1, 'a@example.com');\n"
                "-- migcoord:check\n"
                "SELECT 'lost' AS problem WHERE NOT EXISTS (SELECT 1 FROM rules WHERE id = 1);\n",
            "rule-service/migrations/000004_add_note.verify.sql":
                "-- the row of 000002 must still be there\n"
                "-- migcoord:check\n"
                "SELECT 'lost' AS problem WHERE NOT EXISTS (\n"
                "    SELECT 1 FROM rules WHERE id = 1 AND address = 'a@example.com');\n"})
    report = verify(root, pg_server)
    assert [(m["status"], m["rebuilt"]) for m in report["migrations"]] == [
        ("ok", False), ("ok", False), ("failed", True), ("ok", False)]
    assert "rebuild" not in problems(report, 3)


def test_a_later_rebuild_starts_from_the_saved_copy(tmp_path: Path, pg_server: PgServer) -> None:
    """000001 takes half a second: the first rebuild (after 000003) saves a copy, and the
    second (after 000005) starts from it instead of running 000001 again. 000001 records
    whether a saved copy existed when it ran: in the kept database, it had not. The row
    000002's verify file seeded is in the copy, and 000006 finds it."""
    check_row = ("-- the row 000002 seeded\n-- migcoord:check\n"
                 "SELECT 'lost' AS problem WHERE NOT EXISTS (SELECT 1 FROM rules WHERE id = 1);\n")
    root = tree(
        tmp_path,
        pair("rule-service", "000001", "worth_a_copy",
             up="CREATE TABLE rules (id bigint PRIMARY KEY, address text);\n"
             "CREATE TABLE copies_seen AS SELECT count(*) AS n FROM pg_database\n"
             "    WHERE datname = current_database() || '_saved';\n"
             "SELECT pg_sleep(0.5);\n", down="DROP TABLE copies_seen, rules;\n"),
        pair("rule-service", "000002", "note",
             up="-- migcoord:verify-data\nALTER TABLE rules ADD COLUMN note text;\n",
             down="ALTER TABLE rules DROP COLUMN note;\n"),
        pair("rule-service", "000003", "forgets_sequence", up="CREATE SEQUENCE n;\n",
             down="SELECT 1;\n"),
        pair("rule-service", "000004", "level",
             up="-- migcoord:verify-data\nALTER TABLE rules ADD COLUMN level int;\n",
             down="ALTER TABLE rules DROP COLUMN level;\n"),
        pair("rule-service", "000005", "no_transaction_down_fails",
             up=NO_TX + "CREATE INDEX CONCURRENTLY rules_address_idx ON rules (address);\n",
             down=NO_TX + "DROP INDEX CONCURRENTLY rules_address_idx;\n"
             "DROP INDEX CONCURRENTLY no_such_idx;\n"),
        pair("rule-service", "000006", "priority",
             up="-- migcoord:verify-data\nALTER TABLE rules ADD COLUMN priority int;\n",
             down="ALTER TABLE rules DROP COLUMN priority;\n"),
        extra={
            "rule-service/migrations/000002_note.verify.sql":
                "INSERT INTO rules (id, address) VALUES (1, 'kept');\n-- migcoord:check\n"
                "SELECT 'lost' AS problem WHERE NOT EXISTS (\n"
                "    SELECT 1 FROM rules WHERE id = 1 AND address = 'kept');\n",
            "rule-service/migrations/000004_level.verify.sql": check_row,
            "rule-service/migrations/000006_priority.verify.sql": check_row})
    report = verify(root, pg_server, "--keep")
    try:
        assert [(m["status"], m["rebuilt"]) for m in report["migrations"]] == [
            ("ok", False), ("ok", False), ("failed", True), ("ok", False), ("failed", True),
            ("ok", False)]
        assert list(problems(report, 3)) == ["down-restore", "up-again"]
        assert list(problems(report, 5)) == ["down"]
        with psycopg.connect(pg_server.dsn_for(report["database"])) as conn:
            assert conn.execute("SELECT n FROM copies_seen").fetchone() == (0,)
            assert conn.execute("SELECT address FROM rules WHERE id = 1").fetchone() == ("kept",)
    finally:
        with pg_server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{report["database"]}" WITH (FORCE)')


def test_service_rebuild_applies_the_other_services_migrations_again(
        tmp_path: Path, pg_server: PgServer) -> None:
    """--service: the migrations applied without a round trip are part of the rebuild."""
    root = tree(
        tmp_path, RULES,
        pair("aggregator", "000002", "notifications",
             up="CREATE TABLE notifications (rule_id bigint REFERENCES rules (id));\n",
             down="SELECT 1;\n"),
        pair("rule-service", "000003", "rule_name", up="ALTER TABLE rules ADD COLUMN name text;\n",
             down="ALTER TABLE rules DROP COLUMN name;\n"),
        pair("aggregator", "000004", "sent",
             up="ALTER TABLE notifications ADD COLUMN sent boolean;\n",
             down="ALTER TABLE notifications DROP COLUMN sent;\n"))
    report = verify(root, pg_server, "--service", "aggregator")
    assert [(m["version"], m["status"], m["rebuilt"]) for m in report["migrations"]] == [
        (1, "applied", False), (2, "failed", True), (3, "applied", False), (4, "ok", False)]
    assert report["counts"]["applied"] == 2 and report["counts"]["round_tripped"] == 2


def test_a_down_that_ends_its_own_connection_is_reported_and_the_run_goes_on(
        tmp_path: Path, pg_server: PgServer) -> None:
    """The down terminates its backend: that down failed; verify reconnects to a rebuilt
    database and goes on."""
    root = tree(
        tmp_path, RULES,
        pair("rule-service", "000002", "kills_itself", up="CREATE TABLE t (id int);\n",
             down="SELECT pg_terminate_backend(pg_backend_pid());\n"),
        pair("rule-service", "000003", "later"))
    report = verify(root, pg_server)
    assert [(m["status"], m["rebuilt"]) for m in report["migrations"]] == [
        ("ok", False), ("failed", True), ("ok", False)]
    assert list(problems(report, 2)) == ["down"]


def test_a_down_that_ends_the_other_sessions_of_its_database_is_fine(
        tmp_path: Path, pg_server: PgServer) -> None:
    """A down that clears the way with pg_terminate_backend also ends the connection that
    reads the snapshots: it connects again, and the round trip passes (was a traceback)."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "clears_the_way", up="CREATE TABLE t (id int);\n",
        down="SELECT pg_terminate_backend(pid) FROM pg_stat_activity\n"
        " WHERE datname = current_database() AND pid <> pg_backend_pid();\n"
        "DROP TABLE t;\n"), pair("rule-service", "000003", "later"))
    report = verify(root, pg_server)
    assert report["ok"] is True, report


def test_temporary_objects_of_an_up_do_not_reach_its_down(tmp_path: Path,
                                                        pg_server: PgServer) -> None:
    """A temporary table and a pg_temp function made by the up are gone before the down
    and the up again, as they are for a down run by another command."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "archive",
        up="CREATE TEMP TABLE staging (id bigint);\n"
        "CREATE FUNCTION pg_temp.seven() RETURNS int LANGUAGE sql AS 'SELECT 7';\n"
        "CREATE TABLE archive AS SELECT id, pg_temp.seven() AS level FROM staging;\n",
        down="DROP TABLE archive;\n"))
    report = verify(root, pg_server)
    assert report["ok"] is True, report


def test_a_rebuild_that_gives_another_schema_is_reported(tmp_path: Path,
                                                        pg_server: PgServer) -> None:
    """An up whose result differs from run to run (a random table name) cannot be built
    again to the same schema: the difference is reported as a `rebuild` problem."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "random_table",
        up="DO $$ BEGIN EXECUTE format('CREATE TABLE %I (id int)', "
        "'r_' || md5(random()::text)); END $$;\n", down="SELECT 1;\n"),
        pair("rule-service", "000003", "later"))
    report = verify(root, pg_server)
    found = problems(report, 2)
    assert list(found) == ["down-restore", "up-again-restore", "rebuild"]
    assert sorted(line[:11] for line in found["rebuild"]["diff"]) == ["+ table pub", "- table pub"]
    assert verdict(report, 3)["status"] == "ok"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_a_rebuild_leaves_no_throwaway_database(
        tmp_path: Path, pg_server: PgServer, signum: int) -> None:
    """Ctrl-C or SIGTERM while the database is built again: exit 130, the database and
    its saved copy dropped.

    000002 forgets its sequence, so the database is built again, and saved there since
    000001 takes long enough (half a second) to be worth a copy; 000003 sleeps only once
    the role that 000004 creates exists, that is in the second rebuild (from the saved
    copy), which 000004's down (forgetting its sequence too) needs.
    """
    role = f"mc_verify_slow_rebuild_{signum}"
    root = tree(
        tmp_path,
        pair("rule-service", "000001", "worth_a_copy",
             up="CREATE TABLE rules (id bigint);\nSELECT pg_sleep(0.5);\n",
             down="DROP TABLE rules;\n"),
        pair("rule-service", "000002", "forgets_sequence", up="CREATE SEQUENCE n;\n",
             down="SELECT 1;\n"),
        pair("rule-service", "000003", "slow_when_rebuilt",
             up=f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
             "THEN PERFORM pg_sleep(600); END IF; END $$;\n"),
        pair("rule-service", "000004", "forgets_role_and_sequence",
             up=f"CREATE ROLE {role};\nCREATE SEQUENCE m;\n", down="SELECT 1;\n"))
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "migcoord", "verify", "--dsn", pg_server.admin_dsn], cwd=root,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        name = wait_for_sleep(pg_server, process)
        assert database_exists(pg_server, name + "_saved")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        with pg_server.admin() as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")
    assert process.returncode == 130, stderr
    assert "verify interrupted; no throwaway database is left" in stderr
    assert "Traceback" not in stderr
    assert not database_exists(pg_server, name)
    assert not database_exists(pg_server, name + "_saved")


def wait_for_sleep(pg_server: PgServer, process: subprocess.Popen[str]) -> str:
    """The throwaway database in which a backend sleeps in pg_sleep(600), once one does."""
    deadline = time.monotonic() + 60
    with pg_server.admin() as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT datname FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND query LIKE '%%pg_sleep(600)%%' "
                "AND datname LIKE 'migcoord_verify_%%'").fetchone()
            if row is not None:
                return str(row[0])
            if process.poll() is not None:
                pytest.fail(f"verify ended before the rebuild slept: {process.communicate()}")
            time.sleep(0.02)
    pytest.fail("the rebuild never started")


def test_keep_keeps_the_rebuilt_database(tmp_path: Path, pg_server: PgServer) -> None:
    """--keep after a rebuild: the kept database is the rebuilt one, holding everything."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "drops_too_much", up="ALTER TABLE rules ADD COLUMN name text;\n",
        down="ALTER TABLE rules DROP COLUMN name, DROP COLUMN email;\n"),
        pair("rule-service", "000003", "later", up="CREATE TABLE later (id int);\n",
             down="DROP TABLE later;\n"))
    report = verify(root, pg_server, "--keep")
    try:
        assert verdict(report, 2)["rebuilt"] is True
        assert verdict(report, 3)["status"] == "ok"
        with psycopg.connect(pg_server.dsn_for(report["database"])) as conn:
            found = conn.execute("SELECT to_regclass('public.later') IS NOT NULL, count(*) "
                                 "FROM information_schema.columns WHERE table_name = 'rules' "
                                 "AND column_name IN ('email', 'name')").fetchone()
        assert found == (True, 2)
    finally:
        with pg_server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{report["database"]}" WITH (FORCE)')


def test_cleanup_holds_back_sigterm_as_well_as_ctrl_c() -> None:
    """A SIGTERM that arrives while the throwaway database is being dropped waits for the
    drop to finish, then reaches the handler that was in place (the CLI's: an interrupt)."""
    from migcoord.verify.servers import interrupts_deferred

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    finished = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert finished == [True]
    assert signal.getsignal(signal.SIGTERM) is previous
