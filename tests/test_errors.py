"""Errors live in one module and carry their facts as fields, not only as text."""

from __future__ import annotations

import importlib
import json
import pickle
import pkgutil
from pathlib import Path

import pytest

import migcoord
from migcoord import errors
from migcoord.errors import (
    ConfigError,
    ConnectionLost,
    DependencyNotApplied,
    LockTimeout,
    MigcoordError,
    MigrationFailed,
    PoolerDetected,
)
from migcoord.results import StepResult


def all_subclasses(base: type) -> set[type]:
    found = set()
    for sub in base.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return found


def test_every_migcoord_error_is_defined_in_migcoord_errors() -> None:
    """Importing every module finds no MigcoordError subclass outside migcoord.errors."""
    for module in pkgutil.walk_packages(migcoord.__path__, "migcoord."):
        if module.name != "migcoord.__main__":  # it runs the CLI
            importlib.import_module(module.name)
    elsewhere = sorted(f"{cls.__module__}.{cls.__qualname__}"
                       for cls in all_subclasses(MigcoordError)
                       if cls.__module__ != "migcoord.errors")
    assert elsewhere == []


def test_fields_never_change_the_message() -> None:
    """The message and str() are what they were; the fields sit beside them."""
    error = MigrationFailed("a/1.up.sql:2:3: ERROR: boom", hint="fix it", path=Path("a/1.up.sql"),
                            line=2, column=3, version=1, service="a", direction="up",
                            sqlstate="42601")
    assert error.message == "a/1.up.sql:2:3: ERROR: boom"
    assert str(error) == "a/1.up.sql:2:3: ERROR: boom\n  hint: fix it"
    assert error.args == ("a/1.up.sql:2:3: ERROR: boom",)
    assert (error.path, error.line, error.column, error.version, error.service,
            error.direction, error.sqlstate) == (Path("a/1.up.sql"), 2, 3, 1, "a", "up", "42601")
    assert error.applied == ()


def test_unknown_fields_are_none() -> None:
    error = MigcoordError("plain")
    assert [getattr(error, name) for name in MigcoordError.fields] == [None] * 7 + [()]
    assert str(error) == "plain"


def test_as_json_gives_type_message_hint_exit_code_and_the_known_fields() -> None:
    """None fields are left out; paths are strings; applied steps are their own JSON."""
    step = StepResult(1, "a", "first", 12)
    error = ConnectionLost("lost it", hint="retry", version=2, service="a", direction="up")
    assert error.with_applied([step]) is error
    document = error.as_json()
    assert document == {"type": "ConnectionLost", "message": "lost it", "hint": "retry",
                        "exit_code": 3, "version": 2, "service": "a", "direction": "up",
                        "applied": [{"version": 1, "service": "a", "name": "first",
                                     "duration_ms": 12}]}
    assert json.loads(json.dumps(document)) == document

    failed = MigrationFailed("boom", path=Path("/repo/a/1.up.sql"), line=4, sqlstate="42P01")
    assert failed.as_json() == {"type": "MigrationFailed", "message": "boom", "hint": None,
                                "exit_code": 1, "path": "/repo/a/1.up.sql", "line": 4,
                                "sqlstate": "42P01"}
    assert MigcoordError("plain").as_json() == {"type": "MigcoordError", "message": "plain",
                                                "hint": None, "exit_code": 1}


def test_subclass_fields_are_in_as_json() -> None:
    config = ConfigError("unknown key", path=Path("/r/migcoord.toml"), key="servces")
    assert str(config) == "/r/migcoord.toml: [servces] unknown key"
    assert config.as_json()["path"] == "/r/migcoord.toml"
    assert config.as_json()["key"] == "servces"

    timeout = LockTimeout("gave up", holder_pid=42, application_name="ops", waited_s=1.5)
    assert {k: timeout.as_json()[k] for k in ("holder_pid", "application_name", "waited_s")} == {
        "holder_pid": 42, "application_name": "ops", "waited_s": 1.5}

    needs = DependencyNotApplied("6 needs rule-service:2", version=6, service="aggregator",
                                 needs=("rule-service", 2))
    assert needs.as_json()["needs"] == ["rule-service", 2]


@pytest.mark.parametrize("error", [
    MigrationFailed("boom", hint="h", path=Path("x.sql"), line=1, column=2, sqlstate="42601"
                    ).with_applied([StepResult(1, "a", "n", 3)]),
    ConfigError("bad", path=Path("/r/migcoord.toml"), key="k"),
    LockTimeout("late", holder_pid=7, waited_s=0.2),
    PoolerDetected("pooled", hint="use session mode"),
])
def test_an_error_survives_a_trip_to_a_worker_process(error: MigcoordError) -> None:
    """Pickled and back (as a process pool does), the message and every field are kept."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.as_json() == error.as_json()


def test_exit_codes_of_the_moved_errors_are_kept() -> None:
    assert errors.PoolerDetected.exit_code == 2
    assert errors.DatabaseRefused.exit_code == 2
    assert errors.DevServerNotRunning.exit_code == 3
    assert issubclass(errors.DevServerNotRunning, errors.ConnectError)
    assert errors.EmbeddedServerError.exit_code == 1
    assert MigrationFailed.exit_code == 1
    assert ConnectionLost.exit_code == 3
