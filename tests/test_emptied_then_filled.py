"""A table a TRUNCATE emptied stays empty only while nothing can write to it: a function
a query calls may (`SELECT fill_t()`), and a change of search_path may make a later
unqualified name another table. Either way the lock hazards after it are told again;
the built-ins known to write no rows keep them silent. The real server shows why."""

from __future__ import annotations

import psycopg
import pytest

from migcoord import sql

HAZARD = "ALTER TABLE t ADD COLUMN IF NOT EXISTS c2 int NOT NULL;"


def codes(text: str) -> list[str]:
    found = sql.lint(sql.analyze(text), allow=frozenset({"not-idempotent"}))
    return [finding.code for finding in found]


@pytest.mark.parametrize("between", [
    "SELECT fill_t();",
    "SELECT app.count(*) FROM t;",                     # not pg_catalog's count
    "SELECT id, fill_t() FROM other;",
    "INSERT INTO other SELECT fill_t();",
    "UPDATE other SET a = fill_t();",
    "CREATE TABLE copy AS SELECT fill_t() AS x;",
    "ALTER TABLE other ADD COLUMN x int DEFAULT fill_t();",  # run for each row of other
    "SELECT set_config('search_path', 's', true);",
    "SET search_path = s, public;",
    "SET LOCAL search_path TO public;",
    "RESET search_path;",
])
def test_a_statement_that_may_write_rows_ends_the_truncate_s_silence(between: str) -> None:
    assert codes(f"TRUNCATE t;\n{HAZARD}") == []
    assert codes(f"TRUNCATE t;\n{between}\n{HAZARD}") == ["not-null-without-default"]


@pytest.mark.parametrize("between", [
    "SELECT count(*) FROM t;",
    "SELECT pg_catalog.now(), lower('A'), coalesce(1, 2);",
    "SELECT setval('t_id_seq', 1);",
    "UPDATE other SET a = length(b);",
    "ALTER TABLE t ADD COLUMN c3 int DEFAULT fill_t();",  # run for each row of t: none
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT fill_t()';",  # stored, not run
    "SET lock_timeout = '1s';",
])
def test_what_writes_no_rows_keeps_it(between: str) -> None:
    assert codes(f"TRUNCATE t;\n{between}\n{HAZARD}") == []


def test_the_server_fills_a_truncated_table_through_a_function(dsn: str) -> None:
    """In one transaction: TRUNCATE, a function that inserts, and the NOT NULL column fails."""
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY);"
                     "CREATE FUNCTION fill_t() RETURNS void LANGUAGE sql "
                     "AS 'INSERT INTO t VALUES (1)'")
        conn.commit()
        conn.execute("TRUNCATE t")
        conn.execute("SELECT fill_t()")
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute(HAZARD)
