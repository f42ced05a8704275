"""Open connections, name them, and never show a password.

The only module that turns a DSN into a connection. Every message that mentions a
database uses `dsn.describe`, which keeps host, port, database and user only, and
every message that quotes libpq passes through `dsn.hide_password` (see db/dsn.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import make_conninfo

from migcoord.db.diagnosis import (
    cause,
    connect_advice,
    connect_sqlstate,
    lost,
    settings_refused,
)
from migcoord.db.dsn import describe, first_line, hide_password, parse
from migcoord.errors import (
    ConnectError,
    ConnectionLost,
    ConnectSettingsRefused,
    MigcoordError,
    UsageError,
)


def connect(dsn: str, *, application_name: str, connect_timeout: int = 10) -> psycopg.Connection:
    """An autocommit connection named `application_name` (shown in pg_stat_activity).

    Raises ConnectError with the server's reason and no password: exit 3 when it is worth
    retrying (no server there, too many connections, a server starting up), exit 2 when
    the DSN's user, password or database is wrong, or libpq refuses the DSN's own SSL,
    GSS or option settings against that server (ConnectSettingsRefused).
    """
    params = parse(dsn)
    port = params.get("port", "")
    if any(part and not part.strip().isdigit() for part in port.split(",")):
        raise UsageError(f"the DSN's port {hide_password(repr(port), dsn)} is not a number",
                         hint="use postgresql://USER@HOST:5432/DBNAME")
    params.setdefault("connect_timeout", str(connect_timeout))
    params["application_name"] = application_name[:63]
    try:
        # No server-side prepared statements: behind a pooler they vanish between
        # transactions, and migcoord runs each query only a few times anyway.
        return psycopg.connect(make_conninfo("", **params), autocommit=True,
                               prepare_threshold=None)
    except psycopg.OperationalError as err:
        reason = hide_password(first_line(err), dsn)
        refused = settings_refused(str(err))
        sqlstate = err.sqlstate or connect_sqlstate(str(err))
        if refused is not None:
            raise ConnectSettingsRefused(
                f"could not connect to {describe(dsn)}: {reason}"
                + (f" (SQLSTATE {sqlstate})" if sqlstate else ""),
                hint=f"{refused}; retrying will not help", sqlstate=sqlstate) from None
        raise ConnectError(
            f"could not connect to {describe(dsn)}: {reason}"
            + (f" (SQLSTATE {sqlstate})" if sqlstate else ""),
            hint=connect_advice(sqlstate), sqlstate=sqlstate) from None
    except UnicodeError:
        # Python's resolver refuses some names (an empty label, as in `h..com`) before
        # libpq sees them; that was a traceback.
        raise UsageError(
            f"the DSN's host {hide_password(repr(params.get('host', '')), dsn)} is not a valid "
            "host name",
            hint="use postgresql://USER@HOST:5432/DBNAME; percent-encode a password's "
            "@ and / (%40, %2F)") from None


@contextlib.contextmanager
def session(dsn: str | None, conn: psycopg.Connection | None, *,
            application_name: str) -> Iterator[psycopg.Connection]:
    """Use the caller's connection (left open, with its autocommit and its session's
    settings as they were) or open and close one."""
    if conn is not None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise UsageError(
                "the connection passed to migcoord is inside a transaction",
                hint="commit or roll back first: migcoord runs each migration in its own "
                "transaction and holds a session lock between them")
        from migcoord.db import settings

        previous = conn.autocommit
        conn.autocommit = True
        saved: settings.Saved | None = None
        try:
            with _server_errors(conn):
                saved = settings.save(conn)
                yield conn
        finally:
            if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                if saved is not None:
                    with contextlib.suppress(psycopg.Error):
                        settings.restore(conn, saved)
                conn.autocommit = previous
        return
    if dsn is None:
        raise UsageError("give either dsn= or conn=")
    connection = connect(dsn, application_name=application_name)
    try:
        with _server_errors(connection):
            yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def _server_errors(conn: psycopg.Connection) -> Iterator[None]:
    """A server error nobody expected becomes a MigcoordError in the server's words.

    Migration statements already fail as MigrationFailed; this is for the rest, say a
    role without the privilege to create migcoord_history, which was a traceback. Only a
    connection that is really gone is ConnectionLost: a lock timeout on the history table
    is the server refusing, in a live session.
    """
    try:
        yield
    except psycopg.Error as err:
        reason = first_line(err)
        if err.sqlstate:
            reason += f" (SQLSTATE {err.sqlstate})"
        if lost(conn):
            raise ConnectionLost(f"the database connection failed: {reason}",
                                 hint="`migcoord status` shows what is recorded; retry",
                                 sqlstate=err.sqlstate) from None
        known = cause(err.sqlstate)
        hint = known.advice if known else "run with -v to see the step that failed"
        if err.sqlstate == "42501":
            hint = ("the migration role lacks a privilege migcoord needs: CREATE on the "
                    "history schema to make migcoord_history and migcoord_events on first use "
                    "(and CREATE on the database if that schema does not exist yet), then "
                    "read and write on both; or a DBA creates them once and grants them")
        elif err.sqlstate == "25006":
            hint = ("this database is read-only here (a standby, or "
                    "default_transaction_read_only): point --dsn / DATABASE_URL at the primary")
        raise MigcoordError(f"the database refused: {reason}", hint=hint,
                            sqlstate=err.sqlstate) from None

