"""migcoord.sql: PostgreSQL-grammar analysis of migration files (pure: text in, values out)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcoord import sql
from migcoord.core.findings import CODES
from migcoord.sql import (
    Analysis,
    ColumnAction,
    ObjectAction,
    ObjectKind,
    QualifiedName,
    TableAction,
    transactions,
)
from migcoord.sql.analysis import TransactionFit

#: The lock hazards (tests/test_lock_lints.py), left out where a test is about other lints.
LOCKS = frozenset(c.code for c in CODES if c.family == "hazards" and c.code not in (
    "not-idempotent", "concurrently-in-transaction", "sql-syntax", "down-mismatch"))

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "alerting"


def analyze(text: str, **kwargs: str) -> Analysis:
    return sql.analyze(textwrap.dedent(text), **kwargs)


def names(analysis: Analysis, *actions: TableAction) -> set[str]:
    return {str(name) for name in analysis.tables(*actions)}


def codes(text: str, **kwargs: Any) -> list[str]:
    return [finding.code for finding in sql.lint(analyze(text), **kwargs)]


def objects(analysis: Analysis, action: ObjectAction) -> set[tuple[str, str]]:
    return {(e.kind.value, str(e.name)) for e in analysis.object_effects if e.action is action}


def mismatches(up: str, down: str) -> list[str]:
    return [f.message for f in sql.down_mismatch(analyze(up), analyze(down))]


# -- the package boundary -------------------------------------------------------------


def test_import_does_not_import_pglast() -> None:
    """Importing migcoord.sql leaves pglast unloaded: loading it is for the first read."""
    code = "import migcoord.sql, sys; assert 'pglast' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- parsing ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "-- only a comment\n/* and; another */\n"])
def test_file_without_statements_has_an_empty_analysis(text: str) -> None:
    """A file with no statement parses to no statements and no error."""
    analysis = sql.analyze(text)
    assert analysis.statements == ()
    assert analysis.syntax_error is None
    assert sql.lint(analysis) == []


def test_dollar_quoted_function_body_is_one_statement() -> None:
    """Semicolons and BEGIN/COMMIT words inside $$ bodies belong to one statement."""
    analysis = analyze(
        """\
        CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            NEW.updated_at := now();  -- ; in a comment
            RETURN NEW;
        END;
        $body$;
        SELECT 1;
        """
    )
    assert [s.node_type for s in analysis.statements] == ["CreateFunctionStmt", "SelectStmt"]
    assert analysis.statements[1].line == 7
    assert sql.lint(analysis) == []


def test_do_block_is_one_opaque_statement_without_transaction_findings() -> None:
    """A DO block's PL/pgSQL BEGIN/COMMIT is not a transaction statement; its effects are unknown."""
    analysis = analyze(
        """\
        DO $$
        BEGIN
            CREATE TABLE hidden (id int);
            COMMIT;
        END $$;
        """
    )
    assert [s.node_type for s in analysis.statements] == ["DoStmt"]
    assert analysis.opaque
    assert analysis.tables_changed == frozenset()
    assert sql.lint(analysis) == []


def test_semicolons_in_comments_and_strings_do_not_split_statements() -> None:
    """`;` inside -- comments, /* */ comments and strings does not end a statement."""
    analysis = analyze(
        """\
        -- first; not a statement
        INSERT INTO notes (body) VALUES ('a; b'); /* c; d */ SELECT 2;
        """
    )
    assert [(s.node_type, s.line, s.column) for s in analysis.statements] == [
        ("InsertStmt", 2, 1),
        ("SelectStmt", 2, 54),
    ]


def test_copy_from_stdin_data_lines_are_skipped() -> None:
    """psql COPY data up to `\\.` is not parsed; later statements keep their lines."""
    analysis = analyze(
        """\
        COPY clients (id, name) FROM stdin;
        1\tO'Brien; /* not a comment
        2\t$$ not a dollar quote
        \\.
        SELECT 1 FROM broken_ref;
        """
    )
    assert analysis.syntax_error is None
    copy, select = analysis.statements
    assert copy.node_type == "CopyStmt"
    assert names(analysis, TableAction.WRITTEN) == {"public.clients"}
    assert (select.line, select.column) == (5, 1)
    assert names(analysis, TableAction.REFERENCED) == {"public.broken_ref"}


def test_copy_with_a_semicolon_delimiter_option_ends_at_the_real_semicolon() -> None:
    """The `;` in WITH (DELIMITER ';') does not end the COPY statement."""
    analysis = analyze(
        """\
        COPY t (a, b) FROM STDIN WITH (FORMAT csv, DELIMITER ';');
        1;'x
        \\.
        SELECT 2;
        """
    )
    assert [(s.node_type, s.line) for s in analysis.statements] == [
        ("CopyStmt", 1),
        ("SelectStmt", 4),
    ]


