"""The Python API that service start-up code and ops scripts call, against a real server.

Covers construction (load, for_service), the caller's own connection, result values,
errors and their exit codes, and the planning rules as the API applies them: to,
dry_run, with_deps, out-of-order, modified, missing, future, checksums, check --db,
down --cascade and mark/force.
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import psycopg
import pytest

from helpers import copy_example, make_tree, pair, run
from migcoord import (
    ConnectError,
    Coordinator,
    DependencyNotApplied,
    DownResult,
    LockTimeout,
    MigcoordError,
    MigrationFailed,
    RefusedError,
    Status,
    StatusReport,
    StepResult,
    UpResult,
    UsageError,
)
from migcoord.db.lock import lock_key
from test_engine_support import (
    AB_CONFIG,
    capture_migcoord_log,
    env,
    events,
    history,
    history_versions,
    schema_snapshot,
    sha256_of,
    table_exists,
)

ALL = [1, 2, 3, 4, 5, 6]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "alerting")


@pytest.fixture
def coord(example: Path) -> Coordinator:
    return Coordinator.load(example / "migcoord.toml", environ={})


def versions(result: UpResult | DownResult) -> list[int]:
    steps = result.applied if isinstance(result, UpResult) else result.rolled_back
    return [step.version for step in steps]


def states(report: StatusReport) -> dict[int, Status]:
    return {m.version: m.state for m in report.migrations}


# -- construction, connections, values -----------------------------------------------------


def test_load_and_up_with_a_dsn_return_frozen_results(coord: Coordinator, dsn: str) -> None:
    """up(service, dsn=...) returns an attrs UpResult of StepResults with the documented fields."""
    result = coord.up("rule-service", dsn=dsn)

    assert isinstance(result, UpResult)
    assert attrs.has(UpResult) and attrs.has(StepResult)
    assert [f.name for f in attrs.fields(StepResult)] == [
        "version", "service", "name", "duration_ms"]
    assert versions(result) == [1, 2, 3, 4, 5]
    first = result.applied[0]
    assert (first.service, first.name) == ("rule-service", "create_clients_table")
    assert first.duration_ms >= 0
    assert first.as_json() == {"version": 1, "service": "rule-service",
                               "name": "create_clients_table", "duration_ms": first.duration_ms}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        first.version = 9  # type: ignore[misc]

    second = coord.up("aggregator", dsn=dsn)
    assert versions(second) == [6]
    report = coord.status(dsn=dsn)
    assert (report.database_version, report.dirty) == (6, False)
    assert set(states(report).values()) == {Status.APPLIED}
    assert all(m.applied_at is not None for m in report.migrations)


def test_up_with_the_callers_connection_leaves_it_open_and_usable(
    coord: Coordinator, dsn: str
) -> None:
    """conn=: used as is, not closed, its autocommit setting restored."""
    with psycopg.connect(dsn) as conn:
        assert conn.autocommit is False
        result = coord.up("rule-service", conn=conn)
        assert versions(result) == [1, 2, 3, 4, 5]
        assert not conn.closed
        assert conn.autocommit is False
        conn.execute("INSERT INTO clients (slug, name) VALUES ('acme', 'Acme')")
        conn.commit()
        assert coord.status(conn=conn).database_version == 5
        coord.up("aggregator", conn=conn)
        assert conn.execute("SELECT count(*) FROM notifications").fetchone() == (0,)
        conn.rollback()
    assert history_versions(dsn) == ALL


def test_a_connection_inside_a_transaction_is_refused(coord: Coordinator, dsn: str) -> None:
    """migcoord will not run inside the caller's open transaction (UsageError, exit 2)."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT 1")
        with pytest.raises(UsageError, match="inside a transaction") as raised:
            coord.up("rule-service", conn=conn)
        assert raised.value.exit_code == 2
        conn.rollback()
    assert not table_exists(dsn, "clients")


