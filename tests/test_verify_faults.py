"""verify and `docs --schema` when the server, not a migration, gets in the way: an admin
session the server ended while it sat idle, a server that went away, a migration's session
ended from outside, an interrupt while the temporary server is still being made. No
traceback, nothing left behind, and messages that say what happened."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import PgServer, enterable_tmp_dir
from psycopg import sql
from psycopg.conninfo import make_conninfo

from helpers import REPO, make_tree, pair, run
from migcoord.db.scratch import MADE_AT, PREFIX
from migcoord.local.embedded import EmbeddedServer
from test_engine_support import temporary_role

CONFIG = """\
docs = "docs/MIGRATIONS.md"
[services.svc]
migrations = "svc/migrations"
"""


@contextlib.contextmanager
def own_server(server_tmp_dir: Path) -> Iterator[tuple[EmbeddedServer, str, int]]:
    """A server of the test's own, which it may stop: (server, admin DSN, port)."""
    server = EmbeddedServer.from_environ(server_tmp_dir / "data", os.environ, fast=True)
    server.init()
    admin_dsn = server.start()
    assert server.port is not None
    try:
        yield server, admin_dsn, server.port
    finally:
        server.stop()


def throwaway_databases(admin_dsn: str) -> list[str]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                            (PREFIX + "%",)).fetchall()
    return sorted(name for (name,) in rows)


def tree(tmp_path: Path, up: str, down: str = "SELECT 1;\n") -> Path:
    return make_tree(tmp_path / "repo", {
        **pair("svc", "000001", "t", "CREATE TABLE t (id int);\n", "DROP TABLE t;\n"),
        **pair("svc", "000002", "b", up, down)}, config=CONFIG)


def start(args: list[str], root: Path, **environ: str) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), **environ}
    return subprocess.Popen([sys.executable, "-m", "migcoord", *args], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_query(admin_dsn: str, marker: str, process: subprocess.Popen[str]) -> int:
    """The backend running a query that holds `marker`, once one does."""
    deadline = time.monotonic() + 60
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline and process.poll() is None:
            row = conn.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND "
                               "pid <> pg_backend_pid()", (f"%{marker}%",)).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.02)
    pytest.fail(f"the slow migration never ran: {process.communicate()}")


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# -- the admin session ended while it was idle ------------------------------------------------


def test_verify_goes_on_when_the_server_ends_its_idle_admin_session(
        tmp_path: Path, pg_server: PgServer, dsn: str) -> None:
    """idle_session_timeout ends the admin session while a slow migration runs: verify
    connects again, passes, and drops its database (was a traceback, database left)."""
    root = tree(tmp_path, "SELECT pg_sleep(1.5);\n")
    before = throwaway_databases(pg_server.admin_dsn)
    with temporary_role(pg_server, dsn, "idle", attributes="LOGIN SUPERUSER") as role:
        with pg_server.admin() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} SET idle_session_timeout = '1s'").format(
                sql.Identifier(role)))
        result = run(["verify", "--format", "json", "--dsn",
                      make_conninfo(pg_server.admin_dsn, user=role)], cwd=root)
    assert result.code == 0, result.stderr
    assert result.json()["ok"] is True
    assert "Traceback" not in result.stderr and "error ignored" not in result.stderr
    assert throwaway_databases(pg_server.admin_dsn) == before


def test_docs_schema_goes_on_when_its_admin_session_was_ended(
        tmp_path: Path, pg_server: PgServer) -> None:
    """A migration ends the admin session (on another database): `docs --schema` connects
    again to drop its database and writes the docs."""
    root = tree(tmp_path, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity\n"
                " WHERE application_name = 'migcoord verify' AND datname <> current_database();\n")
    before = throwaway_databases(pg_server.admin_dsn)
    result = run(["docs", "--schema", "--dsn", pg_server.admin_dsn], cwd=root)
    assert result.code == 0, result.stderr
    assert "| id | integer |" in (root / "docs/MIGRATIONS.md").read_text()
    assert throwaway_databases(pg_server.admin_dsn) == before


# -- a server that goes away ------------------------------------------------------------------


