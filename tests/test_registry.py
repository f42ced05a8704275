"""The schema registry (`docs --schema`): what each service owns as the migrations really
build it, on the real server; its staleness judged offline; its diagrams valid Mermaid
and bounded on a 100-table schema."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from conftest import PgServer

from helpers import copy_example, make_tree, pair, run
from migcoord.core.registry import Column, Edge, ForeignKey, Registry, Service, Table
from migcoord.core.registry_render import BEGIN, END, ER_TABLE_LIMIT, render

SERVICES_CONFIG = """\
docs = "docs/MIGRATIONS.md"
[services.a]
migrations = "a/migrations"
owns = ["accounts"]
[services.b]
migrations = "b/migrations"
"""


def schema_json(root: Path, admin_dsn: str) -> dict[str, Any]:
    result = run(["docs", "--schema", "--format", "json", "--dsn", admin_dsn], cwd=root)
    assert result.code == 0, result.stderr
    registry: dict[str, Any] = result.json()["registry"]
    return registry


def tables_of(registry: dict[str, Any], service: str) -> dict[str, Any]:
    (found,) = [s for s in registry["services"] if s["name"] == service]
    return {table["name"]: table for table in found["tables"]}


def schema_part(path: Path) -> list[str]:
    text = path.read_text()
    return text[text.index(BEGIN):text.index(END)].splitlines()


def test_the_example_registry_lists_each_services_tables_as_built(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = copy_example(tmp_path / "alerting")
    registry = schema_json(root, pg_server.admin_dsn)

    rule_tables = tables_of(registry, "rule-service")
    assert sorted(rule_tables) == ["clients", "endpoints", "rules"]
    clients = {c["name"]: c for c in rule_tables["clients"]["columns"]}
    assert (clients["id"]["type"], clients["id"]["primary_key"]) == ("bigint", True)
    assert "email" not in clients  # 000005 removed it: the schema as built, not as created
    assert clients["timezone"]["default"] == "'UTC'::text"
    (notifications,) = tables_of(registry, "aggregator").values()
    assert sorted((k["columns"], k["references"], k["owner"])
                  for k in notifications["foreign_keys"]) == [
        ("client_id", "clients", "rule-service"), ("rule_id", "rules", "rule-service")]
    assert {"service": "aggregator", "migration": "aggregator 000006",
            "how": "references"} in rule_tables["rules"]["used_by"]
    assert tables_of(registry, "sender") == {}
    assert registry["dependencies"] == [
        {"service": "aggregator", "on": "rule-service", "tables": ["clients", "rules"]}]
    assert registry["unowned_tables"] == []

    text = (root / "docs" / "MIGRATIONS.md").read_text()
    assert "<!-- migcoord:begin generated -->" in text  # the tables are still there
    assert '  s1 -->|"clients, rules"| s0' in text
    assert run(["check", "--strict"], cwd=root).code == 0


def test_a_new_column_is_one_line_of_the_registry_diff_and_staleness_is_offline(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = copy_example(tmp_path / "alerting")
    docs = root / "docs" / "MIGRATIONS.md"
    assert run(["docs", "--schema", "--dsn", pg_server.admin_dsn], cwd=root).code == 0
    before = schema_part(docs)

    created = run(["create", "add_channel", "--service", "aggregator"], cwd=root)
    assert created.code == 0, created.stderr
    folder = root / "aggregator" / "migrations"
    (folder / "000007_add_channel.up.sql").write_text(
        "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS channel text;\n")
    (folder / "000007_add_channel.down.sql").write_text(
        "ALTER TABLE notifications DROP COLUMN IF EXISTS channel;\n")
    assert run(["sum"], cwd=root).code == 0

    # No server: the recorded fingerprint says the registry is out of date.
    check = run(["check", "--format", "json"], cwd=root)
    stale = [f for f in check.json()["findings"] if f["code"] == "docs-stale"]
    assert len(stale) == 1 and "built from other migrations" in stale[0]["message"]
    assert stale[0]["hint"] == "run `migcoord docs --schema` and commit the file"
    assert run(["docs", "--check"], cwd=root).code == 1

    assert run(["docs", "--schema", "--dsn", pg_server.admin_dsn], cwd=root).code == 0
    changed = [line for line in difflib.unified_diff(before, schema_part(docs), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert [line for line in changed if "fingerprint=" not in line] == [
        "+| channel | text | yes |  |"]
    assert run(["docs", "--check"], cwd=root).code == 0
    assert [f for f in run(["check", "--format", "json"], cwd=root).json()["findings"]
            if f["code"] == "docs-stale"] == []


def test_a_table_no_owns_lists_is_unowned_with_its_creator(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = make_tree(tmp_path, {
        **pair("a", "000001", "accounts", "CREATE TABLE accounts (id bigint PRIMARY KEY);\n"
               "CREATE TABLE audit (id bigint);\n", "DROP TABLE audit, accounts;\n"),
        **pair("b", "000002", "orders",
               "-- migcoord:depends 000001\nCREATE TABLE orders (id bigint PRIMARY KEY,"
               " account_id bigint REFERENCES accounts (id));\n"
               "CREATE VIEW order_ids AS SELECT id FROM orders;\n",
               "DROP VIEW order_ids;\nDROP TABLE orders;\n"),
    }, config=SERVICES_CONFIG)
    registry = schema_json(root, pg_server.admin_dsn)

    assert [(t["name"], t["owner"], t["created_by"]) for t in registry["unowned_tables"]] == [
        ("audit", None, "a 000001")]
    assert sorted(tables_of(registry, "a")) == ["accounts"]
    # b lists no `owns`: what it creates is its own.
    assert sorted(tables_of(registry, "b")) == ["orders"]
    (b,) = [s for s in registry["services"] if s["name"] == "b"]
    assert [(o["kind"], o["name"]) for o in b["objects"]] == [("view", "order_ids")]
    assert registry["dependencies"] == [{"service": "b", "on": "a", "tables": ["accounts"]}]
    assert "### Unowned tables" in (root / "docs" / "MIGRATIONS.md").read_text()


def test_docs_schema_in_the_config_makes_plain_docs_build_it(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = copy_example(tmp_path / "alerting")
    config = root / "migcoord.toml"
    config.write_text(config.read_text().replace(
        'docs = "docs/MIGRATIONS.md"', 'docs = "docs/MIGRATIONS.md"\ndocs_schema = true'))
    check = run(["check", "--format", "json"], cwd=root)
    assert [f["message"] for f in check.json()["findings"] if f["code"] == "docs-stale"] == [
        "the generated docs are out of date: the schema registry is missing "
        "(docs_schema = true in migcoord.toml)"]
    assert run(["docs", "--dsn", pg_server.admin_dsn], cwd=root).code == 0
    assert BEGIN in (root / "docs" / "MIGRATIONS.md").read_text()
    assert run(["check", "--strict"], cwd=root).code == 0


def test_a_migration_that_fails_while_building_names_its_file_and_leaves_no_database(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "accounts",
                                    "CREATE TABLE accounts (id bigint);\nSELECT 1/0;\n",
                                    "DROP TABLE accounts;\n"), config=SERVICES_CONFIG)
    docs = root / "docs" / "MIGRATIONS.md"
    before = docs.read_text() if docs.exists() else None
    result = run(["docs", "--schema", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 1
    assert "000001_accounts.up.sql:2:1: ERROR: division by zero" in result.stderr
    assert "Traceback" not in result.stderr
    with pg_server.admin() as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE "
                            "'migcoord_verify_%'").fetchall()
    assert left == []
    assert (docs.read_text() if docs.exists() else None) == before  # nothing was written


# -- the diagrams --------------------------------------------------------------------------

_WORD = r"[A-Za-z_*][A-Za-z0-9_\-\[\]()]*"
_ID = r"[A-Za-z][A-Za-z0-9_]*"
_FLOWCHART = [re.compile(p) for p in (
    r'  s\d+\["[^"\n]*"\]', r'  s\d+ -->\|"[^"\n]*"\| s\d+')]
_ER = [re.compile(p) for p in (
    rf"  {_ID} \{{", rf"    {_WORD} {_WORD}( (PK|FK|PK, FK))?", r"  \}",
    rf'  {_ID} \}}o--\|\| {_ID} : "[^"\n]*"')]


def mermaid_blocks(text: str) -> list[list[str]]:
    return [block.splitlines() for block in re.findall(r"```mermaid\n(.*?)```", text, re.S)]


def assert_valid_mermaid(block: list[str]) -> None:
    """The subset of Mermaid the registry writes: a flowchart of labelled nodes and
    labelled edges, or an ER diagram of entities with typed attributes and relationships."""
    kind, body = block[0], block[1:]
    rules = {"flowchart LR": _FLOWCHART, "erDiagram": _ER}[kind]
    for line in body:
        assert any(rule.fullmatch(line) for rule in rules), line
    if kind == "erDiagram":
        opened = [line for line in body if line.endswith("{")]
        assert len(opened) == body.count("  }")
        names = [line.split()[0] for line in opened]
        assert len(names) == len(set(names))


def hundred_tables() -> Registry:
    """One service with 100 tables, each with a foreign key to the one before and to a
    table of another service, and odd names and types."""
    tables = []
    for n in range(100):
        keys = [ForeignKey(f"fk_{n}", "prev_id", f"t{n - 1}", "big", "")] if n else []
        keys.append(ForeignKey(f"acc_{n}", "account_id", "app.Accounts", "accounts", ""))
        tables.append(Table(
            name=f't{n}' if n % 10 else f'"Odd Name {n}"', owner="big", declared=True,
            created_by="big 000001", foreign_keys=tuple(keys),
            columns=(Column("id", "numeric(10,2)", nullable=False, primary=True),
                     Column("prev_id", "timestamp with time zone", nullable=True),
                     Column("account_id", "character varying(20)[]", nullable=True))))
    return Registry(fingerprint="0" * 64, migrations=100,
                    services=(Service("big", tuple(tables)), Service("accounts")),
                    edges=(Edge("big", "accounts", ("app.Accounts", *[f"x{n}" for n in range(9)])),))


def test_the_diagrams_are_valid_mermaid_and_bounded_at_100_tables() -> None:
    text = render(hundred_tables())
    blocks = mermaid_blocks(text)
    assert [block[0] for block in blocks] == ["flowchart LR", "erDiagram"]
    for block in blocks:
        assert_valid_mermaid(block)
    er = blocks[1]
    entities = [line for line in er if line.endswith("{")]
    assert len(entities) == ER_TABLE_LIMIT
    assert len(er) < 400
    assert '  s0 -->|"app.Accounts, x0, x1, +7 more"| s1' in blocks[0]
    assert f"draws the {ER_TABLE_LIMIT} tables with the most foreign keys" in text


def test_the_example_diagrams_are_valid_mermaid(tmp_path: Path, pg_server: PgServer) -> None:
    root = copy_example(tmp_path / "alerting")
    schema_json(root, pg_server.admin_dsn)
    blocks = mermaid_blocks((root / "docs" / "MIGRATIONS.md").read_text())
    assert len(blocks) == 3  # the services, rule-service's and aggregator's tables
    for block in blocks:
        assert_valid_mermaid(block)


def test_a_registry_git_left_conflicted_becomes_stale_and_is_written_again(
        tmp_path: Path, pg_server: PgServer) -> None:
    """Two branches that add migrations both rewrite the registry's fingerprint: git
    conflicts there. `migcoord docs` (and so `resolve`) writes the tables and leaves a
    stale registry for `docs --schema`, never either side's text."""
    root = copy_example(tmp_path / "alerting")
    docs = root / "docs" / "MIGRATIONS.md"
    assert run(["docs", "--schema", "--dsn", pg_server.admin_dsn], cwd=root).code == 0
    text = docs.read_text()
    line = next(line for line in text.splitlines() if "migcoord:schema fingerprint=" in line)
    docs.write_text(text.replace(line, "<<<<<<< HEAD\n" + line + "\n=======\n"
                                 + line.replace("migrations=6", "migrations=7")
                                 + "\n>>>>>>> theirs"))
    assert "docs-conflict" in run(["check"], cwd=root).stdout

    assert run(["docs"], cwd=root).code == 0
    written = docs.read_text()
    assert "<<<<<<<" not in written and ">>>>>>>" not in written
    assert "The schema registry is out of date: a merge changed the migrations" in written
    assert "<!-- migcoord:begin generated -->" in written
    check = run(["check", "--format", "json"], cwd=root).json()["findings"]
    assert [(f["code"], f["hint"]) for f in check] == [
        ("docs-stale", "run `migcoord docs --schema` and commit the file")]

    assert run(["docs", "--schema", "--dsn", pg_server.admin_dsn], cwd=root).code == 0
    assert docs.read_text() == text
