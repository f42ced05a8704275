"""`down-mismatch` follows an object, not a spelling: what a dropped relation takes along,
an object renamed in the up or the down, and the name PostgreSQL gives an index created
without one. Each silent case has a real mismatch beside it that still fires, and the
real server agrees (the silent migrations round-trip under `migcoord verify`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import psycopg
import pytest
from conftest import PgServer

from helpers import check_and_verify_agree, make_tree, pair, run
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


# -- the name PostgreSQL gives an unnamed index --------------------------------------------

LONG = "ä" * 20 + "_events"  # 47 bytes: the name gets cut, never inside a character
UNNAMED_INDEXES = [
    "CREATE UNIQUE INDEX ON proxies (name)",
    "CREATE INDEX ON proxies (name, id)",
    "CREATE INDEX ON proxies (name) INCLUDE (id)",
    "CREATE INDEX ON proxies (lower(name))",
    "CREATE INDEX ON proxies (lower(name), upper(name), lower(name))",
    "CREATE INDEX ON proxies ((name::varchar), (id::text), ((id + 1)::text))",
    "CREATE INDEX ON proxies (name COLLATE \"C\", (id + 1), (CASE WHEN id > 0 THEN 1 END))",
    "CREATE INDEX ON proxies ((CASE WHEN id > 0 THEN 1 ELSE id END), (coalesce(name, '')))",
    "CREATE INDEX ON proxies (name, name)",
    "CREATE INDEX ON proxies (name)",  # proxies_name_idx is taken: proxies_name_idx1
    f"CREATE INDEX ON {LONG} (a_rather_long_column_name_for_an_index, another_long_one)",
    f"CREATE INDEX ON {LONG} (a_rather_long_column_name_for_an_index, another_long_one)",
    "CREATE INDEX ON proxies (greatest(id, 0), nullif(name, ''))",
]


def server_name(statement: str) -> sql.ServerName | None:
    """What the unnamed index's name is built from; None when no index is recorded."""
    found = [e for e in sql.analyze(statement).object_effects if e.kind == "index"]
    return found[0].server_name if found else None


