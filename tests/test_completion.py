"""`migcoord completion bash`: a script bash accepts, that completes commands, options,
choices and the services of the nearest migcoord.toml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import make_tree, run
from test_engine_support import AB_CONFIG

BASH = shutil.which("bash")  # the machines the suite runs on have it; asserted where used


@pytest.fixture
def script(tmp_path: Path) -> Path:
    result = run(["completion", "bash"], cwd=tmp_path)  # needs no migcoord.toml
    assert result.code == 0, result.stderr
    path = tmp_path / "migcoord.bash"
    path.write_text(result.stdout)
    return path


def complete(script: Path, words: list[str], *, cwd: Path, environ: dict[str, str] | None = None
             ) -> list[str]:
    """What bash offers for the command line `words` (the last one being completed)."""
    assert BASH is not None
    program = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _migcoord; '
               'printf "%s\\n" "${COMPREPLY[@]}"')
    completed = subprocess.run([BASH, "--norc", "-c", program, "bash", str(script), *words],
                               cwd=cwd, env={"PATH": "/usr/bin:/bin", **(environ or {})},
                               capture_output=True, text=True, check=True, timeout=30)
    assert completed.stderr == ""
    return [line for line in completed.stdout.splitlines() if line]


def test_bash_accepts_the_script(script: Path) -> None:
    assert BASH is not None
    checked = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stderr
    assert "complete -F _migcoord migcoord" in script.read_text()


def test_it_completes_commands_options_and_choices(script: Path, tmp_path: Path) -> None:
    assert complete(script, ["migcoord", "u"], cwd=tmp_path) == ["up"]
    assert complete(script, ["migcoord", "--format", "json", "st"], cwd=tmp_path) == ["status"]
    assert complete(script, ["migcoord", "up", "--s"], cwd=tmp_path) == [
        "--service", "--sync-each"]
    assert complete(script, ["migcoord", "down", "--st"], cwd=tmp_path) == ["--steps"]
    assert complete(script, ["migcoord", "--format", ""], cwd=tmp_path) == ["text", "json"]
    assert complete(script, ["migcoord", "dev", "st"], cwd=tmp_path) == [
        "start", "stop", "status"]
    # A value nobody can guess: nothing, rather than options in its place.
    assert complete(script, ["migcoord", "up", "--dsn", ""], cwd=tmp_path) == []


def test_it_completes_the_services_of_the_nearest_config(script: Path, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", {}, config=AB_CONFIG + '\n[services."rule-service"]\n'
                     'migrations = "r"\n')
    (root / "a" / "migrations").mkdir(parents=True)
    assert complete(script, ["migcoord", "up", "--service", ""], cwd=root) == [
        "a", "b", "rule-service"]
    assert complete(script, ["migcoord", "down", "-s", "r"], cwd=root / "a" / "migrations") == [
        "rule-service"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert complete(script, ["migcoord", "up", "--service", ""], cwd=elsewhere) == []
    assert complete(script, ["migcoord", "up", "--service", ""], cwd=elsewhere,
                    environ={"MIGCOORD_CONFIG": str(root / "migcoord.toml")}) == [
        "a", "b", "rule-service"]


def test_it_completes_file_names_after_config(script: Path, tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text("")
    assert complete(script, ["migcoord", "--config", "oth"], cwd=tmp_path) == ["other.toml"]
