"""The DDL settings, offline: durations, the layers, the pauses between attempts, and the
one rule that judges them in migcoord.toml, the directives, the CLI and the API."""

from __future__ import annotations

from pathlib import Path
from random import Random

import pytest

from helpers import make_tree, pair, run
from migcoord import ConfigError, Coordinator, UsageError
from migcoord.core import directives
from migcoord.core.ddl import (
    DEFAULTS,
    DdlPolicy,
    DdlSettings,
    format_ms,
    parse_duration,
    pause_before_retry,
    pauses,
    resolve,
)
from test_engine_support import AB_CONFIG


@pytest.mark.parametrize(("text", "ms"), [
    ("5s", 5000), ("500ms", 500), ("10min", 600_000), ("1h", 3_600_000), ("1d", 86_400_000),
    ("1.5s", 1500), (" 30 s ", 30_000), ("0", 0), ("0s", 0), ("0.0", 0), (0, 0), ("5S", 5000),
])
def test_durations_read_as_postgresql_writes_them(text: object, ms: int) -> None:
    assert parse_duration(text) == (ms, None)


@pytest.mark.parametrize(("value", "words"), [
    ("5", "has no unit: write 5s or 5ms"), (5, "expected a duration with a unit"),
    ("5 seconds", "unknown unit 'seconds'"), ("-1s", "is not a duration"),
    ("", "is not a duration"), ("1e3s", "is not a duration"), ("nan", "is not a duration"),
    ("25d", "longer than PostgreSQL allows"), ("0.1ms", "shorter than a millisecond"),
    (True, "expected a duration"), (None, "expected a duration"),
])
def test_what_is_not_a_duration_says_why(value: object, words: str) -> None:
    _, why = parse_duration(value)
    assert why is not None and words in why, why


def test_durations_are_written_back_in_the_largest_whole_unit() -> None:
    assert [format_ms(ms) for ms in (0, 250, 5000, 90_000, 600_000, 7_200_000)] == [
        "0", "250ms", "5s", "90s", "10min", "2h"]


def test_the_first_layer_that_sets_a_value_wins_then_the_defaults() -> None:
    cli = DdlSettings(lock_timeout_ms=100)
    file = DdlSettings(lock_timeout_ms=200, retries=0)
    service = DdlSettings(statement_timeout_ms=3000, retries=2)
    config = DdlSettings(lock_timeout_ms=400, retry_delay_ms=50)
    assert resolve(cli, file, service, config) == DdlPolicy(
        lock_timeout_ms=100, statement_timeout_ms=3000, retries=0, retry_delay_ms=50,
        retry_delay_max_ms=30_000)
    assert resolve() == DEFAULTS == DdlPolicy(
        lock_timeout_ms=5000, statement_timeout_ms=None, retries=5, retry_delay_ms=1000,
        retry_delay_max_ms=30_000)


def test_pauses_double_from_the_first_up_to_the_cap_each_jittered_within_its_upper_half() -> None:
    policy = DdlPolicy(retries=7)
    waits = pauses(policy, Random(7))
    bases = [1, 2, 4, 8, 16, 30, 30]
    assert len(waits) == 7
    assert all(base / 2 <= wait <= base for wait, base in zip(waits, bases, strict=True)), waits
    assert waits == pauses(policy, Random(7))
    assert waits != pauses(policy, Random(8))
    assert pause_before_retry(DdlPolicy(retry_delay_ms=10, retry_delay_max_ms=20), 60,
                              Random(1)) <= 0.02


def test_directives_set_the_files_own_layer_and_refuse_what_they_cannot_read() -> None:
    header = [(1, "-- migcoord:lock-timeout 30s"), (2, "-- migcoord:retries 0"),
              (3, "-- migcoord:statement-timeout 10min")]
    read, problems = directives.parse(header, body_line=4)
    assert problems == []
    assert read.ddl == DdlSettings(lock_timeout_ms=30_000, statement_timeout_ms=600_000,
                                   retries=0)
    bad = [(1, "-- migcoord:lock-timeout 30"), (2, "-- migcoord:retries many"),
           (3, "-- migcoord:statement-timeout"), (4, "-- migcoord:lock-timeout 1s"),
           (5, "-- migcoord:lock-timeout 2s"), (6, "-- migcoord:lock-timout 5s")]
    read, problems = directives.parse(bad, body_line=7)
    assert [(p.code, p.line) for p in problems] == [("unknown-directive", n) for n in
                                                    (1, 2, 3, 5, 6)]
    assert "has no unit: write 30s or 30ms" in problems[0].message
    assert "did you mean `-- migcoord:lock-timeout`?" in str(problems[4].hint)
    assert read.ddl == DdlSettings(lock_timeout_ms=1000)


