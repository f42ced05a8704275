"""`check --against REF` on a history that already carries warnings: the ones REF reports
too, in migrations it has unchanged, are counted, not listed, and do not fail --strict."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from test_against import git

from helpers import make_tree, pair, run, write_sum_file

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

CONFIG = '[services.app]\nmigrations = "app/migrations"\n'
#: Two not-idempotent warnings: CREATE TABLE without IF NOT EXISTS, DROP TABLE without IF EXISTS.
MERGED = pair("app", "000001", "create_a", up="CREATE TABLE a (id int);\n",
              down="DROP TABLE a;\n")
CLEAN_UP = "CREATE TABLE IF NOT EXISTS b (id int);\n"
CLEAN_DOWN = "DROP TABLE IF EXISTS b;\n"


def history(tmp_path: Path, *, config: str = CONFIG,
            merged: dict[str, str] | None = None) -> Path:
    """main holds 000001 (with its warnings) and the sum; `feature` is checked out."""
    root = make_tree(tmp_path / "repo", merged or MERGED, config=config)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "feature")
    return root


def add(root: Path, version: str, up: str, down: str, *, commit: bool = True) -> None:
    for relative, text in pair("app", version, "next", up=up, down=down).items():
        (root / relative).write_text(text)
    write_sum_file(root)
    if commit:
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", version)


def check_json(root: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = run(["check", "--format", "json", *args], cwd=root)
    assert "Traceback" not in result.stderr
    return result.code, result.json()


def shown(document: dict[str, object]) -> list[tuple[str, str]]:
    findings = document["findings"]
    assert isinstance(findings, list)
    return [(f["code"], Path(f["path"]).name) for f in findings]


def test_a_warning_in_a_merged_migration_is_counted_not_listed(tmp_path: Path) -> None:
    root = history(tmp_path)
    add(root, "000002", CLEAN_UP, CLEAN_DOWN)
    assert run(["check", "--strict"], cwd=root).code == 1  # plain check: they are there
    result = run(["check", "--strict", "--against", "main"], cwd=root)
    assert result.code == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.endswith(
        "check ok: 0 errors, 0 warnings (2 more in migrations main already has: "
        "`migcoord check` lists them)\n")
    code, document = check_json(root, "--strict", "--against", "main")
    assert (code, document) == (0, {"ok": True, "findings": [], "merged_warnings": 2})


def test_the_command_the_summary_names_lists_them(tmp_path: Path) -> None:
    root = history(tmp_path)
    add(root, "000002", CLEAN_UP, CLEAN_DOWN)
    summary = run(["check", "--against", "main"], cwd=root).stderr
    command = re.search(r"`(migcoord [^`]*)` lists them", summary)
    assert command is not None, summary
    listed = run([*shlex.split(command.group(1))[1:], "--format", "json"], cwd=root)
    assert sorted(shown(listed.json())) == [("not-idempotent", "000001_create_a.down.sql"),
                                            ("not-idempotent", "000001_create_a.up.sql")]


def test_the_summary_command_keeps_an_explicit_config(tmp_path: Path) -> None:
    root = history(tmp_path)
    add(root, "000002", CLEAN_UP, CLEAN_DOWN)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(root / "migcoord.toml")
    summary = run(["--config", config, "check", "--against", "main"], cwd=root).stderr
    command = re.search(r"`(migcoord [^`]*)` lists them", summary)
    assert command is not None, summary
    listed = run(shlex.split(command.group(1))[1:], cwd=elsewhere)
    assert listed.stdout.count("warning: not-idempotent") == 2, listed.stderr


def test_a_warning_in_a_new_migration_is_shown_and_fails_strict(tmp_path: Path) -> None:
    root = history(tmp_path)
    add(root, "000002", "CREATE TABLE b (id int);\n", CLEAN_DOWN)
    code, document = check_json(root, "--strict", "--against", "main")
    assert code == 1
    assert shown(document) == [("not-idempotent", "000002_next.up.sql")]
    assert document["merged_warnings"] == 2
    result = run(["check", "--against", "main"], cwd=root)
    assert result.stderr.endswith("check ok: 0 errors, 1 warning (2 more in migrations main "
                                  "already has: `migcoord check` lists them)\n")


def test_a_new_migration_not_yet_committed_is_shown(tmp_path: Path) -> None:
    root = history(tmp_path)
    add(root, "000002", "CREATE TABLE b (id int);\n", CLEAN_DOWN, commit=False)
    code, document = check_json(root, "--strict", "--against", "main")
    assert code == 1
    assert shown(document) == [("not-idempotent", "000002_next.up.sql")]


def test_a_merged_migration_the_branch_changed_shows_all_its_warnings(tmp_path: Path) -> None:
    """Its down changed: the pair is judged again, up included."""
    root = history(tmp_path)
    (root / "app/migrations/000001_create_a.down.sql").write_text("DROP TABLE a;\n-- why\n")
    code, document = check_json(root, "--strict", "--against", "main")
    assert code == 1
    assert sorted(shown(document)) == [("edited-merged-down", "000001_create_a.down.sql"),
                                       ("not-idempotent", "000001_create_a.down.sql"),
                                       ("not-idempotent", "000001_create_a.up.sql")]
    assert document["merged_warnings"] == 0


def test_errors_in_merged_migrations_are_always_shown(tmp_path: Path) -> None:
    merged = {**MERGED, **pair("app", "000002", "bad", up="CREATE TABLE c (id int);\nCOMMIT;\n",
                                down="DROP TABLE IF EXISTS c;\n")}
    root = history(tmp_path, merged=merged)
    add(root, "000003", CLEAN_UP, CLEAN_DOWN)
    code, document = check_json(root, "--against", "main")
    assert code == 1
    assert ("explicit-transaction", "000002_bad.up.sql") in shown(document)
    assert ("not-idempotent", "000002_bad.up.sql") not in shown(document)


def test_a_config_change_that_gives_a_merged_migration_a_warning_shows_it(
        tmp_path: Path) -> None:
    """main's own check does not report it: the branch caused it."""
    root = history(tmp_path)
    (root / "migcoord.toml").write_text(CONFIG + 'owns = ["b"]\n')
    code, document = check_json(root, "--strict", "--against", "main")
    assert code == 1
    assert shown(document) == [("unowned-table", "000001_create_a.up.sql")]
    assert document["merged_warnings"] == 2


