"""migcoord_history and migcoord_events: their SQL lives here, beside their definitions.

Both tables are created on first use (`IF NOT EXISTS`, under the advisory lock) and
never dropped. History has one row per applied or dirty migration; events is an
append-only log of every up, down, mark, adopt and renumber.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from migcoord.core.model import HistoryRow, Migration
from migcoord.errors import MigcoordError

if TYPE_CHECKING:
    from migcoord.db.settings import Restore, Saved

HISTORY = "migcoord_history"
EVENTS = "migcoord_events"

_CREATE = """
CREATE TABLE IF NOT EXISTS {history} (
    version         bigint PRIMARY KEY,
    service         text NOT NULL,
    name            text NOT NULL,
    checksum        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('applied', 'dirty')),
    depends         bigint[] NOT NULL DEFAULT '{{}}',
    applied_at      timestamptz NOT NULL DEFAULT now(),
    applied_by      text NOT NULL,
    duration_ms     integer NOT NULL DEFAULT 0,
    statements_done integer,
    statement_count integer,
    error           text
);
CREATE TABLE IF NOT EXISTS {events} (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    action  text NOT NULL,
    version bigint,
    service text,
    name    text,
    actor   text NOT NULL,
    reason  text,
    detail  jsonb
);
"""

_COLUMNS = ("version, service, name, checksum, status, depends, applied_at, applied_by, "
            "duration_ms, statements_done, statement_count, error")


class History:
    """The history tables in one schema, used through one connection."""

    def __init__(self, conn: psycopg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self.history = sql.Identifier(schema, HISTORY)
        self.events = sql.Identifier(schema, EVENTS)
        self._actor: str | None = None
        self._quoted: tuple[str, str] | None = None
        #: The session's settings as this run found them, and the SQL that puts them
        #: back (db/settings), kept by db/executor between migrations of one run; None
        #: when they must be read again (migcoord itself changed one, or a migration
        #: failed).
        self.saved_settings: tuple[Saved, Restore] | None = None

    def _sql(self, template: str, **values: sql.Composable) -> sql.Composed:
        return sql.SQL(template).format(schema=sql.Identifier(self.schema),
                                        history=self.history, events=self.events, **values)

    def exists(self, table: str = HISTORY) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                (f'"{self.schema}"."{table}"',)).fetchone()
        return bool(row and row[0])

    def ensure(self) -> None:
        """Create the schema and both tables if missing (call under the advisory lock).

        Only what is missing: `CREATE ... IF NOT EXISTS` still checks the privilege to
        create, and a migration role often may not create schemas (or, once a DBA made
        the tables, anything in this schema).
        """
        if self.exists(HISTORY) and self.exists(EVENTS):
            self._refuse_missing_privileges()
            return
        with self.conn.transaction():
            schema = self.conn.execute("SELECT to_regnamespace(%s) IS NOT NULL",
                                       (f'"{self.schema}"',)).fetchone()
            if not (schema and schema[0]):
                self.conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {schema}"))
            self.conn.execute(self._sql(_CREATE))

    def _refuse_missing_privileges(self) -> None:
        """Refuse, before any migration runs, a role that cannot write both tables (a DBA
        made them and granted too little): otherwise each migration would run and then
        fail on its own history row."""
        needed = [(self.history, privilege) for privilege in ("SELECT", "INSERT", "UPDATE",
                                                              "DELETE")]
        needed.append((self.events, "INSERT"))
        checks = sql.SQL(", ").join(
            sql.SQL("has_table_privilege({}, {})").format(
                sql.Literal(table.as_string(self.conn)), sql.Literal(privilege))
            for table, privilege in needed)
        row = self.conn.execute(sql.SQL("SELECT current_user, {}").format(checks)).fetchone()
        if row is None or all(row[1:]):
            return
        user = row[0]
        missing = [f"{privilege} ON {table.as_string(self.conn)}"
                   for (table, privilege), held in zip(needed, row[1:], strict=True)
                   if not held]
        user_sql = sql.Identifier(user).as_string(self.conn)
        raise MigcoordError(
            f"the role {user} may not write migcoord's history: it lacks "
            + ", ".join(missing) + " (SQLSTATE 42501); nothing was run",
            hint=f"as the tables' owner: GRANT SELECT, INSERT, UPDATE, DELETE ON "
            f"{self.history.as_string(self.conn)} TO {user_sql}; GRANT SELECT, INSERT ON "
            f"{self.events.as_string(self.conn)} TO {user_sql};",
            sqlstate="42501")

    def rows(self) -> list[HistoryRow]:
        """Every history row, by version; empty when the table does not exist yet."""
        if not self.exists():
            return []
        cursor = self.conn.execute(self._sql(f"SELECT {_COLUMNS} FROM {{history}} ORDER BY version"))
        return [_row(record) for record in cursor.fetchall()]

    def recorded(self, version: int) -> HistoryRow | None:
        """The history row of `version` as committed, or None."""
        record = self.conn.execute(self._sql(
            f"SELECT {_COLUMNS} FROM {{history}} WHERE version = %s"), (version,)).fetchone()
        return _row(record) if record is not None else None

    def applied_count(self, versions: Sequence[int]) -> int:
        """How many of `versions` have an `applied` row (0 before the table exists)."""
        if not self.exists():
            return 0
        row = self.conn.execute(self._sql(
            "SELECT count(*) FROM {history} WHERE status = 'applied' AND version = ANY(%s)"),
            (list(versions),)).fetchone()
        return int(row[0]) if row else 0

    def actor(self) -> str:
        """Who is acting: database user, client host and process id."""
        if self._actor is None:
            row = self.conn.execute("SELECT current_user").fetchone()
            user = row[0] if row else "?"
            self._actor = f"{user}@{socket.gethostname()} pid {os.getpid()}"
        return self._actor

    def row_of(self, migration: Migration, status: str, duration: int = 0,
               **extra: int) -> HistoryRow:
        """The history row of `migration` in `status`, applied by this run's actor."""
        return HistoryRow(
            version=migration.version, service=migration.service, name=migration.name,
            checksum=migration.checksum, status=status, depends=migration.depends_on,
            applied_by=self.actor(), duration_ms=duration,
            statements_done=extra.get("statements_done"),
            statement_count=extra.get("statement_count"))

    def insert(self, row: HistoryRow) -> None:
        """Insert one row as it is (a dirty row before a no-transaction migration runs)."""
        self.conn.execute(self._sql(
            "INSERT INTO {history} (version, service, name, checksum, status, depends, "
            "applied_by, duration_ms, statements_done, statement_count, error) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"), (
            row.version, row.service, row.name, row.checksum, row.status, list(row.depends),
            row.applied_by or self.actor(), row.duration_ms, row.statements_done,
            row.statement_count, row.error))

    def applied_sql(self, row: HistoryRow) -> str:
        """The statements that record `row` as applied with its `up` event, the last one
        returning the backend pid, as SQL text with literals: they run in the same simple
        query as the migration. Its duration is the server's time since that query began.
        (Two plain INSERTs: one INSERT in a CTE feeding the other costs the server twice
        as much to plan. Composed with str.format on names quoted once: psycopg's
        composition cost more than the server's work for a trivial migration.)"""
        if self._quoted is None:
            self._quoted = (self.history.as_string(self.conn), self.events.as_string(self.conn))
        history, events = self._quoted
        version = str(int(row.version))
        service, name = _text(row.service), _text(row.name)
        actor = _text(row.applied_by or self.actor())
        return (
            f"INSERT INTO {history} (version, service, name, checksum, status, depends, "
            f"applied_by, duration_ms) VALUES ({version}, {service}, {name}, "
            f"{_text(row.checksum)}, 'applied', {_bigint_array(row.depends)}, {actor}, "
            f"{_ELAPSED_MS});\n"
            f"INSERT INTO {events} (action, version, service, name, actor, detail) "
            f"VALUES ('up', {version}, {service}, {name}, {actor}, "
            f"pg_catalog.jsonb_build_object('duration_ms', "
            f"(SELECT duration_ms FROM {history} WHERE version = {version}))) "
            "RETURNING pg_catalog.pg_backend_pid()")

    def rolled_back_sql(self, version: int, service: str, name: str) -> str:
        """The statements that delete a history row, log the `down` event and return the
        backend pid, as SQL text to run in the same simple query as the down file."""
        return self._sql(
            "DELETE FROM {history} WHERE version = {version};\n"
            "INSERT INTO {events} (action, version, service, name, actor, detail) "
            "VALUES ('down', {version}, {service}, {name}, {actor}, "
            "jsonb_build_object('duration_ms', " + _ELAPSED_MS + ")) "
            "RETURNING pg_backend_pid()",
            version=sql.Literal(version), service=sql.Literal(service),
            name=sql.Literal(name), actor=sql.Literal(self.actor()),
        ).as_string(self.conn)

    def upsert_applied(self, row: HistoryRow) -> None:
        """Record a migration as applied (used by mark and adopt)."""
        self.conn.execute(self._sql(
            "INSERT INTO {history} (version, service, name, checksum, status, depends, "
            "applied_by, duration_ms) VALUES (%s, %s, %s, %s, 'applied', %s, %s, 0) "
            "ON CONFLICT (version) DO UPDATE SET service = excluded.service, "
            "name = excluded.name, checksum = excluded.checksum, status = 'applied', "
            "depends = excluded.depends, applied_by = excluded.applied_by, "
            "statements_done = NULL, statement_count = NULL, error = NULL"),
            (row.version, row.service, row.name, row.checksum, list(row.depends),
             row.applied_by or self.actor()))

    def mark_dirty(self, version: int, *, statement_count: int) -> None:
        """Before a no-transaction down: the row stays dirty until the down is complete."""
        self.conn.execute(self._sql(
            "UPDATE {history} SET status = 'dirty', statements_done = 0, statement_count = %s, "
            "error = NULL WHERE version = %s"), (statement_count, version))

    def progress(self, version: int, statements_done: int) -> None:
        self.conn.execute(self._sql(
            "UPDATE {history} SET statements_done = %s WHERE version = %s"),
            (statements_done, version))

    def finish(self, version: int, duration_ms: int) -> None:
        self.conn.execute(self._sql(
            "UPDATE {history} SET status = 'applied', duration_ms = %s, error = NULL, "
            "applied_at = now() WHERE version = %s"), (duration_ms, version))

    def fail(self, version: int, error: str) -> None:
        self.conn.execute(self._sql("UPDATE {history} SET error = %s WHERE version = %s"),
                          (error, version))

    def delete(self, version: int) -> int:
        cursor = self.conn.execute(self._sql("DELETE FROM {history} WHERE version = %s"),
                                   (version,))
        return cursor.rowcount

    def event(self, action: str, *, version: int | None = None, service: str | None = None,
              name: str | None = None, reason: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
        self.conn.execute(self._sql(
            "INSERT INTO {events} (action, version, service, name, actor, reason, detail) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"),
            (action, version, service, name, self.actor(), reason,
             json.dumps(detail) if detail is not None else None))


#: Milliseconds since the current query began: the migration and its record are one query.
#: (date_part, a float, costs the server less than extract's numeric.)
_ELAPSED_MS = ("(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - "
               "pg_catalog.statement_timestamp()) * 1000)::integer")


def _text(value: str) -> str:
    """A text literal whatever standard_conforming_strings says: E'' with quotes and
    backslashes doubled."""
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _bigint_array(values: Sequence[int]) -> str:
    return "'{" + ",".join(str(int(v)) for v in values) + "}'::bigint[]"


def _row(record: Sequence[Any]) -> HistoryRow:
    (version, service, name, checksum, status, depends, applied_at, applied_by, duration_ms,
     statements_done, statement_count, error) = record
    return HistoryRow(
        version=int(version), service=service, name=name, checksum=checksum, status=status,
        depends=tuple(int(d) for d in depends) if depends else (), applied_at=applied_at,
        applied_by=applied_by, duration_ms=duration_ms, statements_done=statements_done,
        statement_count=statement_count, error=error)

