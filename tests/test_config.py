"""migcoord.toml: every mistake is a clear error naming the file and key (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_tree, pair, run, run_process

GOOD_SERVICE = '[services.a]\nmigrations = "a/migrations"\n'


def _config_error(tmp_path: Path, config: str) -> str:
    """Write `config`, run `check`, assert a clean exit-2 error, return stderr."""
    make_tree(tmp_path, {}, config=config, write_sum=False)
    result = run(["check"], cwd=tmp_path)
    assert result.code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert str(tmp_path / "migcoord.toml") in result.stderr
    return result.stderr


def test_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    """A misspelt top-level key is reported with the known keys, not ignored."""
    err = _config_error(tmp_path, 'verison_width = 6\n' + GOOD_SERVICE)
    assert "[verison_width] unknown key" in err
    assert "version_width" in err


def test_unknown_service_key_is_named(tmp_path: Path) -> None:
    """A misspelt key in a service table names `services.NAME.KEY`."""
    err = _config_error(tmp_path, GOOD_SERVICE + 'own = ["rules"]\n')
    assert "[services.a.own] unknown key" in err
    assert "owns" in err


def test_version_width_as_a_string_is_a_type_error(tmp_path: Path) -> None:
    """`version_width = "6"` is refused, naming the key and the expected type."""
    err = _config_error(tmp_path, 'version_width = "6"\n' + GOOD_SERVICE)
    assert "[version_width] expected a whole number, got a string" in err


def test_owns_as_a_string_is_a_type_error(tmp_path: Path) -> None:
    """`owns = "rules"` is refused: it must be a list of table names."""
    err = _config_error(tmp_path, GOOD_SERVICE + 'owns = "rules"\n')
    assert "[services.a.owns] expected a list, got a string" in err


@pytest.mark.parametrize("reserved", ["1-", "5-1", "a-b", "0-3", ""])
def test_a_malformed_reserved_range_is_refused(tmp_path: Path, reserved: str) -> None:
    """`reserved` must read FIRST-LAST with 1 <= FIRST <= LAST."""
    err = _config_error(tmp_path, GOOD_SERVICE + f'reserved = "{reserved}"\n')
    assert "[services.a.reserved]" in err
    assert repr(reserved) in err


def test_overlapping_reservations_of_two_services_are_refused(tmp_path: Path) -> None:
    """Two services cannot both reserve a number; the message names the other service."""
    err = _config_error(tmp_path, GOOD_SERVICE + 'reserved = "1-10"\n'
                        '[services.b]\nmigrations = "b/migrations"\nreserved = "000010-000020"\n')
    assert "[services.b.reserved]" in err
    assert "overlaps" in err and "'a'" in err


def test_reservations_that_touch_without_overlapping_are_fine(tmp_path: Path) -> None:
    """1-5 and 6-9 share no number."""
    make_tree(tmp_path, {}, config=GOOD_SERVICE + 'reserved = "1-5"\n'
              '[services.b]\nmigrations = "b/migrations"\nreserved = "6-9"\n')
    assert run(["check"], cwd=tmp_path).code == 0


def test_two_services_with_the_same_folder_are_refused(tmp_path: Path) -> None:
    """Each service needs its own folder; `./a/migrations` and `a/migrations` are the same."""
    err = _config_error(tmp_path, GOOD_SERVICE + '[services.b]\nmigrations = "./a/migrations"\n')
    assert "[services.b.migrations]" in err
    assert "also the folder of service 'a'" in err


def test_a_folder_outside_the_repository_is_refused(tmp_path: Path) -> None:
    """`../elsewhere` escapes the config's folder and is refused."""
    repo = tmp_path / "repo"
    err = _config_error(repo, '[services.a]\nmigrations = "../elsewhere"\n')
    assert "[services.a.migrations]" in err
    assert "outside" in err


def test_invalid_toml_reports_line_and_column(tmp_path: Path) -> None:
    """A TOML syntax error says where it is."""
    err = _config_error(tmp_path, '[services.a]\nmigrations = "a/migrations\n')
    assert "not valid TOML" in err
    assert "line 2" in err and "column" in err


def test_a_config_without_services_is_refused(tmp_path: Path) -> None:
    """No `[services.NAME]` at all is an error that says what to add."""
    err = _config_error(tmp_path, "version_width = 6\n")
    assert "[services]" in err
    assert "[services.NAME]" in err


def test_an_empty_services_table_is_refused(tmp_path: Path) -> None:
    """`services = {}` configures no service, which is an error."""
    err = _config_error(tmp_path, "services = {}\n")
    assert "no service is configured" in err


def test_a_service_without_migrations_key_is_refused(tmp_path: Path) -> None:
    """Each service must say where its folder is."""
    err = _config_error(tmp_path, '[services.a]\nowns = ["x"]\n')
    assert "[services.a.migrations] missing" in err


