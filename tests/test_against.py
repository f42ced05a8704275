"""`check --against REF`: validate the merge with another branch before it happens."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import copy_example, make_tree, pair, run

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True)
    return done.stdout


def add_migration(root: Path, service: str, version: str, name: str, sql: str) -> None:
    """Write a finished migration, refresh the sum and commit, as a developer would."""
    for relative, text in pair(service, version, name, up=sql, down="SELECT 1;\n").items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert run(["sum"], cwd=root).code == 0
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"{service} {version}")


def diverged(tmp_path: Path, config_dir: str | None = None) -> Path:
    """main and `feature` each took 000007 after they split; `feature` is checked out.

    The git repository is tmp_path/repo; the config is at its top or in `config_dir`.
    """
    repo = tmp_path / "repo"
    root = repo / config_dir if config_dir else repo
    copy_example(root)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    add_migration(root, "aggregator", "000007", "add_digest", "CREATE TABLE digest (id int);\n")
    git(repo, "checkout", "-q", "main")
    add_migration(root, "rule-service", "000007", "add_rule_flags", "ALTER TABLE rules ADD f int;\n")
    git(repo, "checkout", "-q", "feature")
    return root


def findings(root: Path, *args: str) -> tuple[int, list[dict[str, object]]]:
    """Exit code and errors of `check` (the SQL lints' warnings about these throwaway
    migrations, and docs-stale, are not what --against is about)."""
    result = run(["check", "--format", "json", *args], cwd=root)
    assert "Traceback" not in result.stderr
    return result.code, [f for f in result.json()["findings"] if f["severity"] == "error"]


def test_the_branch_alone_is_clean(tmp_path: Path) -> None:
    """Without --against, the feature branch's own 000007 looks fine."""
    root = diverged(tmp_path)
    assert findings(root) == (0, [])


def test_against_main_reports_the_collision_naming_both_migrations(tmp_path: Path) -> None:
    """main took 000007 too: duplicate-version on both, before the merge happens."""
    root = diverged(tmp_path)
    code, found = findings(root, "--against", "main")
    assert code == 1
    assert [f["code"] for f in found] == ["duplicate-version", "duplicate-version"]
    assert {f["service"] for f in found} == {"aggregator", "rule-service"}
    for finding in found:
        assert "aggregator/000007_add_digest" in str(finding["message"])
        assert "rule-service/000007_add_rule_flags" in str(finding["message"])
    # Nothing in the working tree changed.
    assert git(root, "status", "--porcelain") == ""


def test_against_a_ref_with_nothing_new_is_clean(tmp_path: Path) -> None:
    """A ref that is an ancestor of HEAD adds nothing: clean."""
    root = diverged(tmp_path)
    git(root, "branch", "old", "HEAD~1")
    assert findings(root, "--against", "old") == (0, [])


def test_against_works_when_the_config_is_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    """A monorepo with migcoord.toml under db/: paths are taken relative to git's top."""
    root = diverged(tmp_path, "db")
    code, found = findings(root, "--against", "main")
    assert code == 1
    assert [f["code"] for f in found] == ["duplicate-version", "duplicate-version"]


def test_against_a_missing_ref_is_a_clear_error(tmp_path: Path) -> None:
    """An unknown ref: exit 2, naming the ref and how to check its spelling (no remote
    here to fetch it from), no traceback."""
    root = diverged(tmp_path)
    result = run(["check", "--against", "origin/nope"], cwd=root)
    assert result.code == 2
    assert "origin/nope" in result.stderr
    assert "`git rev-parse origin/nope`" in result.stderr
    assert "Traceback" not in result.stderr


def test_against_outside_a_git_repository_is_a_clear_error(tmp_path: Path) -> None:
    """No git repository around the config: exit 2 saying so."""
    root = make_tree(tmp_path, pair("rule-service", "000001", "a"))
    assert subprocess.run(["git", "rev-parse"], cwd=root, capture_output=True).returncode != 0
    result = run(["check", "--against", "main"], cwd=root)
    assert result.code == 2, result
    assert "not a git repository" in result.stderr
    assert "Traceback" not in result.stderr


