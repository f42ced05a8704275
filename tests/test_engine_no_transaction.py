"""`-- migcoord:no-transaction` migrations: CREATE INDEX CONCURRENTLY and what a failure leaves.

Such a migration runs statement by statement in autocommit, so a failure part-way
cannot be undone by migcoord: it is recorded dirty with how far it got, `up` refuses
until an operator repairs it and says so with `mark`, and the event log keeps why.
"""

from __future__ import annotations

from pathlib import Path

from helpers import make_tree, pair, run
from test_engine_support import AB_CONFIG, env, events, execute, history, query

ITEMS = """\
CREATE TABLE items (id int NOT NULL, code text NOT NULL);
INSERT INTO items VALUES (1, 'a'), (2, 'a'), (3, 'c');
"""

INDEXES = """\
-- Indexes on a busy table, built without blocking writes.
-- migcoord:no-transaction
CREATE INDEX CONCURRENTLY items_id_idx ON items (id);
CREATE UNIQUE INDEX CONCURRENTLY items_code_key ON items (code);
CREATE INDEX CONCURRENTLY items_code_id_idx ON items (code, id);
"""

INDEXES_DOWN = """\
DROP INDEX IF EXISTS items_code_id_idx;
DROP INDEX IF EXISTS items_code_key;
DROP INDEX IF EXISTS items_id_idx;
"""

INDEX_NAMES = ["items_code_id_idx", "items_code_key", "items_id_idx"]


def items_tree(root: Path) -> Path:
    return make_tree(root, {
        **pair("a", "000001", "items", ITEMS, "DROP TABLE items;\n"),
        **pair("a", "000002", "index_items", INDEXES, INDEXES_DOWN),
    }, config=AB_CONFIG)


def indexes(dsn: str) -> dict[str, bool]:
    """Index name -> valid, for the items table."""
    rows = query(dsn, "SELECT c.relname, i.indisvalid FROM pg_index i "
                      "JOIN pg_class c ON c.oid = i.indexrelid "
                      "WHERE i.indrelid = 'items'::regclass")
    return {name: valid for name, valid in rows}


def test_concurrently_built_indexes_apply_outside_a_transaction(tmp_path: Path, dsn: str) -> None:
    """CREATE INDEX CONCURRENTLY, which a transaction refuses, applies and is recorded."""
    root = items_tree(tmp_path)
    (root / "a" / "migrations" / "000001_items.up.sql").write_text(
        ITEMS.replace("(2, 'a')", "(2, 'b')"))
    assert run(["sum"], cwd=root).code == 0

    result = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert [s["version"] for s in result.json()["applied"]] == [1, 2]
    assert indexes(dsn) == dict.fromkeys(INDEX_NAMES, True)
    row = history(dsn)[1]
    assert (row["status"], row["statements_done"], row["statement_count"]) == ("applied", 3, 3)
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 0
    assert status.json()["dirty"] is False
    assert [m["state"] for m in status.json()["migrations"]] == ["applied", "applied"]


def test_concurrently_among_other_statements_without_the_directive_is_refused_unsent(
    tmp_path: Path, dsn: str
) -> None:
    """A transaction would refuse CONCURRENTLY: the file is refused before anything is
    sent, with check's words and the fix; nothing is left dirty."""
    index_up = ("SELECT 1;\n"
                "CREATE INDEX CONCURRENTLY items_id_idx ON items (id);\n")
    root = make_tree(tmp_path, {
        **pair("a", "000001", "items", ITEMS, "DROP TABLE items;\n"),
        **pair("a", "000002", "index_items", index_up, INDEXES_DOWN),
    }, config=AB_CONFIG)
    [finding] = [f for f in run(["check", "--format", "json"], cwd=root).json()["findings"]
                 if f["code"] == "concurrently-in-transaction"]

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert (f"000002_index_items.up.sql:2:1: {finding['message']}; nothing was run"
            in result.stderr)
    assert "add the line `-- migcoord:no-transaction` at the top of this file" in result.stderr
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "applied")]
    assert indexes(dsn) == {}
    assert [e["action"] for e in events(dsn) if e["version"] == 2] == []


