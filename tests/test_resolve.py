"""`migcoord resolve`: after (or before) a merge collision, this branch's migrations move
after the other side's; the other side's never move. Real git repositories, no mocks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from gitflow import commit_all, create, example_repo, git, tree_files, versions

from helpers import REPO, run

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

AGG = "aggregator/migrations"
SENDER = "sender/migrations"

DIGEST_UP = "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS digest text;\n"
DIGEST_DOWN = "ALTER TABLE notifications DROP COLUMN IF EXISTS digest;\n"
VIEW_UP = ("-- migcoord:depends aggregator:000007\n"
           "CREATE OR REPLACE VIEW digests AS SELECT id, digest FROM notifications;\n")
VIEW_DOWN = "DROP VIEW IF EXISTS digests;\n"
FLAGS_UP = "ALTER TABLE rules ADD COLUMN IF NOT EXISTS flags integer;\n"
FLAGS_DOWN = "ALTER TABLE rules DROP COLUMN IF EXISTS flags;\n"


def collided(tmp_path: Path) -> Path:
    """main took 000007 for rule-service; `feature` took 000007 for aggregator and 000008
    for sender, which depends on aggregator:000007. `feature` is checked out."""
    root = example_repo(tmp_path / "repo")
    git(root, "checkout", "-q", "-b", "feature")
    assert create(root, "aggregator", "add_digest", DIGEST_UP, DIGEST_DOWN) == "000007"
    assert create(root, "sender", "digest_view", VIEW_UP, VIEW_DOWN) == "000008"
    commit_all(root, "aggregator: digest")
    git(root, "checkout", "-q", "main")
    assert create(root, "rule-service", "add_rule_flags", FLAGS_UP, FLAGS_DOWN) == "000007"
    commit_all(root, "rule-service: flags")
    git(root, "checkout", "-q", "feature")
    return root


def errors(root: Path, *args: str) -> list[dict[str, object]]:
    result = run(["check", "--format", "json", *args], cwd=root)
    assert "Traceback" not in result.stderr
    return [f for f in result.json()["findings"] if f["severity"] == "error"]


def strict_check(root: Path) -> None:
    result = run(["check", "--strict"], cwd=root)
    assert result.code == 0, result.stdout + result.stderr


def assert_resolved(root: Path) -> None:
    """rule-service keeps 000007; the branch's two follow, the reference follows them."""
    assert versions(root, "rule-service")[-1] == "000007_add_rule_flags.up.sql"
    assert versions(root, "aggregator") == [
        "000006_create_notifications_table.up.sql", "000008_add_digest.up.sql"]
    assert versions(root, "sender") == ["000009_digest_view.up.sql"]
    assert (root / SENDER / "000009_digest_view.up.sql").read_text() == VIEW_UP.replace(
        "aggregator:000007", "aggregator:000008")
    assert (root / AGG / "000008_add_digest.up.sql").read_text() == DIGEST_UP
    lines = (root / "migcoord.sum").read_text().splitlines()
    assert lines[-3:] == ["000007 rule-service add_rule_flags", "000008 aggregator add_digest",
                          "000009 sender digest_view"]
    assert "<<<<<<<" not in (root / "docs/MIGRATIONS.md").read_text()


def test_resolve_during_a_merge_moves_this_branchs_migrations_after_the_merged_one(
    tmp_path: Path,
) -> None:
    """`git merge main` stops on migcoord.sum; resolve keeps main's 000007 (MERGE_HEAD),
    moves the branch's 000007 and 000008 to 000008 and 000009, and the merge commits clean."""
    root = collided(tmp_path)
    assert git(root, "merge", "main", check=False).returncode != 0
    assert "<<<<<<<" in (root / "migcoord.sum").read_text()
    result = run(["resolve"], cwd=root)
    assert result.code == 0, result.stderr
    assert "kept rule-service 000007_add_rule_flags" in result.stdout
    assert "moved aggregator 000007_add_digest -> 000008_add_digest" in result.stdout
    assert "moved sender 000008_digest_view -> 000009_digest_view" in result.stdout
    assert "git commit" in result.stderr
    assert_resolved(root)
    commit_all(root, "merge main")
    strict_check(root)