def test_unnamed_indexes_get_the_name_postgresql_gives_them(dsn: str) -> None:
    """Each derived name is among the names PostgreSQL may choose, and it is the first
    one when that is free; what the server really chose is that very name."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE proxies (id int PRIMARY KEY, name text)")
        conn.execute(f"CREATE TABLE {LONG} (a_rather_long_column_name_for_an_index int, "
                     "another_long_one int)")
        for statement in UNNAMED_INDEXES:
            before = {row[0] for row in conn.execute("SELECT relname FROM pg_class")}
            conn.execute(statement)
            [made] = {row[0] for row in conn.execute("SELECT relname FROM pg_class")} - before
            derived = server_name(statement)
            assert derived is not None, statement
            first = derived.first
            assert made == (first if first not in before else next(
                name for name in derived.candidates() if name not in before)), statement
            assert len(made.encode()) <= 63
    assert server_name("CREATE INDEX ON proxies ((id + 1))") == sql.ServerName(
        "proxies", "expr", "idx")
    # An expression whose name is not read here gives no name: nothing is claimed.
    assert server_name("CREATE INDEX ON proxies ((SELECT 1))") is None


# -- renames, followed through the up and the down ----------------------------------------

ENUM_SWAP = (
    """\
    CREATE TYPE new_state AS ENUM ('a');
    ALTER TABLE logs ALTER COLUMN s DROP DEFAULT;
    ALTER TABLE logs ALTER COLUMN s TYPE new_state USING (s::text::new_state);
    DROP TYPE state;
    ALTER TYPE new_state RENAME TO state;
    """,
    """\
    CREATE TYPE old_state AS ENUM ('a', 'b');
    ALTER TABLE logs ALTER COLUMN s TYPE old_state USING (s::text::old_state);
    DROP TYPE state;
    ALTER TYPE old_state RENAME TO state;
    ALTER TABLE logs ALTER COLUMN s SET DEFAULT 'a';
    """)
TABLE_RENAME = (
    "ALTER TABLE logs RENAME TO agent_logs;\nALTER TABLE agent_logs ADD COLUMN source text;\n",
    "ALTER TABLE agent_logs RENAME TO logs;\nALTER TABLE logs DROP COLUMN source;\n")
UNNAMED_INDEX = (
    "DROP INDEX proxies_name_idx;\n"
    "CREATE UNIQUE INDEX proxies_lower_name_idx ON proxies (lower(name));\n",
    "DROP INDEX proxies_lower_name_idx;\nCREATE UNIQUE INDEX ON proxies (name);\n")
COLUMN_RENAMES = (
    "ALTER TABLE logs ADD COLUMN lvl int;\nALTER TABLE logs RENAME COLUMN lvl TO level;\n"
    "ALTER TABLE logs RENAME COLUMN name TO title;\nALTER TABLE logs DROP COLUMN title;\n",
    "ALTER TABLE logs ADD COLUMN name text;\nALTER TABLE logs DROP COLUMN level;\n")
SCHEMA_MOVES = (
    "CREATE SCHEMA archive;\nALTER TABLE proxies SET SCHEMA archive;\n"
    "ALTER TABLE archive.proxies ADD COLUMN note text;\n"
    "ALTER TYPE state SET SCHEMA archive;\n",
    "ALTER TABLE archive.proxies DROP COLUMN note;\nALTER TABLE archive.proxies SET SCHEMA public;\n"
    "ALTER TYPE archive.state SET SCHEMA public;\nDROP SCHEMA archive;\n")
RENAMED_BACK = {"enum_swap": ENUM_SWAP, "table_rename": TABLE_RENAME,
                "unnamed_index": UNNAMED_INDEX, "column_renames": COLUMN_RENAMES,
                "schema_moves": SCHEMA_MOVES}


@pytest.mark.parametrize("name", sorted(RENAMED_BACK))
def test_an_object_is_followed_through_its_renames(name: str) -> None:
    up, down = RENAMED_BACK[name]
    assert mismatches(up, down) == []


def test_what_the_down_forgets_is_still_told_by_the_names_it_begins_with() -> None:
    """Messages name what the up wrote at its line; hints, what the down begins with."""
    up, down = TABLE_RENAME
    [finding] = sql.down_mismatch(sql.analyze(up), sql.analyze(down.splitlines()[0]))
    assert finding.message == ("the up adds column source to public.agent_logs (line 2) but "
                               "the down does not drop it")
    assert finding.hint == ("add `ALTER TABLE public.agent_logs DROP COLUMN IF EXISTS source;` "
                            "to the down file")
    [dropped] = sql.down_mismatch(
        sql.analyze("ALTER TABLE logs DROP COLUMN name;\nALTER TABLE logs RENAME TO agent_logs;"),
        sql.analyze("ALTER TABLE agent_logs RENAME TO logs;"))
    assert dropped.message == ("the up drops column name of public.logs (line 1) but the down "
                               "does not add it back")
    assert dropped.hint == ("add `ALTER TABLE public.agent_logs ADD COLUMN IF NOT EXISTS name "
                            "...;` to the down file")
    # The enum swap without the down's rename: the type it left is not dropped.
    swap_up, swap_down = ENUM_SWAP
    assert hints(swap_up, swap_down.replace("ALTER TYPE old_state RENAME TO state;\n", "")) == [
        "a down file should only undo its up file; put other changes in a migration"]
    assert hints(swap_up, "SELECT 1;\n") == [
        "add `DROP TYPE IF EXISTS public.state;` to the down file",
        "re-create it in the down file, or allow `down-mismatch` in the up file when the "
        "migration cannot be undone"]


def test_renames_that_are_not_undone_are_told() -> None:
    """Type, function, trigger and column renames the down does not take back."""
    assert mismatches("ALTER TYPE state RENAME TO status;", "SELECT 1;") == [
        "the up renames type public.state to public.status (line 1) but the down does not "
        "rename it back"]
    assert mismatches("ALTER FUNCTION f(int) RENAME TO g;", "ALTER FUNCTION g(int) RENAME TO f;") == []
    assert mismatches("ALTER FUNCTION app.f() SET SCHEMA old;", "SELECT 1;") == [
        "the up renames function app.f to old.f (line 1) but the down does not rename it back"]
    assert mismatches("ALTER TRIGGER a ON logs RENAME TO b;",
                      "ALTER TRIGGER b ON logs RENAME TO a;") == []
    assert mismatches("ALTER TRIGGER a ON logs RENAME TO b;", "SELECT 1;") == [
        "the up renames trigger public.a to public.b (line 1) but the down does not rename "
        "it back"]
    # A column renamed (twice, its table too): the hint renames it from the name it ends with.
    assert mismatches("ALTER TABLE logs RENAME COLUMN lvl TO level;\n"
                      "ALTER TABLE logs RENAME COLUMN level TO severity;\n"
                      "ALTER TABLE logs RENAME TO entries;",
                      "ALTER TABLE entries RENAME TO logs;") == [
        "the up renames column lvl of public.logs to severity (line 1) but the down does not "
        "rename it back"]
    assert hints("ALTER TABLE logs RENAME COLUMN lvl TO level;\nALTER TABLE logs RENAME TO entries;",
                 "ALTER TABLE entries RENAME TO logs;") == [
        "add `ALTER TABLE public.entries RENAME COLUMN level TO lvl;` to the down file"]
    assert mismatches("ALTER TABLE logs RENAME COLUMN lvl TO level;\nALTER TABLE logs RENAME TO entries;",
                      "ALTER TABLE entries RENAME COLUMN level TO lvl;\n"
                      "ALTER TABLE entries RENAME TO logs;") == []
    # A column added under one name and renamed: the down drops the name it ends with.
    assert mismatches("ALTER TABLE logs ADD COLUMN lvl int;\n"
                      "ALTER TABLE logs RENAME COLUMN lvl TO level;",
                      "ALTER TABLE logs DROP COLUMN lvl;") == [
        "the up adds column lvl to public.logs (line 1) but the down does not drop it",
        "the down drops column lvl of public.logs, which the up does not add"]


def test_an_unnamed_index_matches_the_names_postgresql_may_give_it() -> None:
    """`CREATE INDEX ON proxies (name)` is proxies_name_idx, or proxies_name_idx1 when
    that name was taken; another index is still asked for; an unnamed index is never
    claimed to be missing or unasked, since its name may be a numbered form."""
    down = "CREATE UNIQUE INDEX ON proxies (name);\n"
    assert mismatches("DROP INDEX proxies_name_idx1;\n", down) == []
    assert mismatches("DROP INDEX proxies_email_idx;\n", down) == [
        "the up drops index public.proxies_email_idx (line 1) but the down does not "
        "re-create it"]
    assert mismatches("SELECT 1;\n", down) == []
    assert mismatches(down, "SELECT 1;\n") == []
    assert mismatches(down, "DROP INDEX proxies_name_idx;\n") == []
    # A named index the down forgets is still told.
    assert mismatches("CREATE INDEX proxies_name ON proxies (name);\n", "SELECT 1;\n") == [
        "the up creates index public.proxies_name (line 1) but the down does not drop it"]


BASE = (
    "CREATE TYPE state AS ENUM ('a', 'b');\n"
    "CREATE TABLE logs (id int PRIMARY KEY, s state NOT NULL DEFAULT 'a', name text);\n"
    "CREATE TABLE proxies (id int PRIMARY KEY, name text);\n"
    "CREATE UNIQUE INDEX ON proxies (name);\n"
    "CREATE TABLE rules (id bigint PRIMARY KEY, email text);\n"
    + MATVIEW + "CREATE UNIQUE INDEX latest_rules_id ON latest_rules (id);\n",
    "DROP MATERIALIZED VIEW latest_rules;\nDROP TABLE rules, logs, proxies;\nDROP TYPE state;\n")


def test_check_and_verify_agree_on_renames_and_unnamed_indexes(
        tmp_path: Path, pg_server: PgServer) -> None:
    """The reproduction as a tree: check finds no down-mismatch, and every migration
    round-trips on the real server (its down does undo its up)."""
    files = pair("rule-service", "000001", "base", *BASE)
    cases = [("DROP MATERIALIZED VIEW latest_rules;\n",
              MATVIEW + "CREATE UNIQUE INDEX latest_rules_id ON latest_rules (id);\n"),
             # In an order where each up leaves what the next one expects.
             COLUMN_RENAMES, ENUM_SWAP, UNNAMED_INDEX, TABLE_RENAME, SCHEMA_MOVES]
    for number, (up, down) in enumerate(cases, start=2):
        files.update(pair("rule-service", f"{number:06d}", f"case_{number}",
                          up=textwrap.dedent(up), down=textwrap.dedent(down)))
    root = make_tree(tmp_path / "repo", files)
    check_and_verify_agree(root, pg_server.admin_dsn, migrations=len(cases) + 1)


def test_unnamed_constraints_get_the_name_postgresql_gives_them(dsn: str) -> None:
    """The unique-without-index hint names the index as PostgreSQL names the constraint
    (`t_a_b_key`, `t_pkey`), so `USING INDEX` in it keeps the name the table had."""
    statements = ["ALTER TABLE keys ADD PRIMARY KEY (id)",
                  "ALTER TABLE keys ADD UNIQUE (name, id) INCLUDE (note)",
                  "ALTER TABLE keys ADD COLUMN code text UNIQUE"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE keys (id int NOT NULL, name text, note text)")
        for statement in statements:
            before = {row[0] for row in conn.execute("SELECT conname FROM pg_constraint")}
            conn.execute(statement)
            [made] = {row[0] for row in conn.execute("SELECT conname FROM pg_constraint")} - before
            [hazard] = [f for f in sql.lint(sql.analyze(statement + ";"))
                        if f.code == "unique-without-index"]
            assert hazard.hint is not None
            assert f"USING INDEX {made};" in hazard.hint, (statement, hazard.hint)


def test_hints_for_an_unnamed_index_give_the_name_postgresql_gave_it() -> None:
    """With IF NOT EXISTS and that name, the file finds the index where it already ran."""
    found = sql.lint(sql.analyze('CREATE UNIQUE INDEX ON "Proxies" (lower(name));'))
    assert sorted((f.code, f.hint) for f in found) == [
        ("blocking-index-build", 'write `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS '
         '"Proxies_lower_idx" ON "Proxies" (...);` in a migration file of its own (migcoord '
         "runs a one-statement file outside a transaction, as golang-migrate does); a build "
         "that fails leaves an INVALID index: drop it and run again"),
        ("not-idempotent", 'write `CREATE UNIQUE INDEX IF NOT EXISTS "Proxies_lower_idx" ON '
         '"Proxies" (...)`')]