def test_the_branch_that_adopts_migcoord_sees_no_old_warnings(tmp_path: Path) -> None:
    """main has the golang-migrate files and no config yet: they are judged by this one."""
    root = tmp_path / "repo"
    for relative, text in MERGED.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "golang-migrate")
    git(root, "checkout", "-q", "-b", "adopt")
    make_tree(root, {}, config=CONFIG)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "migcoord")
    code, document = check_json(root, "--strict", "--against", "main")
    assert (code, document["findings"], document["merged_warnings"]) == (0, [], 2)


def test_a_push_checks_against_the_commit_before_it(tmp_path: Path) -> None:
    """On main after a merge: HEAD^1 is main before the push; its warnings are left out,
    the new migration's are shown."""
    root = history(tmp_path)
    add(root, "000002", "CREATE TABLE b (id int);\n", CLEAN_DOWN)
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    code, document = check_json(root, "--strict", "--against", "HEAD^1")
    assert code == 1
    assert shown(document) == [("not-idempotent", "000002_next.up.sql")]
    assert document["merged_warnings"] == 2


def test_head_parent_in_a_first_commit_is_a_clear_error(tmp_path: Path) -> None:
    root = history(tmp_path)
    result = run(["check", "--against", "HEAD^1"], cwd=root)
    assert result.code == 2, result.stderr
    assert "'HEAD^1' names a parent of 'HEAD', which has none: HEAD (" in result.stderr
    assert "is a first commit, with nothing before it" in result.stderr
    assert "run `migcoord check` without --against here" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_ref_a_shallow_clone_lacks_says_to_fetch_more(tmp_path: Path) -> None:
    root = history(tmp_path)
    add(root, "000002", CLEAN_UP, CLEAN_DOWN)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{root}", str(clone))
    result = run(["check", "--against", "HEAD^1"], cwd=clone)
    assert result.code == 2, result.stderr
    assert "where the history of this shallow clone stops" in result.stderr
    assert "`git fetch --unshallow`" in result.stderr
    git(clone, "fetch", "-q", "--unshallow")
    assert run(["check", "--against", "HEAD^1"], cwd=clone).code == 0


def test_a_config_in_a_subfolder_of_the_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    root = make_tree(repo / "db", MERGED, config=CONFIG)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    add(root, "000002", "CREATE TABLE b (id int);\n", CLEAN_DOWN)
    code, document = check_json(root, "--against", "main")
    assert (code, shown(document), document["merged_warnings"]) == (
        0, [("not-idempotent", "000002_next.up.sql")], 2)


def test_line_endings_changed_on_the_branch_are_no_change(tmp_path: Path) -> None:
    """The checksum ignores them, and so does edited-merged: still main's warnings."""
    root = history(tmp_path)
    up = root / "app/migrations/000001_create_a.up.sql"
    up.write_bytes(b"\xef\xbb\xbf" + up.read_bytes().replace(b"\n", b"\r\n"))
    code, document = check_json(root, "--strict", "--against", "main")
    assert (code, document["findings"], document["merged_warnings"]) == (0, [], 2)


def test_what_main_gained_since_the_split_is_main_s(tmp_path: Path) -> None:
    root = history(tmp_path)
    git(root, "checkout", "-q", "main")
    add(root, "000002", "CREATE TABLE b (id int);\n", CLEAN_DOWN)
    git(root, "checkout", "-q", "feature")
    code, document = check_json(root, "--strict", "--against", "main")
    assert (code, document["findings"], document["merged_warnings"]) == (0, [], 3)


def test_the_python_api_returns_both_sides(tmp_path: Path) -> None:
    from migcoord import Coordinator

    root = history(tmp_path)
    add(root, "000002", "CREATE TABLE b (id int);\n", CLEAN_DOWN)
    coordinator = Coordinator.load(root / "migcoord.toml")
    scoped = coordinator.check_against("main")
    assert [f.path.name for f in scoped.shown if f.path] == ["000002_next.up.sql"]
    assert sorted(f.path.name for f in scoped.merged if f.path) == [
        "000001_create_a.down.sql", "000001_create_a.up.sql"]
    assert len(coordinator.check(against="main")) == 3  # every finding, as before


def test_a_merged_migration_without_a_down_file_is_merged_too(tmp_path: Path) -> None:
    """An adopted history's migrations may have no down file (`adopted_through`): the
    warnings of one REF has unchanged are left out all the same."""
    config = CONFIG.replace('[services.app]', 'adopted_through = "000001"\n\n[services.app]')
    up_only = {path: text for path, text in MERGED.items() if path.endswith(".up.sql")}
    root = history(tmp_path, config=config, merged=up_only)
    add(root, "000002", CLEAN_UP, CLEAN_DOWN)
    code, document = check_json(root, "--strict", "--against", "main")
    assert (code, document) == (0, {"ok": True, "findings": [], "merged_warnings": 1})
