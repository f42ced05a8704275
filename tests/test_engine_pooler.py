"""Behind PgBouncer: transaction pooling is detected and refused, session pooling just works.

migcoord holds a session-level advisory lock across several transactions. In
transaction pooling mode consecutive transactions of one client may run in different
server sessions, so the lock would protect nothing. The test forces that to happen
(two idle server connections, handed out round robin) instead of hoping for it.

Needs the `pgbouncer` program (Debian: `apt-get install pgbouncer`); this is the only
database test that skips, with that instruction, when it is absent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import enterable_tmp_dir
from psycopg.conninfo import conninfo_to_dict

from helpers import make_tree, pair, run
from test_engine_support import (
    AB_CONFIG,
    QUICK,
    env,
    history_versions,
    lock_holders,
    table_exists,
    wait_until,
)


def pgbouncer_program() -> str:
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)),
        None)
    if found is None:
        pytest.skip("pgbouncer is not installed: `apt-get install -y pgbouncer` (Debian/Ubuntu) "
                    "or put it on PATH to run the pooler tests (.ci/run installs it)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts_connections(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


CONFIG = """\
[databases]
txpool = host={host} port={port} dbname={dbname} pool_mode=transaction
sessionpool = host={host} port={port} dbname={dbname} pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
default_pool_size = 4
; Hand out idle server connections first in, first out: with two of them idle, each
; transaction of a client runs in the other one.
server_round_robin = 1
ignore_startup_parameters = extra_float_digits
"""


@pytest.fixture
def bouncer(dsn: str) -> Iterator[dict[str, str]]:
    """A PgBouncer in front of this test's database: {"transaction": dsn, "session": dsn}."""
    program = pgbouncer_program()
    target = conninfo_to_dict(dsn)
    listen = free_port()
    with enterable_tmp_dir("migcoord-pgbouncer-") as folder:
        auth_file = folder / "users.txt"
        auth_file.write_text(f'"{target["user"]}" ""\n')
        config = folder / "pgbouncer.ini"
        config.write_text(CONFIG.format(host=target["host"], port=target["port"],
                                        dbname=target["dbname"], listen=listen,
                                        auth_file=auth_file))
        for path in (auth_file, config):
            path.chmod(0o644)
        # It refuses to run as root; as root, -u switches to nobody.
        command = [program, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(config)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        try:
            wait_until(lambda: accepts_connections(listen) or process.poll() is not None,
                       what="pgbouncer to listen")
            if process.poll() is not None:
                pytest.fail(f"pgbouncer did not start:\n{process.communicate()[0]}")
            base = f"postgresql://{target['user']}@127.0.0.1:{listen}"
            yield {"transaction": f"{base}/txpool", "session": f"{base}/sessionpool"}
        finally:
            process.terminate()
            try:
                process.communicate(timeout=QUICK)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def backend_pids(dsn: str, count: int) -> list[int]:
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        return [conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
                for _ in range(count)]


def two_idle_server_connections(pooled: str) -> None:
    """Make the pool open a second server connection: two clients in a transaction at once."""
    first = psycopg.connect(pooled, prepare_threshold=None)
    second = psycopg.connect(pooled, prepare_threshold=None)
    with first, second:
        pids = {first.execute("SELECT pg_backend_pid()").fetchone()[0],  # type: ignore[index]
                second.execute("SELECT pg_backend_pid()").fetchone()[0]}  # type: ignore[index]
        assert len(pids) == 2
        first.rollback()
        second.rollback()


def tree(root: Path) -> Path:
    return make_tree(root, pair("a", "000001", "one", "CREATE TABLE one (id int);\n",
                                "DROP TABLE one;\n"), config=AB_CONFIG)


def test_transaction_pooling_is_refused_before_anything_is_committed(
    tmp_path: Path, dsn: str, bouncer: dict[str, str]
) -> None:
    """Through pool_mode=transaction `up` stops with the pooler explanation; nothing changes."""
    root = tree(tmp_path)
    pooled = bouncer["transaction"]
    two_idle_server_connections(pooled)
    first, second = backend_pids(pooled, 2)
    assert first != second, "the pool did not alternate server connections"

    result = run(["up", "--service", "a"], cwd=root, environ=env(pooled))

    assert result.code == 2, result
    assert "different server sessions" in result.stderr
    assert "pool_mode = transaction" in result.stderr
    assert "session mode" in result.stderr
    assert "Traceback" not in result.stderr
    assert not table_exists(dsn, "one")
    assert not table_exists(dsn, "migcoord_history")
    assert history_versions(dsn) == []


def test_transaction_pooling_refusal_leaves_no_lock_behind(
    tmp_path: Path, dsn: str, bouncer: dict[str, str]
) -> None:
    """After the refusal, the operator's direct `up` (as the hint says) is not blocked."""
    root = tree(tmp_path)
    pooled = bouncer["transaction"]
    two_idle_server_connections(pooled)
    assert run(["up", "--service", "a"], cwd=root, environ=env(pooled)).code == 2

    assert lock_holders(dsn) == []
    direct = run(["up", "--service", "a", "--lock-timeout", "1"], cwd=root, environ=env(dsn))
    assert direct.code == 0, direct.stderr
    assert history_versions(dsn) == [1]


def test_session_pooling_works_normally(
    tmp_path: Path, dsn: str, bouncer: dict[str, str]
) -> None:
    """Through pool_mode=session: up, status, down and up again, as when connected directly."""
    root = tree(tmp_path)
    pooled = bouncer["session"]
    started = time.monotonic()

    for args, code in ((["up", "--service", "a"], 0), (["status"], 0),
                       (["down", "--service", "a"], 0), (["up", "--service", "a"], 0)):
        result = run(args, cwd=root, environ=env(pooled))
        assert result.code == code, (args, result)

    assert table_exists(dsn, "one")
    assert history_versions(dsn) == [1]
    assert time.monotonic() - started < QUICK
