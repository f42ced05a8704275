"""Throwaway databases for `migcoord verify`, and the verify-data scripts run in them.

A throwaway database is created from template0 (so whatever was added to template1 on
that server cannot leak into the picture) and dropped with its connections ended first.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import logging
import secrets
import shlex
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import psycopg
from psycopg import sql

from migcoord.db import ddl_log, snapshot_scope, snapshot_sql
from migcoord.db.connect import connect
from migcoord.db.dsn import describe, first_line, hide_password, public_url
from migcoord.db.snapshot_sql import CatalogRows
from migcoord.errors import ConnectError, DatabaseRefused, ThrowawayLeft, UsageError

PREFIX = "migcoord_verify_"

T = TypeVar("T")


def new_name() -> str:
    """`migcoord_verify_<12 hex digits>`: unique, and easy to find and clean up by hand."""
    return PREFIX + secrets.token_hex(6)


def create(admin: psycopg.Connection[Any], name: str, *, template: str = "template0") -> None:
    """CREATE DATABASE `name` as a copy of `template` (no one may be connected to it);
    a missing CREATEDB right says what to do."""
    try:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)))
    except psycopg.errors.InsufficientPrivilege:
        user = admin.info.user
        raise DatabaseRefused(
            f"{user} may not create databases on {describe(admin.info.dsn)}, and verify works "
            "on a throwaway database of its own",
            hint=f"grant it (ALTER ROLE {user} CREATEDB), pass --dsn of a user who may, or "
            "unset DATABASE_URL to verify on a temporary embedded server") from None


def drop_statement(name: str, server_version: int) -> str:
    """The SQL that ends every connection to `name` and drops it (WITH (FORCE) from
    PostgreSQL 13 on); the name is quoted as an identifier."""
    quoted = '"' + name.replace('"', '""') + '"'
    return f"DROP DATABASE IF EXISTS {quoted}" + (" WITH (FORCE)" if server_version >= 130000
                                                  else "")


def drop_command(admin_dsn: str, names: Sequence[str], server_version: int) -> str:
    """A shell command that drops `names` on `admin_dsn`'s server with psql; no password
    in it (libpq finds it where it found it before: PGPASSWORD, ~/.pgpass)."""
    args = ["psql", public_url(admin_dsn)]
    for name in names:
        args += ["-c", drop_statement(name, server_version)]
    return shlex.join(args)


def _drop(admin: psycopg.Connection[Any], *, name: str) -> None:
    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    force = admin.info.server_version >= 130000
    query = "DROP DATABASE IF EXISTS {}" + (" WITH (FORCE)" if force else "")
    admin.execute(sql.SQL(query).format(sql.Identifier(name)))


#: How the comment on a throwaway database starts; the time it was made follows.
MADE_AT = "made by migcoord verify at "


@attrs.frozen
class ThrowawayFound:
    """A throwaway database found on the server: name, when made (UTC; None when not
    known), how many sessions are connected to it."""

    name: str
    made: datetime.datetime | None
    sessions: int


def _made_at(comment: str | None) -> datetime.datetime | None:
    if comment is None or not comment.startswith(MADE_AT):
        return None
    try:
        return datetime.datetime.fromisoformat(comment.removeprefix(MADE_AT))
    except ValueError:
        return None


def _not_the_pipeline_ending(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("error ignored terminating")


class _Reconnecting:
    """A connection of its own that the server may end while it is idle (an
    idle_session_timeout, pg_terminate_backend, a restart): psycopg only learns that when
    it next sends something, so `read` then connects again, once, and runs again."""

    application_name = "migcoord verify"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self.dsn, application_name=self.application_name)

    def read(self, reader: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`reader`'s answer on this connection (connecting again once if it was ended)."""
        psycopg_log = logging.getLogger("psycopg")
        # A pipeline that finds the connection gone logs that it could not end itself,
        # on top of the error it raises, which is handled here.
        psycopg_log.addFilter(_not_the_pipeline_ending)
        try:
            return reader(self.conn)
        except psycopg.OperationalError:
            if not (self.conn.closed or self.conn.broken):
                raise
        finally:
            psycopg_log.removeFilter(_not_the_pipeline_ending)
        self.conn.close()
        self.conn = self._connect()
        return reader(self.conn)

    def close(self) -> None:
        self.conn.close()


