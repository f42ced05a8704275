"""Read golang-migrate's `schema_migrations (version, dirty)` for `adopt`."""

from __future__ import annotations

import attrs
import psycopg
from psycopg import sql

from migcoord.errors import RefusedError, UsageError


@attrs.frozen
class GolangState:
    version: int
    dirty: bool


def read_state(conn: psycopg.Connection, table: str) -> GolangState:
    """golang-migrate's single row; refuses a missing, empty or dirty table with advice."""
    parts = table.split(".")
    if len(parts) > 2 or not all(parts):
        raise UsageError(f"{table!r} is not a table name (use table or schema.table)")
    identifier = sql.Identifier(*parts)
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                          (".".join(f'"{p}"' for p in parts),)).fetchone()
    if not exists or not exists[0]:
        raise RefusedError(
            f"there is no table {table} in this database, so there is nothing to adopt",
            hint="check --dsn and --table (golang-migrate's -database x-migrations-table)")
    rows = conn.execute(sql.SQL("SELECT version, dirty FROM {}").format(identifier)).fetchall()
    if not rows:
        raise RefusedError(f"{table} is empty: golang-migrate never applied a migration here",
                           hint="nothing to adopt; run `migcoord up` directly")
    if len(rows) > 1:
        raise RefusedError(f"{table} has {len(rows)} rows; golang-migrate keeps exactly one",
                           hint="inspect it by hand; this does not look like golang-migrate's table")
    version, dirty = int(rows[0][0]), bool(rows[0][1])
    if dirty:
        raise RefusedError(
            f"{table} says version {version} is dirty: golang-migrate failed part-way through "
            "it, so the schema is neither before nor after that migration",
            hint="repair the schema by hand as you would with golang-migrate, run "
            f"`migrate force {version}` (or the previous version if you undid it), "
            "then adopt")
    return GolangState(version=version, dirty=dirty)
