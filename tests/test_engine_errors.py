"""What a program learns from an error without reading its sentence: the fields.

Each failure of `up` or `down` through the API names the file, the line and column, the
migration, the direction and the SQLSTATE; a refused plan names the migration; a lock
timeout names the holder.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from helpers import copy_example, make_tree, pair
from migcoord import (
    Coordinator,
    DependencyNotApplied,
    LockTimeout,
    MigcoordError,
    MigrationFailed,
    RefusedError,
)
from migcoord.errors import ConnectionLost, InvalidMigrationFiles
from test_engine_support import (
    AB_CONFIG,
    QUICK,
    execute,
    history,
    holding_lock,
    query,
    sleeping_migcoord,
    wait_until,
)

TYPO_ON_LINE_3 = "CREATE TABLE audit (\n    id bigint PRIMARY KEY,\n    at timestampz NOT NULL\n);\n"
FAILING_DOWN = "DROP TABLE t;\nCREATE TABLE t_archive (x nosuchtype);\n"


def coordinator(root: Path) -> Coordinator:
    return Coordinator.load(root / "migcoord.toml", environ={})


def fields(error: MigcoordError) -> dict[str, object]:
    """The fields that locate the error (`applied` is asserted on its own)."""
    return {name: getattr(error, name) for name in MigcoordError.fields if name != "applied"}


def test_a_failed_up_names_file_line_column_migration_direction_and_sqlstate(
    tmp_path: Path, dsn: str
) -> None:
    root = make_tree(tmp_path, {**pair("a", "000001", "t", "CREATE TABLE t (id int);\n"),
                                **pair("a", "000002", "audit", TYPO_ON_LINE_3)},
                     config=AB_CONFIG)

    with pytest.raises(MigrationFailed) as failed:
        coordinator(root).up("a", dsn=dsn)

    up_file = root / "a" / "migrations" / "000002_audit.up.sql"
    assert fields(failed.value) == {"path": up_file, "line": 3, "column": 8, "version": 2,
                                    "service": "a", "direction": "up", "sqlstate": "42704"}
    assert [step.version for step in failed.value.applied] == [1]
    assert failed.value.message.startswith(f"{up_file}:3:8: ERROR: ")
    assert failed.value.as_json()["path"] == str(up_file)


def test_a_failed_down_says_down_and_names_the_down_file(tmp_path: Path, dsn: str) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "t", "CREATE TABLE t (id int);\n",
                                    FAILING_DOWN), config=AB_CONFIG)
    coord = coordinator(root)
    coord.up("a", dsn=dsn)

    with pytest.raises(MigrationFailed) as failed:
        coord.down("a", dsn=dsn)

    assert fields(failed.value) == {
        "path": root / "a" / "migrations" / "000001_t.down.sql", "line": 2, "column": 27,
        "version": 1, "service": "a", "direction": "down", "sqlstate": "42704"}


def test_a_failed_no_transaction_statement_is_located_in_the_file(
    tmp_path: Path, dsn: str
) -> None:
    up = ("-- migcoord:no-transaction\nCREATE TABLE n (id int);\n"
          "CREATE INDEX CONCURRENTLY n_idx ON n (nosuchcolumn);\n")
    root = make_tree(tmp_path, pair("a", "000001", "n", up), config=AB_CONFIG)

    with pytest.raises(MigrationFailed) as failed:
        coordinator(root).up("a", dsn=dsn)

    error = failed.value
    assert (error.path, error.line, error.version, error.direction, error.sqlstate) == (
        root / "a" / "migrations" / "000001_n.up.sql", 3, 1, "up", "42703")


def test_a_transaction_statement_in_the_file_is_located_before_anything_runs(
    tmp_path: Path, dsn: str
) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "t", "SELECT 1;\n  COMMIT;\n"),
                     config=AB_CONFIG)

    with pytest.raises(InvalidMigrationFiles) as refused:
        coordinator(root).up("a", dsn=dsn)

    assert fields(refused.value) == {
        "path": root / "a" / "migrations" / "000001_t.up.sql", "line": 2, "column": 3,
        "version": 1, "service": "a", "direction": "up", "sqlstate": None}
    assert [f.code for f in refused.value.findings] == ["explicit-transaction"]
    assert history(dsn) == []


def test_a_lost_connection_names_the_migration_and_direction(tmp_path: Path, dsn: str) -> None:
    """pg_terminate_backend while `up` sleeps in a migration: ConnectionLost says which."""
    root = make_tree(tmp_path, pair("a", "000001", "slow",
                                    "SELECT pg_sleep((SELECT sleep_s FROM control));\n"),
                     config=AB_CONFIG)
    execute(dsn, "CREATE TABLE control (sleep_s float8 NOT NULL)")
    execute(dsn, "INSERT INTO control VALUES (30)")
    raised: list[BaseException] = []

    def up() -> None:
        try:
            coordinator(root).up("a", dsn=dsn)
        except BaseException as error:
            raised.append(error)

    thread = threading.Thread(target=up)
    thread.start()
    try:
        pid = wait_until(lambda: sleeping_migcoord(dsn), what="up's backend in pg_sleep")
        assert query(dsn, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
    finally:
        thread.join(QUICK)

    [error] = raised
    assert isinstance(error, ConnectionLost), error
    assert (error.version, error.service, error.direction) == (1, "a", "up")
    assert error.applied == ()


def test_a_missing_dependency_names_who_needs_what(tmp_path: Path, dsn: str) -> None:
    example = copy_example(tmp_path / "alerting")

    with pytest.raises(DependencyNotApplied) as refused:
        coordinator(example).up("aggregator", dsn=dsn)

    error = refused.value
    assert (error.version, error.service, error.needs) == (6, "aggregator", ("rule-service", 2))
    assert error.as_json()["needs"] == ["rule-service", 2]


def test_a_refused_down_names_the_migration_that_stays(tmp_path: Path, dsn: str) -> None:
    example = copy_example(tmp_path / "alerting")
    coord = coordinator(example)
    coord.up(all_services=True, dsn=dsn)

    with pytest.raises(RefusedError) as refused:
        coord.down("rule-service", to=0, dsn=dsn)

    error = refused.value
    assert error.message.startswith("000001 cannot be rolled back: aggregator's 000006")
    assert (error.version, error.service, error.direction) == (1, "rule-service", "down")


def test_a_lock_timeout_names_the_holder(tmp_path: Path, dsn: str) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "t", "CREATE TABLE t (id int);\n"),
                     config=AB_CONFIG)
    with holding_lock(dsn, application_name="ops-window") as holder, \
            pytest.raises(LockTimeout) as timed_out:
        holder_pid = holder.info.backend_pid
        coordinator(root).up("a", dsn=dsn, lock_timeout=0.2)

    error = timed_out.value
    assert error.holder_pid == holder_pid
    assert error.application_name == "ops-window"
    assert error.waited_s is not None and error.waited_s >= 0.2
    assert error.as_json()["holder_pid"] == holder_pid
