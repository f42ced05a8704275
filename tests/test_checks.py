"""`migcoord check` offline: every finding code is triggered, and the example is clean."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import codes, copy_example, make_tree, pair, run
from migcoord.checks import numbering
from migcoord.core.model import Reservation
from migcoord.repo import discovery

#: Two services, both with folders, no reservations: gaps are judged.
TWO_SERVICES = """\
[services.rule-service]
migrations = "rule-service/migrations"

[services.aggregator]
migrations = "aggregator/migrations"
"""

RESERVING = TWO_SERVICES.replace(
    'migrations = "rule-service/migrations"\n',
    'migrations = "rule-service/migrations"\nreserved = "000001-000005"\n')


def check(root: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """Run `check --format json`; exit code and findings."""
    result = run(["check", "--format", "json", *args], cwd=root)
    assert "Traceback" not in result.stderr
    document = result.json()
    assert document["ok"] == (result.code == 0)
    return result.code, document["findings"]


def only(findings: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["code"] == code]


def files(*pairs: dict[str, str | bytes]) -> dict[str, str | bytes]:
    merged: dict[str, str | bytes] = {}
    for one in pairs:
        merged.update(one)
    return merged


# -- the clean example and the output shape -------------------------------------------------


def test_the_example_system_is_clean(tmp_path: Path) -> None:
    """examples/alerting raises no finding at all, not even a warning, even with --strict."""
    root = copy_example(tmp_path / "alerting")
    result = run(["check", "--format", "json", "--strict"], cwd=root)
    assert result.code == 0, result.stdout
    assert result.json() == {"ok": True, "findings": []}
    text = run(["check"], cwd=root)
    assert text.code == 0
    assert text.stdout == ""


def test_json_findings_have_the_documented_keys(tmp_path: Path) -> None:
    """Each finding carries code, severity, message, path (relative), service and version."""
    make_tree(tmp_path, {"rule-service/migrations/000001_a.up.sql": "SELECT 1;\n"})
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert {"code", "severity", "message", "path", "service", "version"} <= finding.keys()
    assert finding["code"] == "missing-down"
    assert finding["severity"] == "error"
    assert finding["path"] == "rule-service/migrations/000001_a.up.sql"
    assert finding["service"] == "rule-service"
    assert finding["version"] == 1
    assert "000001_a.down.sql" in finding["message"]


def test_text_output_is_path_line_col_severity_code_message_then_hint(tmp_path: Path) -> None:
    """The text format reads like a compiler's: `path:line:col: error: code: message`."""
    make_tree(tmp_path, pair("rule-service", "000001", "a", up="SELECT 1;\nBEGIN;\nSELECT 2;\n"))
    result = run(["check"], cwd=tmp_path)
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "rule-service/migrations/000001_a.up.sql:2:1: error: explicit-transaction: ")
    assert lines[1].startswith("    hint: ")
    assert "check failed: 1 error, 0 warnings" in result.stderr


def test_a_service_with_no_folder_is_fine(tmp_path: Path) -> None:
    """`sender` is configured but has no folder yet: no finding about it."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    assert not (tmp_path / "sender").exists()
    assert check(tmp_path) == (0, [])


def test_an_empty_repository_is_clean(tmp_path: Path) -> None:
    """No folders and no sum file yet: nothing to report."""
    make_tree(tmp_path, {}, write_sum=False)
    assert check(tmp_path) == (0, [])


# -- pairing, names, numbers --------------------------------------------------------------


def test_same_version_in_two_services_is_a_duplicate_naming_both(tmp_path: Path) -> None:
    """Versions are global: 000001 in two services is reported on each, naming both."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000001", "b")))
    code, findings = check(tmp_path)
    assert code == 1
    dups = only(findings, "duplicate-version")
    assert {f["service"] for f in dups} == {"rule-service", "aggregator"}
    for finding in dups:
        assert "rule-service/000001_a" in finding["message"]
        assert "aggregator/000001_b" in finding["message"]


