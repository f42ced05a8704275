"""Behind PgBouncer: transaction pooling is detected and refused, session pooling just works.

migcoord holds a session-level advisory lock across several transactions. In
transaction pooling mode consecutive transactions of one client may run in different
server sessions, so the lock would protect nothing, and a lock released through another
session stays behind in the pool for every later run to wait on. The tests make each
way this shows happen instead of hoping for it: two idle server connections handed out
round robin; an idle pool handing out the most recently used one (PgBouncer's default),
where one client alone sees what a session pool would show; and a busy pool with several
clients of its own.

Needs the `pgbouncer` program (Debian: `apt-get install pgbouncer`); this is the only
database test that skips, with that instruction, when it is absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
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
    backend_gone,
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
default_pool_size = 8
; 1: hand out idle server connections first in, first out (with two of them idle, each
; transaction of a client runs in the other one); 0, the default: last in, first out.
server_round_robin = {round_robin}
ignore_startup_parameters = extra_float_digits
"""


@pytest.fixture
def bouncer(dsn: str) -> Iterator[dict[str, str]]:
    """A round-robin PgBouncer in front of this test's database: {"transaction": dsn,
    "session": dsn}."""
    with pgbouncer(dsn, round_robin=True) as pools:
        yield pools


@pytest.fixture
def lifo_bouncer(dsn: str) -> Iterator[dict[str, str]]:
    """A PgBouncer with its default hand-out order: the most recently used idle session."""
    with pgbouncer(dsn, round_robin=False) as pools:
        yield pools


@contextlib.contextmanager
def pgbouncer(dsn: str, *, round_robin: bool) -> Iterator[dict[str, str]]:
    program = pgbouncer_program()
    target = conninfo_to_dict(dsn)
    listen = free_port()
    with enterable_tmp_dir("migcoord-pgbouncer-") as folder:
        auth_file = folder / "users.txt"
        auth_file.write_text(f'"{target["user"]}" ""\n')
        config = folder / "pgbouncer.ini"
        config.write_text(CONFIG.format(host=target["host"], port=target["port"],
                                        dbname=target["dbname"], listen=listen,
                                        auth_file=auth_file, round_robin=int(round_robin)))
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


def tables_and_history_agree(dsn: str) -> None:
    """Each migration of `tree2` is recorded exactly when its table exists."""
    recorded = set(history_versions(dsn))
    assert (1 in recorded) == table_exists(dsn, "one"), recorded
    assert (2 in recorded) == table_exists(dsn, "two"), recorded


def tree2(root: Path) -> Path:
    return make_tree(root, {
        **pair("a", "000001", "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n"),
        **pair("a", "000002", "two", "CREATE TABLE two (id int);\n", "DROP TABLE two;\n"),
    }, config=AB_CONFIG)


def assert_direct_up_proceeds_at_once(root: Path, dsn: str) -> None:
    """What the refusal's hint says to do works, without waiting for a stranded lock."""
    started = time.monotonic()
    direct = run(["up", "--service", "a", "--lock-timeout", "1"], cwd=root, environ=env(dsn))
    assert direct.code == 0, direct.stderr
    assert time.monotonic() - started < QUICK
    assert history_versions(dsn) == [1, 2]


def test_an_idle_transaction_pool_is_refused_before_any_lock(
    tmp_path: Path, dsn: str, lifo_bouncer: dict[str, str]
) -> None:
    """An idle pool hands this client the same server session every time, as a session
    pool would; a second client handed that session gives it away. Exit 2, nothing done."""
    root = tree2(tmp_path)
    pooled = lifo_bouncer["transaction"]
    assert len(set(backend_pids(pooled, 3))) == 1, "the idle pool did not reuse its session"

    result = run(["up", "--service", "a"], cwd=root, environ=env(pooled))

    assert result.code == 2, result
    assert "a second client of the same pool was handed server session" in result.stderr
    assert "pool_mode = transaction" in result.stderr
    assert lock_holders(dsn) == []
    assert history_versions(dsn) == []
    assert not table_exists(dsn, "one")
    assert_direct_up_proceeds_at_once(root, dsn)


