"""`migcoord renumber`: resolve a merge collision by moving one migration and its references."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_tree, pair, run

CONFIG = """\
[services.rule-service]
migrations = "rule-service/migrations"

[services.aggregator]
migrations = "aggregator/migrations"

[services.sender]
migrations = "sender/migrations"
"""

RULES = "rule-service/migrations"
AGG = "aggregator/migrations"


def base_files() -> dict[str, str | bytes]:
    """rule-service 1-6, as on main before the two branches split."""
    files: dict[str, str | bytes] = {}
    for version in range(1, 7):
        files.update(pair("rule-service", f"{version:06d}", f"r{version}"))
    return files


def merged(tmp_path: Path, extra: dict[str, str | bytes] | None = None) -> Path:
    """After a merge: main took 000007 for rule-service, the branch took 000007 for aggregator.

    The sum is rewritten after the merge (as `migcoord sum` would be) so only the
    collision itself is reported.
    """
    files = base_files()
    files.update(pair("rule-service", "000007", "add_rule_flags", up="ALTER TABLE rules ADD f int;\n"))
    files.update(pair("aggregator", "000007", "create_digest", up="CREATE TABLE digest (id int);\n"))
    files.update(extra or {})
    return make_tree(tmp_path, files, config=CONFIG)


def check_codes(root: Path) -> list[str]:
    """Codes of the errors `check` reports (the SQL lints' warnings about these throwaway
    migrations are not what renumber is about)."""
    result = run(["check", "--format", "json"], cwd=root)
    return [f["code"] for f in result.json()["findings"] if f["severity"] == "error"]


def test_renumber_moves_the_pair_to_the_next_free_number(tmp_path: Path) -> None:
    """aggregator's 000007 becomes 000008; rule-service's 000007 stays; check is clean."""
    root = merged(tmp_path)
    assert check_codes(root) == ["duplicate-version", "duplicate-version"]
    result = run(["renumber", "000007", "--service", "aggregator"], cwd=root)
    assert result.code == 0, result.stderr
    assert not (root / AGG / "000007_create_digest.up.sql").exists()
    assert (root / AGG / "000008_create_digest.up.sql").read_text() == "CREATE TABLE digest (id int);\n"
    assert (root / AGG / "000008_create_digest.down.sql").is_file()
    assert (root / RULES / "000007_add_rule_flags.up.sql").is_file()
    assert "000007_create_digest.up.sql -> " in result.stdout
    assert check_codes(root) == []


def test_renumber_json_reports_old_and_new_version(tmp_path: Path) -> None:
    """The JSON document says where the migration went."""
    root = merged(tmp_path)
    result = run(["renumber", "7", "--service", "aggregator", "--format", "json"], cwd=root)
    assert result.code == 0, result.stderr
    document = result.json()
    assert (document["old_version"], document["new_version"]) == (7, 8)
    assert len(document["moved"]) == 2
    assert all(not path.startswith("/") for pair in document["moved"] for path in pair)


def test_renumber_updates_qualified_references_and_leaves_the_other_services_alone(
    tmp_path: Path,
) -> None:
    """`aggregator:000007` follows the move; `rule-service:000007` is untouched."""
    dependent = ("-- migcoord:depends aggregator:000007, rule-service:000007\n"
                 "INSERT INTO digest SELECT 1;\n")
    root = merged(tmp_path, pair("aggregator", "000008", "fill_digest", up=dependent))
    result = run(["renumber", "000007", "--service", "aggregator"], cwd=root)
    assert result.code == 0, result.stderr
    # aggregator's later migration moves along, so the two stay in order with no gap.
    assert (root / AGG / "000008_create_digest.up.sql").is_file()
    text = (root / AGG / "000009_fill_digest.up.sql").read_text()
    assert text.splitlines()[0] == "-- migcoord:depends aggregator:000008, rule-service:000007"
    # The edited file is named where it is now, after its own rename.
    assert "updated depends in aggregator/migrations/000009_fill_digest.up.sql" in result.stdout
    assert check_codes(root) == []


def test_renumber_updates_references_in_other_services_files(tmp_path: Path) -> None:
    """A sender migration that needs `aggregator:000007` is rewritten too."""
    root = merged(tmp_path, pair("sender", "000009", "use_digest",
                                 up="-- migcoord:depends aggregator:000007\nSELECT 1;\n"))
    result = run(["renumber", "000007", "--service", "aggregator", "--to", "8"], cwd=root)
    assert result.code == 0, result.stderr
    assert (root / "sender/migrations/000009_use_digest.up.sql").read_text().startswith(
        "-- migcoord:depends aggregator:000008\n")
    assert check_codes(root) == []


def test_a_bare_reference_to_a_duplicated_version_is_left_alone_outside_the_service(
    tmp_path: Path,
) -> None:
    """In sender, a bare `000007` may mean either migration: unchanged, with a warning."""
    root = merged(tmp_path, pair("sender", "000008", "use",
                                 up="-- migcoord:depends 000007\nSELECT 1;\n"))
    result = run(["renumber", "000007", "--service", "aggregator"], cwd=root)
    assert result.code == 0, result.stderr
    assert (root / "sender/migrations/000008_use.up.sql").read_text().startswith(
        "-- migcoord:depends 000007\n")
    assert "left a bare reference unchanged" in result.stderr
    assert "000008_use.up.sql" in result.stderr


def test_to_moves_the_migration_into_a_gap(tmp_path: Path) -> None:
    """`--to 3` fills the hole at 000003; the gap finding goes away."""
    files = {**pair("rule-service", "000001", "a"), **pair("rule-service", "000002", "b"),
             **pair("aggregator", "000004", "d")}
    root = make_tree(tmp_path, files, config=CONFIG.replace(
        '[services.sender]\nmigrations = "sender/migrations"\n', ""))
    assert check_codes(root) == ["gap"]
    result = run(["renumber", "4", "--service", "aggregator", "--to", "000003"], cwd=root)
    assert result.code == 0, result.stderr
    assert (root / AGG / "000003_d.up.sql").is_file()
    assert check_codes(root) == []


def test_to_a_number_that_is_taken_is_refused(tmp_path: Path) -> None:
    """`--to 6` would collide with rule-service's 000006: exit 1, nothing moved."""
    root = merged(tmp_path)
    result = run(["renumber", "7", "--service", "aggregator", "--to", "6"], cwd=root)
    assert result.code == 1
    assert "already used by rule-service" in result.stderr
    assert (root / AGG / "000007_create_digest.up.sql").is_file()


