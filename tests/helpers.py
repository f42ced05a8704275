"""Small builders for test scenarios: a repository tree, the CLI run in or out of process."""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from migcoord.cli import main

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

    With `write_sum`, migcoord.sum is written by the real `migcoord sum`.
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
        result = run(["sum"], cwd=root)
        assert result.code == 0, result.stderr
    return root


def pair(service: str, version: str, name: str, up: str = "SELECT 1;\n",
         down: str = "SELECT 1;\n") -> dict[str, str]:
    """Both files of one migration, keyed by path relative to the repository."""
    base = f"{service}/migrations/{version}_{name}"
    return {f"{base}.up.sql": up, f"{base}.down.sql": down}


def copy_example(target: Path) -> Path:
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".migcoord"))
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
    env.update(environ or {})
    command = [sys.executable, "-m", "migcoord", *args]
    if user is not None:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        group = entry.pw_gid  # `nobody`'s group is `nogroup` on Debian
        command = ["setpriv", f"--reuid={user}", f"--regid={group}", "--clear-groups", *command]
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                               timeout=timeout, check=False)
    return Result(completed.returncode, completed.stdout, completed.stderr)


def codes(result: Result) -> list[str]:
    """Finding codes of a `check --format json` run."""
    return [f["code"] for f in result.json()["findings"]]
