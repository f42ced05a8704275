"""`check`, `up`, `down` and directives read a file alike: one reader of SQL text.

Each test here is a file on which two readers used to disagree: the same file was
judged by `check` one way and run by `up` another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import make_tree, pair, run
from migcoord.repo import discovery
from test_engine_support import AB_CONFIG, env, history, query, table_exists

NESTED_HEADER = """\
/* Indexes for the busy table.
   /* nested: PostgreSQL's comments nest */
   still the same comment */
-- migcoord:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_idx ON items (id);
"""


def findings(root: Path) -> list[dict[str, Any]]:
    result = run(["check", "--format", "json"], cwd=root)
    assert "Traceback" not in result.stderr
    found: list[dict[str, Any]] = result.json()["findings"]
    return found


def explicit(root: Path) -> list[tuple[str, int, str]]:
    return [(Path(f["path"]).name, f["line"], f["message"]) for f in findings(root)
            if f["code"] == "explicit-transaction"]


def items_tree(root: Path, up: str, down: str = "SELECT 1;\n") -> Path:
    return make_tree(root, {
        **pair("a", "000001", "items", "CREATE TABLE IF NOT EXISTS items (id int, v text);\n",
               "DROP TABLE IF EXISTS items;\n"),
        **pair("a", "000002", "change", up, down),
    }, config=AB_CONFIG)


# -- the directive header ------------------------------------------------------------------


def test_a_nested_comment_before_a_directive_keeps_the_directive(tmp_path: Path) -> None:
    """The header ends where PostgreSQL's scanner finds the first token, nested comments
    and all: the no-transaction line after the comment is read, not dropped."""
    up = tmp_path / "000001_i.up.sql"
    down = tmp_path / "000001_i.down.sql"
    up.write_text(NESTED_HEADER)
    down.write_text("DROP INDEX IF EXISTS items_id_idx;\n")
    migration = discovery.read_pair("a", up, down)
    assert migration.directives.no_transaction
    assert migration.directives.body_line == 5
    assert migration.directive_findings == ()


def test_a_directive_inside_an_open_outer_comment_is_not_read(tmp_path: Path) -> None:
    """Conversely, a `-- migcoord:` line still inside a nested comment is comment text."""
    up = tmp_path / "000001_i.up.sql"
    down = tmp_path / "000001_i.down.sql"
    up.write_text("/* a\n/* b */\n-- migcoord:no-transaction\n*/\nSELECT 1;\n")
    down.write_text("SELECT 1;\n")
    assert not discovery.read_pair("a", up, down).directives.no_transaction


def test_up_runs_a_nested_comment_header_migration_outside_a_transaction(
    tmp_path: Path, dsn: str
) -> None:
    """`check` is clean and `up` builds the index CONCURRENTLY, as the directive says."""
    root = items_tree(tmp_path, NESTED_HEADER, "DROP INDEX CONCURRENTLY IF EXISTS items_id_idx;\n")
    assert [f["code"] for f in findings(root)] == []
    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert result.code == 0, result.stderr
    row = history(dsn)[1]
    assert (row["version"], row["status"], row["statement_count"]) == (2, "applied", 1)
    assert query(dsn, "SELECT indexrelid::regclass::text FROM pg_index "
                      "WHERE indrelid = 'items'::regclass") == [("items_id_idx",)]


# -- transaction control -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "down", "where"),
    [
        ("INSERT INTO items VALUES (1);\nCOMMIT;\n", "SELECT 1;\n", ("up", 2, 1)),
        ("-- migcoord:no-transaction\nBEGIN;\nSELECT 1;\n", "SELECT 1;\n", ("up", 2, 1)),
        ("SELECT 1;\n  PREPARE TRANSACTION 'x';\n", "SELECT 1;\n", ("up", 2, 3)),
        # psql reads the rest of the COPY line as SQL, the data from the next line.
        ("COPY items (id) FROM stdin; BEGIN;\n1\n\\.\n", "SELECT 1;\n", ("up", 1, 29)),
    ],
)
def test_up_refuses_what_check_reports_with_the_same_words(
    tmp_path: Path, dsn: str, up: str, down: str, where: tuple[str, int, int]
) -> None:
    """explicit-transaction in `check` and `up`'s refusal come from one function: same
    statement, same place, same message; nothing is sent."""
    root = items_tree(tmp_path, up, down)
    direction, line, column = where
    [(name, found_line, message)] = explicit(root)
    assert (name, found_line) == (f"000002_change.{direction}.sql", line)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1
    assert (f"000002_change.up.sql:{line}:{column}: error: explicit-transaction: {message}"
            in result.stderr)
    assert "refused before anything was sent" in result.stderr
    # Every file of the run is checked before the first is sent: 000001 did not run either.
    assert history(dsn) == []
    assert not table_exists(dsn, "public.items")


def test_down_refuses_what_check_reports_in_the_down_file(tmp_path: Path, dsn: str) -> None:
    """A COMMIT in a down file would commit the rollback without deleting its row."""
    root = items_tree(tmp_path, "INSERT INTO items VALUES (1);\n",
                      "DELETE FROM items;\nCOMMIT;\n")
    [(name, line, message)] = explicit(root)
    assert (name, line) == ("000002_change.down.sql", 2)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    result = run(["down", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1
    assert (f"000002_change.down.sql:2:1: error: explicit-transaction: {message}"
            in result.stderr)
    assert "refused before anything was sent" in result.stderr
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "applied"), (2, "applied")]
    assert query(dsn, "SELECT count(*) FROM items") == [(1,)]


def test_copy_data_ended_by_a_line_with_trailing_space_hides_the_begin_from_both(
    tmp_path: Path, dsn: str
) -> None:
    """`\\. ` is not psql's end-of-data line, so the BEGIN below it is COPY data: neither
    `check` nor `up` calls it transaction control (the two COPY rules used to differ)."""
    root = items_tree(tmp_path, "COPY items (id) FROM stdin;\n1\n\\. \nBEGIN;\n")
    assert explicit(root) == []
    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert "controls the transaction" not in result.stderr