def test_same_version_with_other_padding_is_a_duplicate(tmp_path: Path) -> None:
    """`1_x` and `000001_y` are the same version: numbers, not text, are compared."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "1", "b")))
    assert "duplicate-version" in codes(run(["check", "--format", "json"], cwd=tmp_path))


def test_an_up_without_down_is_missing_down(tmp_path: Path) -> None:
    """Every up needs its down."""
    make_tree(tmp_path, {"rule-service/migrations/000001_a.up.sql": "SELECT 1;\n"})
    code, findings = check(tmp_path)
    assert (code, [f["code"] for f in findings]) == (1, ["missing-down"])


def test_a_down_without_up_is_missing_up(tmp_path: Path) -> None:
    """A lone down file is reported at the down file."""
    make_tree(tmp_path, {"rule-service/migrations/000001_a.down.sql": "SELECT 1;\n"})
    code, findings = check(tmp_path)
    assert (code, [f["code"] for f in findings]) == (1, ["missing-up"])
    assert findings[0]["path"] == "rule-service/migrations/000001_a.down.sql"


def test_up_and_down_with_different_names_are_one_migration(tmp_path: Path) -> None:
    """golang-migrate pairs by version: `000001_a.up.sql` and `000001_b.down.sql` are one
    migration, with a name-mismatch warning on the down file, not three errors."""
    make_tree(tmp_path, {"rule-service/migrations/000001_a.up.sql": "SELECT 1;\n",
                         "rule-service/migrations/000001_b.down.sql": "SELECT 1;\n"})
    code, findings = check(tmp_path)
    assert code == 0, findings
    assert [(f["code"], f["severity"], f["path"]) for f in findings] == [
        ("name-mismatch", "warning", "rule-service/migrations/000001_b.down.sql")]
    assert "000001_a.up.sql and 000001_b.down.sql" in findings[0]["message"]


@pytest.mark.parametrize("other", ["atlas.sum", "notes.txt", "Makefile", "testdata/x.json"])
def test_other_tools_files_beside_migrations_are_left_alone(tmp_path: Path, other: str) -> None:
    """Atlas's atlas.sum, notes, a testdata folder: not meant as migrations, and not read,
    as golang-migrate does not read them."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              {f"rule-service/migrations/{other}": "x\n"}))
    code, findings = check(tmp_path)
    assert (code, [f for f in findings if f["code"] == "bad-filename"]) == (0, [])


@pytest.mark.parametrize("stray", ["7_x.sql", "000003-x.up.sql", "000002_a.up.sql\n",
                                   "000004_x.up.sql.orig", "add_index.up.sql", "schema.SQL",
                                   "000005_x.up"])
def test_a_stray_file_is_a_bad_filename(tmp_path: Path, stray: str) -> None:
    """A file that golang-migrate would not read is reported, with why."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              {f"rule-service/migrations/{stray}": "x\n"}))
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert finding["code"] == "bad-filename"
    assert finding["path"] == f"rule-service/migrations/{stray}"
    assert stray in finding["message"]


def test_a_subfolder_in_a_migrations_folder_is_a_bad_filename(tmp_path: Path) -> None:
    """golang-migrate never reads sub-folders, so one is reported, not silently skipped."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              {"rule-service/migrations/old/000002_b.up.sql": "SELECT 1;\n"}))
    code, findings = check(tmp_path)
    assert code == 1
    assert [(f["code"], f["path"]) for f in findings] == [
        ("bad-filename", "rule-service/migrations/old")]
    # A folder of other things (a tool's test data) is left alone.
    (tmp_path / "rule-service/migrations/old/000002_b.up.sql").unlink()
    (tmp_path / "rule-service/migrations/old").rename(tmp_path / "rule-service/migrations/testdata")
    (tmp_path / "rule-service/migrations/testdata/fixture.json").write_text("{}")
    assert check(tmp_path)[0] == 0


def test_editor_leftovers_and_hidden_files_are_not_reported(tmp_path: Path) -> None:
    """.gitkeep, .DS_Store and README.md belong in a folder without being migrations."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"), {
        "rule-service/migrations/.gitkeep": "",
        "rule-service/migrations/.DS_Store": "x",
        "rule-service/migrations/README.md": "# notes\n",
    }))
    assert check(tmp_path) == (0, [])


def test_another_version_width_is_a_warning_and_strict_fails_on_it(tmp_path: Path) -> None:
    """`7_x.up.sql` beside 6-wide files is read as 7 and warned about; --strict exits 1."""
    make_tree(tmp_path, files(*(pair("rule-service", f"{v:06d}", f"m{v}") for v in range(1, 7)),
                              pair("aggregator", "7", "x")))
    code, findings = check(tmp_path)
    assert code == 0
    [finding] = findings
    assert (finding["code"], finding["severity"], finding["version"]) == ("version-width", "warning", 7)
    assert "000007_x" in (finding.get("hint") or "")
    strict, _ = check(tmp_path, "--strict")
    assert strict == 1


def test_a_skipped_number_is_a_gap(tmp_path: Path) -> None:
    """000001 then 000003: 000002 is reported missing, at the migration after the gap."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000003", "c")), config=TWO_SERVICES)
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert finding["code"] == "gap"
    assert "000002" in finding["message"]
    assert finding["path"] == "aggregator/migrations/000003_c.up.sql"


