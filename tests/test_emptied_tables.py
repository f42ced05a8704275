"""Lock hazards after `TRUNCATE` in the same file: in a transaction, TRUNCATE holds its
ACCESS EXCLUSIVE lock until COMMIT, so the table stays empty and what the file does to
it next cannot fail on a row nor take long. A `DELETE` without WHERE gives no such
guarantee, nor does a TRUNCATE in a file that runs outside a transaction. The real
server shows both: another session's INSERT waits behind the TRUNCATE, and gets in
after the DELETE."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from helpers import make_tree, pair, run
from migcoord import sql

TABLE = "CREATE TABLE IF NOT EXISTS licenses (id int PRIMARY KEY, license text);\n"

# (code, a statement on the existing table licenses that is a hazard when it holds rows)
ROW_HAZARDS = [
    ("not-null-without-default",
     "ALTER TABLE licenses ADD COLUMN IF NOT EXISTS exp timestamptz NOT NULL;"),
    ("set-not-null-scan", "ALTER TABLE licenses ALTER COLUMN license SET NOT NULL;"),
    ("unique-without-index",
     "ALTER TABLE licenses ADD CONSTRAINT licenses_license_key UNIQUE (license);"),
    ("validating-constraint",
     "ALTER TABLE licenses ADD CONSTRAINT license_set CHECK (license <> '');"),
    ("volatile-default",
     "ALTER TABLE licenses ADD COLUMN IF NOT EXISTS r float8 DEFAULT random();"),
    ("blocking-index-build", "CREATE INDEX IF NOT EXISTS licenses_license ON licenses (license);"),
]
IDS = [code for code, _ in ROW_HAZARDS]


def codes(text: str, *, no_transaction: bool = False) -> list[str]:
    found = sql.lint(sql.analyze(text), no_transaction=no_transaction,
                     allow=frozenset({"not-idempotent"}))
    return [finding.code for finding in found]


@pytest.mark.parametrize(("code", "hazard"), ROW_HAZARDS, ids=IDS)
def test_no_row_hazard_after_a_truncate_in_a_transaction(code: str, hazard: str) -> None:
    assert codes(hazard) == [code]
    assert codes(f"TRUNCATE licenses;\n{hazard}") == []
    assert codes(f"TRUNCATE TABLE public.licenses RESTART IDENTITY;\n{hazard}") == []


@pytest.mark.parametrize(("code", "hazard"), ROW_HAZARDS, ids=IDS)
def test_outside_a_transaction_the_truncate_keeps_nothing_empty(code: str, hazard: str) -> None:
    """With `-- migcoord:no-transaction` TRUNCATE's lock ends with it: still reported,
    and the message says why the TRUNCATE does not help."""
    [finding] = sql.lint(sql.analyze(f"TRUNCATE licenses;\n{hazard}"), no_transaction=True,
                         allow=frozenset({"not-idempotent"}))
    assert finding.code == code
    assert finding.message.endswith(
        "(the TRUNCATE at line 1 does not keep it empty: this file runs outside a "
        "transaction, so its lock ends with it)")


@pytest.mark.parametrize("emptied", [
    "DELETE FROM licenses;",
    "DELETE FROM licenses WHERE id > 0;",
    "TRUNCATE other;",
    "TRUNCATE licenses_2024;",  # a partition: the parent's other partitions keep rows
    "TRUNCATE ONLY licenses;",  # its inheritance children keep theirs
    "TRUNCATE licenses;\nINSERT INTO licenses VALUES (1, 'x');",
    "TRUNCATE licenses;\nCOPY licenses FROM '/tmp/licenses.csv';",
    "TRUNCATE licenses;\nWITH moved AS (DELETE FROM old RETURNING *) "
    "INSERT INTO licenses SELECT * FROM moved;",
    "TRUNCATE licenses;\nDO $$ BEGIN PERFORM 1; END $$;",
    "TRUNCATE licenses;\nCOMMIT;",
    "SAVEPOINT s;\nTRUNCATE licenses;\nROLLBACK TO SAVEPOINT s;",
    "TRUNCATE licenses;\nALTER TABLE licenses RENAME TO old_licenses;\n"
    "ALTER TABLE new_licenses RENAME TO licenses;",
    "TRUNCATE licenses;\nDROP TABLE licenses;\nALTER TABLE staged RENAME TO licenses;",
], ids=lambda text: text.replace("\n", " ")[:60])
def test_what_does_not_leave_the_table_empty_keeps_the_warning(emptied: str) -> None:
    """A DELETE, another table, a partition, ONLY, rows written since, code that may write
    them, the transaction ended or rolled back, another table under the name."""
    hazard = "ALTER TABLE licenses ADD COLUMN IF NOT EXISTS exp timestamptz NOT NULL;"
    assert codes(f"{emptied}\n{hazard}") == ["not-null-without-default"]


def test_what_keeps_it_empty_is_followed() -> None:
    """`TRUNCATE a, b` empties both; a rename carries it; a DELETE or UPDATE of the table
    writes no row into it; `ONLY t` after `TRUNCATE ONLY t` is on t alone; a TRUNCATE
    after the statement does not count."""
    add = "ALTER TABLE {} ADD COLUMN IF NOT EXISTS exp timestamptz NOT NULL;"
    assert codes("TRUNCATE keys, licenses CASCADE;\n" + add.format("licenses")
                 + "\n" + add.format("keys")) == []
    assert codes("TRUNCATE licenses;\nALTER TABLE licenses RENAME TO grants;\n"
                 + add.format("grants")) == []
    assert codes("TRUNCATE licenses;\nDELETE FROM licenses WHERE id = 1;\n"
                 "UPDATE licenses SET license = '';\n" + add.format("licenses")) == []
    assert codes("TRUNCATE ONLY licenses;\n" + add.format("ONLY licenses")) == []
    assert codes(add.format("licenses") + "\nTRUNCATE licenses;") == [
        "not-null-without-default"]
    # The table a CASCADE also empties is not known: still reported.
    assert codes("TRUNCATE licenses CASCADE;\n" + add.format("grants")) == [
        "not-null-without-default"]


def test_a_delete_without_where_is_said_to_leave_room_for_new_rows() -> None:
    [finding] = sql.lint(sql.analyze(
        "DELETE FROM licenses;\n"
        "ALTER TABLE licenses ADD COLUMN IF NOT EXISTS jwt text NOT NULL;"))
    assert finding.code == "not-null-without-default"
    assert finding.message.endswith(
        "; the DELETE at line 1 does not keep it empty: other sessions may insert rows "
        "after it (in a transaction, `TRUNCATE licenses` would hold them off until COMMIT)")
    # With a WHERE, nothing is said about it.
    [kept] = sql.lint(sql.analyze(
        "DELETE FROM licenses WHERE id = 1;\n"
        "ALTER TABLE licenses ADD COLUMN IF NOT EXISTS jwt text NOT NULL;"))
    assert kept.message.endswith("(the new column is NULL in every existing row)")


CONFIG = """\
version_width = 4

