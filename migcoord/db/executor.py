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
SQLSTATE and the server's message.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from migcoord.core.model import HistoryRow, Migration
from migcoord.db import indexes
from migcoord.db.diagnosis import cause, lost
from migcoord.db.history import History
from migcoord.db.lock import POOLER_HINT
from migcoord.errors import (
    EXIT_RETRY,
    ConnectionLost,
    MigrationFailed,
    MigrationLeftDirty,
    PoolerDetected,
    exit_code_for,
)
from migcoord.sql import reader
from migcoord.sql.reader import Statement as SqlStatement


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
            raise _failure(err, text, path.path if path else None, migration, note=note,
                           direction=direction, base=-len(opening)) from None
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
        raise _lost(err, migration, what, direction=direction) from None


def _refuse_named_invalid_indexes(conn: psycopg.Connection, migration: Migration, text: str,
                                  direction: str) -> None:
    """Before COMMIT: roll back when an index the file creates by name is INVALID (an
    earlier failed concurrent build, which `CREATE INDEX IF NOT EXISTS` skipped)."""
    invalid = indexes.named_invalid(conn, indexes.created_index_names(text))
    if not invalid:
        return
    _rollback(conn)
    sql_file = migration.up if direction == "up" else migration.down
    where = sql_file.path if sql_file is not None else migration.label
    kept = ("nothing of this migration was applied" if direction == "up" else
            f"{migration.label} is still applied")
    raise MigrationFailed(
        f"{where}: {indexes.described(invalid)} already exists, left by an earlier failed "
        "build: `CREATE INDEX ... IF NOT EXISTS` skipped it, and it enforces nothing (a "
        f"UNIQUE one lets duplicates in); the transaction was rolled back: {kept}",
        hint=f"drop it with {indexes.drops(invalid)}, then run `migcoord {direction} "
        f"--service {migration.service}` again",
        path=sql_file.path if sql_file is not None else None, version=migration.version,
        service=migration.service, direction=direction)


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
        raise _failure(err, text, sql_file.path if sql_file else None, migration, note=note,
                       direction=direction, mapped=False) from None


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
                raise _lost_midway(err, migration, statement, index, len(statements),
                                   path=path, direction=direction) from None
            with _suppress_db_errors():
                if role:
                    conn.execute("RESET ROLE")
            done = (f"the {index} before it stay applied" if direction == "up" else
                    f"the {index} before it stay rolled back")
            left: list[indexes.InvalidIndex] = []
            with _suppress_db_errors():
                left = indexes.left_behind(conn, before)
            failure = _failure(err, text, path, migration, statement=statement,
                               note=f"statement {index + 1} of {len(statements)} failed; {done}, "
                               f"so {migration.label} is now recorded as dirty",
                               direction=direction, dirty=True, invalid=left)
            _record_failure(history, migration, failure, direction, statement=index + 1)
            raise failure from None
    _refuse_invalid_indexes(history, migration, text, before, path=path, direction=direction)
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


def _refuse_invalid_indexes(history: History, migration: Migration, text: str,
                            before: frozenset[int], *, path: Path | None,
                            direction: str) -> None:
    """After a no-transaction file ran: refuse to record it while an index it names, or
    one that became invalid while it ran, is INVALID; the row stays dirty."""
    conn = history.conn
    invalid = list(dict.fromkeys([
        *indexes.named_invalid(conn, indexes.created_index_names(text)),
        *indexes.left_behind(conn, before)]))
    if not invalid:
        return
    then = (f"`migcoord mark {migration.version_text} --pending` and `migcoord up --service "
            f"{migration.service}` to build it again" if direction == "up" else
            _next_step(migration, direction, dirty=True))
    failure = MigrationLeftDirty(
        f"{path or migration.label}: its statements ran, yet {indexes.described(invalid)} "
        "is left: a failed concurrent build leaves one behind, and `CREATE INDEX ... IF NOT "
        "EXISTS` then skips building it. It enforces nothing (a UNIQUE one lets duplicates "
        f"in) and slows every write, so {migration.label} stays recorded as dirty, not "
        f"{'applied' if direction == 'up' else 'rolled back'}",
        hint=f"drop it with {indexes.drops(invalid)}, then {then}", path=path,
        version=migration.version, service=migration.service, direction=direction)
    _record_failure(history, migration, failure, direction,
                    invalid_indexes=[index.name for index in invalid])
    raise failure