def test_resolve_during_a_rebase_moves_the_replayed_branchs_migrations(tmp_path: Path) -> None:
    """In `git rebase main` git's "ours" is main: resolve still keeps main's 000007 and
    moves the branch's migrations, and the rebase continues clean."""
    root = collided(tmp_path)
    assert git(root, "rebase", "main", check=False).returncode != 0
    result = run(["resolve"], cwd=root)
    assert result.code == 0, result.stderr
    assert "kept rule-service 000007_add_rule_flags (main (rebased onto))" in result.stdout
    assert "git rebase --continue" in result.stderr
    assert_resolved(root)
    git(root, "add", "-A")
    git(root, "rebase", "--continue")
    strict_check(root)
    assert git(root, "log", "--format=%s", "-3").stdout.split("\n")[:2] == [
        "aggregator: digest", "rule-service: flags"]


def test_resolve_onto_a_ref_before_merging_then_the_merge_needs_only_the_sum(
    tmp_path: Path,
) -> None:
    """`resolve --onto main` moves the branch's migrations before any merge; the merge
    then still conflicts in migcoord.sum (both sides added lines), and resolve there
    moves nothing and rewrites it."""
    root = collided(tmp_path)
    assert [f["code"] for f in errors(root, "--against", "main")] == ["duplicate-version"] * 2
    result = run(["resolve", "--onto", "main"], cwd=root)
    assert result.code == 0, result.stderr
    assert "moved aggregator 000007_add_digest -> 000008_add_digest" in result.stdout
    assert errors(root, "--against", "main") == []
    commit_all(root, "resolve onto main")
    git(root, "merge", "main", check=False)
    again = run(["resolve"], cwd=root)
    assert again.code == 0, again.stderr
    assert "nothing to move" in again.stdout
    assert_resolved(root)
    commit_all(root, "merge main")
    strict_check(root)


def test_running_resolve_twice_changes_nothing(tmp_path: Path) -> None:
    """The second run finds no collision: every file stays as the first run left it."""
    root = collided(tmp_path)
    git(root, "merge", "main", check=False)
    assert run(["resolve"], cwd=root).code == 0
    after_first = tree_files(root)
    second = run(["resolve"], cwd=root)
    assert second.code == 0, second.stderr
    assert "nothing to move" in second.stdout
    assert "updated" not in second.stdout
    assert tree_files(root) == after_first


def test_resolve_never_moves_a_migration_the_other_side_has(tmp_path: Path) -> None:
    """Checked out on main and merging `feature`, git's other side is feature: its
    migrations keep 000007 and 000008, and main's 000007 is the one that moves."""
    root = collided(tmp_path)
    git(root, "checkout", "-q", "main")
    git(root, "merge", "feature", check=False)
    assert run(["resolve"], cwd=root).code == 0
    assert versions(root, "aggregator")[1:] == ["000007_add_digest.up.sql"]
    assert versions(root, "sender") == ["000008_digest_view.up.sql"]
    assert versions(root, "rule-service")[-1] == "000009_add_rule_flags.up.sql"
    assert (root / SENDER / "000008_digest_view.up.sql").read_text() == VIEW_UP


def test_resolve_keeps_crlf_line_endings_of_a_rewritten_file(tmp_path: Path) -> None:
    """A file checked out with CRLF line ends keeps them when its depends line changes."""
    root = collided(tmp_path)
    view = root / SENDER / "000008_digest_view.up.sql"
    view.write_bytes(view.read_bytes().replace(b"\n", b"\r\n"))
    commit_all(root, "crlf")
    git(root, "merge", "main", check=False)
    assert run(["resolve"], cwd=root).code == 0
    moved = (root / SENDER / "000009_digest_view.up.sql").read_bytes()
    assert moved == VIEW_UP.replace("000007", "000008").replace("\n", "\r\n").encode()


def test_resolve_outside_a_merge_without_onto_says_to_give_onto(tmp_path: Path) -> None:
    """No merge or rebase in progress: exit 2 naming --onto with a branch git knows (here
    the local main: there is no remote); that command then works."""
    root = collided(tmp_path)
    result = run(["resolve"], cwd=root)
    assert result.code == 2
    assert "`migcoord resolve --onto main`" in result.stderr
    assert "Traceback" not in result.stderr
    hinted = run(["resolve", "--onto", "main"], cwd=root)
    assert hinted.code == 0, hinted.stderr
    assert errors(root, "--against", "main") == []