def test_a_run_of_missing_numbers_is_one_gap(tmp_path: Path) -> None:
    """000001 then 000005 is one finding for 000002-000004."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000005", "e")), config=TWO_SERVICES)
    _, findings = check(tmp_path)
    assert [f["message"].split(" is ")[0] for f in only(findings, "gap")] == [
        "version 000002-000004"]


def test_a_version_far_above_the_others_is_one_gap_found_at_once(tmp_path: Path) -> None:
    """A 14-digit timestamp among 6-digit versions is one gap, reported without walking
    every number in between (that once took all the memory there was)."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "20240826120919", "b")), config=TWO_SERVICES)
    _, findings = check(tmp_path)
    assert [f["message"].split(" is ")[0] for f in only(findings, "gap")] == [
        "version 000002-20240826120918"]


@settings(max_examples=300, deadline=None)
@given(versions=st.sets(st.integers(1, 60), min_size=1, max_size=12),
       reserved=st.lists(st.tuples(st.integers(1, 60), st.integers(0, 8)), max_size=3))
def test_gaps_are_the_missing_numbers_outside_reserved_ranges(
    versions: set[int], reserved: list[tuple[int, int]]
) -> None:
    """The runs of holes agree with checking every number in between, one by one."""
    ranges = [Reservation(first, first + length) for first, length in reserved]
    ordered = sorted(versions)
    naive = [n for n in range(ordered[0], ordered[-1])
             if n not in versions and not any(n in r for r in ranges)]
    found = [n for first, last in numbering._holes(ordered, ranges)
             for n in range(first, last + 1)]
    assert found == naive


def test_no_gap_is_reported_when_a_service_folder_is_absent(tmp_path: Path) -> None:
    """A deployed image holds only its own folder: the other numbers are not holes."""
    make_tree(tmp_path, pair("aggregator", "000006", "f"), config=TWO_SERVICES)
    assert check(tmp_path) == (0, [])


def test_a_gap_is_reported_when_only_a_future_service_has_no_folder(tmp_path: Path) -> None:
    """`sender` has no folder and no migration in the sum, so it cannot explain a hole."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000003", "c")))
    assert "gap" in codes(run(["check", "--format", "json"], cwd=tmp_path))


def test_no_gap_is_reported_inside_a_reserved_range(tmp_path: Path) -> None:
    """rule-service reserved 1-5 and used 1-2: 3-5 are free for it, not holes."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("rule-service", "000002", "b"),
                              pair("aggregator", "000006", "f")), config=RESERVING)
    assert check(tmp_path) == (0, [])


def test_another_services_number_in_a_reserved_range_is_reported(tmp_path: Path) -> None:
    """aggregator cannot use 000003 when rule-service reserved 1-5."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("rule-service", "000002", "b"),
                              pair("aggregator", "000003", "c")), config=RESERVING)
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert (finding["code"], finding["service"], finding["version"]) == (
        "reserved-range", "aggregator", 3)
    assert "rule-service" in finding["message"]


# -- dependencies and directives ----------------------------------------------------------


def _depends(line: str) -> str:
    return f"-- migcoord:depends {line}\nSELECT 1;\n"


def test_depending_on_a_version_that_does_not_exist_is_unknown(tmp_path: Path) -> None:
    """A bare version nobody has is reported, with the directive's line."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("rule-service", "000002", "b"),
                              pair("aggregator", "000003", "c", up="-- x\n" + _depends("000000"))),
              config=TWO_SERVICES)
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert finding["code"] == "unknown-dependency"
    assert "does not exist" in finding["message"]
    assert finding["line"] == 2


def test_depending_on_a_version_of_another_owner_is_unknown(tmp_path: Path) -> None:
    """`aggregator:000001` when 000001 belongs to rule-service names the real owner."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000002", "b", up=_depends("aggregator:000001"))))
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert finding["code"] == "unknown-dependency"
    assert "belongs to rule-service" in finding["message"]
    assert "rule-service:000001" in finding["hint"]


def test_depending_on_an_unknown_service_is_unknown(tmp_path: Path) -> None:
    """`billing:000001` names a service the config does not have."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000002", "b", up=_depends("billing:000001"))))
    _, findings = check(tmp_path)
    [finding] = findings
    assert finding["code"] == "unknown-dependency"
    assert "'billing'" in finding["message"]



