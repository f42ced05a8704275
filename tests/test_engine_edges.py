"""Edges an operator meets: bad DSNs, unjudged rows in JSON, the CLI inside a program."""

from __future__ import annotations

import logging
from pathlib import Path

from helpers import copy_example, run
from test_engine_support import env


def test_a_non_numeric_port_is_a_usage_error_not_worth_retrying(tmp_path: Path) -> None:
    """Exit 2 (fix the DSN), not 3 (retry): retrying a typo never helps."""
    root = copy_example(tmp_path / "repo")
    result = run(["status"], cwd=root,
                 environ=env("postgresql://u:hunter2@localhost:54x2/db"))
    assert result.code == 2, result
    assert "port '54x2' is not a number" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_status_json_says_which_rows_were_not_judged(tmp_path: Path, dsn: str) -> None:
    """Rows of a service whose folder is absent carry judged=false, the others true."""
    root = copy_example(tmp_path / "repo")
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    for path in sorted((root / "rule-service" / "migrations").iterdir()):
        path.unlink()
    (root / "rule-service" / "migrations").rmdir()

    result = run(["status", "--format", "json"], cwd=root, environ=env(dsn))

    assert result.code == 0, result
    judged = {m["version"]: m["judged"] for m in result.json()["migrations"]}
    assert judged == {1: False, 2: False, 3: False, 4: False, 5: False, 6: True}


def test_running_the_cli_in_a_program_leaves_its_logging_as_it_was(tmp_path: Path) -> None:
    """main() routes migcoord's log to its stderr for the command, then restores the setup."""
    logger = logging.getLogger("migcoord")
    mine = logging.NullHandler()
    logger.addHandler(mine)
    before = (logger.handlers[:], logger.level, logger.propagate)
    try:
        run(["check"], cwd=copy_example(tmp_path / "repo"))
        assert (logger.handlers[:], logger.level, logger.propagate) == before
    finally:
        logger.removeHandler(mine)


def test_a_file_ending_inside_a_comment_records_nothing(tmp_path: Path, dsn: str) -> None:
    """The history record runs in the same query as the file: an unclosed /* cannot hide it."""
    from helpers import make_tree, pair
    from test_engine_support import AB_CONFIG, history, table_exists

    root = make_tree(tmp_path, pair("a", "000001", "t",
                                    "CREATE TABLE t (id int);\n/* the end is never written\n",
                                    "DROP TABLE t;\n"), config=AB_CONFIG)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "000001_t.up.sql:2:1: ERROR:" in result.stderr
    assert not table_exists(dsn, "public.t")
    assert history(dsn) == []