def test_for_service_needs_no_config_file(example: Path, coord: Coordinator, dsn: str) -> None:
    """for_service(aggregator, migrations=...) waits for rule-service, then applies 6."""
    alone = Coordinator.for_service("aggregator",
                                    migrations=example / "aggregator" / "migrations")
    assert alone.config.path is None

    with pytest.raises(DependencyNotApplied, match="rule-service") as raised:
        alone.up("aggregator", dsn=dsn)
    assert raised.value.exit_code == 1
    assert "migcoord up --service rule-service" in str(raised.value)

    coord.up("rule-service", dsn=dsn)
    assert versions(alone.up("aggregator", dsn=dsn)) == [6]
    report = alone.status(dsn=dsn)
    by_version = {m.version: m for m in report.migrations}
    assert by_version[6].state == Status.APPLIED
    assert by_version[2].state == Status.APPLIED
    assert by_version[2].detail == "folder not here"
    assert report.has_errors is False


def test_errors_are_migcoord_errors_with_exit_codes(
    tmp_path: Path, dsn: str, coord: Coordinator
) -> None:
    """Each failure is a MigcoordError subclass that knows its exit code and what to do."""
    root = make_tree(tmp_path / "bad", pair("a", "000001", "bad", "SELEC 1;\n"),
                     config=AB_CONFIG)
    bad = Coordinator.load(root / "migcoord.toml", environ={})
    raised: list[tuple[type[MigcoordError], int, MigcoordError]] = []

    with pytest.raises(MigrationFailed) as failed:
        bad.up("a", dsn=dsn)
    raised.append((MigrationFailed, 1, failed.value))
    assert failed.value.sqlstate == "42601"
    with pytest.raises(DependencyNotApplied) as refused:
        coord.up("aggregator", dsn=dsn)
    raised.append((RefusedError, 1, refused.value))
    with pytest.raises(UsageError) as usage:
        coord.up("no-such-service", dsn=dsn)
    raised.append((UsageError, 2, usage.value))
    with pytest.raises(UsageError) as no_dsn:
        coord.status()
    raised.append((UsageError, 2, no_dsn.value))
    assert "DATABASE_URL" in str(no_dsn.value)
    with pytest.raises(ConnectError) as unreachable:
        coord.status(dsn="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    raised.append((ConnectError, 3, unreachable.value))
    coord.up("rule-service", to=1, dsn=dsn)
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("public"),))
        with pytest.raises(LockTimeout) as timed_out:
            coord.up("rule-service", dsn=dsn, lock_timeout=0.2)
    raised.append((LockTimeout, 3, timed_out.value))

    for kind, code, error in raised:
        assert isinstance(error, kind)
        assert isinstance(error, MigcoordError)
        assert error.exit_code == code, error
        assert error.hint, f"{type(error).__name__} gives no next step: {error}"
        assert str(error).startswith(error.message)


# -- planning through the API ----------------------------------------------------------


def test_up_to_applies_up_to_and_including_that_version(coord: Coordinator, dsn: str) -> None:
    """up(all_services=True, to=3) applies 1, 2, 3 and no more."""
    assert versions(coord.up(all_services=True, to=3, dsn=dsn)) == [1, 2, 3]
    assert history_versions(dsn) == [1, 2, 3]
    assert versions(coord.up(all_services=True, dsn=dsn)) == [4, 5, 6]


def test_dry_run_touches_nothing(coord: Coordinator, dsn: str) -> None:
    """dry_run plans with the SQL, but creates not even the history table."""
    before = schema_snapshot(dsn)

    result = coord.up(all_services=True, dry_run=True, dsn=dsn)

    assert result.dry_run is True
    assert result.applied == ()
    assert [p.version for p in result.planned] == ALL
    assert "CREATE TABLE IF NOT EXISTS clients" in result.planned[0].sql
    assert schema_snapshot(dsn) == before
    assert not table_exists(dsn, "migcoord_history")

    coord.up(all_services=True, dsn=dsn)
    rows = history(dsn)
    down = coord.down("rule-service", to=1, cascade=True, dry_run=True, dsn=dsn)
    assert [p.version for p in down.planned] == [6, 5, 4, 3, 2]
    assert [p.direction for p in down.planned] == ["down"] * 5
    assert history(dsn) == rows


def test_with_deps_applies_the_needed_rule_service_migrations_first(
    coord: Coordinator, dsn: str
) -> None:
    """aggregator with_deps: rule-service 1 and 2 (what 6 needs) go first, then 6."""
    plan = coord.up("aggregator", with_deps=True, dry_run=True, dsn=dsn)
    assert [(p.version, p.reason) for p in plan.planned] == [
        (1, "needed by 000006"), (2, "needed by 000006"), (6, "pending")]

    result = coord.up("aggregator", with_deps=True, dsn=dsn)

    assert [(s.version, s.service) for s in result.applied] == [
        (1, "rule-service"), (2, "rule-service"), (6, "aggregator")]
    assert versions(coord.up("rule-service", dsn=dsn)) == [3, 4, 5]


