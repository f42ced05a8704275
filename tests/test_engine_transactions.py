"""Transaction control in migration files, against the real server.

migcoord runs each migration and its history row in one transaction. What would break
that is refused before anything is sent, in up and down files alike; the whole-file
`BEGIN; ... COMMIT;` that golang-migrate's README recommends runs as its body; and a file
whose only statement cannot run in a transaction runs outside one, as golang-migrate
runs it, recorded as a no-transaction migration is.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from helpers import make_tree, pair, run
from migcoord import Coordinator, MigrationFailed
from migcoord.errors import InvalidMigrationFiles
from test_engine_support import (
    AB_CONFIG,
    env,
    events,
    history,
    query,
    schema_snapshot,
    table_exists,
)

ITEMS = "CREATE TABLE IF NOT EXISTS items (id int, note text);\n"
ITEMS_DOWN = "DROP TABLE IF EXISTS items;\n"


def tree(root: Path, up: str, down: str = "SELECT 1;\n") -> Path:
    """Migration 1 makes `items`; migration 2 is the one under test."""
    return make_tree(root, {
        **pair("a", "000001", "items", ITEMS, ITEMS_DOWN),
        **pair("a", "000002", "change", up, down),
    }, config=AB_CONFIG)


def coordinator(root: Path) -> Coordinator:
    return Coordinator.load(root / "migcoord.toml", environ={})


def items(dsn: str) -> list[tuple[int, str]]:
    return [(row[0], row[1]) for row in query(dsn, "SELECT id, note FROM items ORDER BY id")]


def rows(dsn: str) -> list[tuple[int, str]]:
    return [(row["version"], row["status"]) for row in history(dsn)]


def explicit_findings(root: Path) -> list[tuple[str, int]]:
    return [(finding.path.name if finding.path else "", finding.line or 0)
            for finding in coordinator(root).check() if finding.code == "explicit-transaction"]


def golang_migrate_apply(dsn: str, root: Path, direction: str = "up") -> None:
    """Apply every file of service `a` as golang-migrate's postgres driver does: each
    file as one simple query, in autocommit, in version order."""
    files = sorted((root / "a" / "migrations").glob(f"*.{direction}.sql"),
                   reverse=direction == "down")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in files:
            conn.execute(path.read_text().encode())


# -- refused before anything is sent ---------------------------------------------------------

CONTROLS = ["COMMIT", "END", "ROLLBACK", "ABORT", "COMMIT AND CHAIN",
            "PREPARE TRANSACTION 'mc_parked'", "COMMIT PREPARED 'mc_parked'",
            "ROLLBACK PREPARED 'mc_parked'", "START TRANSACTION", "BEGIN",
            "BEGIN ISOLATION LEVEL SERIALIZABLE",
            # Not transaction control, but they release migcoord's migration lock.
            "DISCARD ALL", "SELECT pg_advisory_unlock_all()",
            "DO $$ BEGIN PERFORM pg_catalog.PG_ADVISORY_UNLOCK_ALL(); END $$"]
NO_TRANSACTION = "-- migcoord:no-transaction\n"


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("header", ["", NO_TRANSACTION], ids=["in-transaction", "no-transaction"])
def test_up_refuses_transaction_control_before_sending_anything(
        tmp_path: Path, dsn: str, control: str, header: str) -> None:
    """The INSERT before it would have run (and, after a COMMIT, stayed): nothing of the
    run is sent, and the refusal carries `check`'s own finding for the statement."""
    up = (f"{header}INSERT INTO items VALUES (1, 'before');\n{control};\n"
          "INSERT INTO items VALUES (2, 'after');\n")
    root = tree(tmp_path, up)
    line = up.count("\n", 0, up.index(control)) + 1
    assert explicit_findings(root) == [("000002_change.up.sql", line)]

    with pytest.raises(InvalidMigrationFiles) as refused:
        coordinator(root).up("a", dsn=dsn)

    assert [(f.code, f.line) for f in refused.value.findings] == [("explicit-transaction", line)]
    assert f"000002_change.up.sql:{line}:1: error: explicit-transaction" in refused.value.message
    assert rows(dsn) == []
    assert not table_exists(dsn, "items")  # migration 1 was not run either
    assert [e["action"] for e in events(dsn) if e["version"] == 2] == []


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("header", ["", NO_TRANSACTION], ids=["in-transaction", "no-transaction"])
def test_down_refuses_transaction_control_before_sending_anything(
        tmp_path: Path, dsn: str, control: str, header: str) -> None:
    """A COMMIT in a down would commit the rollback without deleting its row (and
    report a later error as "rolled back"): refused, the row and the data stay."""
    down = f"{header}DELETE FROM items;\n{control};\nSELECT 1/0;\n"
    root = tree(tmp_path, "INSERT INTO items VALUES (1, 'kept');\n", down)
    coordinator(root).up("a", dsn=dsn)
    line = down.count("\n", 0, down.index(control)) + 1
    assert explicit_findings(root) == [("000002_change.down.sql", line)]

    with pytest.raises(InvalidMigrationFiles) as refused:
        coordinator(root).down("a", dsn=dsn)

    assert [(f.code, f.line) for f in refused.value.findings] == [("explicit-transaction", line)]
    assert f"000002_change.down.sql:{line}:1: error: explicit-transaction" in refused.value.message
    assert rows(dsn) == [(1, "applied"), (2, "applied")]
    assert items(dsn) == [(1, "kept")]


