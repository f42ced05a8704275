"""SQL-aware `check`: ownership, inferred dependencies, lints, and `allow`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import REPO, copy_example, make_tree, pair, run, write_sum_file
from migcoord import Coordinator, checks
from migcoord.checks import analysis, ownership

AGG = "aggregator/migrations"
RULES = "rule-service/migrations"


def check(root: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """Run `check --format json`; exit code and findings."""
    result = run(["check", "--format", "json", *args], cwd=root)
    assert "Traceback" not in result.stderr, result.stderr
    return result.code, result.json()["findings"]


def only(findings: list[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["code"] == code]


def planted(tmp_path: Path, files: dict[str, str], config: str | None = None) -> Path:
    """A copy of examples/alerting with `files` added, the sum and docs brought up to date."""
    root = copy_example(tmp_path / "alerting")
    if config is not None:
        (root / "migcoord.toml").write_text(config)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    write_sum_file(root)
    assert run(["docs"], cwd=root).code == 0
    return root


def migration(service: str, version: str, name: str, up: str, down: str = "SELECT 1;\n",
              ) -> dict[str, str]:
    return pair(service, version, name, up=up, down=down)


# -- the example ----------------------------------------------------------------------------


def test_the_example_is_clean_with_sql_analysis(tmp_path: Path) -> None:
    """examples/alerting: no finding at all with the SQL rules on, even with --strict."""
    root = copy_example(tmp_path / "alerting")
    assert check(root, "--strict") == (0, [])


# -- ownership ------------------------------------------------------------------------------


ALTER_RULES = migration(
    "aggregator", "000007", "add_rule_cooldown",
    "-- migcoord:depends rule-service:000002\n"
    "ALTER TABLE rules ADD COLUMN IF NOT EXISTS cooldown interval;\n",
    "ALTER TABLE rules DROP COLUMN IF EXISTS cooldown;\n")


def test_aggregator_altering_rules_is_an_ownership_error_naming_the_owner(tmp_path: Path) -> None:
    """One error at the ALTER's line, naming rule-service, rules, and both ways out."""
    root = planted(tmp_path, ALTER_RULES)
    code, findings = check(root)
    assert code == 1
    [finding] = only(findings, "ownership")
    assert finding["severity"] == "error"
    assert (finding["path"], finding["line"]) == (f"{AGG}/000007_add_rule_cooldown.up.sql", 2)
    assert (finding["service"], finding["version"]) == ("aggregator", 7)
    assert "alters rules, which rule-service owns" in finding["message"]
    assert "ask rule-service" in finding["hint"]
    assert "`owns`" in finding["hint"]
    assert [f["code"] for f in findings] == ["ownership"]


def test_check_without_sql_runs_only_the_offline_rules(tmp_path: Path) -> None:
    """--no-sql leaves the ownership error out; the offline rules still run."""
    root = planted(tmp_path, ALTER_RULES)
    result = run(["check", "--no-sql", "--format", "json"], cwd=root)
    assert result.code == 0, result
    assert [f["code"] for f in result.json()["findings"]] == []
    (root / AGG / "000007_add_rule_cooldown.down.sql").unlink()
    result = run(["check", "--no-sql", "--format", "json"], cwd=root)
    assert "missing-down" in [f["code"] for f in result.json()["findings"]]


@pytest.mark.parametrize(
    ("statement", "verb"),
    [
        ("INSERT INTO rules (client_id, name, metric, comparison, threshold) "
         "SELECT id, 'x', 'm', '>', 1 FROM clients;", "writes rows of"),
        ("CREATE INDEX IF NOT EXISTS rules_name_idx ON rules (name);", "indexes"),
        ("TRUNCATE endpoints;", "truncates"),
        ("COMMENT ON TABLE clients IS 'customers';", "comments on"),
        ("DROP TABLE IF EXISTS endpoints;", "drops"),
        ("ALTER TABLE public.rules RENAME TO alert_rules;", "renames"),
    ],
)
def test_every_kind_of_change_to_another_services_table_is_ownership(
    tmp_path: Path, statement: str, verb: str
) -> None:
    """Writes, indexes, truncates, comments, drops and renames all change the table."""
    root = planted(tmp_path, migration("aggregator", "000007", "touch",
                                       "-- migcoord:depends rule-service:000005\n" + statement + "\n"))
    _, findings = check(root)
    [finding] = only(findings, "ownership")
    assert verb in finding["message"]
    assert "rule-service owns" in finding["message"]


