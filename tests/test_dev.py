"""`migcoord dev` and the `embedded` DSN: a local server only when asked for by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from helpers import copy_example, run
from migcoord import Coordinator
from migcoord.errors import NoDatabaseUrl
from migcoord.local import devserver


@pytest.fixture
def repo(server_tmp_dir: Path) -> Iterator[Path]:
    """A copy of the alerting example where nobody (the server user as root) can enter;
    its dev server is stopped afterwards whatever the test did."""
    root = copy_example(server_tmp_dir / "repo")
    try:
        yield root
    finally:
        config = Coordinator.load(root / "migcoord.toml").config
        if (devserver.data_dir(config, {}) / "PG_VERSION").exists():
            devserver.stop(config, {})


def has_history(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT to_regclass('public.migcoord_history') IS NOT NULL").fetchone()
    return bool(row and row[0])


def test_start_status_url_stop_round_trip(repo: Path) -> None:
    """start prints the DSN of database `dev`; status and url agree; stop stops it; a
    second start reuses the port; the data lives in git-ignored .migcoord/dev."""
    status = run(["dev", "status"], cwd=repo)
    assert status.code == 3 and status.stdout.startswith("not running")
    assert not (repo / ".migcoord" / "dev").exists()

    started = run(["dev", "start"], cwd=repo)
    assert started.code == 0, started.stderr
    dsn = started.stdout.strip()
    assert dsn.startswith("postgresql://postgres@127.0.0.1:") and dsn.endswith("/dev")
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("dev",)
    assert (repo / ".migcoord" / "dev" / "PG_VERSION").is_file()
    assert (repo / ".migcoord" / ".gitignore").read_text().splitlines()[-1] == "*"

    again = run(["dev", "start"], cwd=repo)
    assert again.code == 0 and again.stdout.strip() == dsn
    assert "already running" in again.stderr
    assert run(["dev", "status"], cwd=repo).stdout.startswith(f"running: {dsn} ")
    assert run(["dev", "status"], cwd=repo).code == 0
    assert run(["dev", "url"], cwd=repo).stdout == dsn + "\n"
    assert run(["dev", "status", "--format", "json"], cwd=repo).json()["running"] is True

    stopped = run(["dev", "stop"], cwd=repo)
    assert stopped.code == 0 and "stopped" in stopped.stderr
    down = run(["dev", "status", "--format", "json"], cwd=repo)
    assert (down.code, down.json()["running"]) == (3, False)
    assert run(["dev", "url"], cwd=repo).code == 3
    assert run(["dev", "stop"], cwd=repo).code == 0  # nothing to do

    restarted = run(["dev", "start"], cwd=repo)
    assert restarted.stdout.strip() == dsn, "the port of the last start is reused"


def test_database_url_embedded_migrates_the_dev_server(repo: Path) -> None:
    """DATABASE_URL=embedded (and --dsn embedded) reach the running dev server's database."""
    dsn = run(["dev", "start"], cwd=repo).stdout.strip()
    up = run(["up", "--all"], cwd=repo, environ={"DATABASE_URL": "embedded"})
    assert up.code == 0, up.stderr
    assert has_history(dsn)
    status = run(["status", "--dsn", "embedded", "--format", "json"], cwd=repo)
    assert status.json()["database_version"] == 6


def test_embedded_without_a_running_dev_server_is_a_clear_error(repo: Path) -> None:
    """No dev server: exit 3 naming `migcoord dev start`; nothing is created or started."""
    for args, environ in ((["up", "--all"], {"DATABASE_URL": "embedded"}),
                          (["status", "--dsn", "embedded"], {}),
                          (["verify"], {"DATABASE_URL": "embedded"})):
        result = run(args, cwd=repo, environ=environ)
        assert result.code == 3, result.stderr
        assert "development server" in result.stderr and "is not running" in result.stderr
        assert "migcoord dev start" in result.stderr
    assert not (repo / ".migcoord" / "dev").exists()


def test_missing_database_url_never_uses_the_dev_server(repo: Path) -> None:
    """Even with the dev server running, no DATABASE_URL is exit 2 and the dev database
    stays untouched; so does the Python API."""
    dsn = run(["dev", "start"], cwd=repo).stdout.strip()
    for args in (["up", "--all"], ["status"], ["down", "--service", "rule-service"]):
        result = run(args, cwd=repo, environ={})
        assert result.code == 2, (args, result.stderr)
        assert "$DATABASE_URL is not set" in result.stderr
    with pytest.raises(NoDatabaseUrl):
        Coordinator.load(repo / "migcoord.toml", environ={}).up(all_services=True)
    assert not has_history(dsn)


def test_verify_uses_the_running_dev_server_and_leaves_nothing(repo: Path) -> None:
    """With no DSN, verify makes its throwaway database on the running dev server."""
    dsn = run(["dev", "start"], cwd=repo).stdout.strip()
    result = run(["verify", "--format", "json"], cwd=repo, environ={})
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["server_kind"] == "dev"
    with psycopg.connect(dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()]
    assert report["database"] not in names
    assert not has_history(dsn)


def test_verify_without_any_server_starts_a_temporary_one(repo: Path) -> None:
    """No DSN and no dev server: a server for this run only, and no .migcoord/dev."""
    result = run(["verify", "--service", "rule-service", "--format", "json"], cwd=repo,
                 environ={})
    assert result.code == 0, result.stderr
    assert result.json()["server_kind"] == "temporary"
    assert not (repo / ".migcoord" / "dev").exists()


def test_make_migrate_verify_passes_in_the_example(repo: Path) -> None:
    """`make migrate-verify` in rule-service, with DATABASE_URL unset (embedded server)."""
    import os
    import shutil
    import subprocess
    import sys

    from helpers import REPO

    make = shutil.which("make")
    assert make is not None, "GNU make is needed for this test"
    shutil.copy(REPO / "Makefile.inc", repo / "Makefile.inc")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SERVICE")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([make, "-s", "migrate-verify", f"MIGCOORD={sys.executable} -m migcoord"],
                          cwd=repo / "rule-service", env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "verify ok: 5 migrations round-tripped" in done.stdout


def test_migcoord_dev_dir_moves_the_data_and_every_dev_command_follows(
    repo: Path, server_tmp_dir: Path
) -> None:
    """MIGCOORD_DEV_DIR puts the data elsewhere (as root, for a repository nobody can
    enter); start, status, url, DATABASE_URL=embedded and stop all find it there."""
    elsewhere = server_tmp_dir / "dev-data"
    environ = {devserver.DATA_DIR_ENV: str(elsewhere)}
    try:
        assert run(["dev", "start"], cwd=repo, environ=environ).code == 0
        assert (elsewhere / "PG_VERSION").is_file()
        assert not (repo / ".migcoord" / "dev").exists()
        url = run(["dev", "url"], cwd=repo, environ=environ).stdout.strip()
        up = run(["up", "--all"], cwd=repo, environ={**environ, "DATABASE_URL": "embedded"})
        assert up.code == 0, up
        assert has_history(url)
        assert run(["dev", "url"], cwd=repo).code == 3  # without it: the repo's own, not running
    finally:
        assert run(["dev", "stop"], cwd=repo, environ=environ).code == 0
    assert run(["dev", "url"], cwd=repo, environ=environ).code == 3
