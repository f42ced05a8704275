"""Ownership enforced by PostgreSQL itself: each service migrates as its own role.

The alerting example with `role =` per service, against the real server, connecting as
an ordinary login role (`migrator`) that is a member of both service roles. The grants
are exactly those docs/findings.md (ownership, "Enforced by the database") tells a DBA
to set up once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from conftest import PgServer
from psycopg import sql

from helpers import copy_example, pair, run
from test_engine_support import (
    env,
    execute,
    history_versions,
    query,
    schema_snapshot,
    temporary_role,
    with_params,
)

ADD_COOLDOWN = pair(
    "aggregator", "000007", "add_rule_cooldown",
    up="-- migcoord:depends rule-service:000002\n"
       "ALTER TABLE rules ADD COLUMN IF NOT EXISTS cooldown interval;\n",
    down="ALTER TABLE rules DROP COLUMN IF EXISTS cooldown;\n")


@attrs.frozen
class Roles:
    migrator: str  # the login role migcoord connects as (not a superuser)
    rule_service: str
    aggregator: str


@contextlib.contextmanager
def service_roles(pg_server: PgServer, dsn: str, *, references: bool = True) -> Iterator[Roles]:
    """The roles, and the DBA's one-time setup before any migration has run."""
    with contextlib.ExitStack() as stack:
        found = Roles(
            migrator=stack.enter_context(temporary_role(pg_server, dsn, "migrator")),
            rule_service=stack.enter_context(
                temporary_role(pg_server, dsn, "rule_service", attributes="NOLOGIN")),
            aggregator=stack.enter_context(
                temporary_role(pg_server, dsn, "aggregator", attributes="NOLOGIN")),
        )
        dba_setup(dsn, found, references=references)
        yield found


@pytest.fixture
def roles(pg_server: PgServer, dsn: str) -> Iterator[Roles]:
    with service_roles(pg_server, dsn) as found:
        yield found


def dba_setup(dsn: str, roles: Roles, *, references: bool = True) -> None:
    """The statements docs/findings.md lists, with this test's role names."""
    names = {"migrator": sql.Identifier(roles.migrator),
             "rule_service": sql.Identifier(roles.rule_service),
             "aggregator": sql.Identifier(roles.aggregator)}
    statements = [
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",  # the default since PostgreSQL 15
        "GRANT {rule_service}, {aggregator} TO {migrator}",
        "GRANT CREATE ON SCHEMA public TO {migrator}, {rule_service}, {aggregator}",
    ]
    if references:
        statements.append("ALTER DEFAULT PRIVILEGES FOR ROLE {rule_service} IN SCHEMA public "
                          "GRANT REFERENCES ON TABLES TO {aggregator}")
    for statement in statements:
        execute(dsn, sql.SQL(statement).format(**names).as_string())


def alerting_with_roles(root: Path, roles: Roles, extra: dict[str, str] | None = None) -> Path:
    """A copy of the example whose services migrate as `roles`, plus `extra` files."""
    copy_example(root)
    config = root / "migcoord.toml"
    text = config.read_text()
    for service, role in (("rule-service", roles.rule_service),
                          ("aggregator", roles.aggregator)):
        line = f'migrations = "{service}/migrations"\n'
        text = text.replace(line, f'{line}role = "{role}"\n')
    config.write_text(text)
    for relative, content in (extra or {}).items():
        (root / relative).write_text(content)
    if extra:
        assert run(["sum"], cwd=root).code == 0
    return root


def up(root: Path, dsn: str, roles: Roles, service: str) -> tuple[int, str]:
    result = run(["up", "--service", service], cwd=root,
                 environ=env(with_params(dsn, user=roles.migrator)))
    return result.code, result.stderr


def owner(dsn: str, table: str) -> str:
    return str(query(dsn, "SELECT pg_get_userbyid(relowner) FROM pg_class "
                          "WHERE oid = to_regclass(%s)", (table,))[0][0])


def test_each_service_owns_the_tables_its_migrations_create(
    tmp_path: Path, dsn: str, roles: Roles
) -> None:
    """rule-service's tables belong to its role, notifications to aggregator's; the
    bookkeeping stays with the login role."""
    root = alerting_with_roles(tmp_path / "alerting", roles)

    assert up(root, dsn, roles, "rule-service")[0] == 0
    code, stderr = up(root, dsn, roles, "aggregator")

    assert code == 0, stderr
    tables = ("clients", "rules", "endpoints")
    assert {table: owner(dsn, table) for table in tables} == dict.fromkeys(tables, roles.rule_service)
    assert owner(dsn, "notifications") == roles.aggregator
    assert owner(dsn, "migcoord_history") == roles.migrator
    assert history_versions(dsn) == [1, 2, 3, 4, 5, 6]


def test_altering_another_services_table_fails_and_leaves_nothing_behind(
    tmp_path: Path, dsn: str, roles: Roles
) -> None:
    """aggregator's ALTER TABLE rules: `must be owner of table rules`, exit 1, no history
    row, the schema exactly as before."""
    root = alerting_with_roles(tmp_path / "alerting", roles, ADD_COOLDOWN)
    assert up(root, dsn, roles, "rule-service")[0] == 0
    before = schema_snapshot(dsn)

    code, stderr = up(root, dsn, roles, "aggregator")

    assert code == 1
    assert "must be owner of table rules" in stderr
    assert "SQLSTATE 42501" in stderr
    assert "Traceback" not in stderr
    # 000006 (legitimate) is applied and recorded; 000007 is neither.
    assert history_versions(dsn) == [1, 2, 3, 4, 5, 6]
    after = [row for row in schema_snapshot(dsn) if "notifications" not in row[1]]
    assert after == before
    assert not query(dsn, "SELECT 1 FROM information_schema.columns "
                          "WHERE table_name = 'rules' AND column_name = 'cooldown'")


def test_the_offline_check_reports_the_same_migration_before_any_database_does(
    tmp_path: Path, roles: Roles
) -> None:
    """`check` names the owner of rules without a database: the role is the backstop."""
    root = alerting_with_roles(tmp_path / "alerting", roles, ADD_COOLDOWN)
    result = run(["check", "--format", "json"], cwd=root)
    [finding] = [f for f in result.json()["findings"] if f["code"] == "ownership"]
    assert (finding["service"], finding["version"]) == ("aggregator", 7)
    assert "rule-service owns" in finding["message"]


def test_a_foreign_key_to_another_services_table_needs_references_granted(
    tmp_path: Path, dsn: str, pg_server: PgServer
) -> None:
    """Without `GRANT REFERENCES`, aggregator's FK to clients is refused, and nothing of
    000006 stays."""
    with service_roles(pg_server, dsn, references=False) as roles:
        root = alerting_with_roles(tmp_path / "alerting", roles)
        assert up(root, dsn, roles, "rule-service")[0] == 0

        code, stderr = up(root, dsn, roles, "aggregator")

        assert code == 1
        assert "permission denied for table clients" in stderr
        assert history_versions(dsn) == [1, 2, 3, 4, 5]
        assert not query(dsn, "SELECT to_regclass('notifications')")[0][0]