def test_a_server_that_goes_away_names_the_database_left_and_the_command_that_drops_it(
        tmp_path: Path, server_tmp_dir: Path) -> None:
    """The server stops while a migration runs: exit 3, the connection was lost (not a
    broken migration), and the hint names the database left with a command that drops it
    once the server is back."""
    with own_server(server_tmp_dir) as (server, admin_dsn, port):
        marker = "pg_sleep(600.875)"
        root = tree(tmp_path, f"SELECT {marker};\n")
        process = start(["verify", "--format", "json", "--dsn", admin_dsn], root)
        wait_for_query(admin_dsn, marker, process)
        server.stop()
        stdout, stderr = finish(process)
        server.start(port=port)

        assert process.returncode == 3, stderr
        assert "Traceback" not in stderr
        error = json.loads(stdout)["error"]
        assert error["type"] == "ThrowawayConnectionLost"
        assert "not a fault of the migration" in error["message"]
        (left,) = throwaway_databases(admin_dsn)
        assert f"could not drop the throwaway database {left}" in error["hint"]
        command = shlex.split(error["hint"].split("drop it: ", 1)[1])
        assert command[0] == "psql" and command[-1].startswith("DROP DATABASE IF EXISTS")
        if shutil.which("psql"):
            dropped = subprocess.run(command, capture_output=True, text=True, check=False)
            assert dropped.returncode == 0, dropped.stderr
        else:  # the statement as psql would send it
            with psycopg.connect(command[1], autocommit=True) as conn:
                conn.execute(command[-1].encode())
        assert throwaway_databases(admin_dsn) == []


# -- a migration's session ended from outside -------------------------------------------------


@pytest.mark.parametrize("command", [["verify"], ["docs", "--schema"]])
def test_a_migration_session_ended_from_outside_is_a_lost_connection(
        tmp_path: Path, pg_server: PgServer, command: list[str]) -> None:
    """pg_terminate_backend of the session running an up: exit 3, "lost the connection",
    no FAILED migration and no "fix the file" advice; the database is dropped."""
    marker = "pg_sleep(600.9375)"
    root = tree(tmp_path, f"SELECT {marker};\n")
    before = throwaway_databases(pg_server.admin_dsn)
    process = start([*command, "--format", "json", "--dsn", pg_server.admin_dsn], root)
    pid = wait_for_query(pg_server.admin_dsn, marker, process)
    with pg_server.admin() as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    stdout, stderr = finish(process)

    assert process.returncode == 3, stderr
    error = json.loads(stdout)["error"]
    assert error["type"] == "ThrowawayConnectionLost"
    assert error["message"].startswith("lost the connection to the throwaway database while "
                                       "running the up of svc 000002_b")
    assert "fix " not in error["hint"] and f"`migcoord {' '.join(command)}` again" in error["hint"]
    assert "FAILED" not in stderr
    assert throwaway_databases(pg_server.admin_dsn) == before


# -- an interrupt while the temporary server is made -----------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_initdb_exits_130_and_leaves_no_process_or_folder(
        tmp_path: Path, signum: signal.Signals) -> None:
    """SIGINT or SIGTERM to verify while initdb's single-user backend runs (no DSN: a
    temporary server): exit 130 "verify interrupted", that backend ended, the folder gone
    (was "did not stop: single-user server is running", exit 1, folder left)."""
    root = tree(tmp_path, "SELECT 1;\n")
    with enterable_tmp_dir("migcoord-test-tmp-") as tmp:
        environ = {"TMPDIR": str(tmp)}
        if "MIGCOORD_PG_BIN" in os.environ:
            environ["MIGCOORD_PG_BIN"] = os.environ["MIGCOORD_PG_BIN"]
        process = start(["verify"], root, **environ)
        backend = None
        deadline = time.monotonic() + 60
        while backend is None and time.monotonic() < deadline and process.poll() is None:
            for pid_file in tmp.glob("migcoord-verify-*/data/postmaster.pid"):
                first = pid_file.read_text(errors="replace").split("\n", 1)[0].strip()
                if first.startswith("-") and first[1:].isdigit():
                    backend = int(first[1:])
            time.sleep(0.002)
        assert backend is not None, finish(process)
        process.send_signal(signum)
        _, stderr = finish(process)

        assert process.returncode == 130, stderr
        assert "verify interrupted" in stderr and "did not stop" not in stderr
        # Only the binaries' copy stays: a cache made once for every later run, as root
        # (local/binaries.stage_binaries), not a leftover of this run.
        assert [path for path in tmp.iterdir() if not path.name.startswith("migcoord-pg-")] == []
        with pytest.raises(ProcessLookupError):
            os.kill(backend, 0)