def test_several_mistakes_are_reported_at_once(tmp_path: Path) -> None:
    """One run lists every problem, not the first."""
    err = _config_error(
        tmp_path,
        'bogus = 1\nversion_width = "6"\n'
        '[services.a]\nmigrations = "a/migrations"\nreserved = "a-b"\n'
        '[services.b]\nmigrations = "../elsewhere"\n'
        '[services.c]\nmigrations = "c"\ncolour = "red"\n',
    )
    for key in ("[bogus]", "[version_width]", "[services.a.reserved]",
                "[services.b.migrations]", "[services.c.colour]"):
        assert key in err


def test_a_wrong_type_in_a_service_does_not_hide_its_other_mistakes(tmp_path: Path) -> None:
    """A bad `owns` still lets a bad `reserved` and a shared folder be reported in the same run."""
    err = _config_error(
        tmp_path,
        '[services.a]\nmigrations = "a/migrations"\nowns = "rules"\nreserved = "1-"\n'
        '[services.b]\nmigrations = "a/migrations"\n',
    )
    assert "[services.a.owns]" in err
    assert "[services.a.reserved]" in err
    assert "[services.b.migrations]" in err


def test_no_config_found_is_a_clear_error(tmp_path: Path) -> None:
    """Outside any repository: exit 2, naming migcoord.toml and how to point at one."""
    result = run(["check"], cwd=tmp_path)
    assert result.code == 2
    assert "no migcoord.toml found" in result.stderr
    assert "--config" in result.stderr and "MIGCOORD_CONFIG" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_errors_print_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    """The installed entry point turns a config error into one message and exit 2."""
    make_tree(tmp_path, {}, config="bogus = 1\n" + GOOD_SERVICE, write_sum=False)
    result = run_process(["check"], cwd=tmp_path)
    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert "[bogus] unknown key" in result.stderr


def test_config_is_found_by_walking_up_from_a_subfolder(tmp_path: Path) -> None:
    """Run from deep inside the repository, the nearest migcoord.toml above is used."""
    make_tree(tmp_path, pair("rule-service", "000001", "a"))
    deep = tmp_path / "rule-service" / "migrations"
    result = run(["--format", "json", "check"], cwd=deep)
    assert result.code == 0, result.stderr
    assert result.json() == {"ok": True, "findings": []}


def _two_repos(tmp_path: Path) -> tuple[Path, Path]:
    """`clean` is a clean repository; `broken` has a missing down file."""
    clean = make_tree(tmp_path / "clean", pair("rule-service", "000001", "a"))
    broken = make_tree(tmp_path / "broken", {"rule-service/migrations/000001_a.up.sql": "SELECT 1;\n"})
    return clean, broken


def test_environment_variable_beats_walking_up(tmp_path: Path) -> None:
    """$MIGCOORD_CONFIG is used even when the working directory has its own config."""
    clean, broken = _two_repos(tmp_path)
    here = run(["check"], cwd=broken)
    assert here.code == 1
    env = {"MIGCOORD_CONFIG": str(clean / "migcoord.toml")}
    assert run(["check"], cwd=broken, environ=env).code == 0


def test_config_option_beats_the_environment_variable(tmp_path: Path) -> None:
    """--config wins over $MIGCOORD_CONFIG and over walking up."""
    clean, broken = _two_repos(tmp_path)
    env = {"MIGCOORD_CONFIG": str(broken / "migcoord.toml")}
    assert run(["check"], cwd=broken, environ=env).code == 1
    result = run(["--config", str(clean / "migcoord.toml"), "check"], cwd=broken, environ=env)
    assert result.code == 0, result.stderr


def test_config_option_accepts_a_folder(tmp_path: Path) -> None:
    """--config DIR means DIR/migcoord.toml."""
    clean, broken = _two_repos(tmp_path)
    assert run(["check", "--config", str(clean)], cwd=broken).code == 0


def test_a_config_path_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    """--config or $MIGCOORD_CONFIG naming a missing file: exit 2, saying which source."""
    missing = tmp_path / "nope.toml"
    result = run(["check", "--config", str(missing)], cwd=tmp_path)
    assert result.code == 2
    assert "nope.toml" in result.stderr and "--config" in result.stderr
    result = run(["check"], cwd=tmp_path, environ={"MIGCOORD_CONFIG": str(missing)})
    assert result.code == 2
    assert "$MIGCOORD_CONFIG" in result.stderr


