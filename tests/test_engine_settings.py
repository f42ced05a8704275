"""Session settings do not leak: not from one migration into the next, nor into the
caller's connection. Against the real server.

A `SET` inside a transaction that commits outlives it. Without care, `SET search_path`
in migration 1 moves migration 2's tables, so one `up` of both and two separate `up`s
build different schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import PgServer
from psycopg import sql

from helpers import make_tree, pair, run
from migcoord import Coordinator, MigrationFailed
from test_engine_support import AB_CONFIG, env, history, query, schema_snapshot, temporary_role

CHANGES = """\
CREATE SCHEMA IF NOT EXISTS other;
SET search_path = other;
CREATE TABLE IF NOT EXISTS one (id int);
SET lock_timeout = '1234ms';
SET statement_timeout = '42s';
SET client_min_messages = error;
SET session_replication_role = replica;
SET default_transaction_isolation = 'serializable';
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;
SET synchronous_commit = off;
"""

SEES = """\
CREATE TABLE IF NOT EXISTS two (id int);
CREATE TABLE IF NOT EXISTS seen AS SELECT
    current_user::text AS who, session_user::text AS session_user_name,
    current_setting('search_path') AS search_path,
    current_setting('lock_timeout') AS lock_timeout,
    current_setting('statement_timeout') AS statement_timeout,
    current_setting('client_min_messages') AS client_min_messages,
    current_setting('session_replication_role') AS replication_role,
    current_setting('transaction_isolation') AS isolation,
    current_setting('transaction_read_only') AS read_only;
"""

# lock_timeout: each migration runs with migcoord's own (docs/operations.md, lock waits).
DEFAULTS = {"search_path": '"$user", public', "lock_timeout": "5s", "statement_timeout": "0",
            "client_min_messages": "notice", "replication_role": "origin",
            "isolation": "read committed", "read_only": "off"}


def seen(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        cursor = conn.execute("SELECT * FROM public.seen")
        names = [column.name for column in cursor.description or ()]
        [row] = cursor.fetchall()
        return dict(zip(names, row, strict=True))


@pytest.mark.parametrize("mode", ["transaction", "no-transaction"])
@pytest.mark.parametrize("identity", ["SET ROLE", "SET SESSION AUTHORIZATION"])
def test_one_up_of_two_migrations_builds_what_two_ups_build(
        tmp_path: Path, dsn: str, other_dsn: str, pg_server: PgServer, mode: str,
        identity: str) -> None:
    """Migration 1 changes search_path, timeouts, messages, replication role, isolation,
    read-only, synchronous_commit and who it runs as; migration 2 sees none of it,
    whether both run in one `up` or each in its own."""
    with temporary_role(pg_server, dsn, "mc_settings", attributes="NOLOGIN") as role:
        header = "-- migcoord:no-transaction\n" if mode == "no-transaction" else ""
        changes = header + CHANGES + sql.SQL(identity + " {};\n").format(
            sql.Identifier(role)).as_string(None)
        root = make_tree(tmp_path, {
            **pair("a", "000001", "changes", changes, "DROP SCHEMA IF EXISTS other CASCADE;\n"),
            **pair("a", "000002", "sees", SEES, "DROP TABLE IF EXISTS seen, two;\n"),
        }, config=AB_CONFIG)

        together = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
        first = run(["up", "--service", "a", "--to", "1"], cwd=root, environ=env(other_dsn))
        second = run(["up", "--service", "a"], cwd=root, environ=env(other_dsn))

        assert (together.code, first.code, second.code) == (0, 0, 0), together.stderr
        assert schema_snapshot(dsn) == schema_snapshot(other_dsn)
        assert ("public", "two") in {row[:2] for row in schema_snapshot(dsn)}
        assert seen(dsn) == seen(other_dsn)
        assert {key: seen(dsn)[key] for key in DEFAULTS} == DEFAULTS
        assert seen(dsn)["who"] == seen(dsn)["session_user_name"] != role
        assert [row["status"] for row in history(dsn)] == ["applied", "applied"]


def session_state(conn: psycopg.Connection) -> dict[str, str]:
    """Everything a caller may have set on its connection."""
    state = {name: value for name, value in conn.execute(
        "SELECT name, setting FROM pg_settings WHERE source = 'session'").fetchall()}
    row = conn.execute("SELECT current_setting('role'), current_setting('session_authorization'),"
                       " current_setting('app.tenant', true)").fetchone()
    assert row is not None
    state.update(role=row[0], session_authorization=row[1], tenant=row[2])
    return state


CALLER_SETTINGS = """\
SET search_path = "caller's schema", public;
SET lock_timeout = '7s';
SET statement_timeout = '1min';
SET synchronous_commit = local;
SET application_name = 'caller';
SET app.tenant = 'caller';
"""


@pytest.fixture
def caller(dsn: str) -> Iterator[psycopg.Connection]:
    """A service's own connection, with settings of its own."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "caller\'s schema"')
        conn.execute(CALLER_SETTINGS)
        yield conn


