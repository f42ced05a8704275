"""How a failed migration is reported: where, why, and what to do next.

Every way a migration can fail becomes one MigcoordError here: a statement the server
refused (`failure`: the file's `path:line:col`, the SQLSTATE, the server's words, the
cause in words, the next step), a session that ended under it (`connection_lost`,
`lost_midway`), an INVALID index it would leave recorded as working. The exit code of
each follows from its SQLSTATE (`migcoord.errors.exit_code_for`) or, for a migration
left dirty, from that state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import psycopg

from migcoord.core import directives
from migcoord.core.ddl import DdlPolicy, format_ms
from migcoord.core.model import Migration, SqlFile
from migcoord.db.diagnosis import cause
from migcoord.db.indexes import InvalidIndex, described, drops
from migcoord.db.lockwait import Blocked
from migcoord.errors import (
    EXIT_RETRY,
    ConnectionLost,
    MigrationFailed,
    MigrationLeftDirty,
    MigrationLockTimeout,
    exit_code_for,
)
from migcoord.sql import reader
from migcoord.sql.reader import Statement as SqlStatement


def failure(err: psycopg.Error, text: str, path: Path | None, migration: Migration, *,
            note: str, direction: str = "up", statement: SqlStatement | None = None,
            base: int = 0, mapped: bool = True, dirty: bool = False,
            invalid: Sequence[InvalidIndex] = ()) -> MigrationFailed:
    """The error as `path:line:col: ERROR: ... (SQLSTATE ...)`, with its cause and the next
    step; the position as `locate` finds it, none when not `mapped` (the COMMIT failed,
    so no statement of the file is to blame). A `dirty` failure (a no-transaction file
    stopped part-way) is MigrationLeftDirty; `invalid` indexes it left are named with the
    DROP that removes them."""
    diag = err.diag
    where = str(path) if path else migration.label
    line, column = (locate(text, diag.statement_position, statement, base) if mapped
                    else (None, None))
    if line is not None:
        where += f":{line}:{column}"
    primary = diag.message_primary or str(err).splitlines()[0]
    message = f"{where}: ERROR: {primary} (SQLSTATE {err.sqlstate})"
    known = cause(err.sqlstate, primary)
    details = [d for d in (known and f"because {known.because}", diag.message_detail,
                           diag.message_hint and f"server hint: {diag.message_hint}",
                           diag.context and f"context: {diag.context.strip()}") if d]
    if details:
        message += "\n  " + "\n  ".join(details)
    hint = next_step(migration, direction, err.sqlstate, dirty=dirty, message=primary)
    extension = missing_extension(primary)
    if extension is not None:
        hint = (f"this server has no {extension} extension installed: run against a server "
                f"that has it (--dsn), or, for `migcoord dev` and "
                "verify's throwaway server, set MIGCOORD_PG_BIN to the bin folder of a "
                f"PostgreSQL installation that has {extension} (e.g. "
                "MIGCOORD_PG_BIN=$(pg_config --bindir), with the distribution's "
                "postgresql-contrib package) and start it again")
    if invalid:
        note += (f"; it left {described(invalid)} behind, which enforces nothing and "
                 "slows every write, and which `IF NOT EXISTS` would skip")
        hint = f"first drop it with {drops(invalid)}; then {hint}"
    kind = MigrationLeftDirty if dirty else MigrationFailed
    return kind(message + f"\n  {note}", hint=hint,
                sqlstate=err.sqlstate, path=path, line=line, column=column,
                version=migration.version, service=migration.service, direction=direction)


#: How the server says an extension is not installed: PostgreSQL 16 and later, then 15
#: and earlier (which name the control file it could not open).
_NO_EXTENSION = (re.compile(r'^extension "(?P<name>[^"]+)" is not available'),
                 re.compile(r'^could not open extension control file ".*/(?P<name>[^/"]+)'
                            r'\.control"'))


def missing_extension(message: str) -> str | None:
    """The extension a server error message says is not installed, or None."""
    for pattern in _NO_EXTENSION:
        match = pattern.match(message)
        if match is not None:
            return match.group("name")
    return None


def locate(text: str, position: str | None, statement: SqlStatement | None,
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


def next_step(migration: Migration, direction: str, sqlstate: str | None = None, *,
              dirty: bool = False, message: str | None = None) -> str:
    """What to do after `migration` failed with `sqlstate` (the server's `message`): run
    it again as it is when a retry can succeed, else fix the cause first."""
    known = cause(sqlstate, message)
    advice = f"{known.advice}; " if known and known.advice else ""
    again = f"`migcoord {direction} --service {migration.service}`"
    if dirty and direction == "down":
        return (f"{advice}finish the rollback by hand, then `migcoord mark "
                f"{migration.version_text} --pending`; or redo what was undone and "
                f"`migcoord mark {migration.version_text} --applied`")
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


def connection_lost(err: psycopg.Error, migration: Migration, what: str, *,
                    direction: str) -> ConnectionLost:
    """The session ended under a migration's transaction: it was rolled back, retry."""
    return ConnectionLost(
        f"lost the connection while running {migration.service} {migration.label}: "
        f"{_reason(err)}; {what}",
        hint="check the server (a restart, pg_terminate_backend, a network cut); "
        "`migcoord status` shows what is recorded, then retry",
        sqlstate=err.sqlstate, version=migration.version, service=migration.service,
        direction=direction)


def lost_midway(err: psycopg.Error, migration: Migration, statement: SqlStatement,
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
        "CONCURRENTLY leaves an INVALID index behind), then " + next_step(
            migration, direction, dirty=True),
        sqlstate=err.sqlstate, path=path, line=statement.line, column=statement.column,
        version=migration.version, service=migration.service, direction=direction)


def _reason(err: psycopg.Error) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def invalid_index_in_transaction(migration: Migration, invalid: Sequence[InvalidIndex],
                                 direction: str) -> MigrationFailed:
    """A transactional file's `CREATE INDEX IF NOT EXISTS` met an INVALID index of that
    name: the transaction was rolled back."""
    sql_file = migration.up if direction == "up" else migration.down
    where = sql_file.path if sql_file is not None else migration.label
    kept = ("nothing of this migration was applied" if direction == "up" else
            f"{migration.label} is still applied")
    return MigrationFailed(
        f"{where}: {described(invalid)} already exists, left by an earlier failed build: "
        "`CREATE INDEX ... IF NOT EXISTS` skipped it, and it enforces nothing (a UNIQUE one "
        f"lets duplicates in); the transaction was rolled back: {kept}",
        hint=f"drop it with {drops(invalid)}, then run `migcoord {direction} --service "
        f"{migration.service}` again",
        path=sql_file.path if sql_file is not None else None, version=migration.version,
        service=migration.service, direction=direction)


def invalid_index_after_run(migration: Migration, invalid: Sequence[InvalidIndex], *,
                            path: Path | None, direction: str) -> MigrationLeftDirty:
    """A no-transaction file ran, yet an index it creates by name is INVALID: it stays
    dirty, with the DROP to run and what follows."""
    then = (f"`migcoord mark {migration.version_text} --pending` and `migcoord up --service "
            f"{migration.service}` to build it again" if direction == "up" else
            next_step(migration, direction, dirty=True))
    return MigrationLeftDirty(
        f"{path or migration.label}: its statements ran, yet {described(invalid)} is left: "
        "a failed concurrent build leaves one behind, and `CREATE INDEX ... IF NOT EXISTS` "
        "then skips building it. It enforces nothing (a UNIQUE one lets duplicates in) and "
        f"slows every write, so {migration.label} stays recorded as dirty, not "
        f"{'applied' if direction == 'up' else 'rolled back'}",
        hint=f"drop it with {drops(invalid)}, then {then}", path=path,
        version=migration.version, service=migration.service, direction=direction)


def lock_wait_exhausted(failure: MigrationFailed, migration: Migration, direction: str,
                        policy: DdlPolicy, blocked: Blocked | None, *, attempts: int,
                        not_again: str | None = None, invalid: Sequence[InvalidIndex] = (),
                        done: int = 0) -> MigrationFailed:
    """`failure`, a lock timeout on the last attempt (or on one that could not be made
    again: `not_again` says why), told as such: what it waited for, the sessions in its
    way, and what to do. A migration rolled back is MigrationLockTimeout (exit 1); one
    left dirty stays MigrationLeftDirty, its hint leading with the repair (`invalid`
    indexes it left, `done` statements that completed before the one that timed out)."""
    sql_file = migration.up if direction == "up" else migration.down
    where = sql_file.path if sql_file is not None else migration.label
    timeout = format_ms(policy.lock_timeout_ms)
    tries = (f"{attempts} attempts, each rolled back after waiting {timeout} (lock_timeout)"
             if attempts > 1 else f"it waited {timeout} (lock_timeout)")
    lines = [tries + (f"; not tried again: {not_again}" if not_again else "")]
    if blocked is not None:
        lines.append(f"it waited for {blocked.what}")
        lines.append("in its way: " + blocked.who())
    else:
        lines.append("the session in its way was not seen (it let go, or a second connection "
                     "to watch the wait could not be opened): pg_locks and pg_stat_activity "
                     "show who holds locks on its tables")
    pids = [blocker.pid for blocker in blocked.blockers] if blocked is not None else []
    ends = " ".join(f"`SELECT pg_terminate_backend({pid});`" for pid in pids)
    again = f"`migcoord {direction} --service {migration.service}`"
    longer = f"{wait_longer(sql_file, where, policy)} (or pass `--ddl-lock-timeout`)"
    kind: type[MigrationFailed]
    if isinstance(failure, MigrationLeftDirty):
        # `up` refuses a dirty migration, so running it again cannot come first: the
        # repair does, and the wait for the sessions in its way comes after it.
        repair = dirty_repair(migration, direction, invalid, done=done)
        ended = f" (or once you end them: {ends})" if pids else ""
        hint = (f"it is recorded as dirty, so first {repair}; then, when the sessions in its "
                f"way are done{ended}, run {again} again; to let this file wait longer, "
                f"{longer}")
        kind = MigrationLeftDirty
    else:
        hint = (f"nothing was left half-done: run {again} again when the sessions in its way "
                f"are done; or let this file wait longer: {longer}")
        if pids:
            hint += f"; or end the blocking session: {ends}"
        kind = MigrationLockTimeout
    error = kind(failure.message + "\n  " + "\n  ".join(lines), hint=hint,
                 sqlstate=failure.sqlstate, path=failure.path, line=failure.line,
                 column=failure.column, version=failure.version, service=failure.service,
                 direction=failure.direction)
    error.lock_wait = {"lock_timeout": timeout, "attempts": attempts, "not_again": not_again,
                       **(blocked.as_json() if blocked is not None else
                          {"locktype": None, "mode": None, "table": None, "blockers": []})}
    return error


def wait_longer(sql_file: SqlFile | None, where: object, policy: DdlPolicy) -> str:
    """How to give a file a longer lock_timeout: a `-- migcoord:lock-timeout` line at its
    top, or, when it has one, that line changed (a second one is refused by `check`)."""
    wanted = f"-- migcoord:lock-timeout {format_ms(max(30_000, policy.lock_timeout_ms * 6))}"
    text = sql_file.text if sql_file is not None else None
    header = reader.line_comments(text, mentioning="migcoord:").header if text else ()
    existing = directives.find(header, "lock-timeout")
    if existing is None:
        return f"put `{wanted}` at the top of {where}"
    line, comment = existing
    return f"change the existing `{comment}` line (line {line} of {where}) to `{wanted}`"


def dirty_repair(migration: Migration, direction: str, invalid: Sequence[InvalidIndex], *,
                 done: int) -> str:
    """What makes a migration a no-transaction run left dirty runnable again, in order:
    put back what its `done` statements changed, drop the INVALID indexes it left, and
    record it as it was before the run (pending for up, applied for down)."""
    steps = []
    if done:
        undo = "undo" if direction == "up" else "redo"
        steps.append(f"{undo} what the {done} statement{'s' if done > 1 else ''} before it "
                     "did, where running the file again would not cope with it")
    if invalid:
        steps.append(f"drop {described(invalid)} with {drops(invalid)}")
    state = "--pending" if direction == "up" else "--applied"
    steps.append(f"`migcoord mark {migration.version_text} {state}`")
    return ", then ".join(steps)