def test_no_transaction_failure_is_dirty_until_marked_pending_after_a_manual_fix(
    tmp_path: Path, dsn: str
) -> None:
    """Statement 2 of 3 fails: dirty at 1 of 3, up refuses naming mark, repair, mark, up."""
    root = items_tree(tmp_path)

    failed = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert failed.code == 1, failed
    assert "000002_index_items.up.sql" in failed.stderr
    assert "SQLSTATE 23505" in failed.stderr
    assert "statement 2 of 3 failed" in failed.stderr
    row = history(dsn)[1]
    assert (row["version"], row["status"]) == (2, "dirty")
    assert (row["statements_done"], row["statement_count"]) == (1, 3)
    assert "could not create unique index" in row["error"]
    # Statement 1 stays; statement 2 left an invalid index behind, as PostgreSQL does.
    assert indexes(dsn) == {"items_id_idx": True, "items_code_key": False}

    status = run(["status"], cwd=root, environ=env(dsn))
    assert status.code == 1
    assert "dirty: yes" in status.stdout
    assert "dirty (stopped after statement 1 of 3)" in status.stdout
    document = run(["status", "--format", "json"], cwd=root, environ=env(dsn)).json()
    assert document["dirty"] is True
    assert document["database_version"] == 2
    assert document["migrations"][1]["state"] == "dirty"

    refused = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert refused.code == 1, refused
    assert "dirty" in refused.stderr
    assert "migcoord mark 000002" in refused.stderr
    assert history(dsn)[1]["status"] == "dirty"

    # The operator undoes what ran and fixes the data.
    execute(dsn, "DROP INDEX items_code_key")
    execute(dsn, "DROP INDEX items_id_idx")
    execute(dsn, "UPDATE items SET code = 'b' WHERE id = 2")
    reason = "dropped the invalid index, de-duplicated item codes (INC-42)"
    marked = run(["mark", "2", "--pending", "--reason", reason], cwd=root, environ=env(dsn))
    assert marked.code == 0, marked.stderr
    assert "was dirty" in marked.stdout

    again = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))
    assert again.code == 0, again.stderr
    assert [s["version"] for s in again.json()["applied"]] == [2]
    assert indexes(dsn) == dict.fromkeys(INDEX_NAMES, True)
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "applied"), (2, "applied")]

    log = [(e["action"], e["reason"]) for e in events(dsn) if e["version"] == 2]
    assert log == [("up-start", None), ("up-failed", None), ("mark-pending", reason),
                   ("up-start", None), ("up", None)]


def test_no_transaction_failure_finished_by_hand_is_marked_applied(
    tmp_path: Path, dsn: str
) -> None:
    """The other repair: finish the statements by hand, then `mark --applied`."""
    root = items_tree(tmp_path)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 1

    execute(dsn, "DROP INDEX items_code_key")
    execute(dsn, "UPDATE items SET code = 'b' WHERE id = 2")
    execute(dsn, "CREATE UNIQUE INDEX CONCURRENTLY items_code_key ON items (code)")
    execute(dsn, "CREATE INDEX CONCURRENTLY items_code_id_idx ON items (code, id)")
    marked = run(["mark", "2", "--applied", "--reason", "finished by hand"], cwd=root,
                 environ=env(dsn))
    assert marked.code == 0, marked.stderr

    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 0, status.stdout
    assert status.json()["dirty"] is False
    assert [m["state"] for m in status.json()["migrations"]] == ["applied", "applied"]
    row = history(dsn)[1]
    assert (row["status"], row["error"], row["statements_done"]) == ("applied", None, None)
    nothing = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))
    assert nothing.code == 0
    assert nothing.json()["applied"] == []
    assert ("mark-applied", 2, "finished by hand") in [
        (e["action"], e["version"], e["reason"]) for e in events(dsn)]


def test_down_of_a_no_transaction_migration_may_drop_concurrently(
    tmp_path: Path, dsn: str
) -> None:
    """The down of a CONCURRENTLY migration can use DROP INDEX CONCURRENTLY too."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "items", ITEMS.replace("(2, 'a')", "(2, 'b')"),
               "DROP TABLE items;\n"),
        **pair("a", "000002", "index_items", INDEXES,
               "-- migcoord:no-transaction\n"
               + INDEXES_DOWN.replace("DROP INDEX", "DROP INDEX CONCURRENTLY")),
    }, config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    result = run(["down", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert indexes(dsn) == {}
    assert [r["version"] for r in history(dsn)] == [1]


def test_a_failing_no_transaction_down_leaves_a_dirty_row_that_says_where_it_stopped(
    tmp_path: Path, dsn: str
) -> None:
    """Statement 2 of the down fails: the row is dirty, the message points at it, mark repairs."""
    failing_down = ("-- migcoord:no-transaction\n"
                    "DROP INDEX CONCURRENTLY IF EXISTS items_code_id_idx;\n"
                    "DROP INDEX CONCURRENTLY no_such_index;\n"
                    "DROP INDEX CONCURRENTLY IF EXISTS items_id_idx;\n")
    root = make_tree(tmp_path, {
        **pair("a", "000001", "items", ITEMS.replace("(2, 'a')", "(2, 'b')"),
               "DROP TABLE items;\n"),
        **pair("a", "000002", "index_items", INDEXES, failing_down),
    }, config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    result = run(["down", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "000002_index_items.down.sql:3:1: ERROR:" in result.stderr
    assert "statement 2 of 3 failed; the 1 before it stay rolled back" in result.stderr
    assert "mark 000002 --pending" in result.stderr
    [row] = [r for r in history(dsn) if r["version"] == 2]
    assert (row["status"], row["statements_done"], row["statement_count"]) == ("dirty", 1, 3)
    assert set(indexes(dsn)) == {"items_code_key", "items_id_idx"}

    marked = run(["mark", "2", "--pending", "--reason", "dropped the rest by hand"], cwd=root,
                 environ=env(dsn))
    assert marked.code == 0, marked
    assert [r["version"] for r in history(dsn)] == [1]
