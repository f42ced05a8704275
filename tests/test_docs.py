"""`migcoord docs`: the generated version tables, written between markers."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import EXAMPLE, copy_example, make_tree, pair, run
from migcoord.core import docsgen

DOCS = "docs/MIGRATIONS.md"


def alerting(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "alerting")


def test_the_examples_docs_are_generated_and_current(tmp_path: Path) -> None:
    """examples/alerting/docs/MIGRATIONS.md is exactly what `migcoord docs` writes, and
    its schema registry was built from the example's migrations as they are."""
    root = copy_example(tmp_path / "alerting", registry=True)
    assert run(["docs", "--check"], cwd=root).code == 0
    assert run(["check", "--strict"], cwd=root).code == 0
    text = (EXAMPLE / DOCS).read_text()
    for row in (
        "| rule-service | 000001-000005 | clients, endpoints, rules |",
        "| aggregator | 000006 | notifications |",
        "| sender | none yet | none |",
        "| 000004 | Remove email from rules |",
        "| 000006 | Create notifications table |",
        "| aggregator 000006 | rule-service 000001, 000002 |",
    ):
        assert f"\n{row}\n" in text


def test_docs_creates_a_missing_file_with_a_title(tmp_path: Path) -> None:
    """No file yet: a title, then the generated block between the markers."""
    root = alerting(tmp_path)
    shutil.rmtree(root / "docs")
    result = run(["docs"], cwd=root)
    assert result.code == 0, result.stderr
    assert result.stdout == f"wrote {DOCS}\n"
    text = (root / DOCS).read_text()
    assert text.startswith(f"{docsgen.TITLE}\n\n{docsgen.BEGIN}\n")
    assert text.endswith(f"{docsgen.END}\n")
    # The example's file, less the schema registry, which only `docs --schema` writes.
    assert text == (copy_example(tmp_path / "again") / DOCS).read_text()


def test_docs_is_idempotent(tmp_path: Path) -> None:
    """A second run changes nothing and says so."""
    root = alerting(tmp_path)
    before = (root / DOCS).read_bytes()
    result = run(["docs"], cwd=root)
    assert (result.code, result.stdout) == (0, f"{DOCS} is up to date\n")
    assert (root / DOCS).read_bytes() == before
    # Relative to the config's folder, like every path in JSON output.
    assert run(["docs", "--format", "json"], cwd=root / "aggregator").json() == {
        "path": DOCS, "written": False}


def test_text_outside_the_markers_is_kept(tmp_path: Path) -> None:
    """Hand-written text above and below the block survives a regeneration."""
    root = alerting(tmp_path)
    block = (root / DOCS).read_text().split(docsgen.TITLE + "\n\n", 1)[1]
    stale = block.replace("| 000004 | Remove email from rules |\n", "")
    (root / DOCS).write_text("# Our database\n\nAsk #db-team before adding a table.\n\n"
                             + stale + "\n## Runbook\n\nSee the wiki.\n")
    assert run(["docs"], cwd=root).code == 0
    assert (root / DOCS).read_text() == ("# Our database\n\nAsk #db-team before adding a table.\n\n"
                                         + block + "\n## Runbook\n\nSee the wiki.\n")


def test_a_file_without_markers_gets_the_block_appended(tmp_path: Path) -> None:
    """An existing hand-made document is kept whole; the tables go at its end."""
    root = alerting(tmp_path)
    (root / DOCS).write_text("# Migrations\n\nOld notes.")
    assert run(["docs"], cwd=root).code == 0
    text = (root / DOCS).read_text()
    assert text.startswith(f"# Migrations\n\nOld notes.\n\n{docsgen.BEGIN}\n")


def test_unbalanced_markers_are_refused_and_reported_by_check(tmp_path: Path) -> None:
    """Two begin markers: docs exits 2 without writing; check says the docs are stale."""
    root = alerting(tmp_path)
    broken = (root / DOCS).read_text() + f"\n{docsgen.BEGIN}\n"
    (root / DOCS).write_text(broken)
    result = run(["docs"], cwd=root)
    assert result.code == 2
    assert "exactly one" in result.stderr
    assert (root / DOCS).read_text() == broken
    findings = run(["check", "--format", "json"], cwd=root).json()["findings"]
    assert [f["code"] for f in findings] == ["docs-stale"]


