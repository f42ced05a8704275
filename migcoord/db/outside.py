"""Run a migration that cannot run in a transaction: statement by statement, in autocommit.

Its history row is written `dirty` first (for a down: marked dirty), advanced after
each statement in a short transaction of its own, and marked `applied` (or deleted) at
the end, so a failure records where it stopped. Each statement runs with the policy's
timeouts, and one that a lock timeout stopped runs again when that is safe
(`retries.one_statement`). The session's settings are saved first and put back after,
whether the file failed or not. db/executor decides which files take this path.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from migcoord.core.ddl import DdlPolicy
from migcoord.core.model import Migration
from migcoord.db import failures, indexes, lockwait, retries, settings
from migcoord.db.diagnosis import lost
from migcoord.db.history import History
from migcoord.errors import MigrationFailed
from migcoord.sql.reader import Statement as SqlStatement

log = logging.getLogger("migcoord")


def apply_without_transaction(history: History, migration: Migration,
                               statements: Sequence[SqlStatement], *, role: str | None,
                               policy: DdlPolicy, watch: lockwait.LockWatch) -> int:
    history.saved_settings = None  # this path saves and puts back on its own
    saved = settings.save(history.conn)
    history.insert(history.row_of(migration, "dirty", statements_done=0,
                                  statement_count=len(statements)))
    return _run_statements(history, migration, statements, saved, role=role, direction="up",
                           policy=policy, watch=watch)


def rollback_without_transaction(history: History, migration: Migration,
                                  statements: Sequence[SqlStatement], *,
                                  role: str | None, policy: DdlPolicy,
                                  watch: lockwait.LockWatch) -> int:
    history.saved_settings = None  # this path saves and puts back on its own
    saved = settings.save(history.conn)
    history.mark_dirty(migration.version, statement_count=len(statements))
    return _run_statements(history, migration, statements, saved, role=role, direction="down",
                           policy=policy, watch=watch)


def _run_statements(history: History, migration: Migration,
                    statements: Sequence[SqlStatement], saved: settings.Saved, *,
                    role: str | None, direction: str, policy: DdlPolicy,
                    watch: lockwait.LockWatch) -> int:
    """Run one statement at a time in autocommit, with the policy's timeouts, recording
    progress in the dirty row; a statement a lock timeout stopped runs again when that is
    safe (`retries.one_statement`). The session's settings are put back to `saved` afterwards, whether
    it failed or not."""
    conn = history.conn
    sql_file = migration.up if direction == "up" else migration.down
    text = sql_file.text or "" if sql_file is not None else ""
    path = sql_file.path if sql_file is not None else None
    started = time.monotonic()
    history.event(f"{direction}-start", version=migration.version, service=migration.service,
                  name=migration.name, detail={"no_transaction": True,
                                               "statements": len(statements)})
    unrole = sql.SQL("SELECT pg_catalog.set_config('role', {}, false)").format(
        sql.Literal(saved.role))
    before = indexes.invalid_oids(conn)
    # Session-wide, for the file's statements; put back with the rest of `saved`.
    conn.execute(lockwait.timeouts_sql(policy, local=False))
    for index, statement in enumerate(statements):
        stopped: retries.Stopped | None = None
        try:
            stopped = retries.one_statement(conn, migration, statement, role=role, unrole=unrole,
                               policy=policy, watch=watch, before=before)
            if stopped is None:
                _record_progress(history, migration, index + 1, saved)
                continue
            err: psycopg.Error = stopped.error
        except psycopg.Error as raised:
            err = raised
            if lost(conn):
                raise failures.lost_midway(err, migration, statement, index, len(statements),
                                           path=path, direction=direction) from None
        with _suppress_db_errors():
            settings.restore(conn, saved)
        if len(statements) == 1:
            note = (f"it ran outside a transaction, so {migration.label} is now recorded "
                    "as dirty")
        else:
            done = (f"the {index} before it stay applied" if direction == "up" else
                    f"the {index} before it stay rolled back")
            note = (f"statement {index + 1} of {len(statements)} failed; {done}, "
                    f"so {migration.label} is now recorded as dirty")
        left: list[indexes.InvalidIndex] = []
        with _suppress_db_errors():
            left = indexes.left_behind(conn, before)
        failure = failures.failure(err, text, path, migration, statement=statement,
                                   note=note, direction=direction, dirty=True, invalid=left)
        if stopped is not None:
            failure = failures.lock_wait_exhausted(
                failure, migration, direction, policy, stopped.blocked,
                attempts=stopped.attempts, not_again=stopped.not_again, invalid=left,
                done=index)
        _record_failure(history, migration, failure, direction, statement=index + 1)
        raise failure from None
    settings.restore(conn, saved)
    _refuse_invalid_indexes(history, migration, text, path=path, direction=direction)
    duration = _ms(started)
    if direction == "up":
        history.finish(migration.version, duration)
    else:
        history.delete(migration.version)
    history.event(direction, version=migration.version, service=migration.service,
                  name=migration.name, detail={"duration_ms": duration, "no_transaction": True})
    return duration


def _record_progress(history: History, migration: Migration, done: int,
                     saved: settings.Saved) -> None:
    """Record `done` statements in the dirty row, with the session's settings from before
    the migration for that one transaction: what the migration set (a read-only default,
    a role without rights on the history) stays for its next statement, and does not
    reach the bookkeeping."""
    conn = history.conn
    try:
        conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE;\n"
                     + settings.restore_sql(conn, saved, local=True))
        history.progress(migration.version, done)
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


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


def _rollback(conn: psycopg.Connection) -> None:
    with _suppress_db_errors():
        if not conn.closed and not conn.broken:
            conn.execute("ROLLBACK")


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _suppress_db_errors() -> contextlib.suppress:
    return contextlib.suppress(psycopg.Error)
