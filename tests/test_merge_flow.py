"""The branch-and-merge workflow end to end: three services on three branches each take
"the next" number from the same base; each pull request is checked with --against before
it merges; every collision is resolved with `migcoord resolve` (after a merge, after a
rebase); `check --strict` is clean after each; and a developer database that applied
one branch's migration under its old number is repaired with the commands `up` names.
The history and schema end as a single-branch sequence would leave them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from gitflow import commit_all, create, example_repo, git

from helpers import run
from test_engine_support import env, history, schema_snapshot

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

BRANCHES = {
    "rules-flags": ("rule-service", "add_rule_flags",
                    "ALTER TABLE rules ADD COLUMN IF NOT EXISTS flags integer;\n",
                    "ALTER TABLE rules DROP COLUMN IF EXISTS flags;\n"),
    "digest": ("aggregator", "add_digest",
               "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS digest text;\n",
               "ALTER TABLE notifications DROP COLUMN IF EXISTS digest;\n"),
    "outbox": ("sender", "create_outbox",
               "CREATE TABLE IF NOT EXISTS outbox (id bigint PRIMARY KEY, body text);\n",
               "DROP TABLE IF EXISTS outbox;\n"),
}


def three_branches(tmp_path: Path) -> Path:
    """Each branch ran `migcoord create` from the same base: all three took 000007."""
    root = example_repo(tmp_path / "repo")
    for branch, (service, name, up, down) in BRANCHES.items():
        git(root, "checkout", "-q", "-b", branch, "main")
        assert create(root, service, name, up, down) == "000007"
        commit_all(root, f"{service}: {name}")
    git(root, "checkout", "-q", "main")
    return root


def errors_against(root: Path, ref: str) -> list[tuple[str, str]]:
    result = run(["check", "--format", "json", "--against", ref], cwd=root)
    return [(f["code"], f["service"]) for f in result.json()["findings"]
            if f["severity"] == "error"]


def strict_clean(root: Path) -> None:
    result = run(["check", "--strict"], cwd=root)
    assert result.code == 0, result.stdout + result.stderr


def land(root: Path, branch: str, how: str) -> None:
    """The pull request of `branch`: check it against main; on a collision bring main in
    (`how`: merge or rebase), `migcoord resolve`, finish; then merge it into main."""
    git(root, "checkout", "-q", branch)
    if errors_against(root, "main"):
        assert {code for code, _ in errors_against(root, "main")} == {"duplicate-version"}
        stopped = git(root, how, "main", check=False)
        assert stopped.returncode != 0, stopped.stdout
        result = run(["resolve"], cwd=root)
        assert result.code == 0, result.stderr
        git(root, "add", "-A")
        if how == "merge":
            git(root, "commit", "-q", "--no-edit")
        else:
            git(root, "rebase", "--continue")
    strict_clean(root)
    assert errors_against(root, "main") == []
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "--no-edit", branch)
    strict_clean(root)


def sequence(root: Path) -> list[str]:
    """Every migration on disk, `version service name`, as migcoord.sum lists them."""
    return (root / "migcoord.sum").read_text().splitlines()[1:]


@pytest.mark.parametrize("order", [("rules-flags", "digest", "outbox"),
                                   ("outbox", "rules-flags", "digest")])
@pytest.mark.parametrize("how", ["merge", "rebase"])
def test_three_branches_land_one_after_another_into_one_sequence(
    tmp_path: Path, order: tuple[str, str, str], how: str
) -> None:
    """Whatever the order, each landed branch keeps main's numbers and takes the next:
    000007, 000008, 000009 in landing order, with a clean strict check after each."""
    root = three_branches(tmp_path)
    for branch in order:
        land(root, branch, how)
    landed = [f"{version:06d} {BRANCHES[b][0]} {BRANCHES[b][1]}"
              for version, b in zip((7, 8, 9), order, strict=True)]
    assert sequence(root)[-3:] == landed


def test_a_developer_database_with_the_old_number_is_repaired_by_the_hinted_commands(
    tmp_path: Path, dsn: str, other_dsn: str
) -> None:
    """The aggregator developer applied 000007_add_digest locally, then resolve moved it to
    000008. `up --all` there refuses (it would apply the column twice), recognising the
    migration by its checksum, and names the `mark` commands; after them `up --all`
    applies the rest. History and schema then equal a fresh database's from main."""
    root = three_branches(tmp_path)
    git(root, "checkout", "-q", "digest")
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    land(root, "rules-flags", "merge")
    land(root, "digest", "merge")
    land(root, "outbox", "rebase")
    assert sequence(root)[-3:] == ["000007 rule-service add_rule_flags",
                                   "000008 aggregator add_digest", "000009 sender create_outbox"]

    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "applied in this database under its old number" in refused.stderr
    assert "renumber" not in refused.stderr.split("hint:")[1].replace("renumbered", "")
    hinted = re.findall(r"`(migcoord mark [^`]+)`", refused.stderr)
    assert hinted == ["migcoord mark 000008 --applied --reason 'renumbered from 000007'",
                      "migcoord mark 000007 --pending --reason 'renumbered to 000008'"]
    assert "hint: record the new number without running anything again" in refused.stderr
    # check --db and status say the same; the same refusal for one service:
    # rule-service's 000007 has the old number's row.
    db = run(["check", "--db", "--no-sql", "--format", "json"], cwd=root, environ=env(dsn))
    [missing] = [f for f in db.json()["findings"] if f["code"] == "missing-file"]
    assert re.findall(r"`(migcoord mark [^`]+)`", missing["hint"]) == hinted
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn)).json()
    assert {(m["version"], m["service"], m["state"]) for m in status["migrations"]} >= {
        (7, "aggregator", "missing"), (7, "rule-service", "pending"), (8, "aggregator", "pending")}
    one = run(["up", "--service", "rule-service"], cwd=root, environ=env(dsn))
    assert one.code == 1
    assert re.findall(r"`(migcoord mark [^`]+)`", one.stderr) == hinted
    for command in hinted:
        args = [part.strip("'") for part in re.findall(r"'[^']*'|\S+", command)][1:]
        done = run(args, cwd=root, environ=env(dsn))
        assert done.code == 0, done.stderr
    applied = run(["up", "--all", "--format", "json"], cwd=root, environ=env(dsn))
    assert applied.code == 0, applied.stderr
    assert [s["version"] for s in applied.json()["applied"]] == [7, 9]

    assert run(["up", "--all"], cwd=root, environ=env(other_dsn)).code == 0
    keys = ("version", "service", "name", "checksum", "status")
    assert [tuple(r[k] for k in keys) for r in history(dsn)] == [
        tuple(r[k] for k in keys) for r in history(other_dsn)]
    assert schema_snapshot(dsn) == schema_snapshot(other_dsn)
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert {m["state"] for m in status.json()["migrations"]} == {"applied"}


