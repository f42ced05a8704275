"""Schema snapshots and their diff: pure tests on hand-built values, then the catalog reader."""

from __future__ import annotations

import psycopg
import pytest

from migcoord.core.snapshot import SchemaObject, Snapshot, diff, render
from migcoord.db import snapshot_sql


def col(table: str, name: str, type_: str = "text", *, not_null: str = "no",
        default: str | None = None) -> SchemaObject:
    return SchemaObject("column", f"public.{table}.{name}",
                        (("type", type_), ("not null", not_null), ("default", default)),
                        summary=type_, parent=f"public.{table}")


def table(name: str) -> SchemaObject:
    return SchemaObject("table", f"public.{name}", (("owner", "app"),))


def index(name: str, definition: str, *, parent: str = "public.rules",
          predicate: str | None = None) -> SchemaObject:
    return SchemaObject("index", name, (("definition", definition), ("unique", "no"),
                                        ("predicate", predicate)),
                        summary=definition, parent=parent)


def lines(before: list[SchemaObject], after: list[SchemaObject]) -> list[str]:
    return render(diff(Snapshot.of(before), Snapshot.of(after)))


# -- identity and order ----------------------------------------------------------------------


def test_snapshots_of_the_same_objects_in_any_order_are_equal() -> None:
    """Objects are compared by kind and name, never by the order the catalog listed them."""
    a = Snapshot.of([table("rules"), col("rules", "id", "bigint"), col("rules", "email")])
    b = Snapshot.of([col("rules", "email"), table("rules"), col("rules", "id", "bigint")])
    assert a == b
    assert diff(a, b) == []


def test_column_order_is_not_a_difference() -> None:
    """A column dropped and added again moves to the end of its table; that is not reported."""
    before = [table("rules"), col("rules", "id"), col("rules", "email"), col("rules", "name")]
    after = [table("rules"), col("rules", "id"), col("rules", "name"), col("rules", "email")]
    assert lines(before, after) == []


# -- added, removed, changed -----------------------------------------------------------------


def test_added_column_is_one_plus_line_with_its_type() -> None:
    """A column the down left behind reads `+ column public.rules.email text`."""
    before = [table("rules"), col("rules", "id", "bigint")]
    after = [*before, col("rules", "email")]
    assert lines(before, after) == ["+ column public.rules.email text"]


def test_removed_index_is_one_minus_line() -> None:
    """An index the down dropped although the up did not create it reads `- index ...`."""
    idx = index("public.rules_email_idx", "ON public.rules USING btree (email)")
    assert lines([table("rules"), idx], [table("rules")]) == [
        "- index public.rules_email_idx ON public.rules USING btree (email)"]


def test_changed_default_names_attribute_object_and_both_values() -> None:
    """`~ default of column public.rules.priority: 0 -> 1`."""
    before = [col("rules", "priority", "integer", default="0")]
    after = [col("rules", "priority", "integer", default="1")]
    assert lines(before, after) == ["~ default of column public.rules.priority: 0 -> 1"]


def test_a_missing_value_is_shown_as_none() -> None:
    """A default that appeared reads `(none) -> 1`, not an empty string."""
    assert lines([col("rules", "p", default=None)], [col("rules", "p", default="1")]) == [
        "~ default of column public.rules.p: (none) -> 1"]


def test_function_body_change_is_reported_without_hashes() -> None:
    """The body is compared by hash; the diff says that it changed, not two hashes."""
    def function(body: str) -> SchemaObject:
        return SchemaObject("function", "public.f(integer)",
                            (("result", "integer"), ("body", body)))
    assert lines([function("0c69")], [function("2810")]) == [
        "~ function public.f(integer) body changed"]


def test_predicate_change_of_a_partial_index_is_its_own_line() -> None:
    """`~ predicate of index ...` shows both predicates."""
    before = [index("public.open_idx", "ON public.n USING btree (a)", predicate="(open)")]
    after = [index("public.open_idx", "ON public.n USING btree (a)", predicate="(NOT open)")]
    assert lines(before, after) == [
        "~ predicate of index public.open_idx: (open) -> (NOT open)"]