def test_renumbering_a_migration_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    """No such migration in that service: exit 2, naming service and number; nothing changes."""
    root = merged(tmp_path)
    before = (root / "migcoord.sum").read_text()
    result = run(["renumber", "000005", "--service", "aggregator"], cwd=root)
    assert result.code == 2
    assert "aggregator has no migration numbered 000005" in result.stderr
    assert "Traceback" not in result.stderr
    assert (root / "migcoord.sum").read_text() == before


@pytest.mark.parametrize("version", ["abc", "-1"])
def test_renumber_refuses_a_version_that_is_not_a_number(tmp_path: Path, version: str) -> None:
    """A malformed VERSION is a usage error (exit 2)."""
    root = merged(tmp_path)
    assert run(["renumber", version, "--service", "aggregator"], cwd=root).code == 2


def test_renumber_for_an_unknown_service_is_a_usage_error(tmp_path: Path) -> None:
    """`--service billing` is not configured: exit 2."""
    root = merged(tmp_path)
    result = run(["renumber", "7", "--service", "billing"], cwd=root)
    assert result.code == 2
    assert "'billing'" in result.stderr


def test_crlf_files_keep_their_line_endings_after_a_depends_rewrite(tmp_path: Path) -> None:
    """A CRLF (and BOM) file is rewritten with CRLF (and BOM) and only the number changed."""
    crlf = b"\xef\xbb\xbf-- migcoord:depends aggregator:000007\r\nSELECT 1;\r\nSELECT 2;\r\n"
    root = merged(tmp_path, {f"{AGG}/000008_fill.up.sql": crlf,
                             f"{AGG}/000008_fill.down.sql": b"SELECT 1;\r\n"})
    assert run(["renumber", "7", "--service", "aggregator"], cwd=root).code == 0
    assert (root / AGG / "000009_fill.up.sql").read_bytes() == crlf.replace(b"000007", b"000008")
    assert (root / AGG / "000009_fill.down.sql").read_bytes() == b"SELECT 1;\r\n"


