"""Ctrl-C with `--format json`: the one JSON document still comes, saying the command was
interrupted and listing what committed (up) or was verified (verify) before the stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import PgServer

from helpers import REPO, make_tree, pair
from test_engine_support import AB_CONFIG, history


def start(args: list[str], root: Path) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "migcoord", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_when_running(process: subprocess.Popen[str], admin_dsn: str,
                           marker: str) -> tuple[str, str]:
    """SIGINT `process` once a backend runs a query holding `marker`; its output."""
    deadline = time.monotonic() + 60
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            while time.monotonic() < deadline and process.poll() is None:
                if conn.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND "
                                "pid <> pg_backend_pid()", (f"%{marker}%",)).fetchone():
                    break
                time.sleep(0.05)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_up_interrupted_lists_what_committed_in_its_json(tmp_path: Path, dsn: str,
                                                        pg_server: PgServer) -> None:
    marker = "pg_sleep(600.125)"
    root = make_tree(tmp_path, {**pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
                                **pair("a", "000002", "slow", f"SELECT {marker};\n")},
                     config=AB_CONFIG)
    process = start(["up", "--all", "--format", "json", "--dsn", dsn], root)
    stdout, stderr = interrupt_when_running(process, pg_server.admin_dsn, marker)

    assert process.returncode == 130, stderr
    document = json.loads(stdout)
    assert document["ok"] is False
    assert document["error"]["type"] == "Interrupted"
    assert [step["version"] for step in document["applied"]] == [1]
    assert "interrupted" in stderr
    assert [row["version"] for row in history(dsn)] == [1]


def test_verify_interrupted_still_prints_its_json(tmp_path: Path, pg_server: PgServer) -> None:
    marker = "pg_sleep(600.375)"
    root = make_tree(tmp_path, {**pair("a", "000001", "one", "CREATE TABLE one (id int);\n",
                                       "DROP TABLE one;\n"),
                                **pair("a", "000002", "slow", f"SELECT {marker};\n")},
                     config=AB_CONFIG)
    process = start(["verify", "--format", "json", "--dsn", pg_server.admin_dsn], root)
    stdout, stderr = interrupt_when_running(process, pg_server.admin_dsn, marker)

    assert process.returncode == 130, stderr
    document = json.loads(stdout)
    assert (document["ok"], document["error"]["exit_code"]) == (False, 130)
    assert [(m["version"], m["status"]) for m in document["migrations"]] == [(1, "ok")]


def test_a_ctrl_c_while_the_command_line_is_read_ends_quietly(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C that lands while the command line is parsed (the first tenth of a second
    of every run): exit 130 and one line, no traceback."""
    import argparse
    import io

    from migcoord.cli import main

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupted)
    out, err = io.StringIO(), io.StringIO()

    assert main(["status"], environ={}, stdout=out, stderr=err) == 130
    assert err.getvalue() == "migcoord: interrupted before the command began; nothing was done\n"
    assert out.getvalue() == ""