def test_an_interrupt_that_cannot_drop_the_database_says_which_is_left(
        tmp_path: Path, server_tmp_dir: Path) -> None:
    """Ctrl-C while the server refuses new sessions (a smart shutdown waiting for ours):
    exit 130, and the message names the database left and the command that drops it,
    instead of saying it was dropped."""
    with own_server(server_tmp_dir) as (server, admin_dsn, port):
        marker = "pg_sleep(600.96875)"
        root = tree(tmp_path, f"SELECT {marker};\n")
        process = start(["verify", "--format", "json", "--dsn", admin_dsn], root)
        wait_for_query(admin_dsn, marker, process)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            postmaster = int((server.data_dir / "postmaster.pid").read_text().split("\n")[0])
            os.kill(postmaster, signal.SIGTERM)  # a smart shutdown: it waits for sessions
            while True:
                try:
                    psycopg.connect(admin_dsn).close()
                except psycopg.OperationalError as refused:
                    assert "shutting down" in str(refused)
                    break
                time.sleep(0.02)
            # verify's admin session, which it would drop its database with.
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "application_name = 'migcoord verify' AND datname = 'postgres'")
        process.send_signal(signal.SIGINT)
        stdout, stderr = finish(process)
        server.stop()
        server.start(port=port)

        assert process.returncode == 130, stderr
        (left,) = throwaway_databases(admin_dsn)
        assert f"verify interrupted; could not drop the throwaway database {left}" in stderr
        assert "was dropped" not in stderr
        error = json.loads(stdout)["error"]
        assert (error["type"], error["databases"]) == ("Interrupted", [left])
        command = shlex.split(error["hint"].split("drop it: ", 1)[1])
        with psycopg.connect(command[1], autocommit=True) as conn:
            conn.execute(command[-1].encode())
        assert throwaway_databases(admin_dsn) == []


# -- what earlier runs left -------------------------------------------------------------------


def test_verify_names_the_databases_earlier_runs_left_and_how_to_drop_them(
        tmp_path: Path, pg_server: PgServer) -> None:
    """A database a killed run left (made two hours ago, or by an older migcoord with no
    comment) is named with its age and the command that drops it; a recent one, or one
    somebody is connected to, is not; verify drops none of them itself."""
    root = tree(tmp_path, "SELECT 1;\n")
    suffix = uuid.uuid4().hex[:8]
    old, unknown, recent, busy = (f"{PREFIX}{kind}{suffix}" for kind in ("old", "unk", "new", "use"))
    now = datetime.datetime.now(datetime.UTC)
    with pg_server.admin() as conn:
        for name in (old, unknown, recent, busy):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        for name, made in ((old, now - datetime.timedelta(hours=2)), (recent, now),
                           (busy, now - datetime.timedelta(hours=5))):
            conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(MADE_AT + made.isoformat())))
    try:
        with psycopg.connect(pg_server.dsn_for(busy)):
            result = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
        assert result.code == 0, result.stderr
        (line,) = [line for line in result.stderr.splitlines() if "earlier verify" in line]
        assert f"{old} (made 2 h ago)" in line and f"{unknown} (made at a time not known)" in line
        assert recent not in line and busy not in line
        assert {old, unknown, recent, busy} <= set(throwaway_databases(pg_server.admin_dsn))
        command = shlex.split(line.split("drop them: ", 1)[1])
        assert command[0] == "psql" and command.count("-c") >= 2
        if shutil.which("psql"):
            dropped = subprocess.run(command, capture_output=True, text=True, check=False)
            assert dropped.returncode == 0, dropped.stderr
        else:
            with psycopg.connect(command[1], autocommit=True) as conn:
                for statement in command[3::2]:
                    conn.execute(statement.encode())
        assert not {old, unknown} & set(throwaway_databases(pg_server.admin_dsn))
    finally:
        with pg_server.admin() as conn:
            for name in (old, unknown, recent, busy):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