def test_a_callers_connection_comes_back_with_its_settings(
        tmp_path: Path, dsn: str, caller: psycopg.Connection) -> None:
    """The migrations start from the caller's settings (its search_path places their
    tables) and whatever they, or migcoord's relaxed commits, change is put back."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "changes", CHANGES, "SELECT 1;\n"),
        **pair("a", "000002", "sees", SEES.replace("public.", ""), "SELECT 1;\n"),
    }, config=AB_CONFIG)
    before = session_state(caller)

    result = Coordinator.load(root / "migcoord.toml", environ={}).up("a", conn=caller)

    assert [step.version for step in result.applied] == [1, 2]
    assert session_state(caller) == before
    assert before["search_path"] == '"caller\'s schema", public'
    tables = {row[:2] for row in schema_snapshot(dsn)}
    assert ("other", "one") in tables
    assert ("caller's schema", "two") in tables
    [(path, lock_timeout)] = query(dsn, 'SELECT search_path, lock_timeout FROM "caller\'s schema".seen')
    # The migration runs with migcoord's lock_timeout, and the caller gets its 7s back.
    assert (path, lock_timeout) == ('"caller\'s schema", public', "5s")


@pytest.mark.parametrize("mode", ["transaction", "no-transaction"])
def test_a_callers_settings_survive_a_failed_migration(
        tmp_path: Path, caller: psycopg.Connection, mode: str) -> None:
    """A failure part-way (rolled back, or left dirty outside a transaction) still hands
    the connection back as it was."""
    header = "-- migcoord:no-transaction\n" if mode == "no-transaction" else ""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "fails", header + CHANGES + "SELECT 1/0;\n", "SELECT 1;\n"),
    }, config=AB_CONFIG)
    before = session_state(caller)

    with pytest.raises(MigrationFailed):
        Coordinator.load(root / "migcoord.toml", environ={}).up("a", conn=caller)

    assert session_state(caller) == before


def test_a_plpgsql_setting_of_one_migration_does_not_reach_the_next(
        tmp_path: Path, dsn: str) -> None:
    """`plpgsql.check_asserts` exists only once PL/pgSQL is loaded, which the first `DO`
    block of a run would do after the session's settings were saved: turned off by
    migration 1, it must not skip migration 2's ASSERT in the same `up`."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "off", "SET plpgsql.check_asserts = off;\n"
               "DO $$BEGIN RAISE NOTICE 'loaded'; END$$;\nCREATE TABLE t (id int);\n",
               "DROP TABLE t;\n"),
        **pair("a", "000002", "asserts", "DO $$BEGIN ASSERT (SELECT count(*) FROM t) > 0, "
               "'t must not be empty'; END$$;\nCREATE TABLE u (id int);\n", "DROP TABLE u;\n"),
    }, config=AB_CONFIG)

    with pytest.raises(MigrationFailed) as raised:
        Coordinator.load(root / "migcoord.toml", environ={}).up("a", dsn=dsn)

    assert "t must not be empty" in raised.value.message
    assert [row["version"] for row in history(dsn)] == [1]