def ab_tree(root: Path, files: dict[str, str]) -> Coordinator:
    make_tree(root, files, config=AB_CONFIG)
    return Coordinator.load(root / "migcoord.toml", environ={})


def test_out_of_order_pending_is_refused_unless_allowed(tmp_path: Path, dsn: str) -> None:
    """A's pending 2 below its applied 3 is refused; allow_out_of_order applies it."""
    coord = ab_tree(tmp_path, {**pair("a", "000001", "one"), **pair("a", "000003", "three")})
    assert versions(coord.up("a", dsn=dsn)) == [1, 3]
    make_tree(tmp_path, pair("a", "000002", "two"), config=AB_CONFIG)

    with pytest.raises(RefusedError, match="out of order") as raised:
        coord.up("a", dsn=dsn)
    assert "000002" in str(raised.value)
    assert "--allow-out-of-order" in str(raised.value)
    assert history_versions(dsn) == [1, 3]

    assert versions(coord.up("a", allow_out_of_order=True, dsn=dsn)) == [2]


def test_other_services_migrations_interleave_freely(tmp_path: Path, dsn: str) -> None:
    """b's pending 2 below a's applied 3 is not out of order: it is another service."""
    coord = ab_tree(tmp_path, {**pair("a", "000001", "one"), **pair("a", "000003", "three")})
    coord.up("a", dsn=dsn)
    make_tree(tmp_path, pair("b", "000002", "two"), config=AB_CONFIG)

    assert versions(coord.up("b", dsn=dsn)) == [2]


def test_an_edited_applied_file_refuses_up_naming_mark(tmp_path: Path, dsn: str) -> None:
    """modified: up refuses, saying how to restore or `mark --applied` the edit."""
    coord = ab_tree(tmp_path, pair("a", "000001", "one", "CREATE TABLE one (id int);\n"))
    coord.up("a", dsn=dsn)
    up_file = tmp_path / "a" / "migrations" / "000001_one.up.sql"
    up_file.write_text("CREATE TABLE one (id bigint);\n")
    make_tree(tmp_path, pair("a", "000002", "two"), config=AB_CONFIG, write_sum=False)

    assert states(coord.status(dsn=dsn)) == {1: Status.MODIFIED, 2: Status.PENDING}
    with pytest.raises(RefusedError, match="changed after it was applied") as raised:
        coord.up("a", dsn=dsn)
    assert "migcoord mark 000001 --applied" in str(raised.value)
    assert history_versions(dsn) == [1]


def test_a_deleted_applied_file_refuses_up_naming_what_was_recorded(
    tmp_path: Path, dsn: str
) -> None:
    """missing: 2 deleted while 3 is here; up refuses naming a and the recorded name."""
    coord = ab_tree(tmp_path, {**pair("a", "000001", "one"), **pair("a", "000002", "two"),
                               **pair("a", "000003", "three")})
    coord.up("a", dsn=dsn)
    for path in (tmp_path / "a" / "migrations").glob("000002_*"):
        path.unlink()
    make_tree(tmp_path, pair("a", "000004", "four"), config=AB_CONFIG, write_sum=False)

    assert states(coord.status(dsn=dsn))[2] == Status.MISSING
    with pytest.raises(RefusedError) as raised:
        coord.up("a", dsn=dsn)
    assert "000002 a two" in str(raised.value)
    assert "deleted or renamed" in str(raised.value)
    assert history_versions(dsn) == [1, 2, 3]


def test_a_checkout_behind_the_database_warns_and_carries_on(tmp_path: Path, dsn: str) -> None:
    """future: a's applied 3 is newer than a's files; up warns and applies b's pending work."""
    coord = ab_tree(tmp_path, {**pair("a", "000001", "one"), **pair("a", "000002", "two"),
                               **pair("a", "000003", "three")})
    coord.up("a", dsn=dsn)
    for path in (tmp_path / "a" / "migrations").glob("000003_*"):
        path.unlink()
    make_tree(tmp_path, pair("b", "000004", "four"), config=AB_CONFIG, write_sum=False)

    report = coord.status(dsn=dsn)
    assert states(report)[3] == Status.FUTURE
    assert report.has_errors is False
    with capture_migcoord_log() as log:
        result = coord.up(all_services=True, dsn=dsn)
    assert versions(result) == [4]
    assert len(result.warnings) == 1
    assert "000003 a three" in result.warnings[0]
    assert "behind the database" in result.warnings[0]
    assert result.warnings[0] in log.at(logging.WARNING)
    assert coord.up("a", dsn=dsn).warnings == result.warnings


