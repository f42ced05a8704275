"""`down-mismatch` follows the constraints `ALTER TABLE` adds, drops and renames, and takes
a rename back only when the down restores the name (and schema) the up began with.

Each case that must be told has a silent twin beside it, and the real server agrees: the
names PostgreSQL gives unnamed constraints are the ones read here, and the silent
migrations round-trip under `migcoord verify`."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from conftest import PgServer
from test_down_mismatch_identity import hints, mismatches

from helpers import check_and_verify_agree, make_tree, pair
from migcoord import sql
from migcoord.sql import _parser
from migcoord.sql.index_names import added_constraint_name

# -- constraints the up adds -------------------------------------------------------------

def test_a_constraint_the_down_does_not_drop_is_told() -> None:
    up = "ALTER TABLE t ADD CONSTRAINT t_pos CHECK (a > 0) NOT VALID;\n"
    assert mismatches(up, "SELECT 1;") == [
        "the up adds constraint t_pos to public.t (line 1) but the down does not drop it"]
    assert hints(up, "SELECT 1;") == [
        "add `ALTER TABLE public.t DROP CONSTRAINT IF EXISTS t_pos;` to the down file"]
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_pos;") == []
    # Another constraint's name is not this one.
    up = "ALTER TABLE t ADD CONSTRAINT u1 UNIQUE (b);\n"
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT IF EXISTS u2;") == [
        "the up adds constraint u1 to public.t (line 1) but the down does not drop it"]
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT u1;") == []
    # A constraint of the same name on another table is another constraint.
    assert mismatches(up, "ALTER TABLE other DROP CONSTRAINT u1;") == [
        "the up adds constraint u1 to public.t (line 1) but the down does not drop it"]


def test_an_unnamed_constraint_is_told_unless_the_down_drops_a_name_it_may_have() -> None:
    """`ADD UNIQUE (b)` is t_b_key, or t_b_key1 ... when that name was taken: a down that
    drops none of those names (or drops nothing) leaves it."""
    up = "ALTER TABLE t ADD UNIQUE (b);\n"
    told = ["the up adds a constraint that PostgreSQL names t_b_key (or a numbered form of "
            "it, when that name is taken) to public.t (line 1) but the down does not drop it"]
    assert mismatches(up, "SELECT 1;") == told
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_a_key;") == told
    assert hints(up, "SELECT 1;") == [
        "add `ALTER TABLE public.t DROP CONSTRAINT IF EXISTS t_b_key;` to the down file"]
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_b_key;") == []
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT t_b_key2;") == []
    assert mismatches("ALTER TABLE t ADD PRIMARY KEY (id);", "ALTER TABLE t DROP CONSTRAINT t_pkey;") == []
    assert mismatches("ALTER TABLE t ADD CHECK (a > 0);", "ALTER TABLE t DROP CONSTRAINT t_a_check;") == []
    assert mismatches("ALTER TABLE t ADD CHECK (a > b);", "ALTER TABLE t DROP CONSTRAINT t_check;") == []
    assert mismatches("ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES u (id);",
                      "ALTER TABLE t DROP CONSTRAINT t_a_fkey;") == []
    # Whose name is not known here, nothing is claimed about.
    assert mismatches("ALTER TABLE t ADD EXCLUDE USING gist (r WITH &&);", "SELECT 1;") == []


@pytest.mark.parametrize("down", [
    "DROP TABLE t;",                              # with its table
    "ALTER TABLE t DROP COLUMN b;",               # with a column it uses
    "ALTER TABLE t2 RENAME TO t;\nDROP TABLE t;",  # followed through the table's rename
])
def test_a_constraint_goes_with_its_table_or_column(down: str) -> None:
    up = ("ALTER TABLE t ADD CONSTRAINT u1 UNIQUE (b);\n"
          + ("ALTER TABLE t RENAME TO t2;\n" if "t2" in down else ""))
    found = mismatches(up, down)
    assert not [message for message in found if "constraint" in message], found


def test_a_foreign_key_goes_with_the_table_it_references() -> None:
    up = ("CREATE TABLE owners (id int PRIMARY KEY);\n"
          "ALTER TABLE t ADD CONSTRAINT t_owner_fk FOREIGN KEY (a) REFERENCES owners (id);\n")
    assert mismatches(up, "DROP TABLE owners CASCADE;") == []
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT t_owner_fk;") == [
        "the up creates table public.owners (line 1) but the down does not drop it"]


def test_a_unique_constraint_made_from_an_index_takes_it_along() -> None:
    """`ADD CONSTRAINT c UNIQUE USING INDEX i` renames the index to c; dropping the
    constraint drops it."""
    up = ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_b_idx ON t (b);\n"
          "ALTER TABLE t ADD CONSTRAINT t_b_unique UNIQUE USING INDEX t_b_idx;\n")
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_b_unique;") == []
    assert mismatches(up, "SELECT 1;") == [
        "the up creates index public.t_b_unique (line 1) but the down does not drop it",
        "the up adds constraint t_b_unique to public.t (line 2) but the down does not drop it"]


# -- constraints the up drops or renames, and the down adds --------------------------------

def test_a_constraint_the_up_drops_is_asked_back() -> None:
    up = "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_pos;\n"
    assert mismatches(up, "SELECT 1;") == [
        "the up drops constraint t_pos of public.t (line 1) but the down does not re-create it"]
    assert mismatches(up, "ALTER TABLE t ADD CONSTRAINT t_pos CHECK (a > 0);") == []
    # Re-created under PostgreSQL's name, or with the column (or table) that holds it.
    assert mismatches("ALTER TABLE t DROP CONSTRAINT t_pkey;", "ALTER TABLE t ADD PRIMARY KEY (id);") == []
    assert mismatches("ALTER TABLE t DROP CONSTRAINT t_c_key;\nALTER TABLE t DROP COLUMN c;",
                      "ALTER TABLE t ADD COLUMN c int UNIQUE;") == []
    # Swapping a primary key: each side drops and adds it.
    assert mismatches("ALTER TABLE t DROP CONSTRAINT t_pkey;\nALTER TABLE t ADD PRIMARY KEY (id, a);",
                      "ALTER TABLE t DROP CONSTRAINT t_pkey;\nALTER TABLE t ADD PRIMARY KEY (id);") == []


def test_a_constraint_the_down_adds_unasked_is_told() -> None:
    assert mismatches("SELECT 1;", "ALTER TABLE t ADD CONSTRAINT t_pos CHECK (a > 0);") == [
        "the down adds constraint t_pos of public.t, which the up does not drop"]


def test_constraint_renames_are_followed() -> None:
    up = "ALTER TABLE t RENAME CONSTRAINT t_pos TO t_positive;\n"
    assert mismatches(up, "ALTER TABLE t RENAME CONSTRAINT t_positive TO t_pos;") == []
    assert mismatches(up, "SELECT 1;") == [
        "the up renames constraint t_pos of public.t to t_positive (line 1) but the down "
        "does not rename it back"]
    assert hints(up, "SELECT 1;") == [
        "add `ALTER TABLE public.t RENAME CONSTRAINT t_positive TO t_pos;` to the down file"]
    # Added, then renamed: the down drops the name it ends with.
    up = "ALTER TABLE t ADD CONSTRAINT c1 CHECK (a > 0);\nALTER TABLE t RENAME CONSTRAINT c1 TO c2;\n"
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT c2;") == []
    assert mismatches(up, "ALTER TABLE t DROP CONSTRAINT c1;") == [
        "the up adds constraint c2 to public.t (line 1) but the down does not drop it"]


# -- a rename is taken back only by restoring the name -------------------------------------

@pytest.mark.parametrize(("up", "wrong", "right", "told"), [
    ("ALTER TABLE t RENAME TO t2;", "ALTER TABLE t2 RENAME TO t3;", "ALTER TABLE t2 RENAME TO t;",
     "the up renames table public.t to public.t2 (line 1) but the down does not rename it "
     "back (it renames it to public.t3 instead)"),
    ("ALTER TYPE mood RENAME TO feeling;", "ALTER TYPE feeling RENAME TO moood;",
     "ALTER TYPE feeling RENAME TO mood;",
     "the up renames type public.mood to public.feeling (line 1) but the down does not "
     "rename it back (it renames it to public.moood instead)"),
    ("ALTER TABLE t RENAME COLUMN a TO a2;", "ALTER TABLE t RENAME COLUMN a2 TO a3;",
     "ALTER TABLE t RENAME COLUMN a2 TO a;",
     "the up renames column a of public.t to a2 (line 1) but the down does not rename it "
     "back (it renames it to a3 instead)"),
    ("ALTER TABLE t SET SCHEMA s;", "ALTER TABLE s.t RENAME TO t9;",
     "ALTER TABLE s.t SET SCHEMA public;",
     "the up renames table public.t to s.t (line 1) but the down does not rename it back "
     "(it renames it to s.t9 instead)"),
], ids=["table", "type", "column", "schema"])
def test_a_rename_to_another_name_does_not_take_a_rename_back(
        up: str, wrong: str, right: str, told: str) -> None:
    assert mismatches(up, wrong) == [told]
    assert mismatches(up, right) == []
    # In two steps that end where the up began, it does.
    assert mismatches("ALTER TABLE t RENAME TO t2;",
                      "ALTER TABLE t2 RENAME TO t3;\nALTER TABLE t3 RENAME TO t;") == []


# -- the real server ------------------------------------------------------------------------

def test_unnamed_constraints_are_named_as_postgresql_names_them(dsn: str) -> None:
    statements = ["ALTER TABLE keys ADD CHECK (a > 0)",
                  "ALTER TABLE keys ADD CHECK (a > b AND a < 100)",
                  "ALTER TABLE keys ADD CHECK (length(b::text) < 9 AND keys.b > 0)",
                  "ALTER TABLE keys ADD CHECK (true)",
                  "ALTER TABLE keys ADD CHECK (a > 1)",  # t_a_check taken: t_a_check1
                  "ALTER TABLE keys ADD FOREIGN KEY (a, b) REFERENCES owners (x, y)",
                  "ALTER TABLE keys ADD UNIQUE (b, a)",
                  "ALTER TABLE keys ADD PRIMARY KEY (id)"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE owners (x int, y int, UNIQUE (x, y));"
                     "CREATE TABLE keys (id int NOT NULL, a int, b int)")
        for statement in statements:
            before = {row[0] for row in conn.execute("SELECT conname FROM pg_constraint")}
            conn.execute(statement)
            [made] = {row[0] for row in conn.execute("SELECT conname FROM pg_constraint")} - before
            [effect] = [e for e in sql.analyze(statement + ";").object_effects
                        if e.kind is sql.ObjectKind.CONSTRAINT]
            assert effect.server_name is not None
            assert made in effect.server_name.candidates(), (statement, made)
            [raw] = _parser.parse(statement).statements
            command = raw.body["cmds"][0]["AlterTableCmd"]
            assert added_constraint_name("keys", command["def"]["Constraint"]) == effect.server_name


BASE = ("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, a int, b text);\n"
        "CREATE TYPE mood AS ENUM ('x');\nCREATE SCHEMA IF NOT EXISTS s;\n",
        "DROP SCHEMA IF EXISTS s;\nDROP TYPE IF EXISTS mood;\nDROP TABLE IF EXISTS t;\n")

# Each (up, down) undoes itself, in an order where each up leaves what the next expects.
SILENT = [
    ("ALTER TABLE t ADD CONSTRAINT t_pos CHECK (a > 0) NOT VALID;\n",
     "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_pos;\n"),
    ("ALTER TABLE t ADD UNIQUE (b);\n", "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_b_key;\n"),
    ("ALTER TABLE t ADD CHECK (a > 0);\nALTER TABLE t RENAME CONSTRAINT t_a_check TO t_a_pos;\n",
     "ALTER TABLE t DROP CONSTRAINT t_a_pos;\n"),
    ("CREATE UNIQUE INDEX t_b_idx ON t (b);\n"
     "ALTER TABLE t ADD CONSTRAINT t_b_unique UNIQUE USING INDEX t_b_idx;\n",
     "ALTER TABLE t DROP CONSTRAINT t_b_unique;\n"),
    ("ALTER TABLE t DROP CONSTRAINT t_pkey;\nALTER TABLE t ADD PRIMARY KEY (id, a);\n",
     "ALTER TABLE t DROP CONSTRAINT t_pkey;\nALTER TABLE t ALTER COLUMN a DROP NOT NULL;\n"
     "ALTER TABLE t ADD PRIMARY KEY (id);\n"),
    ("ALTER TABLE t RENAME TO t2;\nALTER TYPE mood RENAME TO feeling;\n"
     "ALTER TABLE t2 RENAME COLUMN a TO a2;\n",
     "ALTER TABLE t2 RENAME COLUMN a2 TO a;\nALTER TYPE feeling RENAME TO mood;\n"
     "ALTER TABLE t2 RENAME TO t;\n"),  # leaves t2 (and feeling) for the cases after it
    ("ALTER TABLE t2 SET SCHEMA s;\n", "ALTER TABLE s.t2 SET SCHEMA public;\n"),
]


def test_check_and_verify_agree_on_constraints_and_renames(
        tmp_path: Path, pg_server: PgServer) -> None:
    files = pair("rule-service", "000001", "base", *BASE)
    for number, (up, down) in enumerate(SILENT, start=2):
        files.update(pair("rule-service", f"{number:06d}", f"case_{number}", up=up, down=down))
    root = make_tree(tmp_path / "repo", files)
    check_and_verify_agree(root, pg_server.admin_dsn, migrations=len(SILENT) + 1)


def test_the_server_refuses_to_drop_a_constraint_index_by_drop_index(dsn: str) -> None:
    """Why `DROP INDEX u1` does not undo `ADD CONSTRAINT u1 UNIQUE`: PostgreSQL refuses."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, b text); ALTER TABLE t ADD CONSTRAINT u1 UNIQUE (b)")
        with pytest.raises(psycopg.errors.DependentObjectsStillExist):
            conn.execute("DROP INDEX u1")
    assert mismatches("ALTER TABLE t ADD CONSTRAINT u1 UNIQUE (b);", "DROP INDEX u1;") == [
        "the up adds constraint u1 to public.t (line 1) but the down does not drop it"]