def test_a_down_file_that_changes_another_services_table_is_ownership_too(
    tmp_path: Path,
) -> None:
    """A rollback that alters rules is a change to rules, reported at the down file."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "add_channel",
        "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS channel text;\n",
        "ALTER TABLE notifications DROP COLUMN IF EXISTS channel;\n"
        "ALTER TABLE rules DROP COLUMN IF EXISTS channel;\n"))
    _, findings = check(root)
    [finding] = only(findings, "ownership")
    assert (finding["path"], finding["line"]) == (f"{AGG}/000007_add_channel.down.sql", 2)


def test_referencing_another_services_table_is_not_ownership(tmp_path: Path) -> None:
    """A foreign key or a SELECT reads the table: that needs a dependency, not ownership."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "create_digests",
        "-- migcoord:depends rule-service:000002\n"
        "CREATE TABLE IF NOT EXISTS digests (rule_id bigint REFERENCES rules (id));\n",
        "DROP TABLE IF EXISTS digests;\n"))
    _, findings = check(root)
    assert only(findings, "ownership") == []


def test_the_owner_is_the_creator_when_no_service_declares_the_table(tmp_path: Path) -> None:
    """Without `owns`, the service whose migration created the table owns it."""
    config = """\
[services.rule-service]
migrations = "rule-service/migrations"

[services.aggregator]
migrations = "aggregator/migrations"
"""
    root = make_tree(tmp_path, {
        **migration("rule-service", "000001", "create_rules",
                    "CREATE TABLE IF NOT EXISTS rules (id int);\n", "DROP TABLE IF EXISTS rules;\n"),
        **migration("aggregator", "000002", "alter_rules",
                    "-- migcoord:depends rule-service:000001\n"
                    "ALTER TABLE rules ADD COLUMN IF NOT EXISTS x int;\n",
                    "ALTER TABLE rules DROP COLUMN IF EXISTS x;\n"),
    }, config=config)
    _, findings = check(tmp_path)
    [finding] = only(findings, "ownership")
    assert "created by rule-service:000001" in finding["message"]
    assert root == tmp_path


def test_creating_a_table_another_service_declares_is_ownership(tmp_path: Path) -> None:
    """aggregator creating `endpoints` (in rule-service's `owns`) is an error, not a warning."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "create_endpoints_copy",
        "CREATE TABLE IF NOT EXISTS public.endpoints (id int);\n",
        "DROP TABLE IF EXISTS endpoints;\n"))
    _, findings = check(root)
    [finding] = only(findings, "ownership")
    assert "creates endpoints, which rule-service owns" in finding["message"]
    assert only(findings, "unowned-table") == []


def test_a_table_claimed_by_two_services_is_an_ownership_error_in_the_config(
    tmp_path: Path,
) -> None:
    """`rules` in both `owns` lists: one error at migcoord.toml naming both services."""
    config = (REPO / "examples/alerting/migcoord.toml").read_text().replace(
        'owns = ["notifications"]', 'owns = ["notifications", "RULES"]')
    root = planted(tmp_path, {}, config=config)
    code, findings = check(root)
    assert code == 1
    [finding] = only(findings, "ownership")
    assert finding["path"] == "migcoord.toml"
    assert "rules is claimed in `owns` by rule-service and aggregator" in finding["message"]


def test_owns_reads_schema_qualified_and_quoted_names(tmp_path: Path) -> None:
    """`app.rules` and `"Rules"` are the tables PostgreSQL would name so; case matters."""
    assert ownership.owned_name("rules", "public") == ("public", "rules")
    assert ownership.owned_name("App.Rules", "public") == ("app", "rules")
    assert ownership.owned_name('"Rules"', "public") == ("public", "Rules")
    assert ownership.owned_name('app."My ""odd"" table"', "x") == ("app", 'My "odd" table')
    assert ownership.owned_name("a.b.c", "public") is None
    assert ownership.owned_name("rules;", "public") is None
    config = """\