def test_copy_without_terminator_runs_to_the_end_of_the_file() -> None:
    """COPY data without a `\\.` line is data up to the end of the file."""
    analysis = analyze("COPY t FROM stdin;\n1\t'unterminated\n")
    assert [s.node_type for s in analysis.statements] == ["CopyStmt"]


def test_stdin_in_strings_and_comments_is_not_a_copy() -> None:
    """The word stdin in a string or comment does not start a data block."""
    analysis = analyze(
        """\
        -- COPY t FROM stdin;
        SELECT 'COPY t FROM stdin;';
        SELECT 3;
        """
    )
    assert [s.line for s in analysis.statements] == [2, 3]


def test_syntax_error_on_the_first_line_has_its_exact_position() -> None:
    """An error in the first statement is reported at its line:column in the file."""
    problem = sql.analyze("CREATE TABEL t (id int);\nSELECT 1;\n").syntax_error
    assert problem is not None
    assert (problem.line, problem.column) == (1, 8)
    assert 'at or near "TABEL"' in problem.message


def test_syntax_error_on_the_last_line_has_its_exact_position() -> None:
    """An error after many lines is reported at its line:column in the file."""
    text = "-- header\n" + "SELECT 1;\n" * 50 + "SELECT 2;\n  INSERT INTO t VALUS (1);\n"
    problem = sql.analyze(text).syntax_error
    assert problem is not None
    assert (problem.line, problem.column) == (53, 17)


def test_syntax_error_at_end_of_input_points_just_after_the_last_token() -> None:
    """An error "at end of input" points where the missing token belongs, not past blanks."""
    problem = sql.analyze("SELECT 1;\nSELECT (1\n\n\n").syntax_error
    assert problem is not None
    assert (problem.line, problem.column) == (2, 10)


def test_non_ascii_text_before_an_error_counts_characters_not_bytes() -> None:
    """Columns count characters: é, 中 and 😀 before an error are one column each."""
    text = "SELECT 'é中😀'; -- ünïcode\nSELECT 'ÿ😀', (é中 FROM t;\n"
    problem = sql.analyze(text).syntax_error
    assert problem is not None
    assert (problem.line, problem.column) == (2, 18)
    assert text.splitlines()[1][problem.column - 1 :].startswith("FROM")


def test_statement_positions_count_characters_after_non_ascii_text() -> None:
    """Statement line:column and offsets are right after multi-byte characters."""
    text = "/* ünïcode 😀 */ SELECT 'é'; SELECT 2;\nCREATE TABLE ü (a int);\n"
    analysis = sql.analyze(text)
    first, second, third = analysis.statements
    assert (first.line, first.column) == (1, 17)
    assert (second.line, second.column) == (1, 29)
    assert text[second.start : second.end] == "SELECT 2"
    assert (third.line, third.column, third.tables[0].line) == (2, 1, 2)
    assert names(analysis, TableAction.CREATED) == {'public."ü"'}


def test_statement_offsets_slice_each_statement_out_of_the_file() -> None:
    """`start`/`end` are character offsets of the statement, without its `;`."""
    text = "-- c\nSELECT 1;\n\nUPDATE t SET a = 'é;' ;\nSELECT 3"
    assert [text[s.start : s.end] for s in sql.analyze(text).statements] == [
        "SELECT 1",
        "UPDATE t SET a = 'é;' ",
        "SELECT 3",
    ]


_LITERAL_TEXT = st.text(st.characters(exclude_characters="'\x00", exclude_categories=["Cs"]))


@given(st.lists(_LITERAL_TEXT, min_size=1, max_size=4))
def test_positions_agree_with_the_text_whatever_characters_precede(literals: list[str]) -> None:
    """Offsets and line:column match the text for any Unicode (multi-byte, newlines) before."""
    text = "".join(f"SELECT '{literal}';  " for literal in literals)
    analysis = sql.analyze(text)
    for literal, statement in zip(literals, analysis.statements, strict=True):
        assert text[statement.start : statement.end] == f"SELECT '{literal}'"
        line_start = text.rfind("\n", 0, statement.start) + 1
        expected = (text.count("\n", 0, statement.start) + 1, statement.start - line_start + 1)
        assert (statement.line, statement.column) == expected


