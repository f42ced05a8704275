"""Open connections, name them, and never show a password.

The only module that turns a DSN into a connection. Every message that mentions a
database uses `describe(dsn)`, which keeps host, port, database and user only.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from migcoord.errors import (
    ConnectError,
    ConnectionLost,
    MigcoordError,
    UsageError,
)


def describe(dsn: str) -> str:
    """`user@host:port/dbname` for messages: never the password, never the raw DSN."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(an unreadable DSN)"
    user = str(params.get("user") or "")
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or "5432")
    dbname = str(params.get("dbname") or user or "")
    return f"{user + '@' if user else ''}{host}:{port}/{dbname}"


def connect(dsn: str, *, application_name: str, connect_timeout: int = 10) -> psycopg.Connection:
    """An autocommit connection named `application_name` (shown in pg_stat_activity).

    Raises ConnectError (exit 3) with the server's reason and no password.
    """
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as err:
        raise UsageError(f"the DSN cannot be read: {_without_password(_first_line(err), dsn)}",
                         hint="use postgresql://USER@HOST:PORT/DBNAME or key=value pairs") from None
    ports = str(params.get("port") or "").split(",")
    if any(port and not port.strip().isdigit() for port in ports):
        raise UsageError(f"the DSN's port {params.get('port')!r} is not a number",
                         hint="use postgresql://USER@HOST:5432/DBNAME")
    params.setdefault("connect_timeout", str(connect_timeout))
    params["application_name"] = application_name[:63]
    try:
        # No server-side prepared statements: behind a pooler they vanish between
        # transactions, and migcoord runs each query only a few times anyway.
        return psycopg.connect(make_conninfo("", **params), autocommit=True,
                               prepare_threshold=None)
    except psycopg.OperationalError as err:
        password = params.get("password")
        reason = _first_line(err)
        if password:
            reason = reason.replace(str(password), "***")
        raise ConnectError(
            f"could not connect to {describe(dsn)}: {reason}",
            hint="check that the server is up and the DSN is right; this is worth retrying",
        ) from None


@contextlib.contextmanager
def session(dsn: str | None, conn: psycopg.Connection | None, *,
            application_name: str) -> Iterator[psycopg.Connection]:
    """Use the caller's connection (left open, autocommit restored) or open and close one."""
    if conn is not None:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise UsageError(
                "the connection passed to migcoord is inside a transaction",
                hint="commit or roll back first: migcoord runs each migration in its own "
                "transaction and holds a session lock between them")
        previous = conn.autocommit
        conn.autocommit = True
        try:
            with _server_errors():
                yield conn
        finally:
            if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                conn.autocommit = previous
        return
    if dsn is None:
        raise UsageError("give either dsn= or conn=")
    connection = connect(dsn, application_name=application_name)
    try:
        with _server_errors():
            yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def _server_errors() -> Iterator[None]:
    """A server error nobody expected becomes a MigcoordError in the server's words.

    Migration statements already fail as MigrationFailed; this is for the rest, say a
    role without the privilege to create migcoord_history, which was a traceback.
    """
    try:
        yield
    except psycopg.Error as err:
        reason = _first_line(err)
        if err.sqlstate:
            reason += f" (SQLSTATE {err.sqlstate})"
        if isinstance(err, psycopg.OperationalError):
            raise ConnectionLost(f"the database connection failed: {reason}",
                                 hint="`migcoord status` shows what is recorded; retry") from None
        hint = "run with -v to see the step that failed"
        if err.sqlstate == "42501":
            hint = ("the migration role lacks a privilege migcoord needs: CREATE on the "
                    "history schema to make migcoord_history and migcoord_events on first use "
                    "(and CREATE on the database if that schema does not exist yet), then "
                    "read and write on both; or a DBA creates them once and grants them")
        elif err.sqlstate == "25006":
            hint = ("this database is read-only here (a standby, or "
                    "default_transaction_read_only): point --dsn / DATABASE_URL at the primary")
        raise MigcoordError(f"the database refused: {reason}", hint=hint) from None


# Where a password sits in a DSN that may not parse: URL userinfo, a URL query parameter,
# or a key=value pair.
_PASSWORDS = (
    re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:@/]*:(?P<pw>[^@]*)@"),
    re.compile(r"[?&]password=(?P<pw>[^&#]*)", re.IGNORECASE),
    re.compile(r"\bpassword\s*=\s*'(?P<pw>(?:[^'\\]|\\.)*)", re.IGNORECASE),
    re.compile(r"\bpassword\s*=\s*(?P<pw>[^'\s]\S*)", re.IGNORECASE),
)


def _without_password(message: str, dsn: str) -> str:
    """libpq's parse errors quote the token they stopped at, which may be the password."""
    for pattern in _PASSWORDS:
        for match in pattern.finditer(dsn):
            if match["pw"]:
                message = message.replace(match["pw"], "***")
    return message


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