def test_enum_value_left_behind_shows_the_value_lists() -> None:
    """An enum value the down did not remove shows as a change of the enum's values."""
    def mood(values: str) -> SchemaObject:
        return SchemaObject("enum", "public.mood", (("values", values),))
    assert lines([mood("'sad', 'happy'")], [mood("'sad', 'happy', 'angry'")]) == [
        "~ values of enum public.mood: 'sad', 'happy' -> 'sad', 'happy', 'angry'"]


def test_long_values_are_shown_as_a_line_diff() -> None:
    """A changed view definition shows only the lines that differ, with a little context."""
    def view(where: str) -> SchemaObject:
        return SchemaObject("view", "public.v", (
            ("definition", f" SELECT id,\n    email\n   FROM public.rules\n  WHERE {where};"),))
    text = lines([view("(priority > 1)")], [view("(priority > 2)")])
    assert len(text) == 1
    assert text[0].splitlines() == [
        "~ definition of view public.v changed:",
        "         FROM public.rules",
        "    -   WHERE (priority > 1);",
        "    +   WHERE (priority > 2);",
    ]


def test_added_table_counts_its_contents_instead_of_listing_them() -> None:
    """A table the down forgot is one line: `+ table public.t (with 2 columns, 1 index)`."""
    before: list[SchemaObject] = []
    after = [table("t"), col("t", "a"), col("t", "b"),
             index("public.t_a_idx", "ON public.t USING btree (a)", parent="public.t")]
    assert lines(before, after) == ["+ table public.t (with 2 columns, 1 index)"]


def test_a_column_of_a_surviving_table_is_not_folded() -> None:
    """Only the contents of a table that itself appeared are folded into it."""
    before = [table("t"), col("t", "a")]
    after = [table("t"), col("t", "a"), col("t", "b"), table("u"), col("u", "x")]
    assert lines(before, after) == ["+ table public.u (with 1 column)",
                                     "+ column public.t.b text"]


def test_diff_lists_kinds_in_a_fixed_order_then_objects_by_name() -> None:
    """Kinds come in a fixed order (schema ... table, column, constraint, index ...)."""
    before = [table("t"), col("t", "a"), index("public.i", "ON public.t (a)", parent="public.t")]
    after = [table("t"), col("t", "a", "bigint"), col("t", "b"),
             SchemaObject("schema", "extra")]
    assert [line.split(" ")[:2] for line in lines(before, after)] == [
        ["+", "schema"], ["~", "type"], ["+", "column"], ["-", "index"]]


def test_identical_snapshots_have_no_diff() -> None:
    """diff() of equal snapshots is empty: the round trip passed."""
    snap = Snapshot.of([table("rules"), col("rules", "id")])
    assert diff(snap, snap) == []


# -- reading the catalog (real server) ---------------------------------------------------------


SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN posint AS integer NOT NULL DEFAULT 1 CHECK (VALUE > 0);
CREATE TABLE clients (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, slug text UNIQUE,
                      m mood DEFAULT 'sad', g bigint GENERATED ALWAYS AS (id * 2) STORED);
CREATE TABLE rules (id serial PRIMARY KEY,
                    client_id bigint REFERENCES clients (id) ON DELETE CASCADE,
                    email text, priority integer DEFAULT 0 CHECK (priority >= 0));