[services.rule-service]
migrations = "rule-service/migrations"
owns = ['"Rules"', "app.settings"]
"""
    make_tree(tmp_path, migration(
        "rule-service", "000001", "create",
        'CREATE TABLE IF NOT EXISTS "Rules" (id int);\n'
        "CREATE TABLE IF NOT EXISTS app.settings (id int);\n"
        "CREATE TABLE IF NOT EXISTS rules (id int);\n",
        'DROP TABLE IF EXISTS "Rules", app.settings, rules;\n'), config=config)
    _, findings = check(tmp_path)
    [finding] = only(findings, "unowned-table")
    assert "creates rules," in finding["message"]
    assert finding["line"] == 3


def test_a_table_the_service_does_not_declare_is_unowned(tmp_path: Path) -> None:
    """aggregator declares `owns` and creates `digests` without listing it: a warning."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "create_digests",
        "-- Digests.\nCREATE TABLE IF NOT EXISTS digests (id int);\n",
        "DROP TABLE IF EXISTS digests;\n"))
    code, findings = check(root)
    assert code == 0
    [finding] = findings
    assert (finding["code"], finding["severity"], finding["line"]) == ("unowned-table", "warning", 2)
    assert 'add "digests" to `owns` of [services.aggregator]' in finding["hint"]
    assert run(["check", "--strict"], cwd=root).code == 1


def test_a_service_without_owns_is_not_told_about_unowned_tables(tmp_path: Path) -> None:
    """`unowned-table` applies to services that use `owns` only."""
    config = '[services.sender]\nmigrations = "sender/migrations"\n'
    make_tree(tmp_path, migration("sender", "000001", "create_outbox",
                                  "CREATE TABLE IF NOT EXISTS outbox (id int);\n",
                                  "DROP TABLE IF EXISTS outbox;\n"), config=config)
    assert check(tmp_path) == (0, [])


# -- dependencies ---------------------------------------------------------------------------


RULE_STATS = migration(
    "rule-service", "000007", "create_rule_stats",
    "CREATE TABLE IF NOT EXISTS rule_stats (rule_id bigint, fired bigint);\n"
    "INSERT INTO rule_stats SELECT rule_id, count(*) FROM notifications GROUP BY rule_id;\n",
    "DROP TABLE IF EXISTS rule_stats;\n")
OWNS_RULE_STATS = (REPO / "examples/alerting/migcoord.toml").read_text().replace(
    '"endpoints"]', '"endpoints", "rule_stats"]')


def test_using_another_services_table_without_depends_is_undeclared(tmp_path: Path) -> None:
    """rule-service reading notifications: names aggregator:000006 and the line to add."""
    root = planted(tmp_path, RULE_STATS, OWNS_RULE_STATS)
    code, findings = check(root)
    assert code == 1
    [finding] = findings
    assert finding["code"] == "undeclared-dependency"
    assert (finding["path"], finding["line"]) == (f"{RULES}/000007_create_rule_stats.up.sql", 2)
    assert "uses notifications, created by aggregator:000006" in finding["message"]
    assert "`-- migcoord:depends aggregator:000006`" in finding["hint"]


def test_declaring_the_dependency_clears_undeclared_dependency(tmp_path: Path) -> None:
    """The directive line the hint gives is all it takes."""
    files = dict(RULE_STATS)
    up = f"{RULES}/000007_create_rule_stats.up.sql"
    files[up] = "-- migcoord:depends aggregator:000006\n" + files[up]
    root = planted(tmp_path, files, OWNS_RULE_STATS)
    assert check(root, "--strict") == (0, [])


def test_a_dependency_through_an_earlier_migration_of_the_service_is_enough(
    tmp_path: Path,
) -> None:
    """aggregator 000008 uses rules; its 000006 already depends on rule-service: implied."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "add_rule_index_to_notifications",
        "CREATE INDEX IF NOT EXISTS notifications_rule_idx ON notifications (rule_id)\n"
        "    WHERE rule_id IN (SELECT id FROM rules WHERE enabled);\n",
        "DROP INDEX IF EXISTS notifications_rule_idx;\n"))
    code, findings = check(root)
    assert (code, only(findings, "undeclared-dependency")) == (0, [])


def test_a_dependency_on_a_later_migration_of_the_creator_is_enough(tmp_path: Path) -> None:
    """Depending on rule-service:000005 orders it after 000002 too (version order)."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "create_digests",
        "-- migcoord:depends rule-service:000005\n"
        "CREATE TABLE IF NOT EXISTS digests (rule_id bigint REFERENCES rules (id));\n",
        "DROP TABLE IF EXISTS digests;\n"))
    _, findings = check(root)
    assert only(findings, "undeclared-dependency") == []


