"""`status` as a person reads it: applied times carry their time zone."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import make_tree, pair, run


def test_status_prints_applied_times_with_their_zone(tmp_path: Path, dsn: str) -> None:
    root = make_tree(tmp_path, pair("rule-service", "000001", "first"))
    assert run(["up", "--all", "--dsn", dsn], cwd=root).code == 0
    status = run(["status", "--dsn", dsn], cwd=root)
    assert status.code == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith("000001"))
    assert re.search(r"applied\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d$", row), row