def test_a_qualified_dependency_on_a_duplicated_version_is_not_called_wrong(tmp_path: Path) -> None:
    """During a merge collision, `rule-service:000002` is right: only the duplicate is reported."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("rule-service", "000002", "b"),
                              pair("aggregator", "000002", "c"),
                              pair("sender", "000003", "d", up=_depends("rule-service:000002"))))
    assert codes(run(["check", "--format", "json"], cwd=tmp_path)) == [
        "duplicate-version", "duplicate-version"]

def test_a_correct_dependency_raises_nothing(tmp_path: Path) -> None:
    """`rule-service:000001, 000002` both exist and are older: clean."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("rule-service", "000002", "b"),
                              pair("aggregator", "000003", "c",
                                   up=_depends("rule-service:000001, 000002"))))
    assert check(tmp_path) == (0, [])


@pytest.mark.parametrize("target", ["000003", "000002"])
def test_depending_on_a_newer_or_the_same_version_is_a_forward_dependency(
    tmp_path: Path, target: str
) -> None:
    """A migration can only need migrations numbered before it."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000002", "b", up=_depends(target)),
                              pair("rule-service", "000003", "c")))
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert (finding["code"], finding["version"]) == ("forward-dependency", 2)


def test_a_misspelt_directive_is_an_error_with_a_did_you_mean_hint(tmp_path: Path) -> None:
    """`no-transation` is not silently treated as a comment."""
    make_tree(tmp_path, pair("rule-service", "000001", "a",
                             up="-- migcoord:no-transation\nCREATE INDEX CONCURRENTLY i ON t (c);\n"
                                "CREATE INDEX CONCURRENTLY j ON t (d);\n"))
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = only(findings, "unknown-directive")
    assert finding["line"] == 1
    assert "no-transation" in finding["message"]
    # ... and the SQL analysis says what the typo would have cost.
    assert only(findings, "concurrently-in-transaction")
    assert "did you mean `-- migcoord:no-transaction`" in finding["hint"]


def test_a_directive_after_the_first_statement_is_reported(tmp_path: Path) -> None:
    """It would be ignored, so it is an error naming both lines."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("rule-service", "000002", "b",
                                   up="SELECT 1;\n-- migcoord:depends 000001\n")))
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert (finding["code"], finding["line"]) == ("unknown-directive", 2)
    assert "after the first statement" in finding["message"]


def test_an_unreadable_depends_value_is_reported(tmp_path: Path) -> None:
    """`-- migcoord:depends rules table` cannot be read and says how to write it."""
    make_tree(tmp_path, pair("rule-service", "000001", "a",
                             up="-- migcoord:depends rules table\nSELECT 1;\n"))
    assert codes(run(["check", "--format", "json"], cwd=tmp_path)) == ["unknown-directive"]


# -- content ------------------------------------------------------------------------------


def test_an_empty_up_file_is_a_warning_not_an_error(tmp_path: Path) -> None:
    """Comments only: `empty-migration` warning; exit 0 unless --strict."""
    make_tree(tmp_path, pair("rule-service", "000001", "a", up="-- todo\n\n", down="-- todo\n"))
    code, findings = check(tmp_path)
    assert code == 0
    assert [(f["code"], f["severity"]) for f in findings] == [("empty-migration", "warning")]
    assert check(tmp_path, "--strict")[0] == 1


def test_an_empty_down_file_is_a_warning(tmp_path: Path) -> None:
    """A down that changes nothing would record a rollback that did not happen."""
    make_tree(tmp_path, pair("rule-service", "000001", "a", down=";\n"))
    _, findings = check(tmp_path)
    assert [(f["code"], f["path"]) for f in findings] == [
        ("empty-migration", "rule-service/migrations/000001_a.down.sql")]


