"""Lock hazards and breaking changes: each lint fires on the hazard, not on its safe form,
not on a table created earlier in the same file; and what the lints claim about
PostgreSQL (a rewrite, a failure, a truncated name) is checked on the real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers import copy_example, make_tree, pair, run
from migcoord import sql
from migcoord.sql.rewrites import TypeSpec, type_change_rewrites

EXISTING = "CREATE TABLE IF NOT EXISTS t (id bigint, a int, b text, c text);\n"


def lock_codes(text: str) -> list[str]:
    """The codes `sql.lint` reports for `text`, but not-idempotent and where statements
    fit a transaction (beside the point here)."""
    return [f.code for f in sql.lint(sql.analyze(text), no_transaction=True,
                                     allow=frozenset({"not-idempotent"}))]


# (code, hazard on the existing table t, its safe form)
CASES = [
    ("blocking-index-build", "CREATE INDEX i ON t (a);", "CREATE INDEX CONCURRENTLY i ON t (a);"),
    ("blocking-index-build", "CREATE UNIQUE INDEX i ON t (a);",
     "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a);"),
    ("blocking-index-drop", "DROP INDEX i;", "DROP INDEX CONCURRENTLY i;"),
    ("validating-constraint", "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES o (id);",
     "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES o (id) NOT VALID;"),
    ("validating-constraint", "ALTER TABLE t ADD CONSTRAINT k CHECK (a > 0);",
     "ALTER TABLE t ADD CONSTRAINT k CHECK (a > 0) NOT VALID;"),
    ("validating-constraint", "ALTER TABLE t ADD COLUMN d bigint REFERENCES o (id);",
     "ALTER TABLE t ADD COLUMN d bigint;"),
    ("set-not-null-scan", "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
     "ALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
     "ALTER TABLE t VALIDATE CONSTRAINT a_nn;\nALTER TABLE t ALTER COLUMN a SET NOT NULL;"),
    ("not-null-without-default", "ALTER TABLE t ADD COLUMN d int NOT NULL;",
     "ALTER TABLE t ADD COLUMN d int NOT NULL DEFAULT 0;"),
    ("volatile-default", "ALTER TABLE t ADD COLUMN d uuid DEFAULT gen_random_uuid();",
     "ALTER TABLE t ADD COLUMN d timestamptz DEFAULT now();"),
    ("volatile-default", "ALTER TABLE t ADD COLUMN d double precision DEFAULT random();",
     "ALTER TABLE t ADD COLUMN d timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP;"),
    ("volatile-default", "ALTER TABLE t ADD COLUMN d bigserial;", "ALTER TABLE t ADD COLUMN d bigint;"),
    ("volatile-default", "ALTER TABLE t ADD COLUMN d int GENERATED ALWAYS AS IDENTITY;",
     "ALTER TABLE t ADD COLUMN d int;"),
    ("volatile-default", "ALTER TABLE t ADD COLUMN d int GENERATED ALWAYS AS (a * 2) STORED;",
     "ALTER TABLE t ADD COLUMN d int DEFAULT 2;"),
    ("unique-without-index", "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a);",
     "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX u;"),
    ("unique-without-index", "ALTER TABLE t ADD PRIMARY KEY (id);",
     "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey;"),
    ("blocking-maintenance", "VACUUM FULL t;", "VACUUM t;"),
    ("blocking-maintenance", "CLUSTER t USING i;", "ANALYZE t;"),
    ("blocking-maintenance", "REINDEX TABLE t;", "REINDEX TABLE CONCURRENTLY t;"),
    ("blocking-maintenance", "REINDEX (CONCURRENTLY false) INDEX i;", "REINDEX (CONCURRENTLY) INDEX i;"),
]
IDS = [f"{code}:{hazard[:40]}" for code, hazard, _ in CASES]


@pytest.mark.parametrize(("code", "hazard", "safe"), CASES, ids=IDS)
def test_each_lock_lint_fires_on_an_existing_table(code: str, hazard: str, safe: str) -> None:
    """The hazard alone in its file is reported once, as a warning with a hint."""
    [finding] = [f for f in sql.lint(sql.analyze(hazard)) if f.code == code]
    assert finding.severity == "warning"
    assert finding.hint


@pytest.mark.parametrize(("code", "hazard", "safe"), CASES, ids=IDS)
def test_each_lock_lint_is_quiet_on_the_safe_form(code: str, hazard: str, safe: str) -> None:
    """The safe form reports no lock hazard at all."""
    assert lock_codes(safe) == [], safe


@pytest.mark.parametrize(("code", "hazard", "safe"), CASES, ids=IDS)
def test_each_lock_lint_is_quiet_on_a_table_created_in_the_same_file(
        code: str, hazard: str, safe: str) -> None:
    """A table created earlier in the file is empty and held by no one."""
    created = "CREATE TABLE t (id bigint, a int);\nCREATE INDEX i ON t (a);\n"
    assert lock_codes(created + hazard) == []
    renamed = "CREATE TABLE n (id bigint, a int);\nALTER TABLE n RENAME TO t;\n"
    if "INDEX i" not in hazard:  # the index of the first form only
        assert lock_codes(renamed + hazard) == []


def test_a_refresh_of_a_view_the_file_created_is_quiet() -> None:
    """REFRESH without CONCURRENTLY is a hazard on an existing view only."""
    assert lock_codes("REFRESH MATERIALIZED VIEW v;") == ["blocking-maintenance"]
    assert lock_codes("CREATE MATERIALIZED VIEW v AS SELECT 1;\nREFRESH MATERIALIZED VIEW v;") == []


def test_set_not_null_needs_the_check_of_that_column() -> None:
    """A validated CHECK on another column, or an unvalidated one, does not help."""
    other = ("ALTER TABLE t ADD CONSTRAINT b_nn CHECK (b IS NOT NULL) NOT VALID;\n"
             "ALTER TABLE t VALIDATE CONSTRAINT b_nn;\n")
    assert "set-not-null-scan" in lock_codes(other + "ALTER TABLE t ALTER COLUMN a SET NOT NULL;")
    unvalidated = "ALTER TABLE t ADD CONSTRAINT a_nn CHECK (a IS NOT NULL) NOT VALID;\n"
    assert "set-not-null-scan" in lock_codes(unvalidated + "ALTER TABLE t ALTER COLUMN a SET NOT NULL;")
    # Added by an earlier migration, validated here: its text is not in this file.
    assert lock_codes("ALTER TABLE t VALIDATE CONSTRAINT a_nn;\n"
                      "ALTER TABLE t ALTER COLUMN a SET NOT NULL;") == []


def test_findings_point_at_the_statement_and_say_the_safe_form() -> None:
    """Line and column of the constraint, and the hint spells the statement to write."""
    [finding] = sql.lint(sql.analyze(
        "-- add the key\nALTER TABLE t\n    ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES o (id);"))
    assert (finding.line, finding.column) == (3, 9)  # at CONSTRAINT
    assert finding.hint is not None
    assert "ADD CONSTRAINT f FOREIGN KEY (...) NOT VALID" in finding.hint
    assert "VALIDATE CONSTRAINT f" in finding.hint
    [index] = [f for f in sql.lint(sql.analyze("CREATE INDEX i ON app.t (a);"))
               if f.code == "blocking-index-build"]
    assert index.hint is not None and index.hint.startswith(
        "write `CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON app.t (...);` in a migration "
        "file of its own")


def test_identifiers_over_63_bytes_are_reported_where_written() -> None:
    """Unquoted, quoted and multi-byte names count in UTF-8 bytes; strings and comments
    are not identifiers."""
    long_name = "a" * 64
    text = (f"-- {long_name}\nSELECT '{long_name}';\n"
            f'CREATE TABLE IF NOT EXISTS "{"B" * 64}" (x int);\n'
            f"CREATE TABLE IF NOT EXISTS {'é' * 32} (x int);\n"
            f"CREATE TABLE IF NOT EXISTS {'a' * 63} (x int);\n")
    found = [(f.line, f.column) for f in sql.lint(sql.analyze(text))
             if f.code == "identifier-too-long"]
    assert found == [(3, 28), (4, 28)]


def test_crlf_and_a_byte_order_mark_keep_positions(tmp_path: Path) -> None:
    """A Windows file (BOM, CRLF) reports the same line and column as its LF twin."""
    up = "-- index\nCREATE INDEX IF NOT EXISTS notifications_fp_idx\n  ON notifications (fingerprint);\n"
    root = planted(tmp_path, pair("aggregator", "000007", "index_fp", up,
                                  "DROP INDEX CONCURRENTLY IF EXISTS notifications_fp_idx;\n"))
    lf = findings(root)
    path = root / "aggregator/migrations/000007_index_fp.up.sql"
    path.write_bytes(b"\xef\xbb\xbf" + up.replace("\n", "\r\n").encode())
    assert findings(root) == lf
    assert [(f["code"], f["line"], f["column"]) for f in lf[1]] == [("blocking-index-build", 2, 1)]


# -- the type-change rules --------------------------------------------------------------------


def spec(written: str) -> TypeSpec:
    [statement] = sql.analyze(f"CREATE TABLE x (c {written});").statements
    [note] = statement.column_notes
    assert note.type is not None
    return note.type


# (old type, new type, rewrites): each row is also checked against the server below.
TYPE_CHANGES = [
    ("varchar(10)", "varchar(20)", False),
    ("varchar(20)", "varchar(10)", True),
    ("varchar(10)", "varchar", False),
    ("varchar(10)", "text", False),
    ("text", "varchar", False),
    ("text", "varchar(100)", True),
    ("numeric(10,2)", "numeric(12,2)", False),
    ("numeric(10,2)", "numeric(12,3)", True),
    ("numeric(10,2)", "numeric", False),
    ("numeric", "numeric(10,2)", True),
    ("integer", "bigint", True),
    ("bigint", "integer", True),
    ("timestamp(3)", "timestamp(6)", False),
    ("timestamptz(6)", "timestamptz(3)", True),
    ("cidr", "inet", False),
    ("char(5)", "char(10)", True),
    ("smallint", "integer", True),
    ("varbit(4)", "varbit(8)", False),
]


@pytest.mark.parametrize(("old", "new", "rewrites"), TYPE_CHANGES)
def test_type_change_rewrites_as_postgresql_decides(dsn: str, old: str, new: str,
                                                    rewrites: bool) -> None:
    """The rule agrees with the server: the table's storage (relfilenode) changes exactly
    when the rule says it is rewritten."""
    claimed = type_change_rewrites(spec(old), spec(new), plain_using=True) is not None
    assert claimed == rewrites
    value = {"cidr": "'10.0.0.0/8'", "varbit(4)": "B'1010'", "timestamp(3)": "now()",
             "timestamptz(6)": "now()"}.get(old, "'1'")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'Europe/Paris'")
        conn.execute(f"CREATE TABLE x (c {old}); INSERT INTO x VALUES ({value})")
        before = conn.execute("SELECT pg_relation_filenode('x')").fetchone()
        conn.execute(f"ALTER TABLE x ALTER COLUMN c TYPE {new}")
        after = conn.execute("SELECT pg_relation_filenode('x')").fetchone()
    assert (before != after) == rewrites


def test_a_using_expression_rewrites_unless_it_only_names_the_column() -> None:
    """`USING c::bigint` is the default conversion; `USING c * 2` is a rewrite even where
    the types alone would be free."""
    def note(text: str) -> Any:
        [statement] = sql.analyze(text).statements
        return statement.column_notes[0]

    plain = note("ALTER TABLE t ALTER COLUMN c TYPE varchar(20) USING c::varchar(20);")
    assert plain.plain_using
    computed = note("ALTER TABLE t ALTER COLUMN c TYPE varchar(20) USING lower(c);")
    assert not computed.plain_using
    assert type_change_rewrites(spec("varchar(10)"), spec("varchar(20)"),
                                plain_using=False) is not None


def test_an_unknown_old_type_is_reported_only_when_nothing_reaches_the_new_one_for_free() -> None:
    """bigint can only be reached by converting; varchar(100) might be a widening."""
    assert type_change_rewrites(None, spec("bigint"), plain_using=True) is not None
    assert type_change_rewrites(None, spec("varchar(100)"), plain_using=True) is None
    assert type_change_rewrites(spec("mood"), spec("text"), plain_using=True) is None


# -- what the lints claim, on the server ----------------------------------------------------------


def test_what_the_add_column_lints_claim_holds_on_the_server(dsn: str) -> None:
    """NOT NULL without a default fails on a table with a row; a volatile default rewrites
    the table; now() (STABLE) does not; an over-long name is cut to 63 bytes."""
    assert lock_codes("ALTER TABLE t ADD COLUMN d timestamptz DEFAULT now();") == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        with pytest.raises(psycopg.errors.NotNullViolation):
            conn.execute("ALTER TABLE t ADD COLUMN d int NOT NULL")

        def filenode() -> Any:
            return conn.execute("SELECT pg_relation_filenode('t')").fetchone()

        before = filenode()
        conn.execute("ALTER TABLE t ADD COLUMN d timestamptz DEFAULT now()")
        assert filenode() == before
        conn.execute("ALTER TABLE t ADD COLUMN e uuid DEFAULT gen_random_uuid()")
        assert filenode() != before
        conn.execute(f"CREATE TABLE {'a' * 70} (x int)")
        assert conn.execute("SELECT to_regclass(%s)", ("a" * 63,)).fetchone() == (f"{'a' * 63}",)


# -- whose table, and breaking changes (through `migcoord check`) ---------------------------------


def planted(tmp_path: Path, files: dict[str, str]) -> Path:
    root = copy_example(tmp_path / "alerting")
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert run(["sum"], cwd=root).code == 0
    assert run(["docs"], cwd=root).code == 0
    return root


def findings(root: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = run(["check", "--format", "json", *args], cwd=root)
    assert "Traceback" not in result.stderr, result.stderr
    return result.code, result.json()["findings"]


def test_a_foreign_key_to_another_services_table_says_whose_it_is(tmp_path: Path) -> None:
    """aggregator's FK to rules locks rule-service's table: the warning names rule-service."""
    root = planted(tmp_path, pair(
        "aggregator", "000007", "link_rules",
        "-- migcoord:depends rule-service:000002\n"
        "ALTER TABLE notifications ADD CONSTRAINT notifications_rule_fk\n"
        "    FOREIGN KEY (rule_id) REFERENCES rules (id);\n",
        "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_rule_fk;\n"))
    code, found = findings(root)
    assert code == 0
    [finding] = found
    assert (finding["code"], finding["line"], finding["column"]) == ("validating-constraint", 2, 31)
    assert "and so does every write to rules" in finding["message"]
    assert finding["message"].endswith("(rules is rule-service's table)")
    assert findings(root, "--strict")[0] == 1


def test_a_lock_warning_is_allowed_per_migration_and_the_fixed_form_is_clean(tmp_path: Path) -> None:
    """`-- migcoord:allow CODE` silences it; the NOT VALID + VALIDATE pair is clean."""
    body = ("ALTER TABLE notifications ADD CONSTRAINT notifications_rule_fk\n"
            "    FOREIGN KEY (rule_id) REFERENCES rules (id)")
    down = "ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_rule_fk;\n"
    allowed = planted(tmp_path / "a", pair(
        "aggregator", "000007", "link_rules",
        "-- Small table: validated in place.\n-- migcoord:allow validating-constraint\n"
        "-- migcoord:depends rule-service:000002\n" + body + ";\n", down))
    assert findings(allowed, "--strict") == (0, [])
    fixed = planted(tmp_path / "f", {
        **pair("aggregator", "000007", "link_rules",
               "-- migcoord:depends rule-service:000002\n" + body + " NOT VALID;\n", down),
        **pair("aggregator", "000008", "validate_link_rules",
               "ALTER TABLE notifications VALIDATE CONSTRAINT notifications_rule_fk;\n",
               "SELECT 1;\n")})
    assert findings(fixed, "--strict") == (0, [])


def test_dropping_a_column_another_service_uses_is_a_breaking_drop(tmp_path: Path) -> None:
    """rule-service drops clients.timezone after aggregator:000006 started using clients;
    the same drop before any other service used the table is not reported."""
    root = planted(tmp_path, pair(
        "rule-service", "000007", "drop_client_timezone",
        "ALTER TABLE clients DROP COLUMN IF EXISTS timezone;\n",
        "ALTER TABLE clients ADD COLUMN IF NOT EXISTS timezone text NOT NULL DEFAULT 'UTC';\n"))
    code, found = findings(root)
    assert code == 0
    [finding] = [f for f in found if f["code"] == "breaking-drop"]
    assert finding["line"] == 1
    assert finding["message"].startswith(
        "rule-service:000007 drops column timezone of clients, which aggregator also uses "
        "(first in aggregator:000006)")
    assert "-- migcoord:allow breaking-drop" in finding["hint"]
    # examples/alerting's 000004 and 000005 drop columns before aggregator existed: clean.
    assert findings(copy_example(tmp_path / "clean"), "--strict") == (0, [])


def test_renaming_a_table_another_service_uses_is_a_breaking_rename(tmp_path: Path) -> None:
    """A table or column rename, with the new name in the message."""
    root = planted(tmp_path, {
        **pair("rule-service", "000007", "rename_rules",
               "ALTER TABLE rules RENAME TO alert_rules;\n",
               "ALTER TABLE alert_rules RENAME TO rules;\n"),
        **pair("rule-service", "000008", "rename_slug",
               "ALTER TABLE clients RENAME COLUMN slug TO handle;\n",
               "ALTER TABLE clients RENAME COLUMN handle TO slug;\n")})
    found = [f for f in findings(root)[1] if f["code"] == "breaking-rename"]
    assert [(f["version"], f["message"].split(", which")[0]) for f in found] == [
        (7, "rule-service:000007 renames table rules to alert_rules"),
        (8, "rule-service:000008 renames column slug of clients to handle")]


def test_a_type_change_is_judged_on_the_type_an_earlier_migration_gave(tmp_path: Path) -> None:
    """rules.metric is text (000002): varchar(100) rewrites, varchar does not; a serial id
    is an integer, so bigint rewrites."""
    root = planted(tmp_path, {
        **pair("rule-service", "000007", "retype",
               "ALTER TABLE rules ALTER COLUMN metric TYPE varchar(100);\n"
               "ALTER TABLE rules ALTER COLUMN name TYPE varchar;\n",
               "ALTER TABLE rules ALTER COLUMN metric TYPE text;\n"
               "ALTER TABLE rules ALTER COLUMN name TYPE text;\n")})
    found = [f for f in findings(root)[1] if f["code"] == "rewriting-type-change"]
    assert [(f["path"].endswith(".up.sql"), f["line"]) for f in found] == [(True, 1)]
    assert "text -> varchar(100) applies the new length limit to every row" in found[0]["message"]


def test_a_down_that_tears_tables_down_is_not_told_to_drop_their_indexes_concurrently(
        tmp_path: Path) -> None:
    """Atlas's downs drop each index, then its table; a down that only drops an index is
    still warned."""
    make_tree(tmp_path, {
        **pair("rule-service", "000001", "events",
               "CREATE TABLE IF NOT EXISTS events (id bigint);\n"
               "CREATE INDEX IF NOT EXISTS events_id ON events (id);\n",
               'DROP INDEX "events_id";\nDROP TABLE "events";\n'),
        **pair("rule-service", "000002", "index",
               "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_id2 ON events (id);\n",
               "DROP INDEX IF EXISTS events_id2;\n"),
    })
    found = [(f["code"], f["version"]) for f in
             run(["check", "--format", "json"], cwd=tmp_path).json()["findings"]
             if f["code"] == "blocking-index-drop"]
    assert found == [("blocking-index-drop", 2)]