def test_very_long_file_is_analyzed_statement_by_statement() -> None:
    """A 10,000-statement file is analysed whole (the time is printed, not asserted)."""
    text = "".join(
        f"INSERT INTO events (id, note) VALUES ({i}, 'row {i}; ok') ON CONFLICT DO NOTHING;\n"
        for i in range(10_000)
    )
    started = time.perf_counter()
    analysis = sql.analyze(text)
    elapsed = time.perf_counter() - started
    print(f"\n10,000 statements analysed in {elapsed:.2f}s")
    assert len(analysis.statements) == 10_000
    assert analysis.statements[-1].line == 10_000
    assert names(analysis, TableAction.WRITTEN) == {"public.events"}


# -- names ----------------------------------------------------------------------------


def test_quoted_name_is_a_different_table_from_the_unquoted_one() -> None:
    """`"Rules"` keeps its case and is not `rules` (unquoted names fold to lower case)."""
    analysis = analyze('CREATE TABLE "Rules" (id int);\nCREATE TABLE RULES (id int);\n')
    assert analysis.tables(TableAction.CREATED) == {
        QualifiedName("public", "Rules"),
        QualifiedName("public", "rules"),
    }
    assert names(analysis, TableAction.CREATED) == {'public."Rules"', "public.rules"}


def test_schema_qualified_and_quoted_names_resolve_as_written() -> None:
    """app.t, "App"."T" and unqualified names (to the default schema) are kept apart."""
    analysis = analyze(
        'INSERT INTO app.t SELECT * FROM "App"."T" JOIN u ON true;\n',
        default_schema="svc",
    )
    assert names(analysis, TableAction.WRITTEN) == {"app.t"}
    assert names(analysis, TableAction.REFERENCED) == {'"App"."T"', "svc.u"}


def test_set_search_path_moves_unqualified_names_until_reset() -> None:
    """SET search_path sends later unqualified names to its first schema; RESET restores."""
    analysis = analyze(
        """\
        CREATE TABLE a (id int);
        SET search_path TO "$user", billing, public;
        CREATE TABLE b (id int);
        RESET search_path;
        CREATE TABLE c (id int);
        """
    )
    assert names(analysis, TableAction.CREATED) == {"public.a", "billing.b", "public.c"}


def test_system_catalogs_belong_to_no_service() -> None:
    """pg_catalog, information_schema and unqualified pg_* relations are not recorded."""
    analysis = analyze(
        """\
        INSERT INTO audit SELECT relname FROM pg_class
        JOIN information_schema.tables ON true JOIN pg_catalog.pg_namespace ON true;
        """
    )
    assert names(analysis, TableAction.REFERENCED) == set()
    assert names(analysis, TableAction.WRITTEN) == {"public.audit"}


def test_cte_names_are_not_tables() -> None:
    """Names defined in WITH are not tables; data-modifying CTEs write their targets."""
    analysis = analyze(
        """\
        WITH moved AS (DELETE FROM inbox WHERE done RETURNING *),
             recent AS (SELECT * FROM moved JOIN users ON true)
        INSERT INTO archive SELECT * FROM recent;
        """
    )
    assert names(analysis, TableAction.WRITTEN) == {"public.inbox", "public.archive"}
    assert names(analysis, TableAction.REFERENCED) == {"public.users"}


def test_temporary_tables_are_ignored() -> None:
    """A temp table and later unqualified uses of its name are not tables of any service."""
    analysis = analyze(
        """\
        CREATE TEMP TABLE scratch AS SELECT id FROM clients;
        INSERT INTO scratch VALUES (1);
        UPDATE rules SET x = 1 FROM scratch WHERE rules.id = scratch.id;
        DROP TABLE IF EXISTS scratch;
        """
    )
    assert analysis.tables_changed == {QualifiedName("public", "rules")}
    assert analysis.tables_referenced == {QualifiedName("public", "clients")}
    assert sql.lint(analysis) == []


# -- table effects ---------------------------------------------------------------------


def test_foreign_keys_are_references() -> None:
    """Column and table FOREIGN KEYs, in CREATE and ALTER TABLE, reference their tables."""
    analysis = analyze(
        """\
        CREATE TABLE IF NOT EXISTS rules (
            id int PRIMARY KEY,
            client_id int REFERENCES clients (id),
            owner_id int,
            FOREIGN KEY (owner_id) REFERENCES app.owners (id)
        );
        ALTER TABLE rules ADD CONSTRAINT fk FOREIGN KEY (id) REFERENCES endpoints (id);
        ALTER TABLE rules ADD COLUMN IF NOT EXISTS team_id int REFERENCES teams;
        """
    )
    assert analysis.tables_referenced == {
        QualifiedName("public", "clients"),
        QualifiedName("app", "owners"),
        QualifiedName("public", "endpoints"),
        QualifiedName("public", "teams"),
    }
    assert names(analysis, TableAction.CREATED) == {"public.rules"}


