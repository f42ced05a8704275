"""Send a migration as one simple query and learn which of its statements failed.

PostgreSQL runs a simple query's statements one after another and answers each with one
result; the first error ends the query. psycopg's `execute` raises that error and drops
the results before it, and the server's error carries a position only for errors found
while parsing: a lock timeout, a deadlock or a division by zero in the third statement
of a file says nothing about where it happened. Counting the results that came back
before the error names the statement, so every failure gets its `file:line`.

This uses psycopg's public low-level layer (`pgconn.send_query` and the `execute`
generator, waited on by the connection, which cancels the query on Ctrl-C as `execute`
does).
"""

from __future__ import annotations

import contextlib
import select
import time

import attrs
import psycopg
from psycopg import errors, generators, pq


@attrs.frozen
class Failed(Exception):
    """A statement of the script failed: `error` as psycopg raises it, after `done`
    statements had run (0 when it failed to parse: nothing ran)."""

    error: psycopg.Error
    done: int


@attrs.frozen
class Answer:
    """The last result of a script when it is one row: its first column's name and value
    as text (None: it returned no single row)."""

    column: str | None = None
    value: str | None = None
    #: The last result's command tag without its row count (`COMMIT`, `INSERT`...).
    tag: str | None = None
    #: The tag of the result before the last (None when there is one result or none).
    tag_before: str | None = None


#: The states a COPY leaves the session in, which libpq answers before the statements
#: after it run (`check` refuses such a COPY in a file: `client-copy`).
_COPY = (pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT)


def _leave_copy(conn: psycopg.Connection, status: int) -> None:
    """End the COPY the server started, sending no rows (a COPY FROM STDIN then fails)
    and discarding what a COPY TO STDOUT sends, and read what the rest of the query
    answers: the connection can be used (and rolled back) again. What the server says
    meanwhile is dropped: the caller reports the COPY itself."""
    pgconn = conn.pgconn
    with contextlib.suppress(psycopg.Error):
        if status == pq.ExecStatus.COPY_IN:
            conn.wait(generators.copy_end(pgconn, b"a migration cannot send COPY data"))
        else:
            while isinstance(conn.wait(generators.copy_from(pgconn)), memoryview):
                pass
    with contextlib.suppress(psycopg.Error):
        conn.wait(generators.fetch_many(pgconn))


#: How long `settle` waits for a cancelled query to answer before it gives the session up,
#: and how often it sends the cancel again meanwhile (seconds).
SETTLE_TIMEOUT = 10.0
CANCEL_AGAIN = 1.0


def settle(conn: psycopg.Connection) -> None:
    """Make `conn` usable again when a query is still running on it: cancel the query and
    read its answer. A session that does not answer within SETTLE_TIMEOUT is closed (the
    server then rolls its transaction back and frees its locks), never left half-read,
    which would make every later statement fail with "another command is already in
    progress"."""
    pgconn = conn.pgconn
    if conn.closed or pgconn.transaction_status != pq.TransactionStatus.ACTIVE:
        return
    try:
        if not _answered_after_cancel(conn):
            pgconn.finish()
            return
        results = conn.wait(generators.fetch_many(pgconn))
        if results and results[-1].status in _COPY:
            _leave_copy(conn, results[-1].status)
    except BaseException:  # a second Ctrl-C, or the server gone: give the session up
        pgconn.finish()
        return
    if pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
        pgconn.finish()


def _answered_after_cancel(conn: psycopg.Connection) -> bool:
    """Cancel the running query until its whole answer has arrived; False when it has not
    within SETTLE_TIMEOUT. The cancel is sent again every CANCEL_AGAIN seconds: one that
    reaches the server before the backend has begun the query (the query was only just
    sent) is dropped by the server, and the query would run to its end."""
    pgconn = conn.pgconn
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        conn.cancel()
        next_cancel = min(time.monotonic() + CANCEL_AGAIN, deadline)
        while time.monotonic() < next_cancel:
            select.select([pgconn.socket], [], [], max(next_cancel - time.monotonic(), 0))
            pgconn.consume_input()
            if not pgconn.is_busy():
                return True
        if time.monotonic() >= deadline:
            return False


def run(conn: psycopg.Connection, query: str) -> Answer:
    """Run `query` (several statements) as one simple query on `conn`, in autocommit or
    inside the transaction it opens itself; returns the last result's single row.

    Raises Failed for a statement the server refused, and psycopg's own errors when the
    connection fails.
    """
    with conn.lock:
        conn.pgconn.send_query(query.encode(conn.info.encoding))
        try:
            results = conn.wait(generators.execute(conn.pgconn))
        except BaseException:
            # A Ctrl-C that lands before psycopg's wait has begun is not cancelled by it.
            settle(conn)
            raise
        if results and results[-1].status in _COPY:
            _leave_copy(conn, results[-1].status)
    for done, result in enumerate(results):
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise Failed(errors.error_from_result(result, encoding=conn.info.encoding), done)
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK,
                                 pq.ExecStatus.EMPTY_QUERY):
            raise psycopg.ProgrammingError(
                f"the server answered {pq.ExecStatus(result.status).name}: COPY ... FROM "
                "STDIN, TO STDOUT and replication commands cannot run in a migration")
    last = results[-1] if results else None
    if last is None:
        return Answer()
    encoding = conn.info.encoding
    tag = _tag(last, encoding)
    before = _tag(results[-2], encoding) if len(results) > 1 else None
    if last.status != pq.ExecStatus.TUPLES_OK or last.ntuples != 1:
        return Answer(tag=tag, tag_before=before)
    name, value = last.fname(0), last.get_value(0, 0)
    return Answer(name.decode(encoding) if name is not None else None,
                  value.decode(encoding) if value is not None else None, tag, before)


def _tag(result: pq.abc.PGresult, encoding: str) -> str | None:
    """A result's command tag without its row count."""
    status = result.command_status
    return status.decode(encoding).split(" ")[0] if status else None
