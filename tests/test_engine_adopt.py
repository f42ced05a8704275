"""`adopt --from-golang-migrate`: take over a database that golang-migrate managed.

The database is built as golang-migrate builds it: each up file of the example run in
version order as one simple query, then `schema_migrations (version, dirty)` with one row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg

from helpers import copy_example, run
from test_engine_support import (
    env,
    events,
    history,
    query,
    schema_snapshot,
    sha256_of,
    table_exists,
)

GOLANG_TABLE = ("CREATE TABLE schema_migrations "
                "(version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)")


def up_files(root: Path) -> list[Path]:
    files = root.glob("*/migrations/*.up.sql")
    return sorted(files, key=lambda path: int(path.name.split("_", 1)[0]))


def migrated_by_golang_migrate(root: Path, dsn: str, *, version: int, dirty: bool = False) -> None:
    """Apply the up files up to `version` the way golang-migrate does, and leave its table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for path in up_files(root):
            if int(path.name.split("_", 1)[0]) <= version:
                conn.execute(path.read_text(encoding="utf-8").encode())
        conn.execute(GOLANG_TABLE)
        conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, dirty))


def test_adopt_records_every_applied_file_with_its_checksum(tmp_path: Path, dsn: str) -> None:
    """golang-migrate at 6: 1..6 recorded as applied with the files' sha256, golang's table kept."""
    root = copy_example(tmp_path / "alerting")
    migrated_by_golang_migrate(root, dsn, version=6)
    golang_before = query(dsn, "SELECT version, dirty FROM schema_migrations")
    schema_before = schema_snapshot(dsn)

    result = run(["adopt", "--from-golang-migrate", "--format", "json"], cwd=root,
                 environ=env(dsn))

    assert result.code == 0, result.stderr
    assert result.json() == {"golang_version": 6, "recorded": [1, 2, 3, 4, 5, 6], "already": []}
    rows = history(dsn)
    files = {int(path.name.split("_", 1)[0]): path for path in up_files(root)}
    assert [(r["version"], r["status"], r["checksum"]) for r in rows] == [
        (version, "applied", sha256_of(path)) for version, path in sorted(files.items())]
    assert [(r["version"], r["service"]) for r in rows][-2:] == [(5, "rule-service"),
                                                                 (6, "aggregator")]
    assert rows[-1]["depends"] == [2, 1]
    assert query(dsn, "SELECT version, dirty FROM schema_migrations") == golang_before
    added = set(schema_snapshot(dsn)) - set(schema_before)
    assert {relation for _, relation, *_ in added} == {"migcoord_history", "migcoord_events",
                                                       "migcoord_history_pkey",
                                                       "migcoord_events_pkey",
                                                       "migcoord_events_id_seq"}
    adopted = [e for e in events(dsn) if e["action"] == "adopt"]
    assert len(adopted) == 1
    assert adopted[0]["version"] == 6
    assert adopted[0]["detail"]["recorded"] == [1, 2, 3, 4, 5, 6]

    again = run(["adopt", "--from-golang-migrate", "--format", "json"], cwd=root,
                environ=env(dsn))
    assert again.code == 0, again.stderr
    assert again.json() == {"golang_version": 6, "recorded": [], "already": [1, 2, 3, 4, 5, 6]}
    assert history(dsn) == rows
    assert len([e for e in events(dsn) if e["action"] == "adopt"]) == 2

    up = run(["up", "--all", "--format", "json"], cwd=root, environ=env(dsn))
    assert up.code == 0, up.stderr
    assert up.json()["applied"] == []
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 0, status.stdout
    document = status.json()
    assert (document["database_version"], document["dirty"]) == (6, False)
    assert {m["state"] for m in document["migrations"]} == {"applied"}
    check = run(["check", "--db", "--format", "json"], cwd=root, environ=env(dsn))
    assert check.code == 0, check.stdout


def test_adopt_at_an_older_version_leaves_the_rest_to_up(tmp_path: Path, dsn: str) -> None:
    """golang-migrate at 4: 1..4 adopted, then `up --all` applies 5 and 6 for real."""
    root = copy_example(tmp_path / "alerting")
    migrated_by_golang_migrate(root, dsn, version=4)

    adopted = run(["adopt", "--from-golang-migrate", "--format", "json"], cwd=root,
                  environ=env(dsn))
    assert adopted.code == 0, adopted.stderr
    assert adopted.json()["recorded"] == [1, 2, 3, 4]

    up = run(["up", "--all", "--format", "json"], cwd=root, environ=env(dsn))
    assert up.code == 0, up.stderr
    assert [s["version"] for s in up.json()["applied"]] == [5, 6]
    assert table_exists(dsn, "notifications")
    assert query(dsn, "SELECT count(*) FROM information_schema.columns "
                      "WHERE table_name = 'clients' AND column_name = 'email'") == [(0,)]


def test_adopt_refuses_a_dirty_golang_migrate_database(tmp_path: Path, dsn: str) -> None:
    """A dirty schema_migrations is refused with what to do; nothing is recorded."""
    root = copy_example(tmp_path / "alerting")
    migrated_by_golang_migrate(root, dsn, version=3, dirty=True)

    result = run(["adopt", "--from-golang-migrate"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "version 3 is dirty" in result.stderr
    assert "migrate force" in result.stderr
    assert history(dsn) == []
    assert query(dsn, "SELECT version, dirty FROM schema_migrations") == [(3, True)]


def test_adopt_without_golang_migrates_table_explains_itself(tmp_path: Path, dsn: str) -> None:
    """No schema_migrations: refused, naming the table and the --table option."""
    root = copy_example(tmp_path / "alerting")

    result = run(["adopt", "--from-golang-migrate", "--table", "ops.schema_migrations"],
                 cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "no table ops.schema_migrations" in result.stderr
    assert "--table" in result.stderr


def test_adopt_reads_a_custom_migrations_table(tmp_path: Path, dsn: str) -> None:
    """golang-migrate's x-migrations-table in another schema is read with --table."""
    root = copy_example(tmp_path / "alerting")
    migrated_by_golang_migrate(root, dsn, version=2)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA ops")
        conn.execute("ALTER TABLE schema_migrations SET SCHEMA ops")

    result = run(["adopt", "--from-golang-migrate", "--table", "ops.schema_migrations",
                  "--format", "json"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert result.json()["recorded"] == [1, 2]


def test_adopt_refuses_a_checkout_without_every_service_that_has_migrations(
    tmp_path: Path, dsn: str
) -> None:
    """From aggregator's image alone adopt would skip rule-service's 1..5: refused."""
    root = copy_example(tmp_path / "alerting")
    migrated_by_golang_migrate(root, dsn, version=6)
    shutil.rmtree(root / "rule-service")

    result = run(["adopt", "--from-golang-migrate"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "not here: rule-service" in result.stderr
    assert "sender" not in result.stderr
    assert history(dsn) == []


def test_adopt_does_not_count_a_future_service_without_migrations_as_missing(
    tmp_path: Path, dsn: str
) -> None:
    """A configured service with no folder yet and nothing in migcoord.sum does not block adopt."""
    root = copy_example(tmp_path / "alerting")
    migrated_by_golang_migrate(root, dsn, version=6)
    assert not (root / "sender" / "migrations").exists()

    result = run(["adopt", "--from-golang-migrate"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert [r["version"] for r in history(dsn)] == [1, 2, 3, 4, 5, 6]