CREATE INDEX rules_email_idx ON rules (lower(email)) WHERE priority > 0;
CREATE VIEW v AS SELECT id, email FROM rules;
CREATE FUNCTION f(x integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT x + 1';
CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER rules_touch BEFORE UPDATE ON rules FOR EACH ROW EXECUTE FUNCTION trg();
ALTER TABLE rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY readable ON rules FOR SELECT USING (priority > 0);
COMMENT ON COLUMN rules.email IS 'where alerts go';
CREATE EXTENSION IF NOT EXISTS citext;
"""


@pytest.fixture
def conn(dsn: str) -> psycopg.Connection:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def test_catalog_snapshot_describes_every_kind_of_object(conn: psycopg.Connection) -> None:
    """Columns, constraints, indexes, views, functions, triggers, types, policies, comments."""
    conn.execute(SCHEMA)
    snap = snapshot_sql.take(conn, "public")
    email = snap.get("column", "public.rules.email")
    assert email is not None and email.attribute("type") == "text"
    assert snap.get("column", "public.rules.id").attribute("default") == (  # type: ignore[union-attr]
        "nextval('public.rules_id_seq'::regclass)")
    assert snap.get("column", "public.clients.id").attribute("identity") == "always"  # type: ignore[union-attr]
    assert snap.get("column", "public.clients.g").attribute("generated") == "(id * 2) stored"  # type: ignore[union-attr]
    fk = snap.get("constraint", "rules_client_id_fkey on public.rules")
    assert fk is not None and "ON DELETE CASCADE" in (fk.attribute("definition") or "")
    idx = snap.get("index", "public.rules_email_idx")
    assert idx is not None
    assert idx.attribute("predicate") == "(priority > 0)"
    assert idx.attribute("definition") == "ON public.rules USING btree (lower(email))"
    assert snap.get("enum", "public.mood").attribute("values") == "'sad', 'happy'"  # type: ignore[union-attr]
    assert snap.get("domain", "public.posint") is not None
    assert snap.get("view", "public.v") is not None
    assert snap.get("function", "public.f(integer)") is not None
    assert snap.get("trigger", "rules_touch on public.rules") is not None
    assert snap.get("policy", "readable on public.rules") is not None
    assert snap.get("comment", "on table column public.rules.email") is not None
    assert snap.get("table", "public.rules").attribute("row level security") == "enabled"  # type: ignore[union-attr]
    assert snap.get("extension", "citext") is not None
    # An extension's own functions and types are covered by the extension's entry.
    assert not [o for o in snap.objects if o.kind == "function" and "citext" in o.name]
    # The primary key's index is the constraint, not a second object.
    assert snap.get("index", "public.rules_pkey") is None
    assert snap.get("constraint", "rules_pkey on public.rules") is not None


def test_catalog_snapshot_leaves_out_migcoords_own_tables(conn: psycopg.Connection) -> None:
    """migcoord_history and migcoord_events (and what hangs on them) are not the schema."""
    conn.execute("CREATE SCHEMA ops; CREATE TABLE ops.migcoord_history (version bigint PRIMARY KEY);"
                 "CREATE TABLE ops.migcoord_events (id int); COMMENT ON TABLE ops.migcoord_events "
                 "IS 'log'; CREATE TABLE public.migcoord_history (v int)")
    snap = snapshot_sql.take(conn, "ops")
    names = {o.name for o in snap.objects}
    assert not [n for n in names if n.startswith("ops.migcoord") or "on ops.migcoord" in n]
    assert not [n for n in names if "migcoord_events" in n]
    # The same name in another schema is the application's own table.
    assert "public.migcoord_history" in names


def test_drop_and_readd_of_a_column_compares_equal(conn: psycopg.Connection) -> None:
    """After DROP COLUMN + ADD COLUMN the column has another position, and no difference."""
    conn.execute("CREATE TABLE t (a int, b text, c int)")
    before = snapshot_sql.take(conn, "public")
    conn.execute("ALTER TABLE t DROP COLUMN b; ALTER TABLE t ADD COLUMN b text")
    after = snapshot_sql.take(conn, "public")
    assert before == after


def test_snapshot_ignores_the_sessions_search_path(conn: psycopg.Connection) -> None:
    """Definitions are always schema-qualified, whatever search_path a migration set."""
    conn.execute("CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (p int REFERENCES p)")
    before = snapshot_sql.take(conn, "public")
    conn.execute("SET search_path TO pg_catalog, public")
    assert snapshot_sql.take(conn, "public") == before
    conn.execute("RESET search_path")
