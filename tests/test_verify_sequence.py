"""`migcoord verify`'s whole-sequence step is run whenever there is a sequence to run, and
a step that did not run is never reported as passed (real server).

A down that fails in its own round trip (right after its up) may well succeed at the end
of the sequence, where the later migrations have made what it needs: the sequence is
tried, and fails only where rolling back really stops.
"""

from __future__ import annotations

from pathlib import Path

from conftest import PgServer
from test_verify import RULES, problems, tree, verdict, verify

from helpers import make_tree, pair, run
from migcoord.verify.report import MigrationVerdict, SequenceVerdict, VerifyReport

#: 000002's down deletes rows of a value that only 000003 adds to the enum: it fails right
#: after its own up, and succeeds when everything is rolled back from the end.
NEEDS_A_LATER_VALUE = (
    pair("rule-service", "000001", "base",
         up="CREATE TYPE kind AS ENUM ('a');\nCREATE TABLE logs (id int PRIMARY KEY, k kind);\n",
         down="DROP TABLE logs;\nDROP TYPE kind;\n"),
    pair("rule-service", "000002", "note", up="ALTER TABLE logs ADD COLUMN note text;\n",
         down="DELETE FROM logs WHERE k = 'b';\nALTER TABLE logs DROP COLUMN note;\n"),
    pair("rule-service", "000003", "kind_b", up="ALTER TYPE kind ADD VALUE 'b';\n",
         down="UPDATE logs SET k = 'a' WHERE k = 'b';\n"))


def test_a_down_that_fails_only_after_its_own_up_does_not_skip_the_sequence(
        tmp_path: Path, pg_server: PgServer, dsn: str) -> None:
    root = tree(tmp_path, *NEEDS_A_LATER_VALUE)
    report = verify(root, pg_server)
    assert report["ok"] is False  # 000002's own round trip still fails the run
    assert list(problems(report, 2)) == ["down"]
    assert 'invalid input value for enum kind: "b"' in problems(report, 2)["down"]["message"]
    sequence = report["sequence"]
    assert (sequence["status"], sequence["ran"], sequence["ok"], sequence["problems"]) == (
        "ok", True, True, []), sequence
    assert isinstance(sequence["down_ms"], int) and isinstance(sequence["up_ms"], int)

    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1, result.stderr
    assert "FAILED 000002 rule-service note\n" in result.stdout
    assert "FAILED whole sequence" not in result.stdout
    assert result.stdout.splitlines()[-1].startswith(
        "verify failed: 3 migrations round-tripped, 2 failed; whole sequence ok (")
    assert "whole sequence down and up again: ok  [down " in result.stderr

    # What verify says is what `up --all` and `down --to 0` do on a real database.
    assert run(["up", "--all", "--dsn", dsn], cwd=root).code == 0
    down = run(["down", "--service", "rule-service", "--to", "0", "--dsn", dsn], cwd=root)
    assert down.code == 0, down.stderr


def test_the_sequence_fails_where_rolling_back_really_stops(tmp_path: Path,
                                                            pg_server: PgServer) -> None:
    """A down that fails everywhere stops the sequence too: named, with its file:line."""
    root = tree(tmp_path, RULES, pair(
        "rule-service", "000002", "bad_down", up="CREATE TABLE t (id int);\n",
        down="-- the wrong table\nDROP TABLE no_such_table;\n"), pair("rule-service", "000003", "later"))
    report = verify(root, pg_server)
    assert verdict(report, 2)["status"] == "failed" and verdict(report, 3)["status"] == "ok"
    sequence = report["sequence"]
    assert (sequence["status"], sequence["ran"], sequence["ok"]) == ("failed", True, False)
    (stop,) = sequence["problems"]
    down_file = root / "rule-service/migrations/000002_bad_down.down.sql"
    assert stop["stage"] == "sequence-down"
    assert stop["message"].startswith(
        f"rolling everything back stopped at rule-service 000002_bad_down: {down_file}:2:")
    assert 'table "no_such_table" does not exist' in stop["message"]

    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1
    assert "FAILED whole sequence down and up again\n  sequence-down: rolling everything " \
        "back stopped at rule-service 000002_bad_down: " in result.stdout