def test_view_and_materialized_view_queries_are_references() -> None:
    """The relations a view or materialized view reads are references, and its `on`."""
    analysis = analyze(
        """\
        CREATE OR REPLACE VIEW active AS SELECT * FROM rules WHERE id IN (SELECT id FROM live);
        CREATE MATERIALIZED VIEW IF NOT EXISTS stats AS SELECT count(*) FROM events;
        """
    )
    assert names(analysis, TableAction.REFERENCED) == {"public.rules", "public.live", "public.events"}
    assert analysis.tables_changed == frozenset()
    view, stats = analysis.object_effects
    assert (view.kind, str(view.name)) == (ObjectKind.VIEW, "public.active")
    assert {str(t) for t in view.on} == {"public.rules", "public.live"}
    assert (stats.kind, str(stats.name)) == (ObjectKind.MATERIALIZED_VIEW, "public.stats")


def test_like_inherits_and_partition_of_are_references() -> None:
    """CREATE TABLE ... (LIKE t), INHERITS (t) and PARTITION OF t reference t."""
    analysis = analyze(
        """\
        CREATE TABLE IF NOT EXISTS a (LIKE templates INCLUDING ALL) INHERITS (base);
        CREATE TABLE IF NOT EXISTS events_2024 PARTITION OF events FOR VALUES IN (2024);
        """
    )
    assert names(analysis, TableAction.REFERENCED) == {
        "public.templates",
        "public.base",
        "public.events",
    }
    assert names(analysis, TableAction.CREATED) == {"public.a", "public.events_2024"}


def test_data_migrations_write_their_targets_and_reference_their_sources() -> None:
    """INSERT ... SELECT, UPDATE ... FROM, DELETE ... USING and MERGE read their sources."""
    analysis = analyze(
        """\
        INSERT INTO endpoints (client_id, target) SELECT id, email FROM clients;
        UPDATE rules SET owner = o.id FROM owners o WHERE o.rule = rules.id;
        DELETE FROM sessions USING users WHERE sessions.user_id = users.id;
        MERGE INTO totals t USING (SELECT * FROM payments) p ON t.id = p.id
            WHEN MATCHED THEN UPDATE SET n = t.n + 1;
        """
    )
    assert names(analysis, TableAction.WRITTEN) == {
        "public.endpoints",
        "public.rules",
        "public.sessions",
        "public.totals",
    }
    assert names(analysis, TableAction.REFERENCED) == {
        "public.clients",
        "public.owners",
        "public.users",
        "public.payments",
    }


def test_rename_changes_the_old_name_and_creates_the_new_one() -> None:
    """ALTER TABLE t RENAME TO u records t -> u; both names count as changed."""
    analysis = analyze("ALTER TABLE rules RENAME TO alert_rules;")
    (effect,) = analysis.table_effects
    assert effect.action is TableAction.RENAMED
    assert (effect.table, effect.new_name) == (
        QualifiedName("public", "rules"),
        QualifiedName("public", "alert_rules"),
    )
    assert analysis.tables_changed == {effect.table, effect.new_name}


def test_set_schema_is_a_rename_into_the_new_schema() -> None:
    """ALTER TABLE t SET SCHEMA s renames public.t to s.t."""
    (effect,) = analyze("ALTER TABLE rules SET SCHEMA archive;").table_effects
    assert (effect.action, str(effect.new_name)) == (TableAction.RENAMED, "archive.rules")


def test_index_records_its_table_name_and_concurrently() -> None:
    """CREATE INDEX records the indexed table, the index name (in that schema) and CONCURRENTLY."""
    analysis = analyze(
        """\
        CREATE INDEX CONCURRENTLY IF NOT EXISTS rules_name_idx ON app.rules (name);
        CREATE INDEX ON rules (id);
        """
    )
    named, unnamed = analysis.table_effects
    assert (named.action, str(named.table), str(named.index), named.concurrently) == (
        TableAction.INDEXED,
        "app.rules",
        "app.rules_name_idx",
        True,
    )
    assert (str(unnamed.table), unnamed.index, unnamed.concurrently) == (
        "public.rules",
        None,
        False,
    )