def test_the_callers_pooled_connection_is_refused_and_keeps_no_lock(
    tmp_path: Path, dsn: str, lifo_bouncer: dict[str, str]
) -> None:
    """`conn=` through a transaction pool: PoolerDetected; the caller's connection is fine."""
    from migcoord import Coordinator
    from migcoord.errors import PoolerDetected

    root = tree2(tmp_path)
    coordinator = Coordinator.load(root / "migcoord.toml", environ={})
    with psycopg.connect(lifo_bouncer["transaction"], prepare_threshold=None) as callers:
        with pytest.raises(PoolerDetected):
            coordinator.up("a", conn=callers)
        assert callers.execute("SELECT 1").fetchone() == (1,)

    assert lock_holders(dsn) == []
    assert history_versions(dsn) == []
    assert_direct_up_proceeds_at_once(root, dsn)


@contextlib.contextmanager
def pool_traffic(pooled: str, clients: int) -> Iterator[None]:
    """`clients` connections of the pool running short transactions until the block ends."""
    stop = threading.Event()
    started = threading.Barrier(clients + 1)

    def client() -> None:
        conn = psycopg.connect(pooled, autocommit=True, prepare_threshold=None)
        conn.execute("SELECT 1")
        started.wait()
        try:
            while not stop.is_set():
                try:
                    conn.execute("SELECT pg_sleep(0.002)")
                except psycopg.OperationalError:
                    # migcoord may end an idle pooled session that holds a stranded lock;
                    # a client handed that session at that moment reconnects, as apps do.
                    conn.close()
                    conn = psycopg.connect(pooled, autocommit=True, prepare_threshold=None)
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        started.wait(QUICK)
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(QUICK)


def test_a_busy_transaction_pool_never_strands_the_lock(
    tmp_path: Path, dsn: str, lifo_bouncer: dict[str, str]
) -> None:
    """With six clients of the pool at work, runs through the transaction pool are refused;
    none leaves the lock behind or records what it did not apply, and the direct run the
    hint recommends proceeds at once."""
    root = tree2(tmp_path)
    pooled = lifo_bouncer["transaction"]

    with pool_traffic(pooled, clients=6):
        for _ in range(4):
            result = run(["up", "--service", "a"], cwd=root, environ=env(pooled))
            assert result.code in (0, 2), result
            if result.code == 2:
                assert "pool_mode = transaction" in result.stderr
            assert lock_holders(dsn) == [], result.stderr
            tables_and_history_agree(dsn)

    assert_direct_up_proceeds_at_once(root, dsn)


def test_a_busy_session_pool_works_normally(
    tmp_path: Path, dsn: str, lifo_bouncer: dict[str, str]
) -> None:
    """Through pool_mode=session, with other clients of the pool at work: up applies all."""
    root = tree2(tmp_path)
    pooled = lifo_bouncer["session"]

    with pool_traffic(pooled, clients=4):
        result = run(["up", "--service", "a"], cwd=root, environ=env(pooled))

    assert result.code == 0, result.stderr
    assert history_versions(dsn) == [1, 2]
    assert lock_holders(dsn) == []


def test_release_through_a_pool_finds_the_holding_session_again(
    dsn: str, bouncer: dict[str, str]
) -> None:
    """A lock taken in one pooled session is released there, not ended with it: the pool
    hands that session back within a few transactions."""
    from migcoord.db.lock import lock_key, release

    pooled = bouncer["transaction"]
    two_idle_server_connections(pooled)
    key = lock_key("public")
    with psycopg.connect(pooled, autocommit=True, prepare_threshold=None) as conn:
        row = conn.execute("SELECT pg_backend_pid(), pg_advisory_lock(%s)", (key,)).fetchone()
        assert row is not None
        holder = int(row[0])
        assert lock_holders(dsn) == [holder]

        assert release(conn, key, holder) is None

    assert lock_holders(dsn) == []
    assert not backend_gone(dsn, holder)