[services.app]
migrations = "app/migrations"
"""


def check_findings(root: Path) -> list[tuple[str, str, int]]:
    result = run(["check", "--format", "json"], cwd=root)
    assert "Traceback" not in result.stderr
    found: list[dict[str, Any]] = result.json()["findings"]
    return [(f["code"], Path(f["path"]).name, f["line"]) for f in found
            if f["code"] != "not-idempotent"]


def test_check_on_a_tree_follows_the_truncate(tmp_path: Path) -> None:
    """The reproduction: TRUNCATE then NOT NULL column, SET NOT NULL, UNIQUE, a type
    change: none reported; the DELETE, the no-transaction file and the down that
    narrows the type without a TRUNCATE still are."""
    constrain = ("TRUNCATE licenses;\n"
                 "ALTER TABLE licenses ALTER COLUMN license SET NOT NULL;\n"
                 "ALTER TABLE licenses ADD CONSTRAINT licenses_license_key UNIQUE (license);\n"
                 "ALTER TABLE licenses ALTER COLUMN id TYPE bigint;\n")
    unconstrain = ("ALTER TABLE licenses DROP CONSTRAINT IF EXISTS licenses_license_key;\n"
                   "ALTER TABLE licenses ALTER COLUMN license DROP NOT NULL;\n"
                   "ALTER TABLE licenses ALTER COLUMN id TYPE int;\n")
    root = make_tree(tmp_path, {
        **pair("app", "0001", "licenses", TABLE, "DROP TABLE IF EXISTS licenses;\n"),
        **pair("app", "0002", "delete_then_add", "DELETE FROM licenses;\nALTER TABLE licenses "
               "ADD COLUMN IF NOT EXISTS jwt text NOT NULL;\n",
               "ALTER TABLE licenses DROP COLUMN IF EXISTS jwt;\n"),
        **pair("app", "0003", "truncate_then_add", "TRUNCATE licenses;\nALTER TABLE licenses "
               "ADD COLUMN IF NOT EXISTS exp timestamptz NOT NULL;\n",
               "ALTER TABLE licenses DROP COLUMN IF EXISTS exp;\n"),
        **pair("app", "0004", "truncate_then_constrain", constrain, unconstrain),
        **pair("app", "0005", "outside", "-- migcoord:no-transaction\n"
               + constrain.replace("bigint", "numeric"),
               "-- migcoord:no-transaction\n" + unconstrain.replace("int;", "bigint;"))},
        config=CONFIG)
    assert check_findings(root) == [
        ("not-null-without-default", "0002_delete_then_add.up.sql", 2),
        ("rewriting-type-change", "0004_truncate_then_constrain.down.sql", 3),
        ("rewriting-type-change", "0005_outside.down.sql", 4),
        ("set-not-null-scan", "0005_outside.up.sql", 3),
        ("unique-without-index", "0005_outside.up.sql", 4),
        ("rewriting-type-change", "0005_outside.up.sql", 5),
    ]
    result = run(["check", "--format", "json"], cwd=root)
    [type_change] = [f for f in result.json()["findings"]
                     if f["code"] == "rewriting-type-change" and f["line"] == 5]
    assert "the TRUNCATE at line 2 does not keep it empty" in type_change["message"]


def test_postgresql_holds_rows_off_after_truncate_but_not_after_delete(dsn: str) -> None:
    """What the rule relies on: in a transaction, another session's INSERT waits behind
    TRUNCATE (its lock_timeout ends the wait), so the NOT NULL column is added; after a
    DELETE the INSERT gets in and the same ALTER fails on its row."""
    add = "ALTER TABLE licenses ADD COLUMN exp timestamptz NOT NULL"
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute(TABLE + "INSERT INTO licenses VALUES (1, 'a');")
    with psycopg.connect(dsn) as migration, psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SET lock_timeout = '200ms'")
        migration.execute("TRUNCATE licenses")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("INSERT INTO licenses VALUES (2, 'b')")
        migration.execute(add)
        migration.commit()

        migration.execute("DELETE FROM licenses")
        other.execute("INSERT INTO licenses VALUES (3, 'c', now())")
        migration.execute("ALTER TABLE licenses DROP COLUMN exp")
        with pytest.raises(psycopg.errors.NotNullViolation):
            migration.execute(add)
        migration.rollback()
