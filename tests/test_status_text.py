"""`status` as a person reads it: applied times carry their time zone."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import make_tree, pair, run
from test_engine_support import env


def test_status_prints_applied_times_with_their_zone(tmp_path: Path, dsn: str) -> None:
    root = make_tree(tmp_path, pair("rule-service", "000001", "first"))
    assert run(["up", "--all", "--dsn", dsn], cwd=root).code == 0
    status = run(["status", "--dsn", dsn], cwd=root)
    assert status.code == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("000001"))
    assert re.search(r"applied\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d$", row), row


def test_status_and_mark_write_versions_as_wide_as_the_project_does(tmp_path: Path,
                                                                     dsn: str) -> None:
    """A history adopted with four-digit versions reads 0190 everywhere, not 000190."""
    root = make_tree(tmp_path, {"a/m/0190_x.up.sql": "SELECT 1;\n",
                                "a/m/0190_x.down.sql": "SELECT 1;\n"},
                     config='version_width = 4\n[services.a]\nmigrations = "a/m"\n')
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    shown = run(["status"], cwd=root, environ=env(dsn)).stdout
    assert "database version: 0190" in shown and "\n0190 " in shown and "000190" not in shown
    marked = run(["mark", "0190", "--pending"], cwd=root, environ=env(dsn))
    assert marked.stdout.startswith("marked 0190 a x as pending"), marked.stdout