def test_resolves_hint_names_the_remotes_default_branch_or_none(tmp_path: Path) -> None:
    """With a remote, the hint names its default branch, as a clone has it; with no
    branch to name, a placeholder rather than a ref that does not exist."""
    upstream = collided(tmp_path / "upstream")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "feature", str(upstream), str(clone))
    git(clone, "remote", "set-head", "origin", "main")
    result = run(["resolve"], cwd=clone)
    assert result.code == 2
    assert "`migcoord resolve --onto origin/main`" in result.stderr
    assert run(["resolve", "--onto", "origin/main"], cwd=clone).code == 0

    git(upstream, "branch", "-q", "-m", "main", "trunk")
    alone = run(["resolve"], cwd=upstream)
    assert alone.code == 2
    assert "`migcoord resolve --onto BRANCH` (branches here: trunk)" in alone.stderr


def test_resolve_outside_git_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    shutil.copytree(REPO / "examples" / "alerting", root)
    result = run(["resolve", "--onto", "main"], cwd=root)
    assert result.code == 2
    assert "not inside a git repository" in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_version_during_a_merge_names_this_branchs_migration(tmp_path: Path) -> None:
    """During the merge, check's duplicate-version says which one moves (the branch's)
    and which stays (the merged one); the hinted command resolves it."""
    root = collided(tmp_path)
    git(root, "merge", "main", check=False)
    found = {str(f["service"]): str(f["hint"]) for f in errors(root)
             if f["code"] == "duplicate-version"}
    assert found["aggregator"].startswith("this branch's migration moves: main (being merged) "
                                          "already has rule-service/000007_add_rule_flags")
    assert found["rule-service"].startswith("keep this one")
    assert "`migcoord resolve`" in found["aggregator"]
    assert run(["resolve"], cwd=root).code == 0
    assert errors(root) == []


def test_check_against_names_the_branchs_migration_and_its_hint_works(tmp_path: Path) -> None:
    """check --against main: the hint on the branch's migration is `migcoord resolve
    --onto main`, never a renumber of main's; running it clears the collision."""
    root = collided(tmp_path)
    found = {str(f["service"]): str(f["hint"]) for f in errors(root, "--against", "main")}
    assert "`migcoord resolve --onto main`" in found["aggregator"]
    assert "renumber" not in found["rule-service"]
    assert run(["resolve", "--onto", "main"], cwd=root).code == 0
    assert errors(root, "--against", "main") == []


def test_make_migrate_resolve_resolves_a_merge(tmp_path: Path) -> None:
    """`make migrate-resolve` in a service folder, during a merge, with the real CLI."""
    import os
    import subprocess
    import sys

    root = collided(tmp_path)
    shutil.copy(REPO / "Makefile.inc", root / "Makefile.inc")
    git(root, "merge", "main", check=False)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SERVICE", "ONTO")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(["make", "-s", "migrate-resolve", f"MIGCOORD={sys.executable} -m migcoord"],
                          cwd=root / "aggregator", env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert_resolved(root)


def test_a_docs_file_with_conflict_markers_is_an_error_and_docs_rewrites_it(
    tmp_path: Path,
) -> None:
    """After the merge stops, check reports docs-conflict (an error) saying to run
    `migcoord docs`; resolve (or docs) writes the tables again, without markers."""
    root = collided(tmp_path)
    git(root, "merge", "main", check=False)
    assert "<<<<<<<" in (root / "docs/MIGRATIONS.md").read_text()
    conflict = [f for f in errors(root) if f["code"] == "docs-conflict"]
    assert len(conflict) == 1 and conflict[0]["path"] == "docs/MIGRATIONS.md"
    assert "`migcoord docs`" in str(conflict[0]["hint"])
    assert run(["docs"], cwd=root).code == 0
    assert "<<<<<<<" not in (root / "docs/MIGRATIONS.md").read_text()
    assert [f for f in errors(root) if f["code"] == "docs-conflict"] == []


