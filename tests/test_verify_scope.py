"""Scoped snapshots (migcoord.db.snapshot_scope): after each kind of DDL, the snapshot
read as "what changed since the last one" equals a full read of the catalog (real server).

Each step runs like a migration (in one transaction, or alone for CONCURRENTLY), then the
observer's snapshot is compared with `snapshot_sql.read` on a connection of its own, and
the step says whether its read must have been scoped or a full one (a command the log
cannot map, a change the event triggers do not see).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from conftest import PgServer
from psycopg import sql
from test_verify import RULES

from helpers import copy_example, make_tree, pair, run
from migcoord.db import ddl_log, snapshot_sql
from migcoord.db.scratch import Observer
from migcoord.verify import servers
from test_engine_support import temporary_role


@attrs.frozen
class Step:
    sql: str
    read: str = "scoped"  # or "full"
    alone: bool = False  # outside a transaction (CONCURRENTLY)
    fails: bool = False  # the migration fails and is rolled back


def steps(role: str) -> list[Step]:
    weak = sql.Identifier(role).as_string()
    return [
        Step("CREATE TABLE accounts (id bigserial PRIMARY KEY, email text NOT NULL, "
             "plan text DEFAULT 'free')"),
        Step("CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
             "account_id bigint REFERENCES accounts, total numeric CHECK (total >= 0), "
             "note text)"),
        Step("ALTER TABLE orders ADD COLUMN status text; "
             "ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'new'; "
             "UPDATE orders SET status = 'new'; ALTER TABLE orders ALTER status SET NOT NULL"),
        Step("CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status)", alone=True),
        Step("ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email)"),
        Step("CREATE VIEW open_orders AS SELECT id, status FROM orders WHERE status <> 'done'"),
        Step("CREATE MATERIALIZED VIEW totals AS "
             "SELECT account_id, sum(total) AS total FROM orders GROUP BY 1"),
        Step("CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql "
             "AS $$BEGIN RETURN NEW; END$$; "
             "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders "
             "FOR EACH ROW EXECUTE FUNCTION touch()"),
        Step("CREATE PROCEDURE archive(days int) LANGUAGE sql "
             "AS $$ DELETE FROM orders WHERE false $$"),
        Step("ALTER TABLE orders ENABLE ROW LEVEL SECURITY; "
             "CREATE POLICY own_orders ON orders USING (account_id > 0)"),
        Step("CREATE SEQUENCE invoice_seq; ALTER SEQUENCE invoice_seq OWNED BY orders.note; "
             "ALTER TABLE orders ADD COLUMN invoice bigint DEFAULT nextval('invoice_seq')"),
        Step("CREATE TYPE mood AS ENUM ('ok', 'sad'); "
             "CREATE DOMAIN positive AS numeric CHECK (VALUE > 0); "
             "CREATE TYPE pair AS (a int, b text); "
             "ALTER TABLE accounts ADD COLUMN mood mood DEFAULT 'ok', "
             "ADD COLUMN credit positive, ADD COLUMN moods mood[], ADD COLUMN twin pair"),
        Step("ALTER TYPE mood ADD VALUE 'angry'"),
        Step("ALTER TYPE mood RENAME VALUE 'ok' TO 'fine'"),
        Step("ALTER TYPE mood RENAME TO feeling"),
        Step("ALTER TYPE pair ADD ATTRIBUTE c int; ALTER TYPE pair RENAME TO couple"),
        Step("CREATE SCHEMA billing; COMMENT ON TABLE accounts IS 'who pays'; "
             "COMMENT ON COLUMN orders.total IS 'gross'; "
             "COMMENT ON CONSTRAINT orders_total_check ON orders IS 'never negative'; "
             "COMMENT ON INDEX orders_status_idx IS 'by status'"),
        Step("GRANT SELECT ON accounts TO PUBLIC", read="full"),
        Step("REVOKE SELECT ON accounts FROM PUBLIC", read="full"),
        Step("ALTER TABLE orders RENAME TO purchases"),
        Step("ALTER TABLE purchases RENAME COLUMN status TO state"),
        Step("ALTER INDEX orders_status_idx RENAME TO purchases_state_idx"),
        Step("ALTER TABLE accounts RENAME TO customers"),
        Step("ALTER TABLE purchases SET SCHEMA billing"),
        Step("ALTER FUNCTION touch() SET SCHEMA billing"),
        Step("DO $$ BEGIN EXECUTE 'CREATE TABLE dyn_' || 'made (a int)'; "
             "EXECUTE format('ALTER TABLE %I ADD COLUMN b int', 'dyn_made'); END $$"),
        Step(f"GRANT CREATE, USAGE ON SCHEMA public TO {weak}", read="full"),
        Step(f"SET LOCAL ROLE {weak}; CREATE TABLE weak_made (a int); "
             "CREATE INDEX weak_made_a ON weak_made (a)"),
        Step("SET LOCAL session_replication_role = replica; CREATE TABLE replica_made (a int); "
             "ALTER TABLE customers ADD COLUMN referrer int"),
        Step("CREATE TABLE broken (a int); SELECT 1 / 0", fails=True),
        Step("DROP VIEW open_orders; DROP MATERIALIZED VIEW totals"),
        Step("DROP SEQUENCE billing.invoice_seq CASCADE"),
        Step("DROP FUNCTION billing.touch() CASCADE"),
        Step("DROP INDEX CONCURRENTLY billing.purchases_state_idx", alone=True),
        Step("ALTER TABLE customers ALTER COLUMN email DROP NOT NULL; "
             "ALTER TABLE customers ALTER plan DROP DEFAULT; "
             "ALTER TABLE customers ALTER COLUMN credit TYPE numeric"),
        Step("CREATE TABLE events (at date, kind text) PARTITION BY RANGE (at); "
             "CREATE TABLE events_2024 PARTITION OF events "
             "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01'); "
             "CREATE INDEX events_kind_idx ON events (kind); "
             "CREATE TABLE events_child (extra int) INHERITS (replica_made)"),
        Step("ALTER TABLE events DETACH PARTITION events_2024"),
        Step("ALTER TABLE replica_made RENAME TO replica_parent"),
        Step("ALTER DOMAIN positive ADD CONSTRAINT below_million CHECK (VALUE < 1000000)"),
        Step("CREATE FUNCTION small(numeric) RETURNS boolean LANGUAGE sql IMMUTABLE "
             "AS 'SELECT $1 < 10'; ALTER DOMAIN positive ADD CONSTRAINT is_small "
             "CHECK (small(VALUE)); ALTER TABLE customers ADD COLUMN tiny numeric "
             "DEFAULT 1 CHECK (small(tiny))"),
        Step("DROP FUNCTION small(numeric) CASCADE"),
        Step(f"ALTER TABLE customers OWNER TO {weak}"),
        Step(f"REASSIGN OWNED BY {weak} TO CURRENT_USER", read="full"),
        Step("CREATE TABLE dups (a int); INSERT INTO dups VALUES (1), (1)"),
        Step("CREATE UNIQUE INDEX CONCURRENTLY dups_a ON dups (a)", alone=True, fails=True,
             read="full"),
        Step("DELETE FROM dups; REINDEX INDEX dups_a", read="full"),
        # Renames that reach down more than one level, and through a composite type.
        Step("CREATE TABLE par (a int, z int CONSTRAINT zc CHECK (z > 0)); "
             "CREATE TABLE ch () INHERITS (par); CREATE TABLE gch () INHERITS (ch); "
             "CREATE VIEW ch_view AS SELECT a FROM ch"),
        Step("ALTER TABLE par RENAME COLUMN a TO a2"),
        Step("ALTER TABLE par RENAME CONSTRAINT zc TO zc2"),
        Step("CREATE TYPE address AS (street text); CREATE TABLE addresses OF address; "
             "CREATE VIEW address_view AS SELECT * FROM addresses"),
        Step("ALTER TYPE address ADD ATTRIBUTE zip text CASCADE"),
        Step("ALTER TYPE address RENAME ATTRIBUTE street TO line1 CASCADE"),
        # What no event trigger reports: event triggers themselves, large objects' comments.
        Step("CREATE FUNCTION audit() RETURNS event_trigger LANGUAGE plpgsql "
             "AS 'BEGIN END'; CREATE EVENT TRIGGER audit_ddl ON ddl_command_end "
             "EXECUTE FUNCTION audit()", read="full"),
        Step("COMMENT ON EVENT TRIGGER audit_ddl IS 'records DDL'", read="full"),
        Step("DROP EVENT TRIGGER audit_ddl", read="full"),
        Step("SELECT lo_create(424242); COMMENT ON LARGE OBJECT 424242 IS 'a blob'",
             read="full"),
        Step("SELECT lo_unlink(424242)", read="full"),
        Step("DROP TABLE billing.purchases CASCADE"),
        Step("DROP SCHEMA billing CASCADE"),
        Step(f"DROP OWNED BY {weak}", read="full"),
    ]


@contextlib.contextmanager
def observed(dsn: str) -> Iterator[tuple[Observer, psycopg.Connection[tuple[object, ...]],
                                         psycopg.Connection[tuple[object, ...]]]]:
    """A scoped observer of `dsn`, a connection that runs the steps, one that reads in full."""
    with contextlib.ExitStack() as stack:
        observer = stack.enter_context(contextlib.closing(Observer(dsn, "public", scoped=True)))
        migrating = stack.enter_context(psycopg.connect(dsn, autocommit=True))
        checking = stack.enter_context(psycopg.connect(dsn, autocommit=True))
        yield observer, migrating, checking


def run_step(conn: psycopg.Connection[tuple[object, ...]], step: Step) -> None:
    try:
        if step.alone:
            conn.execute(step.sql)
        else:
            with conn.transaction():
                conn.execute(step.sql)
    except psycopg.Error:
        if not step.fails:
            raise
    else:
        assert not step.fails, f"{step.sql} should have failed"


def test_each_kind_of_ddl_gives_the_snapshot_a_full_read_gives(
        pg_server: PgServer, dsn: str) -> None:
    with temporary_role(pg_server, dsn, "weak", attributes="NOLOGIN") as role, \
            observed(dsn) as (observer, migrating, checking):
        assert observer.scope is not None
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert observer.scope.last_read == "full"
        for step in steps(role):
            run_step(migrating, step)
            seen = observer.snapshot()
            assert seen == snapshot_sql.read(checking, "public"), step.sql
            assert (observer.scope.last_read, step.sql) == (step.read, step.sql), \
                observer.scope.last_reason
        # The schema the steps built is not an empty one: the comparisons compared something.
        assert len(seen.snapshot()) > 20


def test_a_scoped_read_reads_only_what_the_migration_touched(dsn: str) -> None:
    with observed(dsn) as (observer, migrating, checking):
        assert observer.scope is not None
        migrating.execute("CREATE TABLE IF NOT EXISTS t_1 (id int); "
                          + "; ".join(f"CREATE TABLE t_{n} (id int PRIMARY KEY)"
                                      for n in range(2, 40)))
        observer.snapshot()
        migrating.execute("CREATE TABLE IF NOT EXISTS t_40 (id int); INSERT INTO t_40 VALUES (1)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        # The table, its row type and that type's array type.
        assert (observer.scope.last_read, observer.scope.last_keys) == ("scoped", 3)
        migrating.execute("DROP TABLE t_40")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert observer.scope.last_read == "scoped" and observer.scope.last_keys <= 4
        # Nothing changed: nothing is read again.
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert (observer.scope.last_read, observer.scope.last_keys) == ("scoped", 0)
        # CREATE TABLE IF NOT EXISTS of a table that is there names no object: no change.
        migrating.execute("CREATE TABLE IF NOT EXISTS t_1 (id int)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert observer.scope.last_read == "scoped"


def test_an_extension_is_read_in_full(dsn: str) -> None:
    with observed(dsn) as (observer, migrating, checking):
        assert observer.scope is not None
        observer.snapshot()
        available = migrating.execute(
            "SELECT name FROM pg_available_extensions WHERE installed_version IS NULL "
            "AND name IN ('pg_trgm', 'pgcrypto', 'citext', 'hstore', 'ltree', 'cube') "
            "ORDER BY name LIMIT 1").fetchone()
        if available is None:
            pytest.skip("no contrib extension on this server")
        migrating.execute(sql.SQL("CREATE EXTENSION {}").format(sql.Identifier(str(available[0]))))
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert observer.scope.last_read == "full"
        migrating.execute("CREATE TABLE after_extension (a int)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert observer.scope.last_read == "scoped"


def test_triggers_gone_or_altered_mean_full_reads(dsn: str) -> None:
    with observed(dsn) as (observer, migrating, checking):
        scope = observer.scope
        assert scope is not None
        observer.snapshot()
        # Disabled and enabled again: what ran in between was not logged.
        migrating.execute(f"ALTER EVENT TRIGGER {ddl_log.TRIGGERS[0]} DISABLE")
        migrating.execute("CREATE TABLE unseen (a int)")
        migrating.execute(f"ALTER EVENT TRIGGER {ddl_log.TRIGGERS[0]} ENABLE ALWAYS")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert scope.last_read == "full"
        migrating.execute("CREATE TABLE seen (a int)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert scope.last_read == "scoped"
        # A migration drops the log's schema: every later read is a full one.
        migrating.execute(f"DROP SCHEMA {snapshot_sql.SCOPE_SCHEMA} CASCADE")
        migrating.execute("CREATE TABLE after_drop (a int)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert not observer.scoped
        migrating.execute("CREATE TABLE later (a int)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert not observer.scoped


def test_a_new_connection_starts_with_a_full_read(dsn: str) -> None:
    with observed(dsn) as (observer, migrating, checking):
        scope = observer.scope
        assert scope is not None
        observer.snapshot()
        migrating.execute("SELECT pg_terminate_backend(%s)", (observer.conn.info.backend_pid,))
        migrating.execute("CREATE TABLE while_away (a int)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert scope.last_read == "full"
        migrating.execute("CREATE TABLE back_again (a int)")
        assert observer.snapshot() == snapshot_sql.read(checking, "public")
        assert scope.last_read == "scoped"


def test_without_superuser_rights_nothing_is_installed(pg_server: PgServer, dsn: str) -> None:
    with temporary_role(pg_server, dsn, "plain", password="secret") as role:
        plain = psycopg.conninfo.make_conninfo(dsn, user=role, password="secret")
        with contextlib.closing(Observer(plain, "public", scoped=True)) as observer, \
                psycopg.connect(dsn, autocommit=True) as checking:
            assert observer.scope is None and not observer.scoped
            assert observer.snapshot() == snapshot_sql.read(checking, "public")
            row = checking.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s",
                                   (snapshot_sql.SCOPE_SCHEMA,)).fetchone()
            assert row == (0,)


def without_timings(value: Any) -> Any:
    """A verify report without what differs from run to run (times, the database's name)."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items()
                if not key.endswith("_ms") and key != "database"}
    if isinstance(value, list):
        return [without_timings(item) for item in value]
    return value