def test_a_freshly_created_migration_gives_only_the_empty_migration_warning(tmp_path: Path) -> None:
    """`create` writes templates that pass every rule except, on purpose, empty-migration."""
    root = copy_example(tmp_path / "alerting")
    assert run(["create", "add_index", "--service", "aggregator"], cwd=root).code == 0
    code, findings = check(root)
    assert code == 0
    assert [(f["code"], f["severity"], f["version"]) for f in findings] == [
        ("empty-migration", "warning", 7)]


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\nSELECT 1;\n", [(1, 1), (3, 1)]),
        ("CREATE TABLE t (id int);\n  begin transaction;\n", [(2, 3)]),
        ("START TRANSACTION;\nSELECT 1;\nEND;\nEND;\n", [(1, 1), (3, 1), (4, 1)]),
        ("SELECT 1; ROLLBACK;\n", [(1, 11)]),
    ],
)
def test_explicit_transaction_control_is_reported_at_line_and_column(
    tmp_path: Path, sql: str, where: list[tuple[int, int]]
) -> None:
    """BEGIN/COMMIT/END/ROLLBACK would end migcoord's own transaction early."""
    make_tree(tmp_path, pair("rule-service", "000001", "a", up=sql))
    code, findings = check(tmp_path)
    assert code == 1
    assert [(f["code"], f["line"], f["column"]) for f in only(findings, "explicit-transaction")] == [
        ("explicit-transaction", line, col) for line, col in where]


@pytest.mark.parametrize(
    "sql",
    [
        "DO $$ BEGIN\n  RAISE NOTICE 'x';\nEND $$;\n",
        "DO $body$\nBEGIN\n  PERFORM 1;\nEND\n$body$;\n",
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\n",
        "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS '\nBEGIN\n  RETURN 1;\nEND;\n';\n",
        "CREATE FUNCTION h() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\nEND;\n",
        "SAVEPOINT s;\nSELECT 1;\nROLLBACK TO SAVEPOINT s;\nRELEASE s;\n",
        "-- BEGIN;\n/* COMMIT; */\nSELECT 'BEGIN; COMMIT;';\n",
    ],
)
def test_begin_inside_a_body_string_or_comment_is_not_explicit_transaction(
    tmp_path: Path, sql: str
) -> None:
    """PL/pgSQL blocks, BEGIN ATOMIC bodies, savepoints, strings and comments are fine."""
    make_tree(tmp_path, pair("rule-service", "000001", "a", up=sql))
    code, findings = check(tmp_path)
    assert code == 0
    assert only(findings, "explicit-transaction") == []


def test_a_latin1_byte_is_an_encoding_error_naming_the_line(tmp_path: Path) -> None:
    """A file saved as latin-1 is reported with the line of the first bad byte."""
    make_tree(tmp_path, pair("rule-service", "000001", "a")
              | {"rule-service/migrations/000001_a.up.sql": b"SELECT 1;\n-- caf\xe9\nSELECT 2;\n"})
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert finding["code"] == "encoding"
    assert "line 2" in finding["message"]
    assert "0xe9" in finding["message"]


def test_a_non_utf8_file_does_not_hide_the_other_findings(tmp_path: Path) -> None:
    """One undecodable file; the other files' problems are still all reported."""
    make_tree(tmp_path, files(
        pair("rule-service", "000001", "a")
        | {"rule-service/migrations/000001_a.up.sql": b"\xff\xfeS\x00"},
        pair("rule-service", "000002", "b", up="SELECT 1;\nCOMMIT;\n"),
        {"rule-service/migrations/000003_c.up.sql": "SELECT 1;\n",
         "rule-service/migrations/7_notes.sql": "x"},
    ))
    found = codes(run(["check", "--format", "json"], cwd=tmp_path))
    assert "encoding" in found
    assert "explicit-transaction" in found
    assert "missing-down" in found
    assert "bad-filename" in found


# -- the sum file -------------------------------------------------------------------------


def test_editing_a_file_after_the_sum_was_written_is_not_a_sum_mismatch(tmp_path: Path) -> None:
    """The sum is a ledger of versions, services and names: editing SQL changes none."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    (tmp_path / "rule-service/migrations/000001_a.up.sql").write_text("SELECT 2;\n")
    (tmp_path / "rule-service/migrations/000001_a.down.sql").write_text("SELECT 2;\n")
    assert check(tmp_path) == (0, [])


def test_renaming_a_migration_after_the_sum_was_written_is_a_sum_mismatch(tmp_path: Path) -> None:
    """A name the ledger does not list is reported for that migration, and `migcoord sum`
    (the hint) records it."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    folder = tmp_path / "rule-service/migrations"
    for direction in ("up", "down"):
        (folder / f"000001_a.{direction}.sql").rename(folder / f"000001_b.{direction}.sql")
    code, findings = check(tmp_path)
    assert code == 1
    assert [(f["code"], f["version"], f["path"]) for f in findings] == [
        ("sum-mismatch", 1, "migcoord.sum"), ("sum-mismatch", 1, "migcoord.sum")]
    assert {f["message"] for f in findings} == {
        "000001_b is not in migcoord.sum", "migcoord.sum lists 000001_a, which is not on disk"}
    assert all("`migcoord sum`" in f["hint"] for f in findings)
    assert run(["sum"], cwd=tmp_path).code == 0
    assert check(tmp_path) == (0, [])