def test_checksum_ignores_crlf_and_a_bom(tmp_path: Path, dsn: str) -> None:
    """An applied file rewritten with CRLF line ends and a BOM is still `applied`."""
    text = "-- one\nCREATE TABLE one (\n    id int\n);\n"
    coord = ab_tree(tmp_path, pair("a", "000001", "one", text))
    coord.up("a", dsn=dsn)
    up_file = tmp_path / "a" / "migrations" / "000001_one.up.sql"
    recorded = history(dsn)[0]["checksum"]
    assert recorded == sha256_of(up_file)

    up_file.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())

    assert sha256_of(up_file) != recorded
    assert states(coord.status(dsn=dsn)) == {1: Status.APPLIED}
    assert coord.up("a", dsn=dsn).applied == ()


def test_check_database_reports_missing_file_modified_dirty_and_out_of_order(
    tmp_path: Path, dsn: str
) -> None:
    """check_database (and `check --db`) find all four database findings at once."""
    coord = ab_tree(tmp_path, {
        **pair("a", "000001", "one"), **pair("a", "000002", "two"),
        **pair("a", "000003", "three"), **pair("b", "000005", "five"),
        **pair("a", "000006", "six",
               "-- migcoord:no-transaction\nSELECT 1;\nSELECT 1/0;\n"),
    })
    with pytest.raises(MigrationFailed):
        coord.up(all_services=True, dsn=dsn)
    (tmp_path / "a" / "migrations" / "000001_one.up.sql").write_text("SELECT 2;\n")
    for path in (tmp_path / "a" / "migrations").glob("000002_*"):
        path.unlink()
    make_tree(tmp_path, pair("b", "000004", "four"), config=AB_CONFIG, write_sum=False)

    found = {(f.code, f.version) for f in coord.check_database(dsn=dsn)}

    assert found == {("modified", 1), ("missing-file", 2), ("out-of-order", 4), ("dirty", 6)}
    cli = run(["check", "--db", "--format", "json"], cwd=tmp_path, environ=env(dsn))
    assert cli.code == 1
    by_code = {f["code"]: f for f in cli.json()["findings"]}
    assert {"modified", "missing-file", "out-of-order", "dirty"} <= set(by_code)
    assert all(by_code[c]["severity"] == "error"
               for c in ("modified", "missing-file", "out-of-order", "dirty"))
    assert by_code["dirty"]["service"] == "a"
    assert "stopped after statement 1 of 2" in by_code["dirty"]["message"]


# -- down and repair -------------------------------------------------------------------


def test_down_refuses_while_dependents_are_applied_and_cascade_rolls_them_back_first(
    coord: Coordinator, dsn: str
) -> None:
    """rule-service down to 1 needs aggregator's 6 gone first: refused, or cascade (warned)."""
    coord.up(all_services=True, dsn=dsn)

    with pytest.raises(RefusedError, match="aggregator's 000006") as raised:
        coord.down("rule-service", to=1, dsn=dsn)
    assert "--cascade" in str(raised.value)
    assert history_versions(dsn) == ALL

    with capture_migcoord_log() as log:
        result = coord.down("rule-service", to=1, cascade=True, dsn=dsn)

    assert isinstance(result, DownResult)
    assert versions(result) == [6, 5, 4, 3, 2]
    assert result.rolled_back[0].service == "aggregator"
    warnings = log.at(logging.WARNING)
    assert len(warnings) == 1
    assert "000006 aggregator create_notifications_table" in warnings[0]
    assert "cascade" in warnings[0]
    assert history_versions(dsn) == [1]
    assert not table_exists(dsn, "notifications")
    assert not table_exists(dsn, "rules")
    assert ("public", "clients", "r", "email", "text", "false") in schema_snapshot(dsn)
    downs = [e["version"] for e in events(dsn) if e["action"] == "down"]
    assert downs == [6, 5, 4, 3, 2]