def test_truncate_trigger_policy_comment_and_row_security_change_tables() -> None:
    """TRUNCATE, triggers, policies, comments, RLS and GRANT count as changes."""
    analysis = analyze(
        """\
        TRUNCATE a, b;
        CREATE OR REPLACE TRIGGER t BEFORE UPDATE ON c FOR EACH ROW EXECUTE FUNCTION f();
        CREATE POLICY p ON d USING (owner IN (SELECT id FROM owners));
        COMMENT ON TABLE e IS 'x';
        COMMENT ON COLUMN app.f.col IS 'y';
        ALTER TABLE g ENABLE ROW LEVEL SECURITY;
        GRANT SELECT ON h TO reader;
        """
    )
    assert names(analysis, TableAction.TRUNCATED) == {"public.a", "public.b"}
    assert names(analysis, TableAction.TRIGGER) == {"public.c"}
    assert names(analysis, TableAction.POLICY) == {"public.d"}
    assert names(analysis, TableAction.COMMENT) == {"public.e", "app.f"}
    assert names(analysis, TableAction.ROW_SECURITY) == {"public.g"}
    assert names(analysis, TableAction.ALTERED) == {"public.g", "public.h"}
    assert analysis.tables_referenced == {QualifiedName("public", "owners")}


def test_tables_referenced_leaves_out_tables_the_file_changes() -> None:
    """A table both written and read (or self-referencing) is changed, not referenced."""
    analysis = analyze(
        """\
        CREATE TABLE IF NOT EXISTS tree (id int PRIMARY KEY, parent int REFERENCES tree);
        UPDATE rules SET x = (SELECT max(x) FROM rules);
        """
    )
    assert analysis.tables_referenced == frozenset()
    assert names(analysis, TableAction.REFERENCED) == {"public.tree", "public.rules"}


def test_schema_objects_created_and_dropped() -> None:
    """Sequences, functions, types, domains, extensions, schemas, views and drops are recorded."""
    analysis = analyze(
        """\
        CREATE SEQUENCE IF NOT EXISTS seq;
        CREATE OR REPLACE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
        CREATE TYPE mood AS ENUM ('ok');
        CREATE TYPE pair AS (a int, b int);
        CREATE DOMAIN posint AS int CHECK (VALUE > 0);
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
        CREATE SCHEMA IF NOT EXISTS reporting;
        DROP VIEW IF EXISTS old_view, app.other CASCADE;
        DROP FUNCTION IF EXISTS g(int);
        DROP TRIGGER IF EXISTS trg ON app.t;
        """
    )
    assert objects(analysis, ObjectAction.CREATED) == {
        ("sequence", "public.seq"),
        ("function", "app.f"),
        ("type", "public.mood"),
        ("type", "public.pair"),
        ("domain", "public.posint"),
        ("extension", "pgcrypto"),
        ("schema", "reporting"),
    }
    assert objects(analysis, ObjectAction.DROPPED) == {
        ("view", "public.old_view"),
        ("view", "app.other"),
        ("function", "public.g"),
        ("trigger", "app.trg"),
    }
    assert all(e.cascade for e in analysis.object_effects if e.kind is ObjectKind.VIEW)


def test_alter_table_records_columns_added_and_dropped() -> None:
    """ALTER TABLE ADD/DROP COLUMN are column effects of that table."""
    analysis = analyze("ALTER TABLE rules ADD COLUMN IF NOT EXISTS a int, DROP COLUMN IF EXISTS email;")
    assert [(c.action, str(c.table), c.column) for c in analysis.column_effects] == [
        (ColumnAction.ADDED, "public.rules", "a"),
        (ColumnAction.DROPPED, "public.rules", "email"),
    ]


def test_create_schema_elements_are_created_in_that_schema() -> None:
    """CREATE SCHEMA s CREATE TABLE t ... creates s.t."""
    analysis = analyze("CREATE SCHEMA billing CREATE TABLE invoices (id int);")
    assert names(analysis, TableAction.CREATED) == {"billing.invoices"}


def test_alerting_example_is_clean() -> None:
    """The example migrations have no lint and no down-mismatch, and the expected tables."""
    changed = {}
    for up_path in sorted(EXAMPLES.glob("*/migrations/*.up.sql")):
        down_path = up_path.with_name(up_path.name.replace(".up.sql", ".down.sql"))
        up, down = sql.analyze(up_path.read_text()), sql.analyze(down_path.read_text())
        assert sql.lint(up) == [] and sql.lint(down) == [], up_path.name
        assert sql.down_mismatch(up, down) == [], up_path.name
        changed[up_path.name[:6]] = (names(up, *TableAction), up.tables_referenced)
    assert changed["000006"][1] == {QualifiedName("public", "clients"), QualifiedName("public", "rules")}
    assert changed["000004"][0] == {"public.rules"}


