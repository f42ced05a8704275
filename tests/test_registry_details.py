"""The schema registry as a reader wants it: columns in natural order (c2 before c10),
an enum with its values, a partitioned table marked, and a mixed-case name kept as
written in the Mermaid labels. Built on the real server."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import PgServer

from helpers import make_tree, pair, run
from migcoord.core.registry import natural_key

CONFIG = """\
docs = "docs/MIGRATIONS.md"
[services.a]
migrations = "a/migrations"
owns = ["wide", "events", '"MixedCase"']
[services.b]
migrations = "b/migrations"
owns = ["uses"]
"""

A_UP = """\
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE wide (c10 int, c2 int, c1 int, id bigint PRIMARY KEY, c0 int, feeling mood);
CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE "MixedCase" (id bigint PRIMARY KEY);
"""
B_UP = """\
-- migcoord:depends 000001
CREATE TABLE uses (id bigint PRIMARY KEY, mixed_id bigint REFERENCES "MixedCase" (id));
"""


def test_the_registry_reads_as_a_person_expects(tmp_path: Path, pg_server: PgServer) -> None:
    root = make_tree(tmp_path, {
        **pair("a", "000001", "schema", A_UP, 'DROP TABLE "MixedCase", events, wide;\n'
               "DROP TYPE mood;\n"),
        **pair("b", "000002", "uses", B_UP, "DROP TABLE uses;\n")}, config=CONFIG)
    result = run(["docs", "--schema", "--format", "json", "--dsn", pg_server.admin_dsn],
                 cwd=root)
    assert result.code == 0, result.stderr
    services = {s["name"]: s for s in result.json()["registry"]["services"]}
    tables = {t["name"]: t for t in services["a"]["tables"]}
    assert [c["name"] for c in tables["wide"]["columns"]] == [
        "id", "c0", "c1", "c2", "c10", "feeling"]
    assert tables["events"]["kind"] == "partitioned table"
    assert tables["wide"]["kind"] == "table"
    [mood] = services["a"]["objects"]
    assert (mood["kind"], mood["summary"]) == ("enum", "'sad', 'ok', 'happy'")

    text = (root / "docs" / "MIGRATIONS.md").read_text()
    assert "#### `events` (partitioned table)" in text
    assert "| enum | mood | 'sad', 'ok', 'happy' |" in text
    # The edge label names the table as written; the quote is Mermaid's entity code.
    assert re.search(r'-->\|"#quot;MixedCase#quot;, events, wide"\|', text), text
    assert "'MixedCase'" not in text


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["c10", "c2", "c1", "a", "c", "c02", "b1x", "b10x", "b2x"]
    assert sorted(names, key=natural_key) == [
        "a", "b1x", "b2x", "b10x", "c", "c1", "c02", "c2", "c10"]