@pytest.mark.parametrize("control", ["COMMIT", "BEGIN", "PREPARE TRANSACTION 'mc_parked'",
                                     "ROLLBACK PREPARED 'mc_parked'", "DISCARD ALL"])
def test_a_file_that_is_only_transaction_control_is_refused(
        tmp_path: Path, dsn: str, control: str) -> None:
    """A one-statement file is sent as one query outside a transaction only when its
    statement cannot run in one; transaction control is refused first."""
    root = tree(tmp_path, f"{control};\n")
    with pytest.raises(InvalidMigrationFiles, match="explicit-transaction"):
        coordinator(root).up("a", dsn=dsn)
    assert rows(dsn) == []


def test_the_cli_refuses_with_the_position_message_and_hint(tmp_path: Path, dsn: str) -> None:
    """`migcoord up`: exit 1, `path:line:col: ... message` as check words it, and the fix."""
    root = tree(tmp_path, "INSERT INTO items VALUES (1, 'x');\n  PREPARE TRANSACTION 'mc';\n")

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1
    assert ("000002_change.up.sql:2:3: error: explicit-transaction: PREPARE TRANSACTION would "
            "park this migration's changes in a prepared transaction while its history row "
            "records it applied" in result.stderr)
    assert "two-phase commit" in result.stderr
    assert "refused before anything was sent" in result.stderr
    assert rows(dsn) == []


LEGAL = """\
INSERT INTO items VALUES (1, 'kept');
SAVEPOINT s;
INSERT INTO items VALUES (2, 'undone');
ROLLBACK TO SAVEPOINT s;
RELEASE SAVEPOINT s;
DO $$ BEGIN INSERT INTO items VALUES (3, 'do block'); END $$;
CREATE FUNCTION add_item(i int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO items VALUES (i, 'function');
END;
$$;
SELECT add_item(4);
CREATE PROCEDURE add_atomic() LANGUAGE sql
BEGIN ATOMIC
  INSERT INTO items VALUES (5, 'atomic');
END;
CALL add_atomic();
"""


def test_savepoints_and_begin_inside_bodies_run_inside_the_migration(
        tmp_path: Path, dsn: str) -> None:
    """SAVEPOINT, ROLLBACK TO, the BEGIN of a DO block or a function body, BEGIN ATOMIC:
    legal, not reported, and applied with the migration."""
    root = tree(tmp_path, LEGAL, "DROP PROCEDURE add_atomic;\nDROP FUNCTION add_item;\n")
    assert explicit_findings(root) == []

    coordinator(root).up("a", dsn=dsn)

    assert items(dsn) == [(1, "kept"), (3, "do block"), (4, "function"), (5, "atomic")]
    assert rows(dsn) == [(1, "applied"), (2, "applied")]


@pytest.mark.parametrize("escape", [
    "DO $$ BEGIN COMMIT; END $$;\n",
    "CREATE PROCEDURE escape() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;\nCALL escape();\n",
])
def test_code_that_commits_cannot_end_the_migrations_transaction(
        tmp_path: Path, dsn: str, escape: str) -> None:
    """A DO block or procedure that COMMITs is refused by the server inside migcoord's
    transaction block: the migration fails whole, nothing of it stays."""
    root = tree(tmp_path, "INSERT INTO items VALUES (1, 'x');\n" + escape)

    with pytest.raises(MigrationFailed) as failed:
        coordinator(root).up("a", dsn=dsn)

    assert failed.value.sqlstate == "2D000"  # invalid_transaction_termination
    assert items(dsn) == []
    assert rows(dsn) == [(1, "applied")]


# -- the whole-file BEGIN; ... COMMIT; -------------------------------------------------------

WRAPPED_UP = """\
-- As golang-migrate's README recommends: one transaction.
BEGIN;
CREATE TABLE IF NOT EXISTS labels (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items VALUES (1, 'wrapped');
COMMIT;
"""
WRAPPED_DOWN = "START TRANSACTION;\nDROP TABLE IF EXISTS labels;\nDELETE FROM items;\nEND;\n"