def test_paths_in_the_config_are_relative_to_the_config_file(tmp_path: Path) -> None:
    """With --config from elsewhere, the service folders are found beside the config."""
    make_tree(tmp_path / "repo", {"rule-service/migrations/000001_a.up.sql": "SELECT 1;\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run(["--format", "json", "check", "--config", str(tmp_path / "repo")], cwd=elsewhere)
    assert result.code == 1
    assert [f["code"] for f in result.json()["findings"]] == ["missing-down"]


def test_for_service_names_an_unknown_setting_instead_of_a_type_error(tmp_path: Path) -> None:
    """A typo in a start-up script's keyword is a UsageError listing the known settings."""
    import pytest

    from migcoord import Coordinator, UsageError

    with pytest.raises(UsageError, match="history_shema") as raised:
        Coordinator.for_service("aggregator", migrations=tmp_path, history_shema="ops")
    assert "history_schema" in str(raised.value)
    assert Coordinator.for_service("aggregator", migrations=tmp_path,
                                   history_schema="ops").config.history_schema == "ops"


def test_for_service_types_exactly_the_settings_it_accepts() -> None:
    """Every Config field for_service accepts at run time is typed in its signature."""
    import attrs

    from migcoord.coordinator import Settings
    from migcoord.core.model import Config

    accepted = {f.name for f in attrs.fields(Config)} - {"root", "services", "path"}
    assert Settings.__optional_keys__ == accepted


# -- settings that look fine and are not ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [("pg_catalog", "system schema"), ("pg_temp_3", "system schema"),
     ("pg_toast", "system schema"), ("pg_mine", "system schema"),
     ("information_schema", "system schema"), ("s" * 64, "at most 63"),
     ("my schema", "not a plain schema name")])
def test_history_schema_must_be_a_schema_migcoord_can_use(
    tmp_path: Path, value: str, words: str
) -> None:
    """PostgreSQL refuses pg_* names and cuts names above 63 bytes without a word."""
    err = _config_error(tmp_path, f'history_schema = "{value}"\n' + GOOD_SERVICE)
    assert "[history_schema]" in err and words in err


def test_a_63_byte_history_schema_is_fine(tmp_path: Path) -> None:
    make_tree(tmp_path, {}, config=f'history_schema = "{"s" * 63}"\n' + GOOD_SERVICE)
    assert run(["check"], cwd=tmp_path).code == 0


@pytest.mark.parametrize("inner", ["a/migrations/b", "a/migrations/deep/b"])
def test_a_service_folder_inside_another_is_refused(tmp_path: Path, inner: str) -> None:
    """Its files would be the other service's stray entries: a config error, either order."""
    for first, second in ((GOOD_SERVICE, f'[services.b]\nmigrations = "{inner}"\n'),
                          (f'[services.b]\nmigrations = "{inner}"\n', GOOD_SERVICE)):
        err = _config_error(tmp_path, first + second)
        assert "lies inside the folder of service" in err
        assert "'b'" in err and "'a'" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1.0", "0", "1e300"])
def test_a_lock_timeout_that_is_not_a_usable_wait_is_refused(tmp_path: Path, value: str) -> None:
    err = _config_error(tmp_path, f"lock_timeout = {value}\n" + GOOD_SERVICE)
    assert "[lock_timeout] expected a number of seconds above 0 and at most 86400" in err


def test_a_config_with_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Windows editors write one; it is not TOML, and it is not the user's mistake."""
    make_tree(tmp_path, pair("a", "000001", "x"), config=GOOD_SERVICE)
    config = tmp_path / "migcoord.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    result = run(["check", "--no-sql"], cwd=tmp_path)
    assert result.code == 0, result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "toml"),
    [("history_schema", "pg_catalog", '"pg_catalog"'),
     ("history_schema", "x" * 64, f'"{"x" * 64}"'),
     ("version_width", 0, "0"),
     ("version_width", "6", '"6"'),
     ("lock_timeout", float("nan"), "nan"),
     ("lock_timeout", -1, "-1"),
     ("database_url_env", "1X", '"1X"'),
     ("synchronous_commit", "sometimes", '"sometimes"'),
     ("allow", [3], "[3]"),
     ("docs", Path("/elsewhere/MIGRATIONS.md"), '"/elsewhere/MIGRATIONS.md"')])
def test_for_service_judges_settings_exactly_as_the_config_file_does(
    tmp_path: Path, setting: str, value: object, toml: str
) -> None:
    """One validation for both: the same key, the same words, exit 2."""
    from migcoord import ConfigError, Coordinator

    folder = tmp_path / "repo" / "migrations"
    with pytest.raises(ConfigError) as raised:
        Coordinator.for_service("svc", migrations=folder, **{setting: value})
    assert raised.value.exit_code == 2
    assert str(raised.value).startswith("Coordinator.for_service: invalid settings:")
    [api_problem] = [line.strip() for line in str(raised.value).splitlines()
                     if line.strip().startswith(f"[{setting}]")]
    err = _config_error(tmp_path / "repo", f"{setting} = {toml}\n" + GOOD_SERVICE)
    assert api_problem in err