def reports_both_ways(root: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
                      ) -> tuple[Any, Any, list[str]]:
    """verify's JSON report with scoped snapshots and with full ones, and the snapshot
    reads the scoped run logged (-v)."""
    found = []
    for scoped in (True, False):
        monkeypatch.setattr(servers, "SCOPED_SNAPSHOTS", scoped)
        result = run(["verify", "-v", "--dsn", pg_server.admin_dsn, "--format", "json"],
                     cwd=root)
        assert result.code in (0, 1), result.stderr
        reads = [line.removeprefix("migcoord: ") for line in result.stderr.splitlines()
                 if line.startswith("migcoord: snapshot:")]
        found.append((without_timings(result.json()), reads))
    (scoped_report, scoped_reads), (full_report, full_reads) = found
    assert full_reads == []
    return scoped_report, full_report, scoped_reads


def test_verify_reports_the_example_alike_with_and_without_the_scope(
        tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_example(tmp_path / "repo")
    scoped, full, reads = reports_both_ways(root, pg_server, monkeypatch)
    assert scoped == full
    assert scoped["ok"] and any(m["locks"] for m in scoped["migrations"])
    # One full read to start with; every later one read only what changed.
    assert reads[0].startswith("snapshot: full read")
    assert len(reads) > 10 and all(r.startswith("snapshot: scoped") for r in reads[1:])


def test_verify_reports_broken_downs_alike_with_and_without_the_scope(
        tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken downs of several kinds: diffs, rebuilt databases (a new database, a new
    connection: a full read first), a no-transaction migration, a rewrite, a grant."""
    root = make_tree(tmp_path / "repo", {
        **RULES,
        **pair("rule-service", "000002", "down_fails", up="CREATE TABLE audit (id int);\n",
               down="DROP TABLE no_such_table;\n"),
        **pair("rule-service", "000003", "forgets_sequence",
               up="CREATE SEQUENCE invoice_numbers;\n", down="SELECT 1;\n"),
        **pair("rule-service", "000004", "index_email",
               up="CREATE INDEX rules_email_idx ON rules (email);\n",
               down="DROP INDEX rules_email_idx;\n"),
        **pair("rule-service", "000005", "drops_too_much",
               up="ALTER TABLE rules ADD COLUMN name text;\n",
               down="ALTER TABLE rules DROP COLUMN name;\nALTER TABLE rules DROP COLUMN email;\n"),
        **pair("rule-service", "000006", "retype",
               up="ALTER TABLE rules ALTER COLUMN priority TYPE bigint;\n"
                  "GRANT SELECT ON rules TO PUBLIC;\n",
               down="ALTER TABLE rules ALTER COLUMN priority TYPE integer;\n"),
        **pair("rule-service", "000007", "concurrently",
               up="-- migcoord:no-transaction\n"
                  "CREATE INDEX CONCURRENTLY rules_priority_idx ON rules (priority);\n",
               down="-- migcoord:no-transaction\nDROP INDEX CONCURRENTLY rules_priority_idx;\n"),
        **pair("rule-service", "000008", "renames",
               up="ALTER TABLE rules RENAME TO policies;\n",
               down="ALTER TABLE policies RENAME TO rules;\nCOMMENT ON TABLE rules IS 'x';\n"),
        **pair("rule-service", "000009", "later", up="CREATE TABLE later (id int);\n",
               down="DROP TABLE later;\n"),
    })
    scoped, full, reads = reports_both_ways(root, pg_server, monkeypatch)
    assert scoped == full
    assert [m["status"] for m in scoped["migrations"]] == [
        "ok", "failed", "failed", "ok", "failed", "failed", "ok", "failed", "ok"]
    assert scoped["counts"]["rebuilt"] >= 2
    fulls = [r for r in reads if r.startswith("snapshot: full read")]
    assert any("first read" in r for r in fulls[1:])  # a rebuilt database
    assert any("GRANT" in r for r in fulls)
    assert len(fulls) < len(reads) / 2


def test_a_kept_database_has_no_event_triggers_of_verify(tmp_path: Path,
                                                         pg_server: PgServer) -> None:
    root = make_tree(tmp_path / "repo", RULES)
    result = run(["verify", "--dsn", pg_server.admin_dsn, "--keep", "--format", "json"],
                 cwd=root)
    assert result.code == 0, result.stderr
    name = result.json()["database"]
    try:
        with psycopg.connect(pg_server.dsn_for(name)) as conn:
            found = conn.execute(
                "SELECT (SELECT count(*) FROM pg_event_trigger), (SELECT count(*) FROM "
                "pg_namespace WHERE nspname = %s), to_regclass('public.rules') IS NOT NULL",
                (snapshot_sql.SCOPE_SCHEMA,)).fetchone()
        assert found == (0, 0, True)
    finally:
        with pg_server.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
