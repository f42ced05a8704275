"""Faults that need a PostgreSQL server of the test's own: a password that is checked, and
the server going away under a migration (a restart, a crash).

The session's server trusts every local connection and must stay up for the other tests,
so this module starts one more (a few seconds) and shares it between its tests.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from conftest import enterable_tmp_dir
from psycopg.conninfo import make_conninfo

from helpers import make_tree, pair, run
from migcoord.local.embedded import EmbeddedServer
from test_engine_support import (
    AB_CONFIG,
    QUICK,
    env,
    execute,
    history,
    lock_holders,
    query,
    sleeping_migcoord,
    spawn,
    table_exists,
    wait_until,
)

ROLE = "mc_checked"
PASSWORD = "right-horse-battery"


@attrs.frozen
class OwnServer:
    server: EmbeddedServer
    port: int

    def dsn(self, database: str = "postgres", **params: object) -> str:
        return make_conninfo(self.server.dsn(database), **params)

    def fail(self, mode: str) -> None:
        """`restart`: a fast shutdown (sessions are told, 57P01) and a start on the same
        port. `crash`: a backend dies by SIGKILL, so the postmaster ends every session
        (57P02) and recovers, as after a segfault."""
        if mode == "restart":
            self.server.stop()
            self.server.start(port=self.port)
            return
        victim = psycopg.connect(self.dsn(), autocommit=True)
        pid = victim.info.backend_pid
        before = self.client_backends(victim)
        os.kill(pid, signal.SIGKILL)
        victim.close()
        # A connection may still succeed before the postmaster has noticed the kill;
        # recovery is over when one succeeds and none of the sessions before it remains.
        wait_until(lambda: self.recovered_since(before),
                   what="the server to recover from the crash")

    @staticmethod
    def client_backends(conn: psycopg.Connection[Any]) -> set[int]:
        rows = conn.execute("SELECT pid FROM pg_stat_activity "
                            "WHERE backend_type = 'client backend'").fetchall()
        return {row[0] for row in rows}

    def recovered_since(self, before: set[int]) -> bool:
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                return not self.client_backends(conn) & before
        except psycopg.OperationalError:
            return False


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    """A server where ROLE must give PASSWORD (scram-sha-256); everyone else is trusted."""
    with enterable_tmp_dir("migcoord-own-pg-") as folder:
        server = EmbeddedServer.from_environ(folder / "data", os.environ, fast=True)
        server.init()
        hba = server.data_dir / "pg_hba.conf"
        hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        server.start()
        try:
            port = server.port
            assert port is not None
            with psycopg.connect(server.dsn(), autocommit=True) as admin:
                admin.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            yield OwnServer(server, port)
        finally:
            server.stop()


@pytest.fixture
def database(own_server: OwnServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on the own server, as its superuser; dropped afterwards."""
    name = f"own_{request.node.name[:40].lower()}"
    with psycopg.connect(own_server.dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield own_server.dsn(name)
    with psycopg.connect(own_server.dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def tree(root: Path) -> Path:
    return make_tree(root, pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
                     config=AB_CONFIG)


def test_a_wrong_password_is_exit_2_with_a_hint_and_no_password(
    tmp_path: Path, own_server: OwnServer, database: str
) -> None:
    """28P01 is a wrong DSN, not a reason to retry: exit 2, and the password never shows."""
    root = tree(tmp_path)
    wrong = "wrong-horse-battery"

    result = run(["up", "--service", "a", "--format", "json"], cwd=root,
                 environ=env(make_conninfo(database, user=ROLE, password=wrong)))

    assert result.code == 2, result
    assert f'password authentication failed for user "{ROLE}"' in result.stderr
    assert "(SQLSTATE 28P01)" in result.stderr
    assert "check the password in the DSN" in result.stderr
    assert "worth retrying" not in result.stderr
    assert "horse" not in result.stderr + result.stdout
    assert result.json()["error"]["exit_code"] == 2

    # No password at all: libpq's own "no password supplied", the same mistake.
    missing = run(["status"], cwd=root, environ=env(make_conninfo(database, user=ROLE)))
    assert missing.code == 2, missing
    assert "no password supplied" in missing.stderr
    assert "check the password in the DSN" in missing.stderr

    right = run(["up", "--service", "a"], cwd=root,
                environ=env(make_conninfo(database, user=ROLE, password=PASSWORD)))
    assert right.code == 0, right.stderr
    assert table_exists(database, "one")


SLOW = "CREATE TABLE half_done (id int);\nSELECT pg_sleep((SELECT sleep_s FROM control));\n"


@pytest.mark.parametrize("mode", ["restart", "crash"])
def test_a_server_restart_mid_migration_leaves_no_trace_and_the_next_up_proceeds(
    tmp_path: Path, own_server: OwnServer, database: str, mode: str
) -> None:
    """A restart or a crash while a migration sleeps holding the lock: exit 3 naming the
    lost connection; afterwards no lock, no row, no table, and `up` applies it at once."""
    root = make_tree(tmp_path, pair("a", "000001", "slow", SLOW,
                                    "DROP TABLE half_done;\n"), config=AB_CONFIG)
    execute(database, "CREATE TABLE control (sleep_s float8 NOT NULL)")
    execute(database, "INSERT INTO control VALUES (60)")
    # The server runs without durable commits (fast=True): write the test's own setup
    # out, or crash recovery may take the control table with it.
    execute(database, "CHECKPOINT")
    process = spawn(["up", "--service", "a"], cwd=root, environ=env(database))
    try:
        pid = wait_until(lambda: sleeping_migcoord(database), what="migcoord in pg_sleep")
        assert lock_holders(database) == [pid]
        own_server.fail(mode)
        _, stderr = process.communicate(timeout=QUICK)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 3, stderr
    assert "lost the connection while running a 000001_slow" in stderr
    assert "Traceback" not in stderr
    assert lock_holders(database) == []
    assert history(database) == []
    assert not table_exists(database, "half_done")

    execute(database, "UPDATE control SET sleep_s = 0")
    again = run(["up", "--service", "a", "--lock-timeout", "1"], cwd=root,
                environ=env(database))
    assert again.code == 0, again.stderr
    assert [r["version"] for r in history(database)] == [1]
    assert query(database, "SELECT count(*) FROM half_done") == [(0,)]
