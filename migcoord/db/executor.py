"""Run one migration (up or down) against the database.

A normal migration runs as one simple-query script inside one transaction together with
its history row: PostgreSQL's DDL is transactional, so a failure leaves nothing behind,
no history row and no dirty flag. A file that is a whole-file `BEGIN; ... COMMIT;`
(golang-migrate's README recommends it) runs the same way, as its body. A migration that
cannot run in a transaction runs statement by statement in autocommit: one with
`-- migcoord:no-transaction`, or one whose only statement PostgreSQL refuses in a
transaction block (`CREATE INDEX CONCURRENTLY`, `VACUUM`...), which golang-migrate also
runs outside one: db/outside.py runs those, with a `dirty` history row until done.

Before anything is sent, a file is judged as `check` judges it: transaction control
(`migcoord.sql.transactions.explicit_transaction`) and statements that cannot run where
the file would run them (`transactions.transaction_fit`) are refused with the words of
`check`'s findings. A failing statement becomes MigrationFailed with `path:line:col` mapped from the server's
error position, the SQLSTATE and the server's message.

Each migration starts from the session settings that were in force before it, and they
are put back after it (db/settings.py): a `SET search_path` or `SET ROLE` in one
migration does not reach the next, nor the caller's connection.

db/failures words every failure; only a connection that is really gone
(db/diagnosis.lost) is reported as lost. An index the file creates by name that is
INVALID keeps it from being recorded (db/indexes).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import attrs
import psycopg
from psycopg import sql

from migcoord.core.ddl import DdlPolicy
from migcoord.core.model import Migration
from migcoord.db import failures, indexes, lockwait, outside, retries, script, settings
from migcoord.db.diagnosis import lost
from migcoord.db.dsn import first_line
from migcoord.db.history import History
from migcoord.db.lock import POOLER_HINT
from migcoord.errors import MigrationFailed, PoolerDetected
from migcoord.sql import reader, transactions
from migcoord.sql.reader import Statement as SqlStatement

log = logging.getLogger("migcoord")


@attrs.frozen
class _Run:
    """How one file runs, decided before anything is sent."""

    #: What is sent: the file, or the body of its whole-file BEGIN; ... COMMIT;
    #: (same length, same positions).
    text: str
    #: Statement by statement in autocommit, with a dirty history row until done.
    outside: bool = False
    #: The transaction modes of the file's own BEGIN (`ISOLATION LEVEL SERIALIZABLE`).
    modes: str = ""


def apply_up(history: History, migration: Migration, *, lock_pid: int, role: str | None,
             policy: DdlPolicy, watch: lockwait.LockWatch,
             before_commit: Callable[[psycopg.Connection], None] | None = None) -> int:
    """Apply one migration and record it, with the timeouts of `policy`, attempted again
    after a lock timeout as `policy` says (`watch` names who blocked it and paces the
    attempts); returns its duration in milliseconds. `before_commit` is called with the
    connection inside the migration's transaction, just before it commits (verify reads
    the locks it holds); it is not called for a no-transaction migration."""
    run = _decide(migration, "up")
    if run.outside:
        return outside.apply_without_transaction(history, migration, reader.statements(run.text),
                                                 role=role, policy=policy, watch=watch)
    started = time.monotonic()
    try:
        retries.in_transaction(history, migration, "up", policy, watch, lambda: _in_one_transaction(
            history, migration, run, history.applied_sql(history.row_of(migration, "applied")),
            role=role, lock_pid=lock_pid, direction="up", policy=policy,
            before_commit=before_commit))
    except MigrationFailed as failure:
        with _suppress_db_errors():
            # A synchronous commit also makes the run's earlier relaxed commits durable.
            synchronous(history)
            history.event("up-failed", version=migration.version, service=migration.service,
                          name=migration.name, detail={"sqlstate": failure.sqlstate})
        raise
    return _ms(started)


def committed_all_the_same(history: History, migration: Migration,
                           direction: str) -> int | None:
    """After an interrupt during `migration`'s step: its duration (ms, 0 when unknown) if
    its transaction committed all the same, else None (also when that cannot be read).

    psycopg notices a Ctrl-C only between waits: the server may have answered the whole
    query, COMMIT included, before the interrupt is raised. The migration lock is still
    held, so the history row is this run's doing.
    """
    conn = history.conn
    try:
        script.settle(conn)
        if lost(conn):
            return None
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")  # what was left open did not commit
        row = history.recorded(migration.version)
    except psycopg.Error:
        return None
    if direction == "down":
        return 0 if row is None else None
    if row is None or row.status != "applied" or row.checksum != migration.checksum:
        return None
    return row.duration_ms or 0


def outside_transaction(migration: Migration, direction: str) -> bool:
    """Whether the file runs statement by statement outside a transaction (its
    `-- migcoord:no-transaction`, or its only statement cannot run in one)."""
    try:
        return _decide(migration, direction).outside
    except MigrationFailed:
        return False


def _decide(migration: Migration, direction: str) -> _Run:
    """How the file of `direction` runs; refuses, before anything is sent, what `check`
    reports as explicit-transaction or concurrently-in-transaction."""
    text = migration.up_sql if direction == "up" else migration.down_sql
    directives = migration.directives if direction == "up" else migration.down_directives
    explicit = transactions.explicit_transaction(text, no_transaction=directives.no_transaction)
    if explicit.refused:
        first = explicit.refused[0]
        raise _refused(migration, direction, first.message, first.hint, first.line, first.column)
    if directives.no_transaction:
        return _Run(text, outside=True)
    fit = transactions.transaction_fit(text, wrapper=explicit.wrapper is not None)
    if fit.refused:
        hazard = fit.refused[0]
        raise _refused(migration, direction, hazard.message, hazard.hint, hazard.line,
                       hazard.column)
    wrapper = explicit.wrapper
    return _Run(explicit.body(text), outside=fit.alone,
                modes=wrapper.modes if wrapper is not None else "")


def _refused(migration: Migration, direction: str, message: str, hint: str, line: int,
             column: int) -> MigrationFailed:
    sql_file = migration.up if direction == "up" else migration.down
    where = sql_file.path if sql_file is not None else migration.label
    return MigrationFailed(f"{where}:{line}:{column}: {message}; nothing was run", hint=hint,
                           path=sql_file.path if sql_file is not None else None,
                           line=line, column=column, version=migration.version,
                           service=migration.service, direction=direction)


def _in_one_transaction(history: History, migration: Migration, run: _Run, record: str, *,
                        role: str | None, lock_pid: int, direction: str,
                        policy: DdlPolicy,
                        before_commit: Callable[[psycopg.Connection], None] | None = None
                        ) -> None:
    """Run BEGIN, the policy's timeouts (SET LOCAL), the file, the settings it changed put
    back, `record` (history change + event, returning the backend pid) and COMMIT as one
    simple query: one transaction, one round trip.

    What must be looked at before COMMIT is checked by the server inside that query
    (`_guard`: this session holds the migration lock). When Python must look first (an
    index the file creates by name may be INVALID; `before_commit`; a file the scanner
    cannot read to its end, which could swallow the record), COMMIT is sent on its own
    after the checks instead. Anything unexpected rolls back.
    """
    conn = history.conn
    text = run.text
    path = (migration.up if direction == "up" else migration.down)
    named = indexes.targets(text).named
    one_trip = before_commit is None and not named and reader.ends_cleanly(text)
    try:
        opening = f"BEGIN {run.modes}\n;\n" if run.modes else "BEGIN;\n"
        opening += lockwait.timeouts_sql(policy, local=True)
        if role:
            opening += sql.SQL("SET LOCAL ROLE {};\n").format(sql.Identifier(role)).as_string(conn)
        restore = _restore(history)
        if one_trip:
            # The guard goes last: the file's own first statement may have to be the
            # transaction's first query (SET TRANSACTION ISOLATION LEVEL ...). After the
            # COMMIT, whether the file changed a parameter of the session (db/settings).
            closing = ("\n;\n" + restore.session + record + ";\n" + _guard(lock_pid)
                       + "COMMIT;\n" + restore.changed)
        else:
            closing = "\n;\n" + restore.whole + record
        try:
            answer = script.run(conn, opening + text + closing)
        except script.Failed as failed:
            err = failed.error
            if lost(conn):
                raise err from None
            sent = len(reader.statements(opening + text + closing)) if one_trip else 0
            if one_trip and failed.done == sent - 1:
                # Only the comparison after the COMMIT failed: put everything back.
                _put_back(conn, migration, restore, direction)
                return
            _rollback(conn)
            if one_trip and failed.done == sent - 3:
                raise _pooled(migration, lock_pid, direction) from None
            if one_trip and failed.done == sent - 2:
                raise _commit_failed(err, migration, text, direction) from None
            note = ("the transaction was rolled back: nothing of this migration was applied"
                    if direction == "up" else
                    f"the transaction was rolled back: {migration.label} is still applied")
            raise failures.failure(err, text, path.path if path else None, migration,
                                   note=note, direction=direction, base=-len(opening),
                                   statement=_failed_statement(text, opening, failed)) from None
        if one_trip and answer.tag_before == "COMMIT":
            if answer.column != settings.CHANGED or answer.value != "f":
                _put_back(conn, migration, restore, direction)
            return
        pid = None if one_trip else _recorded_pid(answer)
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
            raise _pooled(migration, lock_pid, direction, pid)
        _refuse_named_invalid_indexes(conn, migration, named, direction)
        if before_commit is not None:
            before_commit(conn)
        _commit(conn, migration, text, direction)
    except psycopg.Error as err:
        history.saved_settings = None
        if not lost(conn):
            raise
        what = ("the migration's transaction was rolled back by the server" if direction == "up"
                else "the rollback's transaction was undone by the server")
        raise failures.connection_lost(err, migration, what, direction=direction) from None
    except BaseException:
        # What the session holds after a failure is not known to be the run's baseline.
        history.saved_settings = None
        raise


def _guard(lock_pid: int) -> str:
    """A statement that fails unless this session is `lock_pid`, the one holding the
    migration lock (a transaction pooler may have sent the query elsewhere). Plain SQL,
    no PL/pgSQL: a text that is not a number fails its cast, and the failure is
    recognised by its place in the query (the one before COMMIT). The text holds the
    pid so that it is not a constant, which the planner would cast (and fail) up front."""
    return (f"SELECT CASE WHEN pg_catalog.pg_backend_pid() = {int(lock_pid)} THEN 0 ELSE "
            "('migcoord: session ' || pg_catalog.pg_backend_pid() || ' does not hold the "
            "migration lock')::int END;\n")


def _pooled(migration: Migration, lock_pid: int, direction: str,
            pid: int | None = None) -> PoolerDetected:
    where = f"server session {pid}" if pid is not None else "another server session"
    return PoolerDetected(
        f"{migration.label} ran in {where}, but the migration lock is held by session "
        f"{lock_pid}; nothing was committed", hint=POOLER_HINT,
        version=migration.version, service=migration.service, direction=direction)


def _restore(history: History) -> settings.Restore:
    """The SQL that puts the session's settings back as the run found them: read once
    per run (db/settings), as each migration leaves the session as it found it."""
    if history.saved_settings is None:
        saved = settings.save(history.conn)
        history.saved_settings = (saved, settings.restore_parts(history.conn, saved))
    return history.saved_settings[1]


def _put_back(conn: psycopg.Connection, migration: Migration, restore: settings.Restore,
              direction: str) -> None:
    """After the COMMIT of `migration`, which changed a parameter of the session: set
    every parameter back before the next migration runs."""
    try:
        script.run(conn, restore.whole)
    except script.Failed as failed:
        done = "applied" if direction == "up" else "rolled back"
        raise MigrationFailed(
            f"{migration.label} was {done} and recorded, but the session settings it "
            f"changed could not be put back: {first_line(failed.error)}; the run stopped "
            "so that no later migration runs in a changed session",
            hint="run the command again to go on (a new session starts from the server's "
            "defaults); check the SET statements of that file",
            version=migration.version, service=migration.service,
            direction=direction) from None


def _refuse_named_invalid_indexes(conn: psycopg.Connection, migration: Migration,
                                  named: Sequence[tuple[str, str]], direction: str) -> None:
    """Before COMMIT: roll back when an index the file creates by name (`named`, as
    indexes.targets finds them) is INVALID (an earlier failed concurrent build, which
    `CREATE INDEX IF NOT EXISTS` skipped)."""
    invalid = indexes.named_invalid(conn, named)
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
        raise _commit_failed(err, migration, text, direction) from None


def _commit_failed(err: psycopg.Error, migration: Migration, text: str,
                   direction: str) -> MigrationFailed:
    sql_file = migration.up if direction == "up" else migration.down
    note = ("the COMMIT failed, so the transaction was rolled back: "
            + ("nothing of this migration was applied" if direction == "up" else
               f"{migration.label} is still applied"))
    return failures.failure(err, text, sql_file.path if sql_file else None, migration,
                            note=note, direction=direction, mapped=False)


def _recorded_pid(answer: script.Answer) -> int | None:
    """The backend pid that the record statement returned, if it ran: it must be the last
    result of the query, one row of a `pg_backend_pid` column."""
    if answer.column != "pg_backend_pid" or answer.value is None:
        return None
    return int(answer.value)


def _failed_statement(text: str, opening: str, failed: script.Failed) -> SqlStatement | None:
    """The statement of the file that failed, when the server's error has no position of
    its own (a lock timeout, a deadlock, a division by zero): the one after the `done`
    statements that ran, counting migcoord's own opening ones. None for an error with a
    position (the query did not parse, so nothing ran) or one in migcoord's own SQL."""
    if failed.error.diag.statement_position:
        return None
    index = failed.done - len(reader.statements(opening))
    ran = reader.statements(text)
    return ran[index] if 0 <= index < len(ran) else None


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
    history.saved_settings = None
    try:
        yield
    finally:
        with _suppress_db_errors():
            if not history.conn.closed and not history.conn.broken:
                synchronous(history)


def synchronous(history: History) -> None:
    history.conn.execute("RESET synchronous_commit")
    history.saved_settings = None


def apply_down(history: History, migration: Migration, *, lock_pid: int,
               role: str | None, policy: DdlPolicy, watch: lockwait.LockWatch) -> int:
    """Run the down file and delete the history row in one transaction, with the timeouts
    and retries of `policy` (as apply_up); returns ms.

    A down file that cannot run in a transaction (its own `-- migcoord:no-transaction`,
    or a lone DROP INDEX CONCURRENTLY) runs statement by statement instead, with the row
    marked dirty until it is done.
    """
    run = _decide(migration, "down")
    if run.outside:
        return outside.rollback_without_transaction(history, migration,
                                                    reader.statements(run.text), role=role,
                                                    policy=policy, watch=watch)
    started = time.monotonic()
    retries.in_transaction(history, migration, "down", policy, watch, lambda: _in_one_transaction(
        history, migration, run,
        history.rolled_back_sql(migration.version, migration.service, migration.name),
        role=role, lock_pid=lock_pid, direction="down", policy=policy))
    return _ms(started)


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _suppress_db_errors() -> contextlib.suppress:
    return contextlib.suppress(psycopg.Error)