def _failure(err: psycopg.Error, text: str, path: Path | None, migration: Migration, *,
             note: str, direction: str = "up", statement: SqlStatement | None = None,
             base: int = 0, mapped: bool = True, dirty: bool = False,
             invalid: Sequence[indexes.InvalidIndex] = ()) -> MigrationFailed:
    """The error as `path:line:col: ERROR: ... (SQLSTATE ...)`, with its cause and the next
    step; the position as `_locate` finds it, none when not `mapped` (the COMMIT failed,
    so no statement of the file is to blame). A `dirty` failure (a no-transaction file
    stopped part-way) is MigrationLeftDirty; `invalid` indexes it left are named with the
    DROP that removes them."""
    diag = err.diag
    where = str(path) if path else migration.label
    line, column = (_locate(text, diag.statement_position, statement, base) if mapped
                    else (None, None))
    if line is not None:
        where += f":{line}:{column}"
    primary = diag.message_primary or str(err).splitlines()[0]
    message = f"{where}: ERROR: {primary} (SQLSTATE {err.sqlstate})"
    known = cause(err.sqlstate)
    details = [d for d in (known and f"because {known.because}", diag.message_detail,
                           diag.message_hint and f"server hint: {diag.message_hint}",
                           diag.context and f"context: {diag.context.strip()}") if d]
    if details:
        message += "\n  " + "\n  ".join(details)
    hint = _next_step(migration, direction, err.sqlstate, dirty=dirty)
    if invalid:
        note += (f"; it left {indexes.described(invalid)} behind, which enforces nothing and "
                 "slows every write, and which `IF NOT EXISTS` would skip")
        hint = f"first drop it with {indexes.drops(invalid)}; then {hint}"
    kind = MigrationLeftDirty if dirty else MigrationFailed
    return kind(message + f"\n  {note}", hint=hint,
                sqlstate=err.sqlstate, path=path, line=line, column=column,
                version=migration.version, service=migration.service, direction=direction)


def _locate(text: str, position: str | None, statement: SqlStatement | None,
            base: int) -> tuple[int, int] | tuple[None, None]:
    """The 1-based line and column in `text` of the server's error `position` (counted in
    the query sent: `statement`, or the whole file after `-base` characters of migcoord's
    own); else the start of `statement`, or of the file's only statement."""
    offset = (statement.start if statement is not None else base) + int(position or 0) - 1
    if position and position.isdigit() and 0 <= offset <= len(text):
        return reader.line_col(text, offset)
    if statement is not None:
        return statement.line, statement.column
    # A lock timeout or a deadlock has no position: name the statement when the file has
    # only one.
    only = reader.statements(text)
    if len(only) == 1:
        return only[0].line, only[0].column
    return None, None


def _next_step(migration: Migration, direction: str, sqlstate: str | None = None, *,
               dirty: bool = False) -> str:
    """What to do after `migration` failed with `sqlstate`: run it again as it is when a
    retry can succeed, else fix the cause first."""
    known = cause(sqlstate)
    advice = f"{known.advice}; " if known and known.advice else ""
    again = f"`migcoord {direction} --service {migration.service}`"
    if dirty and direction == "down":
        return (f"{advice}finish the rollback by hand, then `migcoord mark "
                f"{migration.version_text} --pending`; or redo what was undone and "
                "`mark ... --applied`")
    if dirty:
        return (f"{advice}fix the cause, undo the statements that did run if needed, then "
                f"`migcoord mark {migration.version_text} --pending` and run up again "
                f"(or `mark {migration.version_text} --applied` if you finished it by hand)")
    if exit_code_for(sqlstate, default=0) == EXIT_RETRY:
        return f"{advice}nothing was left half-done and a retry can succeed: run {again} again"
    if advice:
        return f"{advice}then run {again} again"
    if direction == "down":
        return f"fix {migration.label}.down.sql and run {again} again"
    return f"fix {migration.label} and run {again} again"


def _lost(err: psycopg.Error, migration: Migration, what: str, *,
          direction: str) -> ConnectionLost:
    """The session ended under a migration's transaction: it was rolled back, retry."""
    return ConnectionLost(
        f"lost the connection while running {migration.service} {migration.label}: "
        f"{_reason(err)}; {what}",
        hint="check the server (a restart, pg_terminate_backend, a network cut); "
        "`migcoord status` shows what is recorded, then retry",
        sqlstate=err.sqlstate, version=migration.version, service=migration.service,
        direction=direction)


def _lost_midway(err: psycopg.Error, migration: Migration, statement: SqlStatement,
                 index: int, count: int, *, path: Path | None,
                 direction: str) -> MigrationLeftDirty:
    """The session ended during statement `index` of a no-transaction file: the row stays
    dirty, recording the statements that completed, and an operator looks first."""
    where = f"{path or migration.label}:{statement.line}:{statement.column}"
    return MigrationLeftDirty(
        f"{where}: lost the connection while running statement {index + 1} of {count} of "
        f"{migration.service} {migration.label}.{direction}.sql: {_reason(err)}; "
        f"{migration.label} stays recorded as dirty after {index} completed statement(s)",
        hint=f"check whether statement {index + 1} took effect (a failed CREATE INDEX "
        "CONCURRENTLY leaves an INVALID index behind), then " + _next_step(
            migration, direction, dirty=True),
        sqlstate=err.sqlstate, path=path, line=statement.line, column=statement.column,
        version=migration.version, service=migration.service, direction=direction)


def _reason(err: psycopg.Error) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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
