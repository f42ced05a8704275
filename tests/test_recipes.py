"""The recipes of docs/ci.md are real: the deploy script's exit-code handling, the
pre-commit hook's command and file pattern, and every migcoord command the docs show."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, copy_example, run
from migcoord.cli import build_parser

MIGRATE_SH = REPO / "examples" / "deploy" / "migrate.sh"


def fake_migcoord(folder: Path, codes: list[int]) -> Path:
    """A `migcoord` that records its arguments and exits with the next of `codes`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "codes").write_text("\n".join(map(str, codes)) + "\n")
    script = folder / "migcoord"
    script.write_text(f"""#!/bin/sh
echo "$*" >> {folder}/calls
code=$(head -n 1 {folder}/codes); sed -i 1d {folder}/codes
exit "$code"
""")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(("codes", "exit_code", "calls"), [
    ([0], 0, 1),
    ([3, 3, 0], 0, 3),          # no connection or lock yet: retried
    ([3, 1], 1, 2),             # a failed migration: passed through at once
    ([2], 2, 1),                # bad config: never retried
    ([3, 3, 3, 3], 3, 3),       # still 3 after MIGRATE_ATTEMPTS: given up
])
def test_migrate_sh_retries_only_exit_3(tmp_path: Path, codes: list[int], exit_code: int,
                                        calls: int) -> None:
    migcoord = fake_migcoord(tmp_path, codes)
    done = subprocess.run(["sh", str(MIGRATE_SH)], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "SERVICE": "aggregator",
                               "MIGCOORD": str(migcoord), "MIGRATE_RETRY_PAUSE": "0",
                               "MIGRATE_ATTEMPTS": "3"})
    assert done.returncode == exit_code, done.stderr
    recorded = (tmp_path / "calls").read_text().splitlines()
    assert recorded == ["up --service aggregator --lock-timeout 120"] * calls


def test_migrate_sh_without_service_says_what_to_set(tmp_path: Path) -> None:
    done = subprocess.run(["sh", str(MIGRATE_SH)], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "MIGCOORD": "false"})
    assert done.returncode != 0
    assert "set SERVICE to the service name, or to --all" in done.stderr


def hook_field(name: str) -> str:
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    match = re.search(rf"^(?:- |  ){name}: (.*)$", text, re.MULTILINE)
    assert match is not None, name
    return match.group(1).strip().strip("'")


def test_the_pre_commit_hook_runs_check_on_migration_files(tmp_path: Path) -> None:
    """Its entry is `migcoord check` (clean on the example, failing on a duplicate) and
    its pattern takes SQL files and the config and sum, wherever they are."""
    assert hook_field("id") == "migcoord-check"
    entry = shlex.split(hook_field("entry"))
    assert entry[0] == "migcoord"
    root = copy_example(tmp_path / "alerting")
    assert run(entry[1:], cwd=root).code == 0
    duplicate = root / "aggregator" / "migrations" / "000006_again.up.sql"
    duplicate.write_text("SELECT 1;\n")
    duplicate.with_name("000006_again.down.sql").write_text("SELECT 1;\n")
    assert run(entry[1:], cwd=root).code == 1
    pattern = re.compile(hook_field("files"))
    for staged in ("aggregator/migrations/000007_x.up.sql", "migcoord.toml", "db/migcoord.sum"):
        assert pattern.search(staged), staged
    for staged in ("README.md", "notmigcoord.toml", "migcoord.tomlx"):
        assert not pattern.search(staged), staged


def test_every_migcoord_command_in_the_ci_recipes_parses() -> None:
    """docs/ci.md and the deploy examples name only options that exist."""
    text = (REPO / "docs" / "ci.md").read_text()
    commands = re.findall(r"run: (migcoord [^\n]+)", text)
    assert len(commands) >= 3
    parser = build_parser()
    for command in commands:
        words = shlex.split(command.replace("${{ github.base_ref }}", "main"))
        parser.parse_args(words[1:])


def test_the_ci_check_commands_run_on_a_history_with_old_warnings(tmp_path: Path) -> None:
    """docs/ci.md's check steps, in a clone as the runner has it: a pull request and the
    push of its merge pass although main's migration carries warnings; a new warning
    fails either."""
    from test_against import git
    from test_against_merged import CLEAN_DOWN, CLEAN_UP, add, history

    text = (REPO / "docs" / "ci.md").read_text()
    pull, push = (shlex.split(c.replace("${{ github.base_ref }}", "main"))[1:]
                  for c in re.findall(r"run: (migcoord check [^\n]+)", text))
    origin = history(tmp_path)
    add(origin, "000002", CLEAN_UP, CLEAN_DOWN)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--branch", "feature", str(origin), str(clone))
    assert run(["check", "--strict"], cwd=clone).code == 1  # main's old warnings
    assert run(pull, cwd=clone).code == 0, run(pull, cwd=clone).stderr
    git(clone, "checkout", "-q", "main")
    git(clone, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    assert run(push, cwd=clone).code == 0, run(push, cwd=clone).stderr
    add(clone, "000003", "CREATE TABLE c (id int);\n", "DROP TABLE IF EXISTS c;\n")
    result = run(push, cwd=clone)
    assert result.code == 1
    assert "000003_next.up.sql:1:1: warning: not-idempotent" in result.stdout