# -- lints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE t (id int);",
        "CREATE TABLE t AS SELECT 1;",
        "SELECT 1 INTO t;",
        "CREATE MATERIALIZED VIEW m AS SELECT 1;",
        "CREATE INDEX i ON t (a);",
        "CREATE INDEX ON t (a);",
        "CREATE SEQUENCE s;",
        "CREATE SCHEMA s;",
        "CREATE EXTENSION pgcrypto;",
        "CREATE VIEW v AS SELECT 1;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1';",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();",
        "CREATE TYPE mood AS ENUM ('ok');",
        "CREATE TYPE pair AS (a int);",
        "CREATE DOMAIN d AS int;",
        "DROP TABLE t;",
        "DROP INDEX i;",
        "DROP TRIGGER tr ON t;",
        "ALTER TABLE t ADD COLUMN a int;",
        "ALTER TABLE t DROP COLUMN a;",
    ],
)
def test_not_idempotent_reports_statements_that_fail_when_run_twice(statement: str) -> None:
    """Each statement that fails (or duplicates) on a second run is a not-idempotent warning."""
    (finding,) = sql.lint(sql.analyze(statement), allow=LOCKS)
    assert (finding.code, finding.severity, finding.line) == ("not-idempotent", "warning", 1)
    assert finding.hint is not None and finding.hint.startswith("write `")


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE IF NOT EXISTS t (id int);",
        "CREATE TEMP TABLE t (id int);",
        "CREATE INDEX IF NOT EXISTS i ON t (a);",
        "CREATE SEQUENCE IF NOT EXISTS s;",
        "CREATE SCHEMA IF NOT EXISTS s;",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto;",
        "CREATE OR REPLACE VIEW v AS SELECT 1;",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS m AS SELECT 1;",
        "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        "CREATE OR REPLACE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();",
        "DROP TABLE IF EXISTS t;",
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS a int;",
        "ALTER TABLE t DROP COLUMN IF EXISTS a;",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
        "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING;",
    ],
)
def test_not_idempotent_is_quiet_on_guarded_statements(statement: str) -> None:
    """IF [NOT] EXISTS, OR REPLACE, temp tables and plain DML are not reported."""
    assert sql.lint(sql.analyze(statement), allow=LOCKS) == []


def test_not_idempotent_hint_gives_the_fixed_statement() -> None:
    """The hint spells the statement with its guard, with the name as written."""
    (finding,) = sql.lint(sql.analyze('CREATE INDEX "Idx" ON app.t (a);'), allow=LOCKS)
    assert finding.hint == 'write `CREATE INDEX IF NOT EXISTS "Idx" ON app.t (...)`'
    (finding,) = sql.lint(sql.analyze("CREATE TYPE mood AS ENUM ('ok');"))
    assert finding.hint is not None and "EXCEPTION WHEN duplicate_object" in finding.hint


def test_add_column_finding_points_at_the_column() -> None:
    """An ADD COLUMN finding points at the column definition, not at ALTER."""
    (finding,) = sql.lint(sql.analyze("ALTER TABLE t\n    ADD COLUMN email text;"))
    assert (finding.line, finding.column) == (2, 16)


def test_transaction_control_is_not_a_lint() -> None:
    """explicit-transaction comes from the reader (for check and the executor alike), not
    from the parse tree's lints, so it is never reported twice."""
    assert codes("SELECT 1;\nBEGIN;\nCOMMIT;\nEND;\nROLLBACK;") == []


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY IF EXISTS i;", "DROP INDEX CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY i;", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY) TABLE t;", "REINDEX CONCURRENTLY"),
        ("REINDEX DATABASE app;", "REINDEX DATABASE"),
        ("VACUUM t;", "VACUUM"),
        ("VACUUM (ANALYZE) t;", "VACUUM"),
        ("CREATE DATABASE other;", "CREATE DATABASE"),
        ("DROP DATABASE IF EXISTS other;", "DROP DATABASE"),
        ("ALTER SYSTEM SET work_mem = '64MB';", "ALTER SYSTEM"),
        ("ALTER TABLE t DETACH PARTITION p CONCURRENTLY;", "DETACH PARTITION"),
        ("ALTER DATABASE app SET TABLESPACE fast;", "SET TABLESPACE"),
        ("CLUSTER;", "CLUSTER without a table"),
    ],
)
def test_statements_that_cannot_run_in_a_transaction_are_reported(statement: str, named: str) -> None:
    """Among other statements, and without no-transaction, such a statement is an error
    that names it, and whose hint is the fix: the directive line, or a file of its own."""
    text = f"CREATE TABLE IF NOT EXISTS t (a int);\n{statement}\n"
    (finding,) = sql.lint(sql.analyze(text), allow=LOCKS)
    assert (finding.code, finding.severity, finding.line) == (
        "concurrently-in-transaction", "error", 2)
    assert named in finding.message
    assert finding.hint is not None
    assert "add the line `-- migcoord:no-transaction` at the top of this file" in finding.hint
    assert "move this statement into a migration of its own" in finding.hint
    assert sql.lint(sql.analyze(text), no_transaction=True, allow=LOCKS) == []
    assert transactions.transaction_fit(text) == TransactionFit(refused=(
        attrs.evolve(sql.analyze(text).hazards[0], hint=finding.hint),))