def test_renumber_rewrites_the_sum(tmp_path: Path) -> None:
    """The sum lists the new number and no longer the old one for that service."""
    root = merged(tmp_path)
    assert run(["renumber", "7", "--service", "aggregator"], cwd=root).code == 0
    lines = (root / "migcoord.sum").read_text().splitlines()
    assert "000008 aggregator create_digest" in lines
    assert not any(line.startswith("000007 aggregator ") for line in lines)
    assert "000007 rule-service add_rule_flags" in lines


def test_renumber_writes_nothing_when_the_new_name_is_taken(tmp_path: Path) -> None:
    """A folder at a new file name stops the renumber before any file is edited. (A folder
    named like a migration file would take its number; one named like the verify file
    that moves along does not.)"""
    dependent = "-- migcoord:depends aggregator:000007\nSELECT 1;\n"
    root = merged(tmp_path, {**pair("aggregator", "000008", "fill", up=dependent),
                             f"{AGG}/000008_fill.verify.sql": "SELECT 1;\n"})
    (root / AGG / "000009_fill.verify.sql").mkdir()
    before = {p: p.read_bytes() for p in root.rglob("*.sql") if p.is_file()}
    before_sum = (root / "migcoord.sum").read_text()
    result = run(["renumber", "7", "--service", "aggregator"], cwd=root)
    assert result.code != 0
    assert "000009_fill.verify.sql already exists" in result.stderr
    assert {p: p.read_bytes() for p in root.rglob("*.sql") if p.is_file()} == before
    assert (root / "migcoord.sum").read_text() == before_sum


def test_to_refuses_to_change_the_order_of_the_services_migrations(tmp_path: Path) -> None:
    """aggregator has 7 and 8: `renumber 8 --to 3` would run 8 before 7, so it is refused."""
    files = {**pair("rule-service", "000001", "a"), **pair("rule-service", "000002", "b"),
             **pair("rule-service", "000004", "d"), **pair("aggregator", "000005", "e"),
             **pair("aggregator", "000006", "f")}
    root = make_tree(tmp_path, files, config=CONFIG)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".migcoord" not in p.parts}
    result = run(["renumber", "6", "--service", "aggregator", "--to", "3"], cwd=root)
    assert result.code == 1
    assert "would change the order of aggregator's migrations" in result.stderr
    assert {p: p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".migcoord" not in p.parts} == before
    # The earlier one may move into the gap: the order stays 5 (now 3) before 6.
    assert run(["renumber", "5", "--service", "aggregator", "--to", "3"], cwd=root).code == 0
    assert (root / AGG / "000003_e.up.sql").is_file()


def test_renumber_refuses_to_move_a_migration_past_one_that_depends_on_it(tmp_path: Path) -> None:
    """sender's 000008 needs aggregator:000007: moving that to 000009 would break the order."""
    dependent = "-- migcoord:depends aggregator:000007\nSELECT 1;\n"
    root = merged(tmp_path, pair("sender", "000008", "use_digest", up=dependent))
    before = {p: p.read_bytes() for p in root.rglob("*.sql")}

    result = run(["renumber", "000007", "--service", "aggregator"], cwd=root)

    assert result.code == 1, result
    assert "after sender 000008_use_digest, which depends on it" in result.stderr
    assert "migcoord renumber 000008 --service sender" in result.stderr
    assert {p: p.read_bytes() for p in root.rglob("*.sql")} == before