def test_up_refuses_while_the_sum_holds_a_merge_conflict(tmp_path: Path, dsn: str) -> None:
    """During an unresolved merge no service applies anything (its number may still
    change); the hint is `migcoord resolve`, after which up works."""
    root = three_branches(tmp_path)
    land(root, "rules-flags", "merge")
    git(root, "checkout", "-q", "digest")
    git(root, "merge", "main", check=False)
    refused = run(["up", "--service", "aggregator"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "merge conflict" in refused.stderr and "`migcoord resolve`" in refused.stderr
    assert history(dsn) == []
    assert run(["resolve"], cwd=root).code == 0
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0


def test_resolve_refuses_to_move_a_migration_applied_in_the_given_database(
    tmp_path: Path, dsn: str
) -> None:
    """resolve --dsn: the branch's 000007 is applied there, so nothing moves; the hint's
    commands (resolve without --dsn, then the two marks) leave that database consistent."""
    root = three_branches(tmp_path)
    land(root, "rules-flags", "merge")
    git(root, "checkout", "-q", "digest")
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    git(root, "merge", "main", check=False)
    before = sorted(p.name for p in (root / "aggregator/migrations").iterdir())
    refused = run(["resolve", "--dsn", dsn], cwd=root)
    assert refused.code == 1
    assert "aggregator 000007_add_digest is applied in this database" in refused.stderr
    assert sorted(p.name for p in (root / "aggregator/migrations").iterdir()) == before
    assert "run `migcoord resolve` without --dsn" in refused.stderr
    assert run(["resolve"], cwd=root).code == 0
    for command in re.findall(r"`(migcoord mark [^`]+)`", refused.stderr):
        args = [part.strip("'") for part in re.findall(r"'[^']*'|\S+", command)][1:]
        assert run([*args, "--dsn", dsn], cwd=root).code == 0
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert [(r["version"], r["service"]) for r in history(dsn)][-2:] == [
        (7, "rule-service"), (8, "aggregator")]