def test_a_depends_on_an_earlier_migration_of_the_same_service_is_unnecessary(
    tmp_path: Path,
) -> None:
    """Version order already applies them first: a warning on the depends line."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "index_notifications",
        "-- Faster lookups.\n-- migcoord:depends aggregator:000006\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_fp_idx ON notifications (fingerprint);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS notifications_fp_idx;\n"))
    code, findings = check(root)
    assert code == 0
    [finding] = findings
    assert (finding["code"], finding["severity"], finding["line"]) == (
        "unnecessary-dependency", "warning", 2)
    assert "an earlier migration of aggregator" in finding["message"]


def test_an_implied_depends_on_tables_never_mentioned_is_unnecessary(tmp_path: Path) -> None:
    """000003 (endpoints) is implied by 000005, and the SQL never mentions endpoints."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "add_client_note",
        "-- migcoord:depends rule-service:000005, rule-service:000003\n"
        "CREATE TABLE IF NOT EXISTS client_notes (client_id bigint REFERENCES clients (id));\n",
        "DROP TABLE IF EXISTS client_notes;\n"),
        config=(REPO / "examples/alerting/migcoord.toml").read_text().replace(
            '"notifications"]', '"notifications", "client_notes"]'))
    _, findings = check(root)
    [finding] = only(findings, "unnecessary-dependency")
    assert "depends on rule-service:000003" in finding["message"]
    assert finding["hint"] == "remove rule-service:000003 from the depends line"


def test_a_depends_on_a_migration_whose_tables_are_used_is_kept_even_when_implied(
    tmp_path: Path,
) -> None:
    """The example's `rule-service:000002, 000001`: 000001 is implied, but clients is used."""
    root = copy_example(tmp_path / "alerting")
    up = (root / AGG / "000006_create_notifications_table.up.sql").read_text()
    assert "-- migcoord:depends rule-service:000002, 000001" in up
    _, findings = check(root)
    assert only(findings, "unnecessary-dependency") == []


def test_a_depends_on_a_migration_that_changes_no_table_is_never_called_unnecessary(
    tmp_path: Path,
) -> None:
    """000007 only makes a function (implied by 000008, no table of it used): what it
    provides is not visible as tables, so nothing is claimed."""
    root = planted(tmp_path, {
        **migration("rule-service", "000007", "add_helper",
                    "CREATE OR REPLACE FUNCTION rule_label(r rules) RETURNS text\n"
                    "    LANGUAGE sql AS $$ SELECT r.name $$;\n",
                    "DROP FUNCTION IF EXISTS rule_label(rules);\n"),
        **migration("rule-service", "000008", "index_rule_names",
                    "CREATE INDEX IF NOT EXISTS rules_name_idx ON rules (name);\n",
                    "DROP INDEX IF EXISTS rules_name_idx;\n"),
        **migration("aggregator", "000009", "use_helper",
                    "-- migcoord:depends rule-service:000008, rule-service:000007\n"
                    "SELECT rule_label(r) FROM rules r;\n"),
    })
    _, findings = check(root)
    assert only(findings, "unnecessary-dependency") == []


# -- lints ----------------------------------------------------------------------------------


def test_an_index_built_concurrently_inside_a_transaction_is_an_error(tmp_path: Path) -> None:
    """Among other statements the server would refuse it at deploy time; with
    no-transaction it is fine, and so it is alone in its file."""
    drop = "DROP INDEX CONCURRENTLY IF EXISTS notifications_fp_idx;\n"
    index = "CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_fp_idx ON notifications (fingerprint);\n"
    down = drop
    root = planted(tmp_path, migration("aggregator", "000007", "index_fp",
                                       "-- Index.\n" + drop + index, down))
    code, findings = check(root)
    assert code == 1
    assert [(f["code"], f["line"], f["column"]) for f in findings] == [
        ("concurrently-in-transaction", 2, 1), ("concurrently-in-transaction", 3, 1)]
    assert "add the line `-- migcoord:no-transaction` at the top of this file" in findings[0]["hint"]
    fixed = planted(tmp_path / "fixed", migration(
        "aggregator", "000007", "index_fp", "-- migcoord:no-transaction\n" + drop + index, down))
    assert check(fixed, "--strict") == (0, [])
    alone = planted(tmp_path / "alone", migration(
        "aggregator", "000007", "index_fp", "-- Index.\n" + index, down))
    assert check(alone, "--strict") == (0, [])


