"""Small builders for test scenarios: a repository tree, the CLI run in or out of process."""

from __future__ import annotations

import atexit
import functools
import io
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from migcoord.cli import main
from migcoord.core import registry_render

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "alerting"

DEFAULT_CONFIG = """\
[services.rule-service]
migrations = "rule-service/migrations"
owns = ["clients", "rules", "endpoints"]

[services.aggregator]
migrations = "aggregator/migrations"
owns = ["notifications"]

[services.sender]
migrations = "sender/migrations"
"""


def make_tree(root: Path, files: Mapping[str, str | bytes], *,
              config: str = DEFAULT_CONFIG, write_sum: bool = True) -> Path:
    """A repository at `root` with migcoord.toml and `files` ({relative path: content}).

    With `write_sum`, migcoord.sum is written by the real `migcoord sum`; `sum` refuses
    a tree where two migrations share a version, so such a tree gets the ledger a merge
    conflict resolved by hand "keeping both lines" leaves (`write_ledger`).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "migcoord.toml").write_text(config)
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if write_sum:
        write_sum_file(root)
    return root


def write_sum_file(root: Path) -> None:
    """`migcoord sum`; where it refuses two migrations of one version, `write_ledger`."""
    result = run(["sum"], cwd=root)
    if result.code == 1 and "migcoord.sum gives each number to one migration" in result.stderr:
        write_ledger(root)
    else:
        assert result.code == 0, result.stderr


def write_ledger(root: Path) -> None:
    """migcoord.sum listing every migration in `root`, duplicates included."""
    from migcoord.core import sumfile
    from migcoord.repo import config, discovery

    loaded = config.load(config.locate(start=root, environ={}))
    catalog = discovery.read_catalog(loaded)
    (root / "migcoord.sum").write_text(sumfile.render(catalog.migrations))


def pair(service: str, version: str, name: str, up: str = "SELECT 1;\n",
         down: str = "SELECT 1;\n") -> dict[str, str]:
    """Both files of one migration, keyed by path relative to the repository."""
    base = f"{service}/migrations/{version}_{name}"
    return {f"{base}.up.sql": up, f"{base}.down.sql": down}


def copy_example(target: Path, *, registry: bool = False) -> Path:
    """examples/alerting at `target`. Without `registry`, its docs file loses the schema
    registry: a test that adds a migration would otherwise have to build the schema
    again on a server before `check --strict` is clean (tests of the registry keep it)."""
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".migcoord"))
    if not registry:
        docs = target / "docs" / "MIGRATIONS.md"
        text = docs.read_text()
        start, end = text.find(registry_render.BEGIN), text.find(registry_render.END)
        if start >= 0 and end > start:
            docs.write_text(text[:start].rstrip("\n") + "\n"
                            + text[end + len(registry_render.END):].lstrip("\n"))
    return target


@attrs.frozen
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(args: Sequence[str], *, cwd: Path, environ: Mapping[str, str] | None = None) -> Result:
    """The real CLI, in this process (fast): exit code and both streams."""
    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        code = main(list(args), environ=dict(environ or {}), stdout=out, stderr=err)
    finally:
        os.chdir(previous)
    return Result(code, out.getvalue(), err.getvalue())


def run_process(args: Sequence[str], *, cwd: Path, environ: Mapping[str, str] | None = None,
                timeout: float = 120, user: str | None = None) -> Result:
    """The real CLI in its own process (`python -m migcoord`), optionally as another user."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    if "MIGCOORD_PG_BIN" in os.environ:  # which server binaries (see conftest.py)
        env["MIGCOORD_PG_BIN"] = os.environ["MIGCOORD_PG_BIN"]
    if user is not None:
        env["PYTHONPATH"] = str(importable_by_anyone())
    env.update(environ or {})
    command = [sys.executable, "-m", "migcoord", *args]
    if user is not None:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        group = entry.pw_gid  # `nobody`'s group is `nogroup` on Debian
        command = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups", *command]
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=timeout, check=False)
    return Result(completed.returncode, completed.stdout, completed.stderr)


@functools.cache
def importable_by_anyone() -> Path:
    """A world-readable copy of migcoord and the packages it imports, for running the CLI
    as another user: the checkout and its .venv may sit in a folder only root can enter
    (a clone in a `mktemp -d` folder is mode 0700)."""
    import attr
    import attrs
    import filelock
    import psycopg
    import typing_extensions

    stage = Path(tempfile.mkdtemp(prefix="migcoord-stage-"))
    atexit.register(shutil.rmtree, stage, True)
    stage.chmod(0o755)
    shutil.copytree(REPO / "migcoord", stage / "migcoord",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = Path(psycopg.__file__).parent.parent
    for module in (attr, attrs, filelock, psycopg):
        shutil.copytree(Path(module.__file__).parent, stage / Path(module.__file__).parent.name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(typing_extensions.__file__, stage)
    for extra in ("psycopg_binary", "psycopg_binary.libs"):
        if (site / extra).is_dir():
            shutil.copytree(site / extra, stage / extra,
                            ignore=shutil.ignore_patterns("__pycache__"))
    for path in [stage, *stage.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    return stage


def codes(result: Result) -> list[str]:
    """Finding codes of a `check --format json` run."""
    return [f["code"] for f in result.json()["findings"]]


def check_and_verify_agree(root: Path, admin_dsn: str, *, migrations: int) -> None:
    """`check` finds no down-mismatch in the tree at `root`, and `verify` round-trips each
    of its `migrations` on the real server: both say every down undoes its up."""
    check = run(["check", "--format", "json"], cwd=root)
    assert [f for f in check.json()["findings"] if f["code"] == "down-mismatch"] == []
    result = run(["verify", "--dsn", admin_dsn, "--format", "json"], cwd=root)
    report = result.json()
    assert result.code == 0, [m["problems"] for m in report["migrations"] if not m["ok"]]
    assert [m["status"] for m in report["migrations"]] == ["ok"] * migrations
