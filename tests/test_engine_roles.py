"""Least-privilege roles: what a migration role needs, and `role =` per service.

Production migration roles are rarely superusers: they may create tables in their
schema but not schemas in the database, and sometimes a DBA creates migcoord's tables
for them. A service's `role` makes its migrations run (and own what they create) as
that role while migcoord's own bookkeeping stays with the login role.
"""

from __future__ import annotations

from pathlib import Path

from conftest import PgServer
from psycopg import sql

from helpers import make_tree, pair, run
from test_engine_support import (
    AB_CONFIG,
    env,
    execute,
    history,
    query,
    table_exists,
    temporary_role,
    with_params,
)


def grant(dsn: str, template: str, role: str) -> None:
    execute(dsn, sql.SQL(template).format(sql.Identifier(role)).as_string())


def owner(dsn: str, relation: str) -> str:
    return str(query(dsn, "SELECT pg_get_userbyid(relowner) FROM pg_class "
                          "WHERE oid = to_regclass(%s)", (relation,))[0][0])


def test_a_role_that_may_create_tables_but_not_schemas_can_migrate(
    tmp_path: Path, dsn: str, pg_server: PgServer
) -> None:
    """CREATE on schema public is enough: migcoord does not ask for CREATE on the database."""
    root = make_tree(tmp_path, pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
                     config=AB_CONFIG)
    with temporary_role(pg_server, dsn, "mc_app") as role:
        grant(dsn, "GRANT CREATE ON SCHEMA public TO {}", role)
        result = run(["up", "--service", "a"], cwd=root,
                     environ=env(with_params(dsn, user=role)))

        assert result.code == 0, result.stderr
        assert owner(dsn, "migcoord_history") == role
        assert owner(dsn, "one") == role
        assert [r["version"] for r in history(dsn)] == [1]


def test_a_role_without_create_gets_a_privilege_error_not_a_traceback(
    tmp_path: Path, dsn: str, pg_server: PgServer
) -> None:
    """No CREATE anywhere: exit 1, the server's reason with SQLSTATE 42501, and what to grant."""
    root = make_tree(tmp_path, pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
                     config=AB_CONFIG)
    execute(dsn, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # the default since PG 15
    with temporary_role(pg_server, dsn, "mc_app") as role:
        result = run(["up", "--service", "a"], cwd=root,
                     environ=env(with_params(dsn, user=role)))

    assert result.code == 1, result
    assert "permission denied for schema public (SQLSTATE 42501)" in result.stderr
    assert "CREATE on the history schema" in result.stderr
    assert "Traceback" not in result.stderr
    assert not table_exists(dsn, "migcoord_history")


def test_tables_a_dba_made_let_a_role_without_create_apply_data_migrations(
    tmp_path: Path, dsn: str, pg_server: PgServer
) -> None:
    """With migcoord's tables granted to it, a role that may create nothing still migrates data."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "settings", "CREATE TABLE settings (key text PRIMARY KEY);\n"),
        **pair("a", "000002", "seed", "INSERT INTO settings VALUES ('retention');\n",
               "DELETE FROM settings WHERE key = 'retention';\n"),
    }, config=AB_CONFIG)
    assert run(["up", "--service", "a", "--to", "1"], cwd=root, environ=env(dsn)).code == 0
    execute(dsn, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # the default since PG 15
    with temporary_role(pg_server, dsn, "mc_app") as role:
        for statement in (
            "GRANT SELECT, INSERT, UPDATE, DELETE ON migcoord_history, settings TO {}",
            "GRANT SELECT, INSERT ON migcoord_events TO {}",
        ):
            grant(dsn, statement, role)

        result = run(["up", "--service", "a"], cwd=root,
                     environ=env(with_params(dsn, user=role)))

        assert result.code == 0, result.stderr
        assert query(dsn, "SELECT key FROM settings") == [("retention",)]
        assert [r["version"] for r in history(dsn)] == [1, 2]


def with_role(role: str) -> str:
    """AB_CONFIG with service a's migrations run as `role`."""
    return AB_CONFIG.replace('migrations = "a/migrations"\n',
                             f'migrations = "a/migrations"\nrole = "{role}"\n')


def test_a_services_role_owns_what_its_migrations_create(
    tmp_path: Path, dsn: str, pg_server: PgServer
) -> None:
    """`role =`: transactional and no-transaction migrations run as it; history stays ours."""
    with temporary_role(pg_server, dsn, "svc_a", attributes="NOLOGIN") as role:
        grant(dsn, "GRANT CREATE ON SCHEMA public TO {}", role)
        config = with_role(role)
        root = make_tree(tmp_path, {
            **pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
            **pair("a", "000002", "index",
                   "-- migcoord:no-transaction\nCREATE INDEX CONCURRENTLY one_id ON one (id);\n"),
            **pair("b", "000003", "two", "CREATE TABLE two (id int);\n"),
        }, config=config)

        result = run(["up", "--all"], cwd=root, environ=env(dsn))

        assert result.code == 0, result.stderr
        assert owner(dsn, "one") == role
        assert owner(dsn, "one_id") == role
        assert owner(dsn, "two") == "postgres"
        assert owner(dsn, "migcoord_history") == "postgres"
        assert {r["applied_by"].split("@")[0] for r in history(dsn)} == {"postgres"}


def test_a_failing_migration_in_a_services_role_leaves_the_session_as_it_was(
    tmp_path: Path, dsn: str, pg_server: PgServer
) -> None:
    """After a failure under `role =`, migcoord's own writes still run as the login role."""
    with temporary_role(pg_server, dsn, "svc_a", attributes="NOLOGIN") as role:
        grant(dsn, "GRANT CREATE ON SCHEMA public TO {}", role)
        config = with_role(role)
        root = make_tree(tmp_path, {
            **pair("a", "000001", "one",
                   "-- migcoord:no-transaction\nCREATE TABLE one (id int);\nSELECT 1/0;\n"),
        }, config=config)

        failed = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
        assert failed.code == 1, failed
        assert "SQLSTATE 22012" in failed.stderr
        row = history(dsn)[0]
        assert (row["status"], row["statements_done"]) == ("dirty", 1)
        assert "division by zero" in row["error"]
        assert owner(dsn, "one") == role