def test_a_down_file_is_linted_as_it_runs_in_or_out_of_a_transaction(tmp_path: Path) -> None:
    """DROP INDEX CONCURRENTLY among other statements of a down needs the down file's own
    no-transaction."""
    up = ("-- migcoord:no-transaction\n"
          "CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_fp_idx ON notifications (fingerprint);\n")
    down = ("DROP INDEX CONCURRENTLY IF EXISTS notifications_fp_idx;\n"
            "ANALYZE notifications;\n")
    root = planted(tmp_path, migration("aggregator", "000007", "index_fp", up, down))
    _, findings = check(root)
    [finding] = findings
    assert (finding["code"], finding["path"]) == (
        "concurrently-in-transaction", f"{AGG}/000007_index_fp.down.sql")
    fixed = planted(tmp_path / "fixed", migration(
        "aggregator", "000007", "index_fp", up, "-- migcoord:no-transaction\n" + down))
    assert check(fixed, "--strict") == (0, [])


@pytest.mark.parametrize(
    ("up", "line", "column"),
    [
        ("SELEC 1;\nSELECT 2;\n", 1, 1),
        ("SELECT 1;\nSELECT 2;\nSELECT (3;\n", 3, 10),
        ("-- Drop the flag.\nALTER TABLE rules DROP COLUMN IF EXISTS x\nSELECT 1;\n", 3, 1),
    ],
)
def test_a_syntax_error_is_reported_at_path_line_and_column(
    tmp_path: Path, up: str, line: int, column: int
) -> None:
    """PostgreSQL's own parser, at the first line, the last line, or a missing `;`."""
    root = planted(tmp_path, migration("rule-service", "000007", "broken", up))
    code, findings = check(root)
    assert code == 1
    [finding] = findings
    assert (finding["code"], finding["line"], finding["column"]) == ("sql-syntax", line, column)
    assert finding["path"] == f"{RULES}/000007_broken.up.sql"
    text = run(["check"], cwd=root).stdout
    assert f"{RULES}/000007_broken.up.sql:{line}:{column}: error: sql-syntax:" in text


def test_a_syntax_error_in_the_down_file_is_reported_too(tmp_path: Path) -> None:
    """Both files are parsed: a broken down would fail at rollback time."""
    root = planted(tmp_path, migration("rule-service", "000007", "x", "SELECT 1;\n",
                                       "SELECT 1;\nDROP TABEL x;\n"))
    _, findings = check(root)
    [finding] = findings
    assert (finding["code"], finding["path"], finding["line"]) == (
        "sql-syntax", f"{RULES}/000007_x.down.sql", 2)


NOT_IDEMPOTENT = migration("rule-service", "000007", "add_rule_note",
                           "ALTER TABLE rules ADD COLUMN note text;\n",
                           "ALTER TABLE rules DROP COLUMN IF EXISTS note;\n")


def test_ddl_without_if_not_exists_is_not_idempotent(tmp_path: Path) -> None:
    """A warning with the statement form to write instead."""
    root = planted(tmp_path, NOT_IDEMPOTENT)
    code, findings = check(root)
    assert code == 0
    [finding] = findings
    assert (finding["code"], finding["severity"], finding["line"]) == ("not-idempotent", "warning", 1)
    assert "ADD COLUMN IF NOT EXISTS note" in finding["hint"]


def test_not_idempotent_can_be_allowed_in_the_file(tmp_path: Path) -> None:
    """`-- migcoord:allow not-idempotent` atop the up file covers the whole migration."""
    files = dict(NOT_IDEMPOTENT)
    up = f"{RULES}/000007_add_rule_note.up.sql"
    down = f"{RULES}/000007_add_rule_note.down.sql"
    files[up] = "-- A re-run must fail loudly.\n-- migcoord:allow not-idempotent\n" + files[up]
    files[down] = files[down].replace(" IF EXISTS", "")
    root = planted(tmp_path, files)
    assert check(root, "--strict") == (0, [])


def test_an_allow_in_the_down_file_covers_that_file_only(tmp_path: Path) -> None:
    """The down's own `allow` silences its findings, not the up's."""
    root = planted(tmp_path, migration(
        "rule-service", "000007", "add_rule_note",
        "ALTER TABLE rules ADD COLUMN note text;\n",
        "-- migcoord:allow not-idempotent\nALTER TABLE rules DROP COLUMN note;\n"))
    _, findings = check(root)
    assert [(f["code"], f["path"]) for f in findings] == [
        ("not-idempotent", f"{RULES}/000007_add_rule_note.up.sql")]


def test_not_idempotent_can_be_allowed_for_the_whole_project(tmp_path: Path) -> None:
    """`allow = ["not-idempotent"]` in migcoord.toml silences it everywhere."""
    config = 'allow = ["not-idempotent"]\n' + (REPO / "examples/alerting/migcoord.toml").read_text()
    root = planted(tmp_path, NOT_IDEMPOTENT, config)
    assert check(root, "--strict") == (0, [])