def test_renumber_moves_a_verify_file_with_its_migration(tmp_path: Path) -> None:
    """`000007_create_digest.verify.sql` follows its migration, so it is not left stray."""
    root = merged(tmp_path, {f"{AGG}/000007_create_digest.verify.sql": "SELECT 1;\n"})
    assert run(["renumber", "000007", "--service", "aggregator"], cwd=root).code == 0
    assert (root / AGG / "000008_create_digest.verify.sql").read_text() == "SELECT 1;\n"
    assert not (root / AGG / "000007_create_digest.verify.sql").exists()
    assert check_codes(root) == []


def test_renumber_keeps_each_name_of_an_up_and_down_named_differently(tmp_path: Path) -> None:
    """golang-migrate pairs by version: `000008_add_x.up.sql` and `000008_add_column_x.down.sql`
    are one migration; renumbering moves both, each under its own name, and the sum line
    keeps the up's name."""
    root = merged(tmp_path, {f"{AGG}/000008_add_x.up.sql": "SELECT 1;\n",
                             f"{AGG}/000008_add_column_x.down.sql": "SELECT 2;\n"})
    result = run(["renumber", "7", "--service", "aggregator"], cwd=root)
    assert result.code == 0, result
    names = sorted(p.name for p in (root / AGG).glob("00000[89]_*"))
    assert names == ["000008_create_digest.down.sql", "000008_create_digest.up.sql",
                     "000009_add_column_x.down.sql", "000009_add_x.up.sql"]
    lines = (root / "migcoord.sum").read_text().splitlines()
    assert "000009 aggregator add_x" in lines
    assert check_codes(root) == []


def test_a_bare_reference_to_a_pair_that_moves_with_an_earlier_migration_is_left_alone(
    tmp_path: Path,
) -> None:
    """Renumbering app's 0001 moves both of its 0005s (to two numbers): billing's bare
    `depends 0005` may mean either, so it stays as written and is reported, with the
    file named relative to the config, in text and JSON."""
    config = ('version_width = 4\n[services.app]\nmigrations = "app/migrations"\n'
              '[services.billing]\nmigrations = "billing/migrations"\n')
    files = {**pair("app", "0001", "users"), **pair("app", "0002", "idx"),
             **pair("billing", "0003", "inv"), **pair("billing", "0004", "amt"),
             **pair("app", "0005", "a"), **pair("app", "0005", "b"),
             **pair("billing", "0006", "dep", up="-- migcoord:depends 0005\nSELECT 1;\n")}
    root = make_tree(tmp_path, files, config=config)
    dependent = root / "billing/migrations/0006_dep.up.sql"
    result = run(["renumber", "0001_users", "--service", "app"], cwd=root)
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (root / "app/migrations").glob("*.up.sql")) == [
        "0007_users.up.sql", "0008_idx.up.sql", "0009_a.up.sql", "0010_b.up.sql"]
    assert dependent.read_text() == "-- migcoord:depends 0005\nSELECT 1;\n"
    assert "updated depends" not in result.stdout
    assert "left a bare reference unchanged" in result.stderr
    assert "billing/migrations/0006_dep.up.sql: 0005" in result.stderr
    assert str(root) not in result.stderr


def test_renumber_json_names_a_reference_left_alone_relative_to_the_config(
    tmp_path: Path,
) -> None:
    """`ambiguous` in JSON names the file as `moved` and `edited` do, from the config's
    folder, even when the command runs in a subfolder."""
    root = merged(tmp_path, pair("sender", "000008", "use",
                                 up="-- migcoord:depends 000007\nSELECT 1;\n"))
    result = run(["renumber", "000007", "--service", "aggregator", "--format", "json"],
                 cwd=root / AGG)
    assert result.code == 0, result.stderr
    assert result.json()["ambiguous"] == ["sender/migrations/000008_use.up.sql: 000007"]