def test_docs_check_exits_1_when_stale_and_0_when_current(tmp_path: Path) -> None:
    """--check writes nothing; a stale file is one docs-stale finding and exit 1."""
    root = alerting(tmp_path)
    migration = root / "aggregator/migrations/000006_create_notifications_table.up.sql"
    renamed = migration.with_name("000006_create_alert_notifications.up.sql")
    migration.rename(renamed)
    migration.with_suffix("").with_suffix(".down.sql").rename(
        renamed.with_name("000006_create_alert_notifications.down.sql"))
    before = (root / DOCS).read_text()
    result = run(["docs", "--check", "--format", "json"], cwd=root)
    assert result.code == 1
    [finding] = result.json()["findings"]
    assert (finding["code"], finding["severity"], finding["path"]) == ("docs-stale", "warning", DOCS)
    assert (root / DOCS).read_text() == before
    assert run(["docs"], cwd=root).code == 0
    assert "| 000006 | Create alert notifications |" in (root / DOCS).read_text()
    assert run(["docs", "--check"], cwd=root).code == 0


def test_check_reports_stale_docs_as_a_warning_and_strict_fails(tmp_path: Path) -> None:
    """Plain check passes with the warning; --strict (CI) fails on it."""
    root = alerting(tmp_path)
    (root / DOCS).unlink()
    result = run(["check", "--format", "json"], cwd=root)
    assert result.code == 0
    [finding] = result.json()["findings"]
    assert finding["code"] == "docs-stale"
    assert "does not exist" in finding["message"]
    assert run(["check", "--strict"], cwd=root).code == 1


def test_docs_stale_can_be_allowed_in_the_config(tmp_path: Path) -> None:
    """A team that does not commit the file says so once: allow = ["docs-stale"]."""
    root = alerting(tmp_path)
    (root / DOCS).unlink()
    config = root / "migcoord.toml"
    config.write_text('allow = ["docs-stale"]\n' + config.read_text())
    assert run(["check", "--strict"], cwd=root).code == 0


def test_create_refreshes_the_docs(tmp_path: Path) -> None:
    """`migcoord create` adds the new migration's row, so check stays clean."""
    root = alerting(tmp_path)
    result = run(["create", "add_channel_to_notifications", "--service", "aggregator"], cwd=root)
    assert result.code == 0, result.stderr
    text = (root / DOCS).read_text()
    assert "| 000007 | Add channel to notifications |" in text
    assert "| aggregator | 000006-000007 | notifications |" in text
    findings = run(["check", "--format", "json"], cwd=root).json()["findings"]
    assert [f["code"] for f in findings] == ["empty-migration"]


def test_create_without_a_docs_setting_writes_no_docs(tmp_path: Path) -> None:
    """Only a configured `docs` file is generated."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    assert run(["create", "b", "--service", "rule-service"], cwd=tmp_path).code == 0
    assert not (tmp_path / "docs").exists()
    result = run(["docs"], cwd=tmp_path)
    assert result.code == 2
    assert 'docs = "docs/MIGRATIONS.md"' in result.stderr


def test_docs_are_not_judged_in_a_single_service_checkout(tmp_path: Path) -> None:
    """A service image holds one folder: check cannot judge the docs there, docs refuses."""
    root = alerting(tmp_path)
    shutil.rmtree(root / "rule-service")
    assert run(["check", "--strict"], cwd=root).code == 0
    result = run(["docs"], cwd=root)
    assert result.code == 1
    assert "rule-service" in result.stderr


def test_versions_are_shown_as_ranges_and_cells_are_escaped() -> None:
    """[1, 2, 3, 6] reads `000001-000003, 000006`; a `|` cannot break the table."""
    assert docsgen._ranges([6, 1, 3, 2], 6) == "000001-000003, 000006"
    assert docsgen._ranges([], 6) == ""
    assert docsgen._cell("a|b") == "a\\|b"