@pytest.mark.parametrize(
    "statement",
    ["CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);", "VACUUM (ANALYZE) t;",
     "-- VACUUM first\nDROP INDEX CONCURRENTLY IF EXISTS i;\n-- done\n", "ALTER SYSTEM SET x = 1;;",
     "REINDEX (CONCURRENTLY) TABLE t", "CREATE DATABASE other;"],
)
def test_a_file_that_is_only_such_a_statement_runs_alone_outside_a_transaction(
        statement: str) -> None:
    """golang-migrate sends a file as one query, and PostgreSQL runs a one-statement query
    outside any transaction block: such a file is fine, and migcoord runs it outside too."""
    assert codes(statement) == []
    assert transactions.transaction_fit(statement) == TransactionFit(alone=True)


def test_such_a_statement_wrapped_in_begin_and_commit_is_an_error_saying_to_unwrap_it() -> None:
    """golang-migrate would run it inside the wrapper's transaction, and fail."""
    text = "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;\n"
    (finding,) = [f for f in sql.lint(sql.analyze(text), wrapper=True)
                  if f.code == "concurrently-in-transaction"]
    assert finding.line == 2
    assert finding.hint is not None and finding.hint.startswith(
        "delete the BEGIN and the COMMIT around it: alone in its file, it runs outside")
    bigger = sql.lint(sql.analyze(text.replace("COMMIT", "VACUUM t;\nCOMMIT")), wrapper=True,
                      allow=frozenset({"not-idempotent"}))
    assert [(f.line, f.hint is not None and f.hint.startswith(
        "delete the file's BEGIN and COMMIT, then add the line `-- migcoord:no-transaction`"))
        for f in bigger] == [(2, True), (3, True)]


def test_a_file_that_does_not_parse_or_only_mentions_such_words_fits_a_transaction() -> None:
    """Only statements count: a file PostgreSQL cannot parse runs in a transaction, where
    the server reports its error; words in strings and comments are not statements."""
    assert transactions.transaction_fit("VACUUM t;\nSELEC garbage") == TransactionFit()
    assert transactions.transaction_fit("SELECT 'vacuum';") == TransactionFit()
    assert transactions.transaction_fit("-- VACUUM;\nCREATE TABLE t (id int);") == TransactionFit()


@pytest.mark.parametrize(
    "statement",
    ["ANALYZE t;", "REINDEX TABLE t;", "REINDEX (CONCURRENTLY false) TABLE t;", "CLUSTER t USING i;"],
)
def test_statements_that_may_run_in_a_transaction_are_not_reported(statement: str) -> None:
    """ANALYZE, plain REINDEX and CLUSTER of one table run fine in a transaction."""
    assert codes(statement, allow=LOCKS) == []


def test_allow_set_silences_those_codes_only() -> None:
    """Codes in `allow` are not reported; the others still are."""
    analysis = sql.analyze("CREATE INDEX CONCURRENTLY i ON t (c);\nCREATE TABLE t (id int);")
    assert [f.code for f in sql.lint(analysis)] == [
        "concurrently-in-transaction",
        "not-idempotent",
        "not-idempotent",
    ]
    allowed = sql.lint(analysis, allow=frozenset({"not-idempotent"}))
    assert [f.code for f in allowed] == ["concurrently-in-transaction"]


def test_syntax_error_is_an_sql_syntax_finding() -> None:
    """lint reports an unparsable file once, as sql-syntax at the error's position."""
    (finding,) = sql.lint(sql.analyze("SELECT 1;\nSELEC 2;"))
    assert (finding.code, finding.severity, finding.line, finding.column) == (
        "sql-syntax",
        "error",
        2,
        1,
    )
    assert (finding.path, finding.service, finding.version) == (None, None, None)


# -- down-mismatch ---------------------------------------------------------------------


def test_down_that_undoes_the_up_is_clean() -> None:
    """Dropping the table takes its indexes, triggers and policies along; columns dropped back."""
    up = """\
        CREATE TABLE IF NOT EXISTS t (id int);
        CREATE INDEX IF NOT EXISTS t_idx ON t (id);
        CREATE OR REPLACE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f();
        ALTER TABLE other ADD COLUMN IF NOT EXISTS note text;
        CREATE INDEX IF NOT EXISTS other_note_idx ON other (note);
        CREATE OR REPLACE VIEW v AS SELECT * FROM t;
        """
    down = """\
        ALTER TABLE other DROP COLUMN IF EXISTS note;
        DROP TABLE IF EXISTS t CASCADE;
        """
    assert mismatches(up, down) == []