class AdminSession(_Reconnecting):
    """The autocommit connection to the server verify creates its databases on; it
    connects again when the server ended it while verify ran the migrations."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        #: Remembered for the command that drops what is left when the server is gone.
        self.server_version = self.conn.info.server_version

    def create(self, name: str, *, template: str = "template0") -> None:
        """CREATE DATABASE `name` as a copy of `template` (see `create`), with a comment
        saying when, which `others` reads."""
        self.read(lambda conn: create(conn, name, template=template))
        made = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.read(lambda conn: conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
            sql.Identifier(name), sql.Literal(f"{MADE_AT}{made}"))))

    def others(self, *mine: str) -> list[ThrowawayFound]:
        """The throwaway databases on the server other than `mine`: their names, when they
        were made (None when not known) and how many sessions are connected to each
        (empty when they cannot be listed)."""
        pattern = PREFIX.replace("_", "\\_") + "%"
        try:
            rows = self.read(lambda conn: conn.execute(
                "SELECT d.datname, shobj_description(d.oid, 'pg_database'), "
                "(SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid) "
                "FROM pg_database d WHERE d.datname LIKE %s "
                "AND NOT d.datname = ANY(%s) ORDER BY 1", (pattern, list(mine))).fetchall())
        except psycopg.Error as err:  # only a courtesy: never a reason to stop
            logging.getLogger("migcoord").debug("could not list throwaway databases: %s", err)
            return []
        return [ThrowawayFound(name, _made_at(comment), int(sessions))
                for name, comment, sessions in rows]

    def drop(self, *names: str) -> None:
        """End every connection to each of `names` and drop it (nothing to do for one
        that does not exist). Raises ThrowawayLeft naming those it could not drop, with
        the command that drops them once the server is back."""
        left: list[str] = []
        reasons: list[str] = []
        sqlstate: str | None = None
        for name in names:
            if not name.startswith(PREFIX):
                raise UsageError(f"refusing to drop {name!r}: not a throwaway database of verify")
            try:
                self.read(functools.partial(_drop, name=name))
            except (psycopg.Error, ConnectError) as err:
                left.append(name)
                reasons.append(hide_password(first_line(err), self.dsn))
                sqlstate = sqlstate or err.sqlstate
        if not left:
            return
        one = len(left) == 1
        raise ThrowawayLeft(
            f"could not drop the throwaway database{'' if one else 's'} {', '.join(left)} on "
            f"{describe(self.dsn)}: {reasons[0]}",
            hint=f"{'it is' if one else 'they are'} left on that server (no other database "
            f"was touched); once the server is back, drop {'it' if one else 'them'}: "
            f"{drop_command(self.dsn, left, self.server_version)}",
            sqlstate=sqlstate, databases=left)


def ensure(admin_dsn: str, name: str) -> bool:
    """Create database `name` unless it exists; True if created."""
    with contextlib.closing(connect(admin_dsn, application_name="migcoord dev")) as admin:
        row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if row is not None:
            return False
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
        return False


class Observer(_Reconnecting):
    """A connection of its own that reads catalog snapshots of one database.

    A migration may end the other sessions of its database (a down that clears the way
    with `pg_terminate_backend`); the observer then connects again, once per snapshot,
    and reads the snapshot it was asked for.

    `scoped`: give the database the event triggers of migcoord.db.snapshot_scope (when
    the user may) and read each snapshot after the first as what changed since the last
    one; the rows are those of a full read either way. `scope` is None when not scoped.
    """

    application_name = "migcoord verify snapshots"

    def __init__(self, dsn: str, history_schema: str, *, scoped: bool = False) -> None:
        self.history_schema = history_schema
        self._scoped = scoped
        super().__init__(dsn)
        self.scope: snapshot_scope.Scope | None = None
        if scoped and ddl_log.install(self.conn):
            self.scope = snapshot_scope.Scope(history_schema)

    def _connect(self) -> psycopg.Connection[Any]:
        conn = super()._connect()
        if self._scoped:
            ddl_log.prepare_session(conn)
        return conn

    @property
    def scoped(self) -> bool:
        """Whether snapshots (and the relations verify's lock report reads) are limited to
        what changed."""
        return self.scope is not None and self.scope.enabled

    def snapshot(self) -> CatalogRows:
        scope = self.scope
        if scope is not None and scope.enabled:
            # A new connection is a new start for the scope: its first read is a full one.
            return self.read(scope.read)
        return self.read(lambda conn: snapshot_sql.read(conn, self.history_schema))


def forget_scope(dsn: str) -> None:
    """Drop verify's event triggers and DDL log from a throwaway database that is kept,
    so that it is the schema the migrations made and nothing more; nothing to do when
    there are none, and a failure to drop them is only logged."""
    try:
        with contextlib.closing(connect(dsn, application_name="migcoord verify")) as conn:
            ddl_log.uninstall(conn)
    except psycopg.Error as err:
        logging.getLogger("migcoord").warning(
            "could not drop verify's event triggers (schema %s) from the kept database: %s",
            snapshot_sql.SCOPE_SCHEMA, str(err).strip())


def forget_temporary_objects(conn: psycopg.Connection[Any]) -> None:
    """Drop the session's temporary tables and functions (`DISCARD TEMP`), as a new
    session would not have them; settings and the advisory lock are kept."""
    conn.execute("DISCARD TEMP")


def run_seed(conn: psycopg.Connection[Any], text: str) -> str | None:
    """Run the seed half of a verify-data script and commit it; the error text, or None."""
    try:
        with conn.transaction():
            conn.execute(text)
    except psycopg.Error as err:
        return _error_text(err)
    return None


def run_check(conn: psycopg.Connection[Any], text: str, *, limit: int = 5) -> tuple[list[str], str | None]:
    """Run the check half in a transaction that is rolled back.

    Returns (up to `limit` rows that some statement returned, shown as text; the error
    text if a statement failed). Both empty means the check passed.
    """
    rows: list[str] = []
    error = None
    try:
        with conn.transaction(force_rollback=True), conn.cursor() as cursor:
            cursor.execute(text)
            while True:
                if cursor.description is not None and len(rows) < limit:
                    names = [column.name for column in cursor.description]
                    rows.extend(", ".join(f"{n}={v!r}" for n, v in zip(names, record, strict=True))
                                for record in cursor.fetchmany(limit - len(rows)))
                if not cursor.nextset():
                    break
    except psycopg.Error as err:
        error = _error_text(err)
    return rows, error


def _error_text(err: psycopg.Error) -> str:
    diag = err.diag
    primary = diag.message_primary or str(err).strip().splitlines()[0]
    text = f"ERROR: {primary}"
    if err.sqlstate:
        text += f" (SQLSTATE {err.sqlstate})"
    if diag.message_detail:
        text += f"; {diag.message_detail}"
    return text