def test_allowing_an_error_is_itself_an_error(tmp_path: Path) -> None:
    """`allow explicit-transaction` does not silence it, and says errors cannot be allowed."""
    files = migration("rule-service", "000007", "tx",
                      "-- migcoord:allow explicit-transaction, concurrently-in-transaction\n"
                      "BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 2;\n")
    config = 'allow = ["ownership"]\n' + (REPO / "examples/alerting/migcoord.toml").read_text()
    root = planted(tmp_path, files, config)
    code, findings = check(root)
    assert code == 1
    assert [f["line"] for f in only(findings, "explicit-transaction")] == [2, 4]
    problems = only(findings, "unknown-directive")
    assert [(p["path"], p["line"]) for p in problems] == [
        ("migcoord.toml", None),
        (f"{RULES}/000007_tx.up.sql", 1),
        (f"{RULES}/000007_tx.up.sql", 1),
    ]
    assert all("cannot be allowed" in p["message"] for p in problems)


def test_allowing_an_unknown_code_is_an_error(tmp_path: Path) -> None:
    """A misspelt code would silently allow nothing: it is reported."""
    files = migration("rule-service", "000007", "x",
                      "-- migcoord:allow not-idempotnet\nSELECT 1;\n")
    root = planted(tmp_path, files)
    _, findings = check(root)
    [finding] = findings
    assert finding["code"] == "unknown-directive"
    assert "no finding has this code" in finding["message"]


def test_an_offline_warning_can_be_allowed_too(tmp_path: Path) -> None:
    """A deliberate placeholder: `-- migcoord:allow empty-migration`."""
    root = planted(tmp_path, migration("rule-service", "000007", "placeholder",
                                       "-- Number never used.\n-- migcoord:allow empty-migration\n",
                                       "-- Nothing to undo.\n"))
    assert check(root, "--strict") == (0, [])


def test_explicit_transaction_is_reported_once_with_the_sql_analysis(tmp_path: Path) -> None:
    """The SQL analysis adds no second explicit-transaction to the reader's."""
    root = planted(tmp_path, migration("rule-service", "000007", "tx",
                                       "BEGIN;\nSELECT 1;\nEND;\nSELECT 2;\n"))
    _, findings = check(root)
    assert [(f["code"], f["line"]) for f in findings] == [
        ("explicit-transaction", 1), ("explicit-transaction", 3)]


def test_a_down_that_does_not_undo_the_up_is_a_down_mismatch(tmp_path: Path) -> None:
    """The up adds a column; the down drops a misspelt one."""
    root = planted(tmp_path, migration(
        "aggregator", "000007", "add_channel",
        "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS channel text;\n",
        "ALTER TABLE notifications DROP COLUMN IF EXISTS chanel;\n"))
    code, findings = check(root)
    assert code == 0
    assert {(f["code"], f["path"]) for f in findings} == {
        ("down-mismatch", f"{AGG}/000007_add_channel.down.sql")}
    assert any("adds column channel to public.notifications" in f["message"] for f in findings)


# -- the analysis itself --------------------------------------------------------------------


def test_analysing_in_processes_gives_what_analysing_alone_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process pool is an optimisation only: same analyses, same findings."""
    root = planted(tmp_path, {**ALTER_RULES, **RULE_STATS} | migration(
        "aggregator", "000009", "bad", "SELEC 1;\n"))
    coordinator = Coordinator.load(root / "migcoord.toml")
    catalog = coordinator.catalog()
    alone = checks.analyze_catalog(catalog, coordinator.config)
    monkeypatch.setattr(analysis, "PARALLEL_THRESHOLD", 0)
    pooled = checks.analyze_catalog(catalog, coordinator.config)
    assert pooled == alone
    assert checks.run_all(catalog, coordinator.config, sql=pooled) == checks.run_all(
        catalog, coordinator.config, sql=alone)


def test_a_long_lived_coordinator_reparses_only_edited_files(tmp_path: Path) -> None:
    """The analysis cache is keyed by the files' checksums: an edit is seen at once."""
    root = planted(tmp_path, {})
    coordinator = Coordinator.load(root / "migcoord.toml")
    assert coordinator.check() == []
    up = root / RULES / "000004_remove_email_from_rules.up.sql"
    up.write_text(up.read_text().replace("DROP COLUMN IF EXISTS", "DROP COLUMN"))
    assert "not-idempotent" in [f.code for f in coordinator.check()]