def test_down_default_is_one_step_newest_first(coord: Coordinator, dsn: str) -> None:
    """down(service) rolls back that service's newest applied migration only."""
    coord.up(all_services=True, dsn=dsn)
    assert versions(coord.down("rule-service", dsn=dsn)) == [5]
    assert versions(coord.down("rule-service", steps=2, dsn=dsn)) == [4, 3]
    assert history_versions(dsn) == [1, 2, 6]


def test_mark_applied_accepts_an_edit_by_recording_the_new_checksum(
    tmp_path: Path, dsn: str
) -> None:
    """mark --applied on a modified migration records the file's checksum and the reason."""
    coord = ab_tree(tmp_path, pair("a", "000001", "one", "CREATE TABLE one (id int);\n"))
    coord.up("a", dsn=dsn)
    up_file = tmp_path / "a" / "migrations" / "000001_one.up.sql"
    up_file.write_text("CREATE TABLE IF NOT EXISTS one (id int);\n")
    assert states(coord.status(dsn=dsn)) == {1: Status.MODIFIED}

    marked = coord.mark(1, applied=True, reason="made idempotent, same schema", dsn=dsn)

    assert (marked.version, marked.applied, marked.previous) == (1, True, "applied")
    assert history(dsn)[0]["checksum"] == sha256_of(up_file)
    assert states(coord.status(dsn=dsn)) == {1: Status.APPLIED}
    assert [(e["action"], e["reason"]) for e in events(dsn)][-1] == (
        "mark-applied", "made idempotent, same schema")


def test_force_is_mark_applied(tmp_path: Path, dsn: str) -> None:
    """`force V` (golang-migrate's word) records V as applied, like `mark V --applied`."""
    coord = ab_tree(tmp_path, {**pair("a", "000001", "one"),
                               **pair("a", "000002", "two", "CREATE TABLE two (id int);\n")})
    coord.up("a", to=1, dsn=dsn)

    forced = run(["force", "2", "--reason", "created by hand"], cwd=tmp_path, environ=env(dsn))

    assert forced.code == 0, forced.stderr
    assert "marked 000002 a two as applied" in forced.stdout
    assert states(coord.status(dsn=dsn)) == {1: Status.APPLIED, 2: Status.APPLIED}
    assert not table_exists(dsn, "two")
    assert [(e["action"], e["version"], e["reason"]) for e in events(dsn)][-1] == (
        "mark-applied", 2, "created by hand")
    assert coord.up("a", dsn=dsn).applied == ()


def test_a_dirty_migration_blocks_its_own_service_only(tmp_path: Path, dsn: str) -> None:
    """a's dirty 1 stops `up a` and `up --all`, while b still migrates."""
    coord = ab_tree(tmp_path, {
        **pair("a", "000001", "bad", "-- migcoord:no-transaction\nSELECT 1;\nSELECT 1/0;\n"),
        **pair("b", "000002", "two", "CREATE TABLE two (id int);\n"),
    })
    with pytest.raises(MigrationFailed):
        coord.up("a", dsn=dsn)

    for call in (lambda: coord.up("a", dsn=dsn), lambda: coord.up(all_services=True, dsn=dsn)):
        with pytest.raises(RefusedError, match="dirty"):
            call()
    assert versions(coord.up("b", dsn=dsn)) == [2]
    report = coord.status(dsn=dsn)
    assert report.dirty is True
    assert states(report) == {1: Status.DIRTY, 2: Status.APPLIED}


def test_history_schema_keeps_history_there_with_a_lock_of_its_own(
    tmp_path: Path, dsn: str
) -> None:
    """history_schema = "ops": tables in ops, and the public lock does not block it."""
    make_tree(tmp_path, pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
              config='history_schema = "ops"\n' + AB_CONFIG)
    coord = Coordinator.load(tmp_path / "migcoord.toml", environ={})

    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("public"),))
        result = coord.up("a", dsn=dsn, lock_timeout=1)

    assert versions(result) == [1]
    assert table_exists(dsn, "ops.migcoord_history")
    assert table_exists(dsn, "ops.migcoord_events")
    assert not table_exists(dsn, "public.migcoord_history")
    assert coord.status(dsn=dsn).database_version == 1