def test_check_reports_a_malformed_directive_at_its_line(tmp_path: Path) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "m", "-- migcoord:lock-timeout soon\n"
                                    "ALTER TABLE t ADD COLUMN x int;\n"), config=AB_CONFIG)
    result = run(["check", "--no-sql"], cwd=root)
    assert result.code == 1, result
    assert ("000001_m.up.sql:1: error: unknown-directive: `-- migcoord:lock-timeout soon`: "
            "'soon' is not a duration") in result.stdout.replace("\\", "/"), result.stdout


CONFIG_WITH_MISTAKES = """\
[ddl]
lock_timeout = 5
retries = -1
retry_delay = "0"
timeout = "1s"

[services.a]
migrations = "a/migrations"
ddl = { statement_timeout = "10 minutes", retries = "3" }
"""


def test_the_config_reports_every_ddl_mistake_at_once(tmp_path: Path) -> None:
    path = tmp_path / "migcoord.toml"
    path.write_text(CONFIG_WITH_MISTAKES)
    with pytest.raises(ConfigError) as raised:
        Coordinator.load(path, environ={})
    message = str(raised.value)
    for key in ("[ddl.lock_timeout] expected a duration with a unit", "[ddl.retries] expected "
                "a whole number of retries from 0 to 100, got -1",
                "[ddl.retry_delay] the pause between attempts must be above 0",
                "[ddl.timeout] unknown key", "[services.a.ddl.statement_timeout] '10 minutes'"):
        assert key in message, message


def test_the_config_layers_reach_each_migration(tmp_path: Path) -> None:
    path = tmp_path / "migcoord.toml"
    path.write_text('[ddl]\nlock_timeout = "2s"\nretries = 1\n\n[services.a]\n'
                    'migrations = "a/migrations"\n\n[services.a.ddl]\nretries = 3\n')
    config = Coordinator.load(path, environ={}).config
    assert config.ddl == DdlSettings(lock_timeout_ms=2000, retries=1)
    assert config.services[0].ddl == DdlSettings(retries=3)


def test_the_api_judges_its_settings_as_the_config_does(tmp_path: Path) -> None:
    coordinator = Coordinator.for_service("a", migrations=tmp_path / "m",
                                          ddl={"lock_timeout": "50ms", "retries": 0})
    assert coordinator.config.ddl == DdlSettings(lock_timeout_ms=50, retries=0)
    with pytest.raises(ConfigError, match=r"\[ddl.lock_timeout\] '50' has no unit"):
        Coordinator.for_service("a", migrations=tmp_path / "m", ddl={"lock_timeout": "50"})
    with pytest.raises(UsageError, match="ddl_lock_timeout: '2 minutes': unknown unit"):
        coordinator.up("a", dsn="postgresql://nowhere.invalid/db", ddl_lock_timeout="2 minutes")
    with pytest.raises(UsageError, match="ddl_lock_timeout: '5' has no unit"):
        coordinator.down("a", dsn="postgresql://nowhere.invalid/db", ddl_lock_timeout="5")


def test_the_cli_refuses_a_ddl_lock_timeout_it_cannot_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "m"), config=AB_CONFIG)
    for command in (["up", "--service", "a"], ["down", "--service", "a"]):
        result = run([*command, "--ddl-lock-timeout", "5"], cwd=root,
                     environ={"DATABASE_URL": "postgresql://nowhere.invalid/db"})
        assert result.code == 2, result
        # argparse writes its usage errors to the process's stderr.
        stderr = capsys.readouterr().err
        assert "--ddl-lock-timeout: '5' has no unit: write 5s or 5ms" in stderr
        assert "Traceback" not in stderr