def test_a_sequence_that_did_not_run_is_not_ok(tmp_path: Path, pg_server: PgServer) -> None:
    """An up that fails leaves no whole sequence to run: `not-run`, never ok, and not
    printed as FAILED either (the failed up is what failed)."""
    root = tree(tmp_path, RULES,
                pair("rule-service", "000002", "bad_up", up="ALTER TABLE no_such ADD COLUMN x int;\n"),
                pair("rule-service", "000003", "later"))
    report = verify(root, pg_server)
    assert report["sequence"] == {
        "ok": False, "status": "not-run", "ran": False, "problems": [], "down_ms": None,
        "up_ms": None, "note": "not run: the up of rule-service 000002_bad_up failed"}
    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1
    assert "FAILED whole sequence" not in result.stdout
    assert "; whole sequence not run: the up of rule-service 000002_bad_up failed (" \
        in result.stdout


def test_a_sequence_not_run_never_lets_the_run_pass() -> None:
    """Whatever the migrations say, a sequence that did not run is not a pass; one with
    nothing to roll back is no failure."""
    passed = MigrationVerdict(version=1, version_text="000001", service="s", name="a",
                              status="ok", round_trip=True)
    not_run = VerifyReport(migrations=(passed,), sequence=SequenceVerdict("not-run", note="x"))
    assert not not_run.ok and not not_run.as_json()["sequence"]["ok"]
    nothing = VerifyReport(migrations=(passed,), sequence=SequenceVerdict("nothing", note="y"))
    assert nothing.ok and nothing.as_json()["sequence"] == {
        "ok": False, "status": "nothing", "ran": False, "problems": [], "down_ms": None,
        "up_ms": None, "note": "y"}


ADOPTED = 'version_width = 4\nadopted_through = "0005"\n[services.db]\nmigrations = "db"\n'


def test_an_adopted_history_rolls_back_what_follows_its_last_migration_without_a_down(
        tmp_path: Path, pg_server: PgServer) -> None:
    """Nothing rolls back past an up-only migration, but everything after it does: the
    sequence rolls back to the schema with it, and finds a down that leaves a table."""
    root = make_tree(tmp_path / "r", {
        "db/0001_a.up.sql": "CREATE TABLE a (id int);\n",
        "db/0001_a.down.sql": "DROP TABLE a;\n",
        "db/0005_b.up.sql": "CREATE TABLE b (id int);\n",
        "db/0006_c.up.sql": "CREATE TABLE c (id int);\n",
        "db/0006_c.down.sql": "DROP TABLE c;\n",
        # Its own round trip passes (IF NOT EXISTS); only the sequence sees the table stay.
        "db/0007_d.up.sql": "CREATE TABLE IF NOT EXISTS d (id int);\n",
        "db/0007_d.down.sql": "SELECT 1;\n",
    }, config=ADOPTED)
    report = verify(root, pg_server)
    assert [(m["version"], m["status"]) for m in report["migrations"]] == [
        (1, "ok"), (5, "applied"), (6, "ok"), (7, "failed")]
    sequence = report["sequence"]
    assert (sequence["status"], sequence["ran"]) == ("failed", True), sequence
    assert [(p["stage"], p["message"], p["diff"]) for p in sequence["problems"]] == [
        ("sequence-down", "rolling everything back did not give the schema with db 0005_b "
         "and those before it (+ left behind, - removed, ~ changed):",
         ["+ table public.d (with 1 column)"])]

    (root / "db/0007_d.down.sql").write_text("DROP TABLE d;\n")
    assert run(["sum"], cwd=root).code == 0
    report = verify(root, pg_server)
    assert report["ok"] is True
    assert (report["sequence"]["status"], report["sequence"]["ran"]) == ("ok", True)


def test_an_adopted_history_ending_without_a_down_has_nothing_to_roll_back(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = make_tree(tmp_path / "r", {
        "db/0001_a.up.sql": "CREATE TABLE a (id int);\n",
        "db/0001_a.down.sql": "DROP TABLE a;\n",
        "db/0005_b.up.sql": "CREATE TABLE b (id int);\n",
    }, config=ADOPTED)
    report = verify(root, pg_server)
    assert report["ok"] is True
    assert report["sequence"] == {
        "ok": False, "status": "nothing", "ran": False, "problems": [], "down_ms": None,
        "up_ms": None, "note": "nothing to roll back after db 0005_b, which has no down file "
        "(adopted history)"}
    result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith(
        "verify ok: 1 migration round-tripped, 1 applied without a round trip; whole "
        "sequence: nothing to roll back after db 0005_b, which has no down file "
        "(adopted history) (")