def test_a_missing_sum_file_is_a_sum_mismatch(tmp_path: Path) -> None:
    """Migrations without migcoord.sum: say to run `migcoord sum`."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"), write_sum=False)
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert finding["code"] == "sum-mismatch"
    assert "does not exist" in finding["message"]


def test_a_migration_missing_from_the_sum_is_a_sum_mismatch(tmp_path: Path) -> None:
    """A pair added by hand (not by `create`) is not in the sum."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    for path, text in pair("rule-service", "000002", "b").items():
        (tmp_path / path).write_text(text)
    _, findings = check(tmp_path)
    assert [(f["code"], f["version"]) for f in findings] == [("sum-mismatch", 2)]
    assert "not in migcoord.sum" in findings[0]["message"]


def test_git_conflict_markers_in_the_sum_are_a_sum_mismatch(tmp_path: Path) -> None:
    """A merge where both branches added a migration leaves markers: reported once, at the
    first, naming every marker's line and `migcoord resolve`."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    sum_path = tmp_path / "migcoord.sum"
    header, *body = sum_path.read_text().splitlines()
    sum_path.write_text("\n".join([header, *body, "<<<<<<< HEAD",
                                   "000002 rule-service b x y", "=======",
                                   "000002 aggregator c x y", ">>>>>>> other", ""]))
    code, findings = check(tmp_path)
    assert code == 1
    conflict = [f for f in only(findings, "sum-mismatch") if "merge conflict" in f["message"]]
    assert [f["line"] for f in conflict] == [3]
    assert "markers on lines 3, 5, 7" in conflict[0]["message"]
    assert "`migcoord resolve`" in conflict[0]["hint"]


def test_a_hand_edited_header_hash_is_a_sum_mismatch(tmp_path: Path) -> None:
    """The first line hashes the rest; changing it by hand is reported on line 1."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    sum_path = tmp_path / "migcoord.sum"
    header, *body = sum_path.read_text().splitlines()
    claimed = header.split("sha256:")[1].split(" ")[0]
    sum_path.write_text("\n".join([header.replace(claimed, "0" * 64), *body, ""]))
    code, findings = check(tmp_path)
    assert code == 1
    [finding] = findings
    assert (finding["code"], finding["line"]) == ("sum-mismatch", 1)
    assert "edited by hand" in finding["message"]


def test_a_sum_without_header_is_a_sum_mismatch(tmp_path: Path) -> None:
    """A sum file whose first line is not the header is reported on line 1."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    sum_path = tmp_path / "migcoord.sum"
    sum_path.write_text("\n".join(sum_path.read_text().splitlines()[1:]) + "\n")
    _, findings = check(tmp_path)
    assert [(f["code"], f["line"]) for f in findings] == [("sum-mismatch", 1)]


def test_crlf_and_bom_files_have_the_same_checksum_as_lf(tmp_path: Path) -> None:
    """A Windows checkout (autocrlf, BOM) does not look edited."""
    up = "-- migcoord:depends 000001\nCREATE TABLE t (\n  id int\n);\n"
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"),
                              pair("aggregator", "000002", "b", up=up)))
    lf_sum = (tmp_path / "migcoord.sum").read_text()
    base = tmp_path / "aggregator/migrations/000002_b"
    Path(f"{base}.up.sql").write_bytes(b"\xef\xbb\xbf" + up.replace("\n", "\r\n").encode())
    Path(f"{base}.down.sql").write_bytes(b"SELECT 1;\r\n")
    code, findings = check(tmp_path)
    assert code == 0
    assert only(findings, "sum-mismatch") == []
    assert run(["sum"], cwd=tmp_path).code == 0
    assert (tmp_path / "migcoord.sum").read_text() == lf_sum
    assert discovery.checksum(b"\xef\xbb\xbfa\r\nb\rc\n") == discovery.checksum(b"a\nb\nc\n")


def test_the_sum_keeps_lines_of_services_whose_folder_is_absent(tmp_path: Path) -> None:
    """In a checkout with only one service's folder, the others' sum lines are not judged."""
    make_tree(tmp_path, files(pair("rule-service", "000001", "a"), pair("aggregator", "000002", "b")))
    shutil.rmtree(tmp_path / "rule-service")
    assert check(tmp_path) == (0, [])

