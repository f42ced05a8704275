"""`--against REF` and `resolve` where git cannot give what they need: a shallow clone, two
unrelated histories, a ref that walks out of the history, a name to quote. Each error
says what is true, and each command its hint names works when run (real git
repositories, no mocks)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PgServer
from gitflow import commit_all, git

from helpers import make_tree, pair, run

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

CONFIG = ('version_width = 4\n[services.app]\nmigrations = "app/migrations"\n'
          '[services.billing]\nmigrations = "billing/migrations"\n')
FIRST = pair("app", "0001", "t",
             up="CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, a int, b text);\n"
                "CREATE TYPE mood AS ENUM ('x');\n",
             down="DROP TYPE IF EXISTS mood;\nDROP TABLE IF EXISTS t;\n")


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def add(root: Path, service: str, version: str, name: str) -> None:
    """A clean migration, the sum refreshed, committed."""
    write(root, pair(service, version, name,
                     up=f"CREATE TABLE IF NOT EXISTS {name} (id int);\n",
                     down=f"DROP TABLE IF EXISTS {name};\n"))
    assert run(["sum"], cwd=root).code == 0
    commit_all(root, f"{service} {version}")


def repo(tmp_path: Path) -> Path:
    """main: 0001 (app), then 0002 (billing); two commits."""
    root = make_tree(tmp_path / "repo", FIRST, config=CONFIG)
    git(root, "init", "-q", "-b", "main")
    assert run(["sum"], cwd=root).code == 0
    commit_all(root, "base")
    add(root, "billing", "0002", "u")
    return root


def collided(tmp_path: Path) -> Path:
    """main took 0003 for billing, `feat` took 0003 for app; `feat` is checked out."""
    root = repo(tmp_path)
    git(root, "checkout", "-q", "-b", "feat")
    add(root, "app", "0003", "v")
    git(root, "checkout", "-q", "main")
    add(root, "billing", "0003", "w")
    git(root, "checkout", "-q", "feat")
    return root


def hinted(stderr: str) -> list[str]:
    """The commands between backticks in a hint."""
    return re.findall(r"`([^`]+)`", stderr.split("hint:", 1)[1]) if "hint:" in stderr else []


def errors(root: Path, *args: str) -> list[str]:
    result = run(["check", "--format", "json", *args], cwd=root)
    assert "Traceback" not in result.stderr
    return [str(f["code"]) for f in result.json()["findings"] if f["severity"] == "error"]


# -- verify --against: the collision's hint is check --against's ---------------------------


def test_verify_against_names_this_branchs_migration_and_its_hint_works(
        tmp_path: Path, pg_server: PgServer) -> None:
    """billing/0003_w is main's: the refusal says to move this branch's app/0003_v with
    `resolve --onto main`, never a renumber of a file only main has; that command works,
    and verify --against then round-trips the moved migration."""
    root = collided(tmp_path)
    refused = run(["verify", "--dsn", pg_server.admin_dsn, "--against", "main"], cwd=root)
    assert refused.code == 1, refused.stderr
    assert "renumber" not in refused.stderr
    assert ("this branch's migration moves: main already has billing/0003_w. "
            "`migcoord resolve --onto main`") in refused.stderr
    assert "`migcoord check --against main` lists every finding" in refused.stderr
    assert run(["resolve", "--onto", "main"], cwd=root).code == 0
    commit_all(root, "resolved")
    assert errors(root, "--against", "main") == []
    done = run(["verify", "--dsn", pg_server.admin_dsn, "--format", "json", "--against", "main"],
               cwd=root)
    assert done.code == 0, done.stderr
    assert [(m["service"], m["version"], m["status"]) for m in done.json()["migrations"]
            if not m["base"]] == [("app", 4, "ok")]


# -- no merge base ---------------------------------------------------------------------------


def shallow_clone(tmp_path: Path) -> tuple[Path, Path]:
    """A clone of depth 1, a commit on a new branch, then a commit on origin's main
    fetched with depth 1 too: no commit of both histories is in the clone."""
    origin = repo(tmp_path)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{origin}", str(clone))
    git(clone, "checkout", "-q", "-b", "feat")
    add(clone, "app", "0003", "v")
    add(origin, "billing", "0003", "w")
    git(clone, "fetch", "-q", "--depth", "1", "origin", "main")
    return origin, clone


@pytest.mark.parametrize("command", ["check", "verify"])
def test_a_shallow_clone_without_the_split_says_to_fetch_the_history(
        tmp_path: Path, command: str) -> None:
    _, clone = shallow_clone(tmp_path)
    result = run([command, "--against", "origin/main"], cwd=clone)
    assert result.code == 2, result.stderr
    assert "failed: no output" not in result.stderr and "Traceback" not in result.stderr
    assert ("this clone is shallow: it lacks the history back to where HEAD and "
            "'origin/main' split") in result.stderr
    assert "`fetch-depth: 0`" in result.stderr
    fetch = hinted(result.stderr)[0]
    assert fetch == "git fetch --unshallow"
    git(clone, *shlex.split(fetch)[1:])
    assert errors(clone, "--against", "origin/main") == ["duplicate-version"] * 2


@pytest.mark.parametrize("command", ["check", "verify"])
def test_unrelated_histories_say_they_share_no_commit(tmp_path: Path, command: str) -> None:
    """An orphan branch against main: no merge to validate, and the check of this branch
    alone, which the hint names, runs."""
    root = repo(tmp_path)
    git(root, "checkout", "-q", "--orphan", "other")
    commit_all(root, "another history")
    result = run([command, "--against", "main"], cwd=root)
    assert result.code == 2, result.stderr
    assert "failed: no output" not in result.stderr
    assert "HEAD and 'main' share no commit: their histories are unrelated" in result.stderr
    assert f"`migcoord {command}` without --against runs on this branch alone" in result.stderr
    assert run(["check"], cwd=root).code == 0


def test_a_branch_without_a_commit_says_so(tmp_path: Path) -> None:
    root = repo(tmp_path)
    git(root, "checkout", "-q", "--orphan", "empty")
    result = run(["check", "--against", "main"], cwd=root)
    assert result.code == 2, result.stderr
    assert "this branch has no commit yet" in result.stderr
    assert "Traceback" not in result.stderr


# -- a ref that walks out of the history -----------------------------------------------------


def test_a_second_parent_of_a_commit_that_is_no_merge(tmp_path: Path) -> None:
    root = repo(tmp_path)
    result = run(["check", "--against", "HEAD^2"], cwd=root)
    assert result.code == 2, result.stderr
    assert ("'HEAD^2' names parent 2 of 'HEAD', which has only one parent (it is not a merge "
            "commit)") in result.stderr
    assert "first commit" not in result.stderr
    log = hinted(result.stderr)[0]
    assert log == "git log --oneline --graph -n 10 HEAD"
    assert subprocess.run(shlex.split(log), cwd=root, capture_output=True).returncode == 0


def test_a_walk_past_the_first_commit_counts_what_there_is(tmp_path: Path) -> None:
    """main has two commits: main~1 is the first, main~5 goes past it."""
    root = repo(tmp_path)
    git(root, "checkout", "-q", "-b", "feat")
    add(root, "app", "0003", "v")
    assert run(["check", "--against", "main~1"], cwd=root).code == 0
    result = run(["check", "--against", "main~5"], cwd=root)
    assert result.code == 2, result.stderr
    assert ("'main~5' goes 5 commits back from 'main' along first parents, but 'main' has "
            "one commit before it") in result.stderr
    # The first commit is not HEAD: dropping --against is not the advice.
    assert "without --against" not in result.stderr
    assert hinted(result.stderr) == ["git log --oneline --graph -n 10 main"]


def test_a_walk_past_a_shallow_clones_history_says_to_fetch_it(tmp_path: Path) -> None:
    _, clone = shallow_clone(tmp_path)
    result = run(["check", "--against", "HEAD~2"], cwd=clone)
    assert result.code == 2, result.stderr
    assert ("'HEAD~2' goes back past 'HEAD~1', where the history of this shallow clone "
            "stops") in result.stderr
    git(clone, "fetch", "-q", "--unshallow")
    assert run(["check", "--against", "HEAD~2"], cwd=clone).code == 0


def test_a_ref_naming_a_file_is_no_commit(tmp_path: Path) -> None:
    root = repo(tmp_path)
    result = run(["check", "--against", "HEAD:migcoord.toml"], cwd=root)
    assert result.code == 2, result.stderr
    assert "'HEAD:migcoord.toml' names a file (a git blob), not a commit" in result.stderr


@pytest.mark.parametrize("ref", ["--all", ""])
def test_a_ref_git_would_read_as_an_option_is_refused(tmp_path: Path, ref: str) -> None:
    root = repo(tmp_path)
    result = run(["check", f"--against={ref}"], cwd=root)
    assert result.code == 2, result.stderr
    assert f"{ref!r} is no git ref" in result.stderr
    assert "rev-parse" not in result.stderr


def test_an_unknown_ref_hint_is_quoted_and_fetches_only_from_a_remote_there_is(
        tmp_path: Path) -> None:
    root = repo(tmp_path)
    result = run(["check", "--against", "main with space"], cwd=root)
    assert result.code == 2, result.stderr
    assert "no remote to fetch it from" in result.stderr
    assert "git fetch" not in result.stderr
    spelled = hinted(result.stderr)[0]
    assert shlex.split(spelled) == ["git", "rev-parse", "main with space"]
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    result = run(["check", "--against", "origin/later"], cwd=clone)
    assert hinted(result.stderr)[0] == "git fetch origin"
    git(root, "branch", "later")
    git(clone, "fetch", "-q", "origin")
    assert run(["check", "--against", "origin/later"], cwd=clone).code == 0


# -- resolve outside a merge, on the branch others merge into -----------------------------


def test_resolve_on_main_says_to_resolve_on_the_branch_to_be_merged(tmp_path: Path) -> None:
    """On main, main's migrations keep their numbers: the hint switches to the other
    branch and resolves it onto main, never `--onto BRANCH`; both commands work."""
    root = collided(tmp_path)
    git(root, "checkout", "-q", "main")
    result = run(["resolve"], cwd=root)
    assert result.code == 2, result.stderr
    assert "--onto BRANCH" not in result.stderr
    assert "this branch, main, is the one others merge into" in result.stderr
    switch, resolve = hinted(result.stderr)[:2]
    assert (switch, resolve) == ("git switch feat", "migcoord resolve --onto main")
    git(root, *shlex.split(switch)[1:])
    assert run(shlex.split(resolve)[1:], cwd=root).code == 0
    assert errors(root, "--against", "main") == []
    # Several other branches: each is named for BRANCH.
    commit_all(root, "resolved")
    git(root, "branch", "spare", "main")
    git(root, "checkout", "-q", "main")
    result = run(["resolve"], cwd=root)
    assert "`git switch BRANCH` (branches here: " in result.stderr
    assert "feat" in result.stderr and "spare" in result.stderr
