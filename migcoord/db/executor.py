"""Run one migration (up or down) against the database.

A normal migration runs as one simple-query script inside one transaction together with
its history row: PostgreSQL's DDL is transactional, so a failure leaves nothing behind,
no history row and no dirty flag. A `no-transaction` migration runs statement by
statement in autocommit; its history row is written `dirty` first, advanced after each
statement and marked `applied` at the end, so a failure records where it stopped.

Before anything is sent, a file is read with `migcoord.sql.reader` (PostgreSQL's own
scanner, the reader `check` uses): a file with transaction control (BEGIN, COMMIT...)
is refused with the words of `check`'s explicit-transaction, and a no-transaction file
is split into the statements psql would send. A failing statement becomes
MigrationFailed with `path:line:col` mapped from the server's error position, the
SQLSTATE and the server's message (db/failures words every failure). Only a connection
that is really gone (db/diagnosis.lost) is reported as lost. An index the file creates
by name that is INVALID keeps it from being recorded (db/indexes).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from migcoord.core.model import HistoryRow, Migration
from migcoord.db import failures, indexes
from migcoord.db.diagnosis import lost
from migcoord.db.history import History
from migcoord.db.lock import POOLER_HINT
from migcoord.errors import MigrationFailed, PoolerDetected
from migcoord.sql import reader
from migcoord.sql.reader import Statement as SqlStatement

log = logging.getLogger("migcoord")


def apply_up(history: History, migration: Migration, *, lock_pid: int, role: str | None) -> int:
    """Apply one migration and record it; returns its duration in milliseconds."""
    text = migration.up_sql
    _refuse_transaction_control(text, migration, "up")
    if migration.directives.no_transaction:
        return _apply_without_transaction(history, migration, role=role)
    started = time.monotonic()
    try:
        _in_one_transaction(history, migration, text,
                            history.applied_sql(_row(history, migration, "applied", 0)),
                            role=role, lock_pid=lock_pid, direction="up")
    except MigrationFailed as failure:
        with _suppress_db_errors():
            # A synchronous commit also makes the run's earlier relaxed commits durable.
            synchronous(history)
            history.event("up-failed", version=migration.version, service=migration.service,
                          name=migration.name, detail={"sqlstate": failure.sqlstate})
        raise
    return _ms(started)


def _in_one_transaction(history: History, migration: Migration, text: str, record: str, *,
                        role: str | None, lock_pid: int, direction: str) -> None:
    """Run BEGIN, the file and `record` (history change + event, returning the backend
    pid) as one simple query, then COMMIT: two round trips, one transaction.

    Anything unexpected (an error, no pid, another session's pid) rolls back instead.
    """
    conn = history.conn
    opening = "BEGIN;\n"
    if role:
        opening += sql.SQL("SET LOCAL ROLE {};\n").format(sql.Identifier(role)).as_string(conn)
    closing = "\n;\n" + ("RESET ROLE;\n" if role else "") + record
    path = (migration.up if direction == "up" else migration.down)
    try:
        try:
            pid = _recorded_pid(conn.execute(opening + text + closing))
        except psycopg.Error as err:
            if lost(conn):
                raise
            _rollback(conn)
            note = ("the transaction was rolled back: nothing of this migration was applied"
                    if direction == "up" else
                    f"the transaction was rolled back: {migration.label} is still applied")
            raise failures.failure(err, text, path.path if path else None, migration,
                                   note=note, direction=direction,
                                   base=-len(opening)) from None
        if pid is None:
            # The file ended inside a quote or comment that swallowed the record.
            _rollback(conn)
            raise MigrationFailed(
                f"{path.path if path else migration.label}: the file does not end cleanly (an "
                "unterminated quote or comment?), so its history record did not run; "
                "nothing was committed", hint="run `migcoord check` on it",
                path=path.path if path else None, version=migration.version,
                service=migration.service, direction=direction)
        if pid != lock_pid:
            _rollback(conn)
            raise PoolerDetected(
                f"{migration.label} ran in server session {pid}, but the migration lock is "
                f"held by session {lock_pid}; nothing was committed", hint=POOLER_HINT,
                version=migration.version, service=migration.service, direction=direction)
        _refuse_named_invalid_indexes(conn, migration, text, direction)
        _commit(conn, migration, text, direction)
    except psycopg.Error as err:
        if not lost(conn):
            raise
        what = ("the migration's transaction was rolled back by the server" if direction == "up"
                else "the rollback's transaction was undone by the server")
        raise failures.connection_lost(err, migration, what, direction=direction) from None


def _refuse_named_invalid_indexes(conn: psycopg.Connection, migration: Migration, text: str,
                                  direction: str) -> None:
    """Before COMMIT: roll back when an index the file creates by name is INVALID (an
    earlier failed concurrent build, which `CREATE INDEX IF NOT EXISTS` skipped)."""
    invalid = indexes.named_invalid(conn, indexes.targets(text).named)
    if invalid:
        _rollback(conn)
        raise failures.invalid_index_in_transaction(migration, invalid, direction)


def _commit(conn: psycopg.Connection, migration: Migration, text: str, direction: str) -> None:
    """COMMIT; a commit the server refuses (a deferred constraint, a serialization
    failure) is this migration failing, and its transaction is rolled back."""
    try:
        conn.execute("COMMIT")
    except psycopg.Error as err:
        if lost(conn):
            raise
        _rollback(conn)
        sql_file = migration.up if direction == "up" else migration.down
        note = ("the COMMIT failed, so the transaction was rolled back: "
                + ("nothing of this migration was applied" if direction == "up" else
                   f"{migration.label} is still applied"))
        raise failures.failure(err, text, sql_file.path if sql_file else None, migration,
                               note=note, direction=direction, mapped=False) from None


def _recorded_pid(cursor: psycopg.Cursor[Any]) -> int | None:
    """The backend pid that the record statement returned, if it ran: it must be the last
    result of the query, one row of one `pg_backend_pid` column."""
    while cursor.nextset():
        pass
    columns = [column.name for column in cursor.description or ()]
    if columns != ["pg_backend_pid"]:
        return None
    rows = cursor.fetchall()
    return int(rows[0][0]) if len(rows) == 1 else None


def _rollback(conn: psycopg.Connection) -> None:
    with _suppress_db_errors():
        if not conn.closed and not conn.broken:
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def relaxed_commits(history: History, *, enabled: bool) -> Iterator[None]:
    """Commit without waiting for the WAL flush until `synchronous` is called.

    Each migration stays atomic with its history row; a server crash during the run can
    lose the newest few migrations together with their rows, never one without the other.
    Whatever happens, the session is set back to synchronous commits afterwards.
    """
    if not enabled:
        yield
        return
    history.conn.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with _suppress_db_errors():
            if not history.conn.closed and not history.conn.broken:
                synchronous(history)


def synchronous(history: History) -> None:
    history.conn.execute("RESET synchronous_commit")


def _refuse_transaction_control(text: str, migration: Migration, direction: str) -> None:
    """Refuse, before anything is sent, a file that `check` reports as explicit-transaction:
    a COMMIT inside it would commit the migration without its history row."""
    found = reader.transaction_control(text)
    if found:
        control = found[0]
        sql_file = migration.up if direction == "up" else migration.down
        path = sql_file.path if sql_file is not None else migration.label
        raise MigrationFailed(f"{path}:{control.line}:{control.column}: {control.message}; "
                              "nothing was run", hint=control.hint,
                              path=sql_file.path if sql_file is not None else None,
                              line=control.line, column=control.column,
                              version=migration.version, service=migration.service,
                              direction=direction)


def apply_down(history: History, migration: Migration, *, lock_pid: int,
               role: str | None) -> int:
    """Run the down file and delete the history row in one transaction; returns ms.

    A down file with its own `-- migcoord:no-transaction` runs statement by statement
    instead (DROP INDEX CONCURRENTLY), with the row marked dirty until it is done.
    """
    _refuse_transaction_control(migration.down_sql, migration, "down")
    if migration.down_directives.no_transaction:
        return _rollback_without_transaction(history, migration, role=role)
    started = time.monotonic()
    _in_one_transaction(history, migration, migration.down_sql,
                        history.rolled_back_sql(migration.version, migration.service,
                                                migration.name),
                        role=role, lock_pid=lock_pid, direction="down")
    return _ms(started)


def _apply_without_transaction(history: History, migration: Migration, *,
                               role: str | None) -> int:
    statements = _statements(migration.up_sql)
    history.insert(_row(history, migration, "dirty", 0, statements_done=0,
                        statement_count=len(statements)))
    return _run_statements(history, migration, statements, role=role, direction="up")


def _rollback_without_transaction(history: History, migration: Migration, *,
                                  role: str | None) -> int:
    statements = _statements(migration.down_sql)
    history.mark_dirty(migration.version, statement_count=len(statements))
    return _run_statements(history, migration, statements, role=role, direction="down")


def _statements(text: str) -> Sequence[SqlStatement]:
    """The statements to send one by one: psql's split, with their places in the file."""
    return reader.statements(text)


def _run_statements(history: History, migration: Migration,
                    statements: Sequence[SqlStatement], *, role: str | None,
                    direction: str) -> int:
    """Run one statement at a time in autocommit, recording progress in the dirty row."""
    conn = history.conn
    sql_file = migration.up if direction == "up" else migration.down
    text = sql_file.text or "" if sql_file is not None else ""
    path = sql_file.path if sql_file is not None else None
    started = time.monotonic()
    history.event(f"{direction}-start", version=migration.version, service=migration.service,
                  name=migration.name, detail={"no_transaction": True,
                                               "statements": len(statements)})
    before = indexes.invalid_oids(conn)
    for index, statement in enumerate(statements):
        try:
            if role:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            conn.execute(statement.text)
            if role:
                conn.execute("RESET ROLE")
            history.progress(migration.version, index + 1)
        except psycopg.Error as err:
            if lost(conn):
                raise failures.lost_midway(err, migration, statement, index,
                                           len(statements), path=path,
                                           direction=direction) from None
            with _suppress_db_errors():
                if role:
                    conn.execute("RESET ROLE")
            done = (f"the {index} before it stay applied" if direction == "up" else
                    f"the {index} before it stay rolled back")
            left: list[indexes.InvalidIndex] = []
            with _suppress_db_errors():
                left = indexes.left_behind(conn, before)
            failure = failures.failure(
                err, text, path, migration, statement=statement,
                note=f"statement {index + 1} of {len(statements)} failed; {done}, so "
                f"{migration.label} is now recorded as dirty",
                direction=direction, dirty=True, invalid=left)
            _record_failure(history, migration, failure, direction, statement=index + 1)
            raise failure from None
    _refuse_invalid_indexes(history, migration, text, path=path, direction=direction)
    duration = _ms(started)
    if direction == "up":
        history.finish(migration.version, duration)
    else:
        history.delete(migration.version)
    history.event(direction, version=migration.version, service=migration.service,
                  name=migration.name, detail={"duration_ms": duration, "no_transaction": True})
    return duration


def _record_failure(history: History, migration: Migration, failure: MigrationFailed,
                    direction: str, **detail: object) -> None:
    """Keep `failure` on the dirty row and in the events (best effort: the error that is
    about to be raised matters more than a failure to record it)."""
    with _suppress_db_errors():
        history.fail(migration.version, failure.message)
        history.event(f"{direction}-failed", version=migration.version,
                      service=migration.service, name=migration.name,
                      detail={**detail, "sqlstate": failure.sqlstate})


def _refuse_invalid_indexes(history: History, migration: Migration, text: str, *,
                            path: Path | None, direction: str) -> None:
    """After a no-transaction file ran: refuse to record it while an index it creates by
    name is INVALID (`IF NOT EXISTS` skipped an earlier failed build); the row stays dirty.
    Warn about other invalid indexes an earlier attempt left on the tables it indexes."""
    conn = history.conn
    found = indexes.targets(text)
    invalid = indexes.named_invalid(conn, found.named)
    if not invalid:
        for stale in indexes.invalid_on(conn, found.tables):
            log.warning("%s: %s is still there, left by an earlier failed build; drop it with "
                        "`%s`", migration.label, indexes.described([stale]), stale.drop)
        return
    failure = failures.invalid_index_after_run(migration, invalid, path=path,
                                               direction=direction)
    _record_failure(history, migration, failure, direction,
                    invalid_indexes=[index.name for index in invalid])
    raise failure


def _row(history: History, migration: Migration, status: str, duration: int,
         **extra: int) -> HistoryRow:
    return HistoryRow(
        version=migration.version, service=migration.service, name=migration.name,
        checksum=migration.checksum, status=status, depends=migration.depends_on,
        applied_by=history.actor(), duration_ms=duration,
        statements_done=extra.get("statements_done"),
        statement_count=extra.get("statement_count"))


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _suppress_db_errors() -> contextlib.suppress:
    return contextlib.suppress(psycopg.Error)
