"""`on_step`: up, down and verify tell the caller each migration as it starts, with its
place in the run. The CLI's progress line is drawn from it; a service can log it."""

from __future__ import annotations

from pathlib import Path

import psycopg
from conftest import PgServer

from helpers import make_tree, pair
from migcoord import Coordinator, MigrationFailed, StepStarted
from test_engine_support import AB_CONFIG


def tree(tmp_path: Path) -> Coordinator:
    files = {**pair("a", "000001", "one", "CREATE TABLE one (id int);\n", "DROP TABLE one;\n"),
             **pair("b", "000002", "two", "CREATE TABLE two (id int);\n", "DROP TABLE two;\n"),
             **pair("a", "000003", "three", "CREATE TABLE three (id int);\n",
                    "DROP TABLE three;\n")}
    root = make_tree(tmp_path / "repo", files, config=AB_CONFIG)
    return Coordinator.load(root / "migcoord.toml", environ={})


def test_up_tells_each_migration_before_it_runs(tmp_path: Path, dsn: str) -> None:
    """index counts 1..total in the order applied; the migration is not yet applied when
    the caller hears of it."""
    coord = tree(tmp_path)
    seen: list[tuple[StepStarted, bool]] = []

    def on_step(step: StepStarted) -> None:
        with psycopg.connect(dsn) as conn:
            name = step.name
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        seen.append((step, bool(exists and exists[0])))

    result = coord.up(all_services=True, dsn=dsn, on_step=on_step)

    assert [s.version for s in result.applied] == [1, 2, 3]
    assert [(s.index, s.total, s.command, s.label) for s, _ in seen] == [
        (1, 3, "up", "000001 a one"), (2, 3, "up", "000002 b two"),
        (3, 3, "up", "000003 a three")]
    assert [already for _, already in seen] == [False, False, False]


def test_up_counts_only_what_it_applies(tmp_path: Path, dsn: str) -> None:
    """total is the run's own plan: what is pending for the service, up to --to."""
    coord = tree(tmp_path)
    coord.up("a", to=1, dsn=dsn)
    seen: list[StepStarted] = []
    coord.up("a", dsn=dsn, on_step=seen.append)
    assert [(s.index, s.total, s.version) for s in seen] == [(1, 1, 3)]

    seen.clear()
    coord.up(all_services=True, dsn=dsn, on_step=seen.append)  # only b's 000002 is left
    assert [(s.index, s.total, s.version) for s in seen] == [(1, 1, 2)]

    seen.clear()
    coord.up(all_services=True, dsn=dsn, on_step=seen.append, dry_run=True)
    coord.up(all_services=True, dsn=dsn, on_step=seen.append)  # nothing to do
    assert seen == []


def test_down_tells_each_rollback_newest_first(tmp_path: Path, dsn: str) -> None:
    coord = tree(tmp_path)
    coord.up(all_services=True, dsn=dsn)
    seen: list[StepStarted] = []
    coord.down("a", steps=2, dsn=dsn, on_step=seen.append)
    assert [(s.index, s.total, s.command, s.version) for s in seen] == [
        (1, 2, "down", 3), (2, 2, "down", 1)]


def test_a_failing_migration_was_told_before_it_failed(tmp_path: Path, dsn: str) -> None:
    files = {**pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
             **pair("a", "000002", "bad", "SELECT * FROM no_such_table;\n")}
    root = make_tree(tmp_path / "repo", files, config=AB_CONFIG)
    coord = Coordinator.load(root / "migcoord.toml", environ={})
    seen: list[StepStarted] = []
    try:
        coord.up("a", dsn=dsn, on_step=seen.append)
    except MigrationFailed as error:
        assert [s.version for s in error.applied] == [1]
    else:
        raise AssertionError("the bad migration was applied")
    assert [s.label for s in seen] == ["000001 a one", "000002 a bad"]


def test_verify_tells_each_round_trip_then_the_whole_sequence(tmp_path: Path,
                                                              pg_server: PgServer) -> None:
    coord = tree(tmp_path)
    seen: list[StepStarted] = []
    report = coord.verify(dsn=pg_server.admin_dsn, on_step=seen.append)
    assert report.ok
    assert [(s.index, s.total, s.command, s.version) for s in seen] == [
        (1, 3, "verify", 1), (2, 3, "verify", 2), (3, 3, "verify", 3),
        (3, 3, "verify", None)]
    assert seen[-1].label == "whole sequence down and up again"