# -- edits of migrations the ref already has -------------------------------------------------


def test_an_up_file_edited_on_the_branch_that_main_has_is_edited_merged(tmp_path: Path) -> None:
    """feature changed 000006's up file, which main has: an error naming the file and the
    command that restores it; that command clears it."""
    root = diverged(tmp_path)
    up = root / "aggregator/migrations/000006_create_notifications_table.up.sql"
    up.write_text(up.read_text() + "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS x int;\n")
    code, found = findings(root, "--against", "main")
    edited = [f for f in found if f["code"] == "edited-merged"]
    assert len(edited) == 1 and code == 1
    assert edited[0]["path"] == "aggregator/migrations/000006_create_notifications_table.up.sql"
    assert (edited[0]["service"], edited[0]["version"]) == ("aggregator", 6)
    restore = str(edited[0]["hint"]).split("`")[1]
    assert restore == ("git checkout main -- "
                       "aggregator/migrations/000006_create_notifications_table.up.sql")
    git(root, *restore.split()[1:])
    assert [f for f in findings(root, "--against", "main")[1] if f["code"] == "edited-merged"] == []


def test_a_down_file_edited_on_the_branch_is_a_warning_and_line_endings_are_no_edit(
    tmp_path: Path,
) -> None:
    """A changed down file of a merged migration warns (edited-merged-down); converting
    an up file to CRLF with a BOM changes nothing that runs, so it is not reported."""
    root = diverged(tmp_path)
    folder = root / "rule-service/migrations"
    down = folder / "000002_create_rules_table.down.sql"
    down.write_text(down.read_text() + "-- also drop the sequence\n")
    up = folder / "000001_create_clients_table.up.sql"
    up.write_bytes(b"\xef\xbb\xbf" + up.read_bytes().replace(b"\n", b"\r\n"))
    result = run(["check", "--format", "json", "--against", "main"], cwd=root)
    codes = [(f["code"], f["severity"], f["version"]) for f in result.json()["findings"]
             if f["code"].startswith("edited-merged")]
    assert codes == [("edited-merged-down", "warning", 2)]


def test_a_merged_migration_renamed_on_the_branch_is_edited_merged(tmp_path: Path) -> None:
    """Renumbering main's migration on the branch (the wrong one of a collision) removes
    a file main has: edited-merged."""
    root = diverged(tmp_path)
    folder = root / "aggregator/migrations"
    for direction in ("up", "down"):
        (folder / f"000006_create_notifications_table.{direction}.sql").rename(
            folder / f"000009_create_notifications_table.{direction}.sql")
    _, found = findings(root, "--against", "main")
    edited = [f for f in found if f["code"] == "edited-merged"]
    assert [f["version"] for f in edited] == [6]
    assert "removed (or renamed)" in str(edited[0]["message"])


def test_against_judges_the_docs_file_by_this_branchs_own_tree(tmp_path: Path) -> None:
    """The docs file describes the branch as `migcoord docs` writes it here, not the merge
    (whose docs do not exist yet): fresh, it is not reported, though main added a
    migration; a migration added without refreshing it is docs-stale, as plain check says."""
    root = diverged(tmp_path)

    def stale(*args: str) -> list[object]:
        result = run(["check", "--format", "json", *args], cwd=root)
        return [f["path"] for f in result.json()["findings"] if f["code"] == "docs-stale"]

    assert stale("--against", "main") == []
    for relative, text in pair("aggregator", "000008", "add_more",
                               up="CREATE TABLE more (id int);\n", down="SELECT 1;\n").items():
        (root / relative).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "aggregator 000008, docs not refreshed")
    assert stale() == ["docs/MIGRATIONS.md"]
    assert stale("--against", "main") == ["docs/MIGRATIONS.md"]
