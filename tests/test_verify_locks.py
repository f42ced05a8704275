"""`verify` measures what each migration locks and rewrites, on the real server.

The locks are read from pg_locks of the migration's own backend just before its commit;
the rewrites from pg_class.relfilenode before and after. The owners are migcoord.toml's
`owns` (rule-service owns rules, aggregator owns notifications in these trees).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import PgServer

from helpers import make_tree, pair, run
from migcoord.core.lockreport import LockImpact, LockTaken, Relation, measure

RULES = pair("rule-service", "000001", "create_rules",
             "CREATE TABLE rules (id bigint PRIMARY KEY, email text, priority integer);\n",
             "DROP TABLE rules;\n")
EMAIL_INDEX = pair("rule-service", "000002", "email_index",
                   "CREATE INDEX rules_email_idx ON rules (email);\n",
                   "DROP INDEX rules_email_idx;\n")
RETYPE = pair("rule-service", "000003", "priority_bigint",
              "ALTER TABLE rules ALTER COLUMN priority TYPE bigint;\n",
              "ALTER TABLE rules ALTER COLUMN priority TYPE integer;\n")
NOTIFICATIONS = pair("aggregator", "000004", "create_notifications",
                     "CREATE TABLE notifications (id bigint PRIMARY KEY,\n"
                     "    rule_id bigint REFERENCES rules (id));\n",
                     "DROP TABLE notifications;\n")
CONCURRENT = pair("rule-service", "000005", "priority_index",
                  "CREATE INDEX CONCURRENTLY rules_priority_idx ON rules (priority);\n",
                  "DROP INDEX CONCURRENTLY rules_priority_idx;\n")


def verified(tmp_path: Path, pg_server: PgServer, *args: str) -> Any:
    root = make_tree(tmp_path / "repo", {**RULES, **EMAIL_INDEX, **RETYPE, **NOTIFICATIONS,
                                         **CONCURRENT})
    result = run(["verify", "--dsn", pg_server.admin_dsn, *args], cwd=root)
    assert result.code == 0, result.stderr
    return result


def entry(report: Any, version: int) -> Any:
    [found] = [m for m in report["migrations"] if m["version"] == version]
    return found


def test_each_migration_reports_the_locks_it_took_and_the_tables_it_rewrote(
        tmp_path: Path, pg_server: PgServer) -> None:
    """An index build takes SHARE on its table; ALTER COLUMN TYPE rewrites it under ACCESS
    EXCLUSIVE; a foreign key takes SHARE ROW EXCLUSIVE on the referenced table, owned by
    the other service; a table the migration creates is not listed; a no-transaction
    migration's locks are not measured (null)."""
    report = verified(tmp_path, pg_server, "--format", "json").json()

    assert (entry(report, 1)["locks"], entry(report, 1)["rewrites"]) == ([], [])
    assert entry(report, 2)["locks"] == [
        {"table": "public.rules", "mode": "ShareLock", "owner": "rule-service", "index": None}]
    assert entry(report, 2)["rewrites"] == []
    assert {"table": "public.rules", "mode": "AccessExclusiveLock", "owner": "rule-service",
            "index": None} in entry(report, 3)["locks"]
    assert entry(report, 3)["rewrites"] == ["public.rules"]
    fk_locks = entry(report, 4)["locks"]
    assert fk_locks[0] == {"table": "public.rules", "mode": "ShareRowExclusiveLock",
                           "owner": "rule-service", "index": None}
    # PostgreSQL 18 also lists a lock on the referenced key's index; 15 does not.
    assert fk_locks[1:] in ([], [{"table": "public.rules", "mode": "AccessShareLock",
                                  "owner": "rule-service", "index": "public.rules_pkey"}])
    assert entry(report, 4)["rewrites"] == []
    assert (entry(report, 5)["locks"], entry(report, 5)["rewrites"]) == (None, [])

    assert entry(report, 2)["lock_flags"] == []
    assert entry(report, 3)["lock_flags"] == [
        "rewrites public.rules (the table is copied, under AccessExclusiveLock, for as long "
        "as that takes)"]
    assert entry(report, 4)["lock_flags"] == [
        "ShareRowExclusiveLock on public.rules, owned by rule-service"]


def test_the_text_report_flags_other_services_tables_and_rewrites(
        tmp_path: Path, pg_server: PgServer) -> None:
    result = verified(tmp_path, pg_server)
    lines = result.stdout.splitlines()
    start = lines.index("lock impact (measured on the throwaway database; `--format json` "
                        "lists every lock):")
    assert lines[start + 1:start + 3] == [
        "  000003 rule-service priority_bigint: rewrites public.rules (the table is copied, "
        "under AccessExclusiveLock, for as long as that takes)",
        "  000004 aggregator create_notifications: ShareRowExclusiveLock on public.rules, "
        "owned by rule-service"]
    assert result.stdout.rstrip().splitlines()[-1].startswith("verify ok")


def relation(oid: int, name: str, kind: str = "r", node: int = 0,
             table: int | None = None) -> Relation:
    return Relation(oid=oid, schema="public", name=name, qualified=f"public.{name}", kind=kind,
                    relfilenode=node or oid, table_oid=table)


def test_the_strongest_mode_per_relation_is_kept_and_unknown_relations_left_out() -> None:
    before = {1: relation(1, "rules"), 2: relation(2, "rules_pkey", "i", table=1),
              3: relation(3, "migcoord_history")}
    held = [(1, "AccessShareLock"), (1, "AccessExclusiveLock"), (1, "RowExclusiveLock"),
            (2, "AccessExclusiveLock"), (3, "RowExclusiveLock"), (99, "AccessExclusiveLock")]
    impact = measure(before, {1: relation(1, "rules", node=7)}, held, {("public", "rules"): "a"},
                     skip=[("public", "migcoord_history")])
    assert impact == LockImpact(
        locks=(LockTaken("public.rules", "AccessExclusiveLock", "a"),
               LockTaken("public.rules", "AccessExclusiveLock", "a", index="public.rules_pkey")),
        rewrites=("public.rules",), rewrite_owners=("a",))
    assert impact.flags("b") == (
        "AccessExclusiveLock on public.rules, owned by a",
        "AccessExclusiveLock on index public.rules_pkey of public.rules, owned by a",
        "rewrites public.rules, owned by a (the table is copied, under AccessExclusiveLock, "
        "for as long as that takes)")
    assert impact.flags("a") == (
        "rewrites public.rules (the table is copied, under AccessExclusiveLock, for as long "
        "as that takes)",)
