"""Real git repositories for the branch-and-merge tests: a base commit of the example,
branches that each take "the next" number, merges and rebases that stop on conflicts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers import copy_example, run

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_EDITOR": "true",
}


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git in `cwd` with a fixed identity and no user or system config."""
    done = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV},
                          capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def example_repo(root: Path) -> Path:
    """examples/alerting as the first commit of branch main."""
    copy_example(root)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def create(root: Path, service: str, name: str, up: str, down: str) -> str:
    """`migcoord create`, then write the SQL and refresh the docs file (a new table
    changes its tables), as a developer would; returns the version."""
    result = run(["create", name, "--service", service, "--format", "json"], cwd=root)
    assert result.code == 0, result.stderr
    created = result.json()
    (root / created["up"]).write_text(up)
    (root / created["down"]).write_text(down)
    assert run(["docs"], cwd=root).code == 0
    return str(created["up"]).rsplit("/", 1)[-1].split("_", 1)[0]


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def tree_files(root: Path) -> dict[str, bytes]:
    """Every file under root but git's own, by relative path: to compare whole trees."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts
            and ".migcoord" not in p.relative_to(root).parts}


def versions(root: Path, service: str) -> list[str]:
    """The up files of a service, by name."""
    return sorted(p.name for p in (root / service / "migrations").glob("*.up.sql"))