def test_docs_refuses_conflict_markers_outside_the_generated_tables(tmp_path: Path) -> None:
    """Markers in text migcoord does not write: docs says to resolve them by hand and
    writes nothing."""
    root = collided(tmp_path)
    docs = root / "docs/MIGRATIONS.md"
    text = "<<<<<<< HEAD\nour intro\n=======\ntheir intro\n>>>>>>> main\n" + docs.read_text()
    docs.write_text(text)
    result = run(["docs"], cwd=root)
    assert result.code == 2
    assert "outside the generated tables" in result.stderr
    assert docs.read_text() == text


def test_sum_refuses_two_migrations_of_one_version_and_its_hint_works(tmp_path: Path) -> None:
    """During the merge `migcoord sum` writes nothing and says to run resolve; resolve
    then writes the sum."""
    root = collided(tmp_path)
    git(root, "merge", "main", check=False)
    before = (root / "migcoord.sum").read_text()
    refused = run(["sum"], cwd=root)
    assert refused.code == 1
    assert "`migcoord resolve`" in refused.stderr
    assert (root / "migcoord.sum").read_text() == before
    assert run(["resolve"], cwd=root).code == 0
    assert_resolved(root)


def test_renumber_and_sum_refresh_the_docs_file(tmp_path: Path) -> None:
    """Like create, renumber and sum bring the generated tables up to date."""
    root = collided(tmp_path)
    docs = root / "docs/MIGRATIONS.md"
    assert "| 000008 | Digest view |" in docs.read_text()
    assert run(["renumber", "000008", "--service", "sender", "--to", "000009"], cwd=root).code == 0
    assert "| 000009 | Digest view |" in docs.read_text()
    folder = root / SENDER
    for direction in ("up", "down"):
        (folder / f"000009_digest_view.{direction}.sql").rename(
            folder / f"000008_digest_view.{direction}.sql")
    assert run(["sum"], cwd=root).code == 0
    assert "| 000008 | Digest view |" in docs.read_text()


def test_resolve_json_lists_each_move_and_a_second_run_lists_none(tmp_path: Path) -> None:
    """--format json: one document with old and new versions; the rerun moves nothing."""
    root = collided(tmp_path)
    git(root, "merge", "main", check=False)
    first = run(["resolve", "--format", "json"], cwd=root)
    assert first.code == 0, first.stderr
    document = first.json()
    assert (document["state"], document["other_side"]) == ("merge", "main (being merged)")
    assert [(m["service"], m["old_version"], m["new_version"]) for m in document["migrations"]] \
        == [("aggregator", 7, 8), ("sender", 8, 9)]
    assert document["kept"] == ["rule-service 000007_add_rule_flags"]
    again = run(["resolve", "--format", "json"], cwd=root)
    assert again.json()["migrations"] == [] and again.json()["moved"] == []


def test_resolve_with_an_unreachable_dsn_moves_nothing_and_never_prints_the_password(
    tmp_path: Path,
) -> None:
    """A DSN with a password that cannot connect: exit 3, the files untouched, the
    password nowhere in the output."""
    root = collided(tmp_path)
    git(root, "merge", "main", check=False)
    before = tree_files(root)
    result = run(["resolve", "--dsn", "postgresql://me:s3cr3t-pw@127.0.0.1:1/nowhere"], cwd=root)
    assert result.code == 3, result.stderr
    assert "s3cr3t-pw" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert tree_files(root) == before


def test_a_gap_left_by_moving_past_mains_number_does_not_lead_back_into_it(
    tmp_path: Path,
) -> None:
    """After `resolve --onto main` the branch alone skips main's 000007: the gap's hint
    first says that merging main closes it (which it does), not to move back into 7."""
    root = collided(tmp_path)
    assert run(["resolve", "--onto", "main"], cwd=root).code == 0
    [gap] = [f for f in errors(root) if f["code"] == "gap"]
    assert str(gap["hint"]).startswith("if another branch took 000007")
    assert errors(root, "--against", "main") == []
    commit_all(root, "resolved onto main")
    git(root, "merge", "main", check=False)
    assert run(["resolve"], cwd=root).code == 0
    assert errors(root) == []
