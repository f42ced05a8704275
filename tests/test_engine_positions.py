"""Every failed statement is named by its file position, even when the server's error
has none: a statement timeout, a division by zero or a missing row in the third
statement of a file runs after the first two, and the error points at line 3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_tree, pair
from migcoord import Coordinator, MigrationFailed
from test_engine_support import AB_CONFIG, history, table_exists


def coordinator(root: Path, up: str, down: str = "DROP TABLE t;\n") -> Coordinator:
    make_tree(root, pair("a", "000001", "m", up, down), config=AB_CONFIG)
    return Coordinator.load(root / "migcoord.toml", environ={})


@pytest.mark.parametrize(("up", "line", "column", "sqlstate"), [
    ("CREATE TABLE t (id int);\nSELECT 1;\n  SELECT 1/0;\n", 3, 3, "22012"),
    ("CREATE TABLE t (id int);\n-- comment\n;\nSET LOCAL statement_timeout = '50ms';\n"
     "SELECT pg_sleep(5);\nSELECT 2;\n", 5, 1, "57014"),
    ("BEGIN;\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1), (1/0);\nCOMMIT;\n",
     3, 1, "22012"),
], ids=["division", "statement-timeout", "inside-a-wrapper"])
def test_a_runtime_error_names_its_statement(tmp_path: Path, dsn: str, up: str, line: int,
                                             column: int, sqlstate: str) -> None:
    coord = coordinator(tmp_path, up)
    with pytest.raises(MigrationFailed) as failed:
        coord.up("a", dsn=dsn)
    error = failed.value
    assert (error.line, error.column, error.sqlstate) == (line, column, sqlstate)
    assert f"000001_m.up.sql:{line}:{column}: ERROR:" in error.message
    assert history(dsn) == []
    assert not table_exists(dsn, "t")


def test_a_down_file_names_its_failing_statement(tmp_path: Path, dsn: str) -> None:
    coord = coordinator(tmp_path, "CREATE TABLE t (id int);\n",
                        "DELETE FROM t;\nSELECT 1;\nSELECT 1/0;\nDROP TABLE t;\n")
    coord.up("a", dsn=dsn)
    with pytest.raises(MigrationFailed) as failed:
        coord.down("a", dsn=dsn)
    assert (failed.value.line, failed.value.column, failed.value.direction) == (3, 1, "down")
    assert [row["version"] for row in history(dsn)] == [1]
    assert table_exists(dsn, "t")


def test_a_syntax_error_keeps_the_servers_own_position(tmp_path: Path, dsn: str) -> None:
    """A parse error runs nothing; its position is the server's, inside the statement."""
    coord = coordinator(tmp_path, "CREATE TABLE t (id int);\nSELECT 1;\nSELECT 1 +;\n")
    with pytest.raises(MigrationFailed) as failed:
        coord.up("a", dsn=dsn)
    assert (failed.value.line, failed.value.column, failed.value.sqlstate) == (3, 11, "42601")


def test_down_of_a_migration_without_a_down_file_says_so_and_its_hint_works(
        tmp_path: Path, dsn: str) -> None:
    """Many real histories ship no down files: the folder is here, the file is not."""
    from helpers import run
    from test_engine_support import env

    root = tmp_path
    make_tree(root, {"a/migrations/000001_m.up.sql": "CREATE TABLE t (id int);\n"},
              config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    refused = run(["down", "--service", "a"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "it has no down file (000001_m.down.sql does not exist)" in refused.stderr
    assert "not in this checkout" not in refused.stderr
    assert "`migcoord mark 000001 --pending`" in refused.stderr
    marked = run(["mark", "000001", "--pending", "--reason", "dropped t by hand"], cwd=root,
                 environ=env(dsn))
    assert marked.code == 0, marked.stderr
    assert history(dsn) == []
