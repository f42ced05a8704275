"""The command line without a database: options, help, usage errors, exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, copy_example, make_tree, pair, run, run_process


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """examples/alerting with an added aggregator migration that is still empty (a warning)."""
    root = copy_example(tmp_path / "alerting")
    assert run(["create", "add_index", "--service", "aggregator"], cwd=root).code == 0
    return root


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (["--format", "json", "check"], ["check", "--format", "json"]),
        (["-q", "check"], ["check", "-q"]),
        (["--format", "json", "--config", "migcoord.toml", "check"],
         ["check", "--config", "migcoord.toml", "--format", "json"]),
    ],
)
def test_global_options_before_or_after_the_command_give_the_same_result(
    example: Path, before: list[str], after: list[str]
) -> None:
    """`migcoord --format json check` and `migcoord check --format json` are the same."""
    first, second = run(before, cwd=example), run(after, cwd=example)
    assert first.code == second.code == 0
    assert first.stdout == second.stdout


def test_a_commands_own_option_is_not_accepted_before_the_command(example: Path) -> None:
    """--strict belongs to `check`; `migcoord --strict check` is a usage error (exit 2)."""
    result = run_process(["--strict", "check"], cwd=example)
    assert result.code == 2
    assert "--strict" in result.stderr


def test_json_output_is_one_document_on_stdout(example: Path) -> None:
    """`--format json check` prints exactly one JSON document; messages go to stderr."""
    result = run(["--format", "json", "check"], cwd=example)
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert [f["code"] for f in document["findings"]] == ["empty-migration"]


def test_quiet_keeps_errors_and_warnings_and_drops_the_summary(example: Path) -> None:
    """-q prints only errors and warnings (as documented): the warning stays, the
    `check ok` summary goes."""
    loud = run(["check"], cwd=example)
    assert "warning: empty-migration" in loud.stdout and "check ok" in loud.stderr
    quiet = run(["check", "-q"], cwd=example)
    assert (quiet.code, quiet.stdout, quiet.stderr) == (0, loud.stdout, "")


def test_a_global_option_given_twice_takes_the_later_one(example: Path) -> None:
    """`--format json check --format text` prints text."""
    result = run(["--format", "json", "check", "--format", "text"], cwd=example)
    assert result.stdout.startswith("aggregator/migrations/000007_add_index.up.sql: warning:")


def test_python_m_migcoord_help_works(tmp_path: Path) -> None:
    """`python -m migcoord --help` lists the commands and the global options, exit 0."""
    result = run_process(["--help"], cwd=tmp_path)
    assert result.code == 0
    for word in ("create", "check", "renumber", "status", "up", "down", "--config", "--format"):
        assert word in result.stdout
    assert result.stderr == ""


def test_command_help_works(tmp_path: Path) -> None:
    """`migcoord create --help` shows the command's options and the global ones."""
    result = run_process(["create", "--help"], cwd=tmp_path)
    assert result.code == 0
    assert "--service" in result.stdout and "--lock-timeout" in result.stdout
    assert "--format" in result.stdout


def test_an_unknown_command_is_exit_2(tmp_path: Path) -> None:
    """argparse names the bad command and the choices; no traceback."""
    result = run_process(["frobnicate"], cwd=tmp_path)
    assert result.code == 2
    assert "frobnicate" in result.stderr and "create" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_prints_help_and_exits_2(tmp_path: Path) -> None:
    """Bare `migcoord` is a usage error that shows what to type."""
    result = run(["--format", "json"], cwd=tmp_path)
    assert result.code == 2
    assert "COMMAND" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["create", "x"],  # no --service
        ["renumber", "7"],
        ["up"],  # neither --service nor --all
        ["up", "--service", "aggregator", "--all"],
        ["down", "--service", "aggregator", "--steps", "0"],
        ["create", "x", "--service", "a", "--lock-timeout", "soon"],
        ["check", "--format", "yaml"],
    ],
)
def test_a_bad_command_line_is_exit_2_without_traceback(tmp_path: Path, args: list[str]) -> None:
    """Missing or malformed options are usage errors."""
    result = run_process(args, cwd=tmp_path)
    assert result.code == 2, result
    assert "Traceback" not in result.stderr
    assert "usage:" in result.stderr


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1", "0", "1e300", "86401"])
@pytest.mark.parametrize("command", [["up", "--all"], ["down", "--service", "aggregator"],
                                     ["mark", "6", "--applied"], ["create", "x", "--service",
                                                                  "aggregator"]])
def test_a_lock_timeout_that_is_not_a_usable_wait_is_a_usage_error(
    example: Path, command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN would wait forever (every comparison with it is false), a negative or absurd
    one is a mistake: exit 2 before anything is read or connected. (argparse writes its
    usage errors to sys.stderr.)"""
    result = run([*command, f"--lock-timeout={value}"], cwd=example,
                 environ={"DATABASE_URL": "host=/nonexistent"})
    assert result.code == 2, result
    err = capsys.readouterr().err
    # `create`'s --lock-timeout is the file lock's; the others also spell it
    # --migration-lock-timeout.
    spelt = "--lock-timeout" if command[0] == "create" else (
        "--lock-timeout/--migration-lock-timeout")
    assert (f"argument {spelt}: expected a number of seconds above 0 and at most 86400, "
            f"got '{value}'") in err
    assert "Traceback" not in err


@pytest.mark.parametrize("version", ["9223372036854775808", "99999999999999999999999"])
@pytest.mark.parametrize("command", [["mark", "{v}", "--applied"], ["up", "--all", "--to", "{v}"],
                                     ["renumber", "{v}", "--service", "aggregator"]])
def test_a_version_above_bigint_on_the_command_line_is_a_usage_error(
    example: Path, command: list[str], version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a numeric-out-of-range error from the server."""
    args = [part.replace("{v}", version) for part in command]
    result = run(args, cwd=example, environ={"DATABASE_URL": "host=/nonexistent"})
    assert result.code == 2, result
    assert "the largest version PostgreSQL can record" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["up", "--service", "aggregator"], ["up", "--all"],
                                     ["status"], ["down", "--service", "aggregator"],
                                     ["check", "--db"], ["mark", "6", "--applied"]])