def test_a_wrapped_file_runs_as_its_body_like_golang_migrate(
        tmp_path: Path, dsn: str) -> None:
    """`check` raises no error; up applies the body with its history row, keeping the
    checksum of the file as written; down runs its wrapped down; the schema is the one
    golang-migrate builds from the same files."""
    root = tree(tmp_path, WRAPPED_UP, WRAPPED_DOWN)
    checked = run(["check", "--strict", "--format", "json"], cwd=root)
    assert checked.code == 0, checked.stdout
    assert checked.json()["findings"] == []

    applied = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))

    assert applied.code == 0, applied.stderr
    assert [s["version"] for s in applied.json()["applied"]] == [1, 2]
    assert items(dsn) == [(1, "wrapped")]
    [migration] = [m for m in coordinator(root).catalog().migrations if m.version == 2]
    assert history(dsn)[1]["checksum"] == migration.checksum
    assert history(dsn)[1]["statement_count"] is None  # one transaction, not statement by statement
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert [m["state"] for m in status.json()["migrations"]] == ["applied", "applied"]

    rolled_back = run(["down", "--service", "a"], cwd=root, environ=env(dsn))
    assert rolled_back.code == 0, rolled_back.stderr
    assert rows(dsn) == [(1, "applied")]
    assert items(dsn) == []
    assert "labels" not in {row[1] for row in schema_snapshot(dsn)}


def test_a_wrapped_history_builds_the_schema_golang_migrate_builds(
        tmp_path: Path, dsn: str, other_dsn: str) -> None:
    """Same files, one database each: migcoord's schema equals golang-migrate's."""
    root = tree(tmp_path, WRAPPED_UP, WRAPPED_DOWN)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    golang_migrate_apply(other_dsn, root)
    assert _without_history(schema_snapshot(dsn)) == schema_snapshot(other_dsn)


def test_an_error_inside_a_wrapper_points_into_the_file_and_nothing_stays(
        tmp_path: Path, dsn: str) -> None:
    """The body runs where it stands in the file: the server's position maps to the
    file's line and column, and the whole migration is rolled back."""
    up = "BEGIN;\nCREATE TABLE labels (id int);\nSELECT nosuch FROM items;\nCOMMIT;\n"
    root = tree(tmp_path, up)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1
    assert "000002_change.up.sql:3:8: ERROR: column \"nosuch\" does not exist" in result.stderr
    assert "nothing of this migration was applied" in result.stderr
    assert rows(dsn) == [(1, "applied")]
    assert "labels" not in {row[1] for row in schema_snapshot(dsn)}


def test_a_wrapper_keeps_the_isolation_level_its_begin_asks_for(
        tmp_path: Path, dsn: str) -> None:
    """`BEGIN ISOLATION LEVEL SERIALIZABLE; ... COMMIT;` runs its body serializable."""
    root = tree(tmp_path, "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE;\n"
                "INSERT INTO items SELECT 1, current_setting('transaction_isolation');\n"
                "COMMIT;\n")
    coordinator(root).up("a", dsn=dsn)
    assert items(dsn) == [(1, "serializable")]


def test_a_wrapper_in_a_no_transaction_file_is_refused(tmp_path: Path, dsn: str) -> None:
    """The directive asks for statement by statement, the wrapper for one transaction:
    `check` and `up` say to choose."""
    root = tree(tmp_path, NO_TRANSACTION + "BEGIN;\nINSERT INTO items VALUES (1, 'x');\nCOMMIT;\n")
    assert explicit_findings(root) == [("000002_change.up.sql", 2), ("000002_change.up.sql", 4)]
    with pytest.raises(InvalidMigrationFiles) as refused:
        coordinator(root).up("a", dsn=dsn)
    hints = [f.hint for f in refused.value.findings]
    assert hints and all(hint is not None and hint.startswith("choose one") for hint in hints)
    assert not table_exists(dsn, "items")
    assert rows(dsn) == []


def test_a_wrapped_lone_concurrent_index_fails_as_in_golang_migrate_and_says_to_unwrap(
        tmp_path: Path, dsn: str) -> None:
    """The wrapper asks for a transaction, which CONCURRENTLY refuses (golang-migrate fails
    too): `check` and `up` say to delete the BEGIN and COMMIT; nothing is sent."""
    root = tree(tmp_path, "BEGIN;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);\n"
                "COMMIT;\n")
    [finding] = [f for f in coordinator(root).check() if f.severity == "error"]
    assert (finding.code, finding.line) == ("concurrently-in-transaction", 2)
    assert finding.hint is not None and finding.hint.startswith(
        "delete the BEGIN and the COMMIT around it")
    with pytest.raises(MigrationFailed) as failed:
        coordinator(root).up("a", dsn=dsn)
    assert failed.value.hint == finding.hint
    assert rows(dsn) == [(1, "applied")]


