"""Lints that must stay quiet where PostgreSQL does what the file means: an index on a
partitioned parent only, a partition dropped with its parent, a table renamed and renamed
back; and a Unicode-escaped name is the table it spells."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from helpers import make_tree, pair, run
from migcoord import sql
from migcoord.sql.down import down_mismatch

CONFIG = """\
[services.a]
migrations = "a/migrations"
owns = ["t", "events", "events_2024"]
"""
EVENTS = ("CREATE TABLE IF NOT EXISTS events (id bigint, at date NOT NULL) "
          "PARTITION BY RANGE (at);\n")


def findings(root: Path) -> list[dict[str, Any]]:
    result = run(["check", "--format", "json"], cwd=root)
    assert "Traceback" not in result.stderr
    found: list[dict[str, Any]] = result.json()["findings"]
    return found


def test_an_index_on_only_a_partitioned_parent_is_no_blocking_build(
        tmp_path: Path, dsn: str) -> None:
    """The recipe for indexing a partitioned table without blocking writes: `CREATE INDEX
    ... ON ONLY` the parent (it builds nothing, and stays INVALID by design), each
    partition's index built concurrently, then attached. No blocking-index-build, and up
    runs it all (the parent's INVALID index is no failed build); the index ends valid."""
    up = "CREATE INDEX IF NOT EXISTS events_at ON ONLY events (at);\n"
    root = make_tree(tmp_path, {
        **pair("a", "000001", "events", EVENTS + "CREATE TABLE IF NOT EXISTS events_2024 "
               "PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n",
               "DROP TABLE IF EXISTS events;\n"),
        **pair("a", "000002", "events_at", up, "DROP INDEX IF EXISTS events_at;\n"),
        **pair("a", "000003", "events_2024_at", "CREATE INDEX CONCURRENTLY IF NOT EXISTS "
               "events_2024_at ON events_2024 (at);\n",
               "DROP INDEX CONCURRENTLY IF EXISTS events_2024_at;\n"),
        **pair("a", "000004", "attach", "ALTER INDEX events_at ATTACH PARTITION "
               "events_2024_at;\n")},
        config=CONFIG)
    assert [f["path"] for f in findings(root) if f["code"] == "blocking-index-build"] == []
    # Without ONLY it is a build on every partition, and is reported.
    assert [f.code for f in sql.lint(sql.analyze(up.replace("ON ONLY", "ON")))] == [
        "blocking-index-build"]

    result = run(["up", "--all", "--dsn", dsn], cwd=root)
    assert result.code == 0, result.stderr
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = "
                            "'events_at'::regclass").fetchone() == (True,)


def test_a_down_that_drops_the_parent_drops_its_partitions(tmp_path: Path) -> None:
    """PARTITION OF, or CREATE TABLE then ATTACH PARTITION: DROP TABLE of the parent takes
    the partitions along, so the down is not asked to drop them."""
    partition_of = ("CREATE TABLE IF NOT EXISTS events_2024 PARTITION OF events "
                    "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n")
    attached = ("CREATE TABLE IF NOT EXISTS events_2024 (id bigint, at date NOT NULL);\n"
                "ALTER TABLE events ATTACH PARTITION events_2024 "
                "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n")
    down = sql.analyze("DROP TABLE IF EXISTS events;\n")
    for up in (partition_of, attached):
        assert down_mismatch(sql.analyze(EVENTS + up), down) == []
    # A partition of a table the down keeps is still asked for.
    [finding] = down_mismatch(sql.analyze(partition_of), sql.analyze("SELECT 1;\n"))
    assert "creates table public.events_2024" in finding.message


def test_a_table_renamed_and_renamed_back_is_neither_new_nor_renamed(tmp_path: Path) -> None:
    """`t -> t2 -> t`: no unowned-table for t2, and no down hint to rename anything."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "t", "CREATE TABLE IF NOT EXISTS t (id int);\n",
               "DROP TABLE IF EXISTS t;\n"),
        **pair("a", "000002", "shuffle", "ALTER TABLE t RENAME TO t2;\n"
               "CREATE INDEX IF NOT EXISTS t2_id ON t2 (id);\nALTER TABLE t2 RENAME TO t;\n",
               "DROP INDEX IF EXISTS t2_id;\n")}, config=CONFIG)
    codes = [(f["code"], f["message"]) for f in findings(root)]
    assert not [c for c in codes if c[0] in ("unowned-table", "down-mismatch")], codes

    # Renamed twice to a new name: one rename, first name to last.
    [finding] = down_mismatch(sql.analyze("ALTER TABLE t RENAME TO t2;\n"
                                          "ALTER TABLE t2 RENAME TO t3;\n"),
                              sql.analyze("SELECT 1;\n"))
    assert finding.hint == "rename public.t3 back to public.t in the down file"
    assert down_mismatch(sql.analyze("ALTER TABLE t RENAME TO t2;\nALTER TABLE t2 RENAME TO t3;\n"),
                         sql.analyze("ALTER TABLE t3 RENAME TO t;\n")) == []


def test_a_unicode_escaped_table_name_is_the_table_it_spells(tmp_path: Path) -> None:
    """`U&"\\0074"` is t: its type change is judged on t's column type."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "t", "CREATE TABLE IF NOT EXISTS t (id int);\n",
               "DROP TABLE IF EXISTS t;\n"),
        **pair("a", "000002", "widen", 'ALTER TABLE U&"\\0074" ALTER COLUMN id TYPE bigint;\n',
               "SELECT 1;\n")}, config=CONFIG)
    assert [(f["code"], f["line"]) for f in findings(root)
            if f["code"] == "rewriting-type-change"] == [("rewriting-type-change", 1)]
