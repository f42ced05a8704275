"""Every hint about two migrations with one number leads somewhere: each command that
`check`, `sum`, `resolve` and `renumber` name is run here, and leaves `check` clean.

`renumber` takes a migration's version and name (`0001_b`) to pick one of two
migrations of one service with the same number; the hints name it that way.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from gitflow import commit_all, git

from helpers import Result, make_tree, run
from test_engine_support import env, history

CONFIG = """\
version_width = 4

[services.app]
migrations = "m"

[services.billing]
migrations = "billing"
"""

COMMAND = re.compile(r"`(migcoord [^`<]*)`")


def pair(folder: str, label: str) -> dict[str, str]:
    return {f"{folder}/{label}.up.sql": f"CREATE TABLE t_{label} (id int);\n",
            f"{folder}/{label}.down.sql": f"DROP TABLE t_{label};\n"}


def repo(root: Path, *labels: str) -> Path:
    """A git repository (branch main) with `folder/label` pairs and no migcoord.sum."""
    files: dict[str, str] = {}
    for label in labels:
        folder, _, name = label.partition("/")
        files.update(pair(folder, name))
    make_tree(root, files, config=CONFIG, write_sum=False)
    git(root, "init", "-q", "-b", "main")
    commit_all(root, "base")
    return root


def commands(text: str) -> list[str]:
    """The runnable commands a hint names (not the ones with a <placeholder>)."""
    return COMMAND.findall(text)


def hints(result: Result) -> str:
    return "\n".join(line for line in result.stderr.splitlines() if "hint:" in line)


def check_errors(root: Path) -> list[str]:
    result = run(["check", "--no-sql", "--format", "json"], cwd=root)
    return [f"{f['code']}: {f['message']}" for f in result.json()["findings"]
            if f["severity"] == "error"]


def run_in_copy(root: Path, target: Path, steps: list[str]) -> Path:
    """`steps` (hint commands) run in order in a copy of `root`; each must succeed."""
    shutil.copytree(root, target)
    for step in steps:
        result = run(step.split()[1:], cwd=target)
        assert result.code == 0, (step, result)
    return target


def test_one_services_two_migrations_of_one_number(tmp_path: Path) -> None:
    root = repo(tmp_path / "repo", "m/0001_a", "m/0001_b")

    check = run(["check", "--no-sql", "--format", "json"], cwd=root)
    by_code = {f["code"]: f["hint"] for f in check.json()["findings"]}
    assert set(by_code) == {"sum-mismatch", "duplicate-version"}
    # sum-mismatch used to say "run `migcoord sum`", which refuses here.
    assert "(duplicate-version)" in by_code["sum-mismatch"]
    assert commands(by_code["sum-mismatch"]) == [
        "migcoord renumber 0001_b --service app", "migcoord renumber 0001_a --service app"]
    assert commands(by_code["duplicate-version"])[:2] == commands(by_code["sum-mismatch"])

    summed = run(["sum"], cwd=root)
    assert summed.code == 1
    assert "next free number (0002)" in summed.stderr  # at the project's width
    resolved = run(["resolve"], cwd=root)
    assert resolved.code == 2
    onto = run(["resolve", "--onto", "main"], cwd=root)
    assert onto.code == 1
    renumbered = run(["renumber", "0001", "--service", "app"], cwd=root)
    assert renumbered.code == 1
    assert "app has 2 migrations numbered 0001: 0001_a, 0001_b" in renumbered.stderr

    named = set()
    for result in (summed, resolved, onto, renumbered):
        found = commands(hints(result))
        assert "migcoord renumber 0001_b --service app" in found, result
        named.update(found)
    named.update(commands(by_code["sum-mismatch"]) + commands(by_code["duplicate-version"]))
    assert {c for c in named if "renumber" in c} == {
        "migcoord renumber 0001_b --service app", "migcoord renumber 0001_a --service app"}
    for index, command in enumerate(sorted(named)):
        if "renumber" not in command:
            continue
        done = run_in_copy(root, tmp_path / f"run{index}", [command])
        assert check_errors(done) == [], command
        moved = command.split()[2].split("_", 1)[1]
        assert (done / f"m/0002_{moved}.up.sql").is_file()
        assert (done / "migcoord.sum").read_text().splitlines()[1:] == [
            "0001 app " + ("a" if moved == "b" else "b"), f"0002 app {moved}"]


def test_two_services_with_one_number_are_parted_by_renumbering_one(tmp_path: Path) -> None:
    root = repo(tmp_path / "repo", "m/0001_a", "billing/0001_b")

    summed = run(["sum"], cwd=root)
    assert summed.code == 1
    found = commands(hints(summed))
    assert found[:2] == ["migcoord renumber 0001 --service billing",
                         "migcoord renumber 0001 --service app"]
    for index, command in enumerate(found[:2]):
        assert check_errors(run_in_copy(root, tmp_path / f"run{index}", [command])) == []


def test_several_shared_numbers_are_parted_by_the_commands_in_the_order_given(
    tmp_path: Path
) -> None:
    root = repo(tmp_path / "repo", "m/0001_a", "m/0001_b", "billing/0002_c",
                "billing/0003_d", "m/0003_e", "m/0004_f")

    summed = run(["sum"], cwd=root)
    assert summed.code == 1
    # The first command is the move; the second, the other one of the pair instead.
    steps = commands(hints(summed))[:1]
    # app's 0001_b takes its later ones along (0003_e, 0004_f), so one command parts
    # both numbers here.
    assert steps == ["migcoord renumber 0001_b --service app"]
    assert "app's 2 later migrations to the next free numbers (from 0004)" in hints(summed)
    done = run_in_copy(root, tmp_path / "run", steps)
    assert check_errors(done) == []
    assert sorted(p.name for p in (done / "m").glob("*.up.sql")) == [
        "0001_a.up.sql", "0004_b.up.sql", "0005_e.up.sql", "0006_f.up.sql"]


def test_commands_for_several_numbers_are_listed_in_order(tmp_path: Path) -> None:
    root = repo(tmp_path / "repo", "m/0001_a", "billing/0001_b", "m/0002_c", "m/0002_d")

    check = run(["check", "--no-sql", "--format", "json"], cwd=root)
    [hint] = [f["hint"] for f in check.json()["findings"] if f["code"] == "sum-mismatch"]
    steps = commands(hint)
    assert steps == ["migcoord renumber 0001 --service billing",
                     "migcoord renumber 0002_d --service app"]
    assert "(billing/0001_b to 0003), then `migcoord renumber 0002_d --service app` " \
        "(app/0002_d to 0004)" in hint
    assert check_errors(run_in_copy(root, tmp_path / "run", steps)) == []


def test_renumber_picks_one_of_two_by_name_and_says_what_it_does_not_know(
    tmp_path: Path
) -> None:
    root = repo(tmp_path / "repo", "m/0001_a", "m/0001_b")
    (root / "m/0002_c.up.sql").write_text("-- migcoord:depends 0001\nSELECT 1;\n")
    (root / "m/0002_c.down.sql").write_text("SELECT 1;\n")

    missing = run(["renumber", "0001_x", "--service", "app"], cwd=root)
    assert missing.code == 2
    assert "app has no migration 0001_x" in missing.stderr
    assert "0001_a, 0001_b" in missing.stderr
    empty = run(["renumber", "0001_", "--service", "app"], cwd=root)
    assert empty.code == 2
    taken = run(["renumber", "0001_b", "--service", "app", "--to", "2"], cwd=root)
    assert taken.code == 1
    assert "version 0002 is already used by app/0002_c" in taken.stderr

    moved = run(["renumber", "0001_b", "--service", "app"], cwd=root)
    assert moved.code == 0, moved
    assert sorted(p.name for p in (root / "m").glob("*.up.sql")) == [
        "0001_a.up.sql", "0002_b.up.sql", "0003_c.up.sql"]
    # `depends 0001` meant either of the two: left as it was, and said so.
    assert (root / "m/0003_c.up.sql").read_text().startswith("-- migcoord:depends 0001\n")
    assert "0001" in moved.stderr and "bare reference" in moved.stderr


def test_renumber_by_name_with_a_database_refuses_only_the_applied_one(
    tmp_path: Path, dsn: str
) -> None:
    root = repo(tmp_path / "repo", "m/0001_a")
    assert run(["sum"], cwd=root).code == 0
    assert run(["up", "--service", "app"], cwd=root, environ=env(dsn)).code == 0
    (root / "m/0001_b.up.sql").write_text("CREATE TABLE t_b (id int);\n")
    (root / "m/0001_b.down.sql").write_text("DROP TABLE t_b;\n")

    applied = run(["renumber", "0001_a", "--service", "app", "--dsn", dsn], cwd=root)
    assert applied.code == 1
    assert "app 0001_a is applied in this database" in applied.stderr
    moved = run(["renumber", "0001_b", "--service", "app", "--dsn", dsn], cwd=root)
    assert moved.code == 0, moved
    assert run(["up", "--service", "app"], cwd=root, environ=env(dsn)).code == 0
    assert [(row["version"], row["name"]) for row in history(dsn)] == [(1, "a"), (2, "b")]


@pytest.mark.parametrize("text", ["x1", "0001_"])
def test_a_version_that_is_not_one_is_a_usage_error(tmp_path: Path, text: str) -> None:
    root = repo(tmp_path / "repo", "m/0001_a")
    result = run(["renumber", text, "--service", "app"], cwd=root)
    assert result.code == 2
    assert "Traceback" not in result.stderr


def test_the_hint_says_which_later_migrations_move_with_the_one_it_moves(tmp_path: Path) -> None:
    """A number reused in the middle of a history: renumber moves the migration with its
    service's later ones (they must stay after it), and the hint says so."""
    root = repo(tmp_path / "repo", "m/0001_a", "billing/0002_b", "m/0003_c", "m/0004_d",
                "billing/0004_e", "billing/0005_f")
    summed = run(["sum"], cwd=root)
    assert summed.code == 1
    assert ("`migcoord renumber 0004 --service billing` moves billing/0004_e and billing's "
            "later migration to the next free numbers (from 0005)") in summed.stderr
    check = run(["check", "--no-sql", "--format", "json"], cwd=root)
    [duplicate] = {f["hint"] for f in check.json()["findings"]
                   if f["code"] == "duplicate-version"}
    assert "moves billing/0004_e and billing's later migration to the next free numbers" \
        in duplicate
    done = run_in_copy(root, tmp_path / "run", commands(duplicate)[:1])
    assert check_errors(done) == []
    assert sorted(p.name for p in (done / "billing").glob("*.up.sql")) == [
        "0002_b.up.sql", "0005_e.up.sql", "0006_f.up.sql"]