def _without_history(snapshot: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return [row for row in snapshot if not row[1].startswith("migcoord_")]


# -- a lone statement that cannot run in a transaction ----------------------------------------

LONE_INDEX = ("-- Built without blocking writes.\n"
              "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);\n")
LONE_DROP = "DROP INDEX CONCURRENTLY IF EXISTS items_id_idx;\n"


def test_a_lone_create_index_concurrently_runs_outside_a_transaction_without_the_directive(
        tmp_path: Path, dsn: str, other_dsn: str) -> None:
    """`check` is clean; up builds the index, recorded as a no-transaction migration is
    (dirty row first, then the statement, then applied); down drops it CONCURRENTLY the
    same way; and the schema is the one golang-migrate builds."""
    root = tree(tmp_path, LONE_INDEX, LONE_DROP)
    assert run(["check", "--strict"], cwd=root).code == 0
    planned = run(["up", "--service", "a", "--dry-run"], cwd=root, environ=env(dsn))
    assert "-- up 000002 a change (no-transaction)" in planned.stdout

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert query(dsn, "SELECT indisvalid FROM pg_index "
                      "WHERE indexrelid = 'items_id_idx'::regclass") == [(True,)]
    row = history(dsn)[1]
    assert (row["status"], row["statements_done"], row["statement_count"]) == ("applied", 1, 1)
    log = [(e["action"], e["detail"]) for e in events(dsn) if e["version"] == 2]
    assert [action for action, _ in log] == ["up-start", "up"]
    assert log[0][1]["no_transaction"] is True
    golang_migrate_apply(other_dsn, root)
    assert _without_history(schema_snapshot(dsn)) == schema_snapshot(other_dsn)

    down = run(["down", "--service", "a"], cwd=root, environ=env(dsn))
    assert down.code == 0, down.stderr
    assert query(dsn, "SELECT to_regclass('items_id_idx')") == [(None,)]
    assert rows(dsn) == [(1, "applied")]
    assert [e["action"] for e in events(dsn) if e["version"] == 2][-2:] == ["down-start", "down"]


@pytest.mark.parametrize("statement", [
    "VACUUM items",
    "VACUUM (ANALYZE) items",
    "REINDEX TABLE CONCURRENTLY items",
    "REINDEX (CONCURRENTLY) TABLE items",
    "CREATE UNIQUE INDEX CONCURRENTLY items_id_key ON items (id)",
])
def test_other_lone_statements_that_refuse_a_transaction_block_apply(
        tmp_path: Path, dsn: str, statement: str) -> None:
    """VACUUM, REINDEX ... CONCURRENTLY, CREATE UNIQUE INDEX CONCURRENTLY: each alone in
    its file is applied outside a transaction."""
    root = tree(tmp_path, f"{statement};\n")
    assert [f.code for f in coordinator(root).check() if f.severity == "error"] == []
    result = coordinator(root).up("a", dsn=dsn)
    assert [step.version for step in result.applied] == [1, 2]
    assert history(dsn)[1]["statement_count"] == 1


def test_a_failing_lone_statement_is_left_dirty_with_the_way_to_repair_it(
        tmp_path: Path, dsn: str) -> None:
    """It ran outside a transaction: the dirty row written before it stays, with the
    server's error at the file's position; up refuses until `mark` says it is repaired."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "items", ITEMS + "INSERT INTO items VALUES (1, 'a'), (1, 'b');\n",
               ITEMS_DOWN),
        **pair("a", "000002", "change",
               "CREATE UNIQUE INDEX CONCURRENTLY items_id_key ON items (id);\n", LONE_DROP),
    }, config=AB_CONFIG)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1
    assert "000002_change.up.sql:1:1: ERROR: could not create unique index" in result.stderr
    assert "it ran outside a transaction, so 000002_change is now recorded as dirty" in result.stderr
    assert "migcoord mark 000002 --pending" in result.stderr
    row = history(dsn)[1]
    assert (row["status"], row["statements_done"], row["statement_count"]) == ("dirty", 0, 1)
    again = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert again.code == 1
    assert "dirty" in again.stderr


def test_alter_type_add_value_alone_runs_in_a_transaction(tmp_path: Path, dsn: str) -> None:
    """PostgreSQL 12+ runs ALTER TYPE ... ADD VALUE in a transaction: no need to leave one."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "mood", "CREATE TYPE mood AS ENUM ('ok');\n", "DROP TYPE mood;\n"),
        **pair("a", "000002", "change", "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh';\n"),
    }, config=AB_CONFIG)
    coordinator(root).up("a", dsn=dsn)
    assert query(dsn, "SELECT enum_range(NULL::mood)::text") == [("{ok,meh}",)]
    assert history(dsn)[1]["statement_count"] is None