def test_a_database_command_without_a_dsn_is_exit_2_naming_the_variable(
    example: Path, command: list[str]
) -> None:
    """No --dsn and no $DATABASE_URL: exit 2, saying which variable to set."""
    result = run(command, cwd=example, environ={})
    assert result.code == 2, result
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_missing_dsn_message_names_the_configured_variable(tmp_path: Path) -> None:
    """database_url_env = "ALERTS_DB" is what the message asks for."""
    config = 'database_url_env = "ALERTS_DB"\n[services.a]\nmigrations = "a/migrations"\n'
    make_tree(tmp_path, pair("a", "000001", "x"), config=config)
    result = run(["up", "--service", "a"], cwd=tmp_path, environ={"DATABASE_URL": "ignored"})
    assert result.code == 2
    assert "ALERTS_DB" in result.stderr


def test_a_database_command_without_a_dsn_is_exit_2_in_a_real_process(example: Path) -> None:
    """The same through `python -m migcoord`, with an empty environment."""
    result = run_process(["up", "--service", "aggregator"], cwd=example)
    assert result.code == 2
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local TCP port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port


@pytest.mark.parametrize("style", ["url", "keywords"])
def test_an_unreachable_database_is_exit_3_and_never_shows_the_password(
    example: Path, closed_port: int, style: str
) -> None:
    """Connection refused is worth retrying (exit 3); the DSN's password is never printed."""
    dsn = (f"postgresql://alice:s3cr3t-pw@127.0.0.1:{closed_port}/alerts" if style == "url"
           else f"host=127.0.0.1 port={closed_port} user=alice password=s3cr3t-pw dbname=alerts")
    for args in (["up", "--service", "aggregator", "--dsn", dsn],
                 ["--format", "json", "--dsn", dsn, "status"]):
        result = run(args, cwd=example, environ={})
        assert result.code == 3, result
        assert "s3cr3t" not in result.stdout + result.stderr
        assert "127.0.0.1" in result.stderr


def test_a_failed_command_in_json_mode_prints_an_error_document(example: Path) -> None:
    """`--format json` failures are still one JSON document on stdout, with the exit code."""
    result = run(["--format", "json", "create", "x", "--service", "billing"], cwd=example)
    assert result.code == 2
    document = result.json()
    assert document["ok"] is False
    assert document["error"]["exit_code"] == 2
    assert "billing" in document["error"]["message"]


def test_a_working_directory_that_was_deleted_is_a_usage_error(tmp_path: Path) -> None:
    """`cd` into a folder another shell then removes: exit 2 saying so, no traceback."""
    script = 'mkdir gone && cd gone && rmdir ../gone && exec "$0" -m migcoord check'
    done = subprocess.run(["bash", "-c", script, sys.executable], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done
    assert "the working directory no longer exists" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--format", "json", "up", "--all", "--to", "abc"], "'abc' is not a version number"),
        (["down", "--service", "aggregator", "--steps", "-1", "--format", "json"],
         "'-1' is not a whole number"),
        (["--format=json", "up", "--all", "--lock-timeout", "nan"], "'nan'"),
        (["--format", "json", "up", "--service", "aggregator", "--ddl-lock-timeout", "5"],
         "has no unit"),
        (["--format", "json", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["--format", "json"], "no command given"),
        (["--format", "text", "up", "--format", "json"], "--service/-s --all is required"),
    ],
)
def test_a_usage_error_with_format_json_prints_the_error_document(
    example: Path, args: list[str], words: str
) -> None:
    """argparse's own refusals honour --format json: one document on stdout, the usage
    text still on stderr, exit 2."""
    result = run_process(args, cwd=example)
    assert result.code == 2, result
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["error"]["type"] == "UsageError"
    assert document["error"]["exit_code"] == 2
    assert words in document["error"]["message"]
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


def test_the_hint_of_a_usage_error_runs(example: Path) -> None:
    """The hint names a command that works: `migcoord up --help`."""
    result = run_process(["--format", "json", "up", "--all", "--to", "x"], cwd=example)
    hint = json.loads(result.stdout)["error"]["hint"]
    assert hint == "run `migcoord up --help` for its options"
    assert run_process(hint.split("`")[1].split()[1:], cwd=example).code == 0


def test_a_usage_error_in_text_mode_prints_nothing_on_stdout(example: Path) -> None:
    """Without --format json, stdout stays empty (the usage text is on stderr)."""
    result = run_process(["up", "--all", "--to", "abc"], cwd=example)
    assert (result.code, result.stdout) == (2, "")


def test_version_with_format_json_is_a_document(tmp_path: Path) -> None:
    """`migcoord --version --format json` prints {"version": ...}."""
    import migcoord

    result = run(["--version", "--format", "json"], cwd=tmp_path)
    assert (result.code, result.json()) == (0, {"version": migcoord.__version__})
    assert run(["--version"], cwd=tmp_path).stdout == f"migcoord {migcoord.__version__}\n"
