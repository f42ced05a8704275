"""`docs --schema` builds on a throwaway database: when a migration fails there, or the
run is interrupted, the advice is about that database (dropped), never `up` on a real one."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from conftest import PgServer
from test_interrupts import interrupt_when_running, start

from helpers import make_tree, pair, run
from migcoord.db.scratch import PREFIX

CONFIG = """\
docs = "docs/MIGRATIONS.md"
[services.svc]
migrations = "svc/migrations"
owns = ["t"]
"""


def throwaway_databases(admin_dsn: str) -> list[str]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                            (PREFIX + "%",)).fetchall()
    return [name for (name,) in rows]


def test_a_failing_migration_hints_at_docs_schema_not_up(
        tmp_path: Path, pg_server: PgServer) -> None:
    """The hint says no other database was touched and names `docs --schema`, which works
    once the file is fixed; the throwaway database is gone."""
    root = make_tree(tmp_path, {
        **pair("svc", "000001", "t", "CREATE TABLE t (id int);\n", "DROP TABLE t;\n"),
        **pair("svc", "000002", "x", "ALTER TABLE t ADD COLUMN x no_such_type;\n",
               "ALTER TABLE t DROP COLUMN x;\n")}, config=CONFIG)
    before = throwaway_databases(pg_server.admin_dsn)
    failed = run(["docs", "--schema", "--format", "json", "--dsn", pg_server.admin_dsn],
                 cwd=root)
    assert failed.code == 1, failed.stderr
    error = failed.json()["error"]
    assert "000002_x.up.sql" in error["path"]
    assert "`migcoord up" not in error["hint"]
    assert error["hint"] == ("this ran on a throwaway database (no other database was "
                             "touched): fix 000002_x.up.sql and run `migcoord docs --schema` "
                             "again")
    assert throwaway_databases(pg_server.admin_dsn) == before

    (root / "svc/migrations/000002_x.up.sql").write_text("ALTER TABLE t ADD COLUMN x int;\n")
    again = run(["docs", "--schema", "--dsn", pg_server.admin_dsn], cwd=root)
    assert again.code == 0, again.stderr
    assert "| x | integer |" in (root / "docs/MIGRATIONS.md").read_text()


def test_docs_schema_interrupted_says_the_throwaway_database_was_dropped(
        tmp_path: Path, pg_server: PgServer) -> None:
    """Ctrl-C while a migration runs: exit 130, the message is about the throwaway
    database (which is gone), and the JSON document still comes."""
    marker = "pg_sleep(600.625)"
    root = make_tree(tmp_path, {
        **pair("svc", "000001", "t", "CREATE TABLE t (id int);\n", "DROP TABLE t;\n"),
        **pair("svc", "000002", "slow", f"SELECT {marker};\n")}, config=CONFIG)
    before = throwaway_databases(pg_server.admin_dsn)
    process = start(["docs", "--schema", "--format", "json", "--dsn", pg_server.admin_dsn],
                    root)
    stdout, stderr = interrupt_when_running(process, pg_server.admin_dsn, marker)

    assert process.returncode == 130, stderr
    assert "no throwaway database is left" in stderr
    assert "migcoord status" not in stderr
    error = json.loads(stdout)["error"]
    assert (error["type"], error["exit_code"]) == ("Interrupted", 130)
    assert throwaway_databases(pg_server.admin_dsn) == before
