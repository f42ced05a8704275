"""`down-mismatch` follows an object, not a spelling: what a dropped relation takes along,
an object renamed in the up or the down, and the name PostgreSQL gives an index created
without one. Each silent case has a real mismatch beside it that still fires, and the
real server agrees (the silent migrations round-trip under `migcoord verify`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from conftest import PgServer

from helpers import make_tree, pair, run
from migcoord import sql


def mismatches(up: str, down: str) -> list[str]:
    found = sql.down_mismatch(sql.analyze(textwrap.dedent(up)), sql.analyze(textwrap.dedent(down)))
    return [finding.message for finding in found]


def hints(up: str, down: str) -> list[str]:
    found = sql.down_mismatch(sql.analyze(textwrap.dedent(up)), sql.analyze(textwrap.dedent(down)))
    return [finding.hint or "" for finding in found]


# -- a dropped relation takes its indexes and triggers along ------------------------------

MATVIEW = ("CREATE MATERIALIZED VIEW latest_rules AS SELECT max(id) AS id, email FROM rules "
           "GROUP BY email WITH NO DATA;\n")


def test_the_indexes_of_a_dropped_materialized_view_come_back_with_it() -> None:
    """The up drops a materialized view; the down re-creates it and its unique index,
    which the DROP took along: nothing the down does unasked."""
    up = "DROP MATERIALIZED VIEW latest_rules;\n"
    down = MATVIEW + "CREATE UNIQUE INDEX latest_rules_id ON latest_rules (id);\n"
    assert mismatches(up, down) == []
    # An index on a relation the up did not drop is still unasked.
    assert mismatches(up, down + "CREATE INDEX rules_email ON rules (email);\n") == [
        "the down creates index public.rules_email, which the up does not drop"]
    # And the down that forgets the view is still told.
    assert mismatches(up, "SELECT 1;\n") == [
        "the up drops materialized view public.latest_rules (line 1) but the down does not "
        "re-create it"]


def test_the_trigger_of_a_dropped_view_comes_back_with_it() -> None:
    up = "DROP VIEW rule_emails;\n"
    down = ("CREATE VIEW rule_emails AS SELECT id, email FROM rules;\n"
            "CREATE TRIGGER rule_emails_insert INSTEAD OF INSERT ON rule_emails "
            "FOR EACH ROW EXECUTE FUNCTION insert_rule();\n")
    assert mismatches(up, down) == []


def test_a_foreign_table_is_a_table_the_up_creates() -> None:
    """CREATE FOREIGN TABLE is followed as DROP FOREIGN TABLE already was: the down that
    drops it undoes it, and the down that forgets it is told."""
    up = "CREATE FOREIGN TABLE remote_rules (id bigint) SERVER archive;\n"
    assert mismatches(up, "DROP FOREIGN TABLE remote_rules;\n") == []
    assert mismatches(up, "SELECT 1;\n") == [
        "the up creates table public.remote_rules (line 1) but the down does not drop it"]
    assert mismatches("DROP FOREIGN TABLE remote_rules;\n", up) == []


def test_check_on_a_tree_asks_nothing_of_a_dropped_materialized_view(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {
        **pair("rule-service", "000001", "rules",
               "CREATE TABLE IF NOT EXISTS rules (id bigint PRIMARY KEY, email text);\n"
               + MATVIEW + "CREATE UNIQUE INDEX latest_rules_id ON latest_rules (id);\n",
               "DROP MATERIALIZED VIEW latest_rules;\nDROP TABLE rules;\n"),
        **pair("rule-service", "000002", "drop_latest", "DROP MATERIALIZED VIEW latest_rules;\n",
               MATVIEW + "CREATE UNIQUE INDEX latest_rules_id ON latest_rules (id);\n")})
    result = run(["check", "--format", "json"], cwd=root)
    assert [f for f in result.json()["findings"] if f["code"] == "down-mismatch"] == []