def test_down_that_re_adds_a_dropped_column_is_clean() -> None:
    """Up drops column email, down adds it back: no finding (the alerting example)."""
    up = "ALTER TABLE rules DROP COLUMN IF EXISTS email;"
    down = "ALTER TABLE rules ADD COLUMN IF NOT EXISTS email text;"
    assert mismatches(up, down) == []


def test_down_that_forgets_what_the_up_created_is_reported() -> None:
    """A created table, index, function or added column left in place is a warning."""
    up = """\
        CREATE TABLE IF NOT EXISTS t (id int);
        CREATE INDEX IF NOT EXISTS o_idx ON o (id);
        CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';
        ALTER TABLE o ADD COLUMN IF NOT EXISTS c int;
        ALTER TABLE o DROP COLUMN IF EXISTS gone;
        """
    findings = sql.down_mismatch(analyze(up), analyze("DROP TABLE IF EXISTS t;"))
    assert [f.message for f in findings] == [
        "the up creates index public.o_idx (line 2) but the down does not drop it",
        "the up creates function public.f (line 3) but the down does not drop it",
        "the up adds column c to public.o (line 4) but the down does not drop it",
        "the up drops column gone of public.o (line 5) but the down does not add it back",
    ]
    assert {(f.code, f.severity, f.line) for f in findings} == {("down-mismatch", "warning", None)}
    assert findings[0].hint == "add `DROP INDEX IF EXISTS public.o_idx;` to the down file"


def test_down_that_does_more_than_undo_is_reported_at_its_line() -> None:
    """The down creating, adding or dropping what the up did not touch is reported."""
    up = "CREATE TABLE IF NOT EXISTS t (id int);"
    down = """\
        DROP TABLE IF EXISTS t;
        CREATE TABLE IF NOT EXISTS unrelated (id int);
        ALTER TABLE rules DROP COLUMN IF EXISTS email;
        DROP TABLE IF EXISTS clients;
        """
    findings = sql.down_mismatch(analyze(up), analyze(down))
    assert [(f.line, f.message) for f in findings] == [
        (2, "the down creates table public.unrelated, which the up does not drop"),
        (3, "the down drops column email of public.rules, which the up does not add"),
        (4, "the down drops table public.clients, which the up does not create"),
    ]


def test_rename_must_be_renamed_back() -> None:
    """An up rename needs the down to rename back."""
    up = "ALTER TABLE rules RENAME TO alert_rules;"
    assert mismatches(up, "ALTER TABLE alert_rules RENAME TO rules;") == []
    assert mismatches(up, "SELECT 1;") == [
        "the up renames table public.rules to public.alert_rules (line 1) "
        "but the down does not rename it back"
    ]


def test_down_restoring_a_replaced_function_is_clean() -> None:
    """CREATE OR REPLACE in both files (old body restored) is not a mismatch."""
    function = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT {}';"
    assert mismatches(function.format(2), function.format(1)) == []


def test_up_dropping_an_object_expects_the_down_to_re_create_it() -> None:
    """An up that drops a table or index wants it back in the down."""
    up = "DROP INDEX IF EXISTS old_idx;\nDROP TABLE IF EXISTS legacy;"
    down = "CREATE INDEX IF NOT EXISTS old_idx ON t (a);"
    assert mismatches(up, down) == [
        "the up drops table public.legacy (line 2) but the down does not re-create it"
    ]


def test_opaque_statements_make_down_mismatch_claim_less() -> None:
    """A DO block in the down hides what it undoes; in the up, what the down may re-create."""
    up = "CREATE TABLE IF NOT EXISTS t (id int);"
    down = "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$;"
    assert mismatches(up, down) == []
    assert mismatches("DO $$ BEGIN NULL; END $$;", "CREATE TABLE IF NOT EXISTS t (id int);") == []


def test_down_mismatch_respects_allow_and_skips_unparsable_files() -> None:
    """No down-mismatch when allowed, or when either file has a syntax error."""
    up, down = analyze("CREATE TABLE IF NOT EXISTS t (id int);"), analyze("SELECT 1;")
    assert sql.down_mismatch(up, down) != []
    assert sql.down_mismatch(up, down, allow=frozenset({"down-mismatch"})) == []
    assert sql.down_mismatch(up, analyze("DROP TABEL t")) == []
    assert sql.down_mismatch(analyze("CREATE TABEL t ()"), down) == []


def test_table_created_and_dropped_in_the_same_up_leaves_no_trace() -> None:
    """Objects made and removed within the up need nothing from the down."""
    up = "CREATE TABLE IF NOT EXISTS tmp (id int);\nDROP TABLE IF EXISTS tmp;"
    assert mismatches(up, "") == []
