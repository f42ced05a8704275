"""`down-mismatch` precision: what PostgreSQL itself takes away is not a mismatch.

Temporary tables and `pg_temp` objects vanish with the session, a sequence `OWNED BY` a
column goes with its table or column, and a view's options are undone by `ALTER VIEW`.
Each case: the pure check is silent, a real mismatch next to it still fires, and the
real server agrees (the same migrations round-trip under `migcoord verify`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import PgServer

from helpers import check_and_verify_agree, make_tree, pair
from migcoord import sql


def mismatches(up: str, down: str) -> list[str]:
    analysed = sql.down_mismatch(sql.analyze(textwrap.dedent(up)), sql.analyze(textwrap.dedent(down)))
    return [finding.message for finding in analysed]


# Each case is a migration on top of `rules` (id bigint, email text) whose down undoes
# its up: run by test_postgresql_agrees_with_every_silent_case below.
SILENT = {
    "temp_table_on_commit_drop": (
        """\
        CREATE TEMP TABLE staging (id bigint) ON COMMIT DROP;
        INSERT INTO staging VALUES (1);
        CREATE TABLE rule_archive (id bigint PRIMARY KEY);
        INSERT INTO rule_archive SELECT id FROM staging;
        """,
        "DROP TABLE rule_archive;\n"),
    "temporary_table_dropped_by_the_down": (
        # The down cleans up a temporary table the up made: not a table it "does unasked".
        """\
        CREATE TEMPORARY TABLE scratch_ids (id bigint);
        INSERT INTO scratch_ids SELECT id FROM rules;
        ALTER TABLE rules ADD COLUMN archived boolean;
        UPDATE rules SET archived = id IN (SELECT id FROM scratch_ids);
        """,
        "DROP TABLE IF EXISTS scratch_ids;\nALTER TABLE rules DROP COLUMN archived;\n"),
    "pg_temp_function": (
        """\
        CREATE FUNCTION pg_temp.default_level() RETURNS integer LANGUAGE sql AS 'SELECT 7';
        ALTER TABLE rules ADD COLUMN level integer;
        UPDATE rules SET level = pg_temp.default_level();
        """,
        "ALTER TABLE rules DROP COLUMN level;\n"),
    "sequence_owned_by_a_dropped_table": (
        # pg_dump's way of writing a serial column.
        """\
        CREATE TABLE public.invoices (id integer NOT NULL);
        CREATE SEQUENCE public.invoices_id_seq AS integer START WITH 1;
        ALTER SEQUENCE public.invoices_id_seq OWNED BY public.invoices.id;
        ALTER TABLE ONLY public.invoices
            ALTER COLUMN id SET DEFAULT nextval('public.invoices_id_seq'::regclass);
        """,
        "DROP TABLE public.invoices;\n"),
    "sequence_created_owned_by_a_dropped_column": (
        """\
        ALTER TABLE rules ADD COLUMN ticket integer;
        CREATE SEQUENCE rules_ticket_seq OWNED BY rules.ticket;
        ALTER TABLE rules ALTER COLUMN ticket SET DEFAULT nextval('rules_ticket_seq');
        """,
        "ALTER TABLE rules DROP COLUMN ticket;\n"),
    "serial_and_identity_columns": (
        "CREATE TABLE tickets (id serial PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY);\n",
        "DROP TABLE tickets;\n"),
    "temp_table_cleared_before_it_is_made": (
        """\
        DROP TABLE IF EXISTS rule_map;
        CREATE TEMP TABLE rule_map (id bigint);
        INSERT INTO rule_map SELECT id FROM rules;
        ALTER TABLE rules ADD COLUMN mapped boolean;
        """,
        "ALTER TABLE rules DROP COLUMN mapped;\n"),
    "savepoint_rolled_back": (
        # What ROLLBACK TO undoes is not there for the down to drop; RELEASE keeps it.
        """\
        SAVEPOINT attempt;
        CREATE TABLE rule_tmp (id bigint);
        SAVEPOINT inner_attempt;
        CREATE INDEX rule_tmp_id ON rule_tmp (id);
        ROLLBACK TO SAVEPOINT attempt;
        SAVEPOINT kept;
        CREATE TABLE rule_kept (id bigint);
        RELEASE kept;
        """,
        "DROP TABLE rule_kept;\n"),
    "view_options": (
        "CREATE VIEW rule_emails WITH (security_barrier) AS SELECT id, email FROM rules;\n",
        "DROP VIEW rule_emails;\n"),
}

# Replacing a view to give it options, undone by resetting them (and the other way round).
VIEWS = ("CREATE VIEW rule_ids AS SELECT id FROM rules;\n"
         "CREATE VIEW rule_keys AS SELECT id FROM rules;\n")
VIEW_OPTIONS_REPLACED = (
    "CREATE OR REPLACE VIEW rule_ids WITH (security_barrier) AS SELECT id FROM rules;\n",
    "ALTER VIEW rule_ids RESET (security_barrier);\n")
VIEW_OPTIONS_SET = (  # CREATE OR REPLACE VIEW without options resets them
    "ALTER VIEW rule_keys SET (security_barrier = true);\n",
    "CREATE OR REPLACE VIEW rule_keys AS SELECT id FROM rules;\n")


@pytest.mark.parametrize("name", sorted(SILENT))
def test_what_postgresql_takes_along_is_not_a_mismatch(name: str) -> None:
    """Temporary tables and pg_temp functions, owned sequences, view options: silent."""
    up, down = SILENT[name]
    assert mismatches(up, down) == []


def test_what_a_savepoint_kept_is_still_a_mismatch_when_the_down_forgets_it() -> None:
    up = ("SAVEPOINT a;\nCREATE TABLE gone (id int);\nROLLBACK TO a;\n"
          "CREATE TABLE kept (id int);\nSAVEPOINT b;\nCREATE TABLE released (id int);\n"
          "RELEASE b;\n")
    found = mismatches(up, "DROP TABLE kept;\n")
    assert len(found) == 1 and "released" in found[0] and "gone" not in found[0]


def test_view_options_undone_by_alter_view_are_not_a_mismatch() -> None:
    """CREATE OR REPLACE VIEW ... WITH (...) and ALTER VIEW ... RESET undo each other."""
    assert mismatches(*VIEW_OPTIONS_REPLACED) == []
    assert mismatches(*VIEW_OPTIONS_SET) == []


def test_real_mismatches_beside_them_still_fire() -> None:
    """What is not taken along is still reported: a permanent table beside a temporary
    one, a permanent function beside a pg_temp one, a sequence whose owner stays or that
    is owned by nothing, a view the down only alters."""
    assert mismatches("CREATE TEMP TABLE staging (id int);\nCREATE TABLE kept (id int);",
                      "DROP TABLE IF EXISTS staging;") == [
        "the up creates table public.kept (line 2) but the down does not drop it"]
    assert mismatches("CREATE TABLE t (id int);", "DROP TABLE t;\nDROP TABLE IF EXISTS staging;") == [
        "the down drops table public.staging, which the up does not create"]
    assert mismatches(
        "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n"
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql AS 'SELECT 1';", "SELECT 1;") == [
        "the up creates function public.g (line 2) but the down does not drop it"]
    assert mismatches("CREATE SEQUENCE s OWNED BY rules.id;", "DROP TABLE other;") == [
        "the up creates sequence public.s (line 1) but the down does not drop it",
        "the down drops table public.other, which the up does not create"]
    assert mismatches("ALTER TABLE rules ADD COLUMN n int;\nCREATE SEQUENCE s OWNED BY rules.n;",
                      "ALTER TABLE rules DROP COLUMN email;") == [
        "the up creates sequence public.s (line 2) but the down does not drop it",
        "the up adds column n to public.rules (line 1) but the down does not drop it",
        "the down drops column email of public.rules, which the up does not add"]
    assert mismatches("CREATE TABLE t (id int);\nCREATE SEQUENCE s OWNED BY t.id;\n"
                      "ALTER SEQUENCE s OWNED BY NONE;", "DROP TABLE t;") == [
        "the up creates sequence public.s (line 2) but the down does not drop it"]
    assert mismatches("CREATE VIEW v WITH (security_barrier) AS SELECT 1 AS x;",
                      "ALTER VIEW v RESET (security_barrier);") == [
        "the up creates view public.v (line 1) but the down does not drop it"]


def test_owned_by_is_read_from_create_and_alter_sequence() -> None:
    """The effects record the owner: on CREATE SEQUENCE, and as OWNED on ALTER SEQUENCE."""
    created = sql.analyze("CREATE SEQUENCE app.s OWNED BY app.t.id;").object_effects
    assert [(e.action, str(e.name), [str(t) for t in e.on], e.owner_column) for e in created] == [
        (sql.ObjectAction.CREATED, "app.s", ["app.t"], "id")]
    owned = sql.analyze("ALTER SEQUENCE s OWNED BY NONE;").object_effects
    assert [(e.action, e.on, e.owner_column) for e in owned] == [(sql.ObjectAction.OWNED, (), "")]
    assert sql.analyze("ALTER SEQUENCE s RESTART;").object_effects == ()


def test_postgresql_agrees_with_every_silent_case(tmp_path: Path, pg_server: PgServer) -> None:
    """Each silent case is a migration that `check` passes without down-mismatch and that
    round-trips on the real server: its down really does undo its up."""
    files: dict[str, str] = pair(
        "rule-service", "000001", "rules",
        up="CREATE TABLE rules (id bigint PRIMARY KEY, email text);\n"
        "INSERT INTO rules VALUES (1, 'a@example.com');\n"
        + VIEWS, down="DROP VIEW rule_ids, rule_keys;\nDROP TABLE rules;\n")
    cases = [*(SILENT[name] for name in sorted(SILENT)), VIEW_OPTIONS_REPLACED, VIEW_OPTIONS_SET]
    for number, (up, down) in enumerate(cases, start=2):
        files.update(pair("rule-service", f"{number:06d}", f"case_{number}",
                          up=textwrap.dedent(up), down=textwrap.dedent(down)))
    root = make_tree(tmp_path / "repo", files)
    check_and_verify_agree(root, pg_server.admin_dsn, migrations=len(cases) + 1)
