"""Where verify runs: a server to create the throwaway database on, and that database.

The throwaway database is dropped at the end, also after a failure, Ctrl-C or SIGTERM
(also while it is being built again), unless the caller asks to keep it; a server started
for the run is stopped and deleted.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from migcoord.core.model import Config
from migcoord.errors import Interrupted, MigcoordError, ThrowawayLeft
from migcoord.verify.report import MigrationVerdict, SequenceVerdict, ServerKind
from migcoord.verify.roundtrip import RoundTrips
from migcoord.verify.throwaway import Session

if TYPE_CHECKING:
    from migcoord.db.scratch import AdminSession
    from migcoord.local.embedded import EmbeddedServer

log = logging.getLogger("migcoord")

#: Read each snapshot after the first as what changed since the last one (the rows are
#: those of a full read: migcoord.db.snapshot_scope). A switch for the tests that compare
#: both ways, and for the benchmark.
SCOPED_SNAPSHOTS = True


def in_throwaway_database(admin_dsn: str, config: Config, keep: bool, trip: RoundTrips
                           ) -> tuple[str, str | None, tuple[MigrationVerdict, ...], SequenceVerdict]:
    """Run `trip` in a database created for it on `admin_dsn`'s server, dropped afterwards
    (unless `keep`): (its name, its DSN when kept, the verdicts)."""
    from migcoord.db.dsn import public_url

    with _throwaway(admin_dsn, config, keep=keep) as database:
        log.info("verifying %d migration%s in the throwaway database %s", len(trip.steps),
                 "" if len(trip.steps) == 1 else "s", database.name)
        verdicts, sequence = trip.run(database.open(), database)
    return database.name, public_url(database.dsn) if keep else None, verdicts, sequence


@contextlib.contextmanager
def throwaway_session(admin_dsn: str, config: Config) -> Iterator[Session]:
    """A session (migration lock held, history tables made) in a database created on
    `admin_dsn`'s server for the caller, and dropped afterwards whatever happens."""
    with _throwaway(admin_dsn, config) as database:
        yield database.open()


@contextlib.contextmanager
def _throwaway(admin_dsn: str, config: Config, *, keep: bool = False) -> Iterator[_Throwaway]:
    """A throwaway database created on `admin_dsn`'s server; afterwards, whatever
    happens, its session is closed, its saved copy dropped, and it is dropped too unless
    `keep`.

    When a database cannot be dropped (the server is gone), ThrowawayLeft says which and
    how to drop it; when the run was failing anyway, its own error goes on, saying so.
    """
    from migcoord.db import scratch

    admin = scratch.AdminSession(admin_dsn)
    try:
        database = _Throwaway(admin, admin_dsn, scratch.new_name(), config)
        try:
            database.create(database.name, "template0")
            _mention_leftovers(admin, database)
            try:
                yield database
            except BaseException as error:
                database.close(error)
                raise
            database.close()
        except BaseException as error:
            with interrupts_deferred():
                left = database.discard(keep=keep)
            ending = error if left is None else _saying_what_is_left(error, left)
            if ending is error:
                raise
            raise ending from error
        with interrupts_deferred():
            left = database.discard(keep=keep)
        if left is not None:
            raise left
    finally:
        admin.close()


def _mention_leftovers(admin: AdminSession, database: _Throwaway) -> None:
    """Warn about throwaway databases earlier runs left on the server (verify.leftovers)."""
    import datetime

    from migcoord.db import scratch
    from migcoord.verify import leftovers

    now = datetime.datetime.now(datetime.UTC)
    left = leftovers.stale(admin.others(database.name, database.saved_name), now)
    if left:
        command = scratch.drop_command(admin.dsn, [one.name for one in left],
                                       admin.server_version)
        log.warning("%s", leftovers.note(left, now, command))


def _saying_what_is_left(error: BaseException, left: ThrowawayLeft) -> BaseException:
    """What ends a run that failed with `error` and could not drop its throwaway database
    either: the failure itself, still, now saying what is left and how to drop it."""
    if isinstance(error, ThrowawayLeft):
        return left  # the same databases, or more of them
    if isinstance(error, KeyboardInterrupt):
        return Interrupted(error.applied if isinstance(error, Interrupted) else (), left=left)
    if isinstance(error, MigcoordError):
        also = f"{left.message}; {left.hint}"
        error.hint = f"{error.hint}; also, {also}" if error.hint else also
        return error
    log.warning("%s", left)
    return error


class _Throwaway:
    """The throwaway database `name`, the session that runs migrations in it, and the
    copy (`saved_name`) that it is built again from."""

    def __init__(self, admin: AdminSession, admin_dsn: str, name: str,
                 config: Config) -> None:
        from migcoord.db.dsn import with_database

        self.admin = admin
        self.admin_dsn = admin_dsn
        self.name = name
        self.saved_name = f"{name}_saved"
        self.saved = False  # whether the saved copy may exist
        self.dsn = with_database(admin_dsn, name)
        self.config = config
        self.copy_ms = 0
        self._open = contextlib.ExitStack()

    def create(self, name: str, template: str) -> None:
        """Create database `name` as a copy of `template`, timing it in `copy_ms`."""
        started = time.monotonic()
        self.admin.create(name, template=template)
        self.copy_ms = round((time.monotonic() - started) * 1000)

    def open(self) -> Session:
        """Connect, take the migration lock (the executor checks it is held) and create the
        history tables."""
        from migcoord.db import executor, scratch
        from migcoord.db.connect import connect
        from migcoord.db.history import History
        from migcoord.db.lock import advisory_lock, lock_key

        with contextlib.ExitStack() as stack:
            conn = stack.enter_context(contextlib.closing(
                connect(self.dsn, application_name="migcoord verify")))
            # Snapshots are read on a second connection: read on the connection that has
            # just run DDL, they took about four times as long (measured: 13.8 against
            # 3.0 ms with 200 tables).
            observer = stack.enter_context(contextlib.closing(
                scratch.Observer(self.dsn, self.config.history_schema,
                                 scoped=SCOPED_SNAPSHOTS)))
            history = History(conn, self.config.history_schema)
            pid = stack.enter_context(advisory_lock(conn, lock_key(self.config.history_schema),
                                                    timeout=10))
            history.ensure()
            # The throwaway database needs no durable commits.
            stack.enter_context(executor.relaxed_commits(history, enabled=True))
            self._open = stack.pop_all()
        return Session(history, pid, observer)

    def close(self, error: BaseException | None = None) -> None:
        """Release the lock and close the connections (nothing to do when not open);
        `error` is what ends the run, which a failure to release must not replace."""
        opened, self._open = self._open, contextlib.ExitStack()
        if error is None:
            opened.close()
        else:
            opened.__exit__(type(error), error, error.__traceback__)

    def rebuild(self, *, from_saved: bool) -> Session:
        """Drop the database and create it again, empty or as a copy of the saved one; a
        session in it."""
        self.close()
        self.admin.drop(self.name)
        self.create(self.name, self.saved_name if from_saved else "template0")
        return self.open()

    def save(self) -> Session:
        """Save a copy of the database as it is now, to be built again from; a session in
        it (a database is copied only while no one is connected to it)."""
        self.close()
        self.saved = True
        self.admin.drop(self.saved_name)
        self.create(self.saved_name, self.name)
        return self.open()

    def discard(self, *, keep: bool) -> ThrowawayLeft | None:
        """Drop the saved copy, and the database itself unless `keep`; what could not be
        dropped (the server is gone), or None."""
        from migcoord.db import scratch
        from migcoord.db.dsn import public_url

        names = [self.saved_name] if self.saved else []
        if keep:
            scratch.forget_scope(self.dsn)
            log.info("kept the throwaway database %s", public_url(self.dsn))
        else:
            names.append(self.name)
        try:
            self.admin.drop(*names)
        except ThrowawayLeft as left:
            return left
        return None


@contextlib.contextmanager
def admin_server(config: Config, environ: Mapping[str, str], dsn: str | None, *,
            keep: bool) -> Iterator[tuple[str, ServerKind]]:
    """Where to create the throwaway database: (an admin DSN, which kind of server)."""
    from migcoord.local import devserver
    from migcoord.local.target import EMBEDDED

    if dsn is not None and dsn.strip() != EMBEDDED:
        yield dsn, "given"
        return
    if dsn is not None:
        asked_by = f"`embedded` (--dsn or ${config.database_url_env})"
        yield devserver.running_dsn(config, environ, asked_by=asked_by), "dev"
        return
    current = devserver.status(config, environ)
    if current.running and current.dsn is not None:
        yield current.dsn, "dev"
        return
    if keep:
        # A kept database must stay reachable: on the dev server, left running.
        started = devserver.start(config, environ)
        assert started.dsn is not None
        log.info("started the development server (stop it with `migcoord dev stop`)")
        yield started.dsn, "dev"
        return
    with _temporary_server(environ) as admin_dsn:
        yield admin_dsn, "temporary"


@contextlib.contextmanager
def _temporary_server(environ: Mapping[str, str]) -> Iterator[str]:
    """A PostgreSQL server for this run only (no fsync), stopped and deleted afterwards."""
    from migcoord.local.embedded import EmbeddedServer

    folder = Path(tempfile.mkdtemp(prefix="migcoord-verify-"))
    server = None
    try:
        # As root the server runs as nobody, who must be able to enter the folder.
        folder.chmod(0o755)
        server = EmbeddedServer.from_environ(folder / "data", environ, fast=True)
        server.init()
        log.info("started a temporary PostgreSQL server for this run")
        yield server.start()
    except BaseException:
        _discard_server(folder, server, failing=True)
        raise
    _discard_server(folder, server, failing=False)


def _discard_server(folder: Path, server: EmbeddedServer | None, *, failing: bool) -> None:
    """Stop the temporary server and delete its folder once no PostgreSQL process is left
    in it. A server that does not stop is an error, unless the run is failing (or was
    interrupted) anyway: then it is logged, and the run's own error goes on."""
    with interrupts_deferred():
        try:
            if server is not None:
                server.stop()
        except MigcoordError as err:
            # An interrupt during initdb leaves its single-user backend, which pg_ctl
            # cannot stop (or which ended while pg_ctl looked); once it is gone, and no
            # server runs there, the folder can go.
            if server is None or not server.end_single_user() or server.is_running():
                if not failing:
                    raise
                log.warning("%s (left %s)", err, folder)
                return
        if server is not None and not server.end_single_user():
            log.warning("a PostgreSQL process still works in %s; left it", folder)
            return
        shutil.rmtree(folder, ignore_errors=True)


#: The signals that cleaning up holds back: Ctrl-C, and a cancelled CI job's SIGTERM.
DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM while cleaning up; the first one received is delivered
    again, to the handler that was in place, once the block is done.

    Only in the main thread, the only one Python delivers signals to.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    previous = {signum: signal.signal(signum, remember) for signum in DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler installed outside Python, which cannot be put back.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
    if received:
        signal.raise_signal(received[0])
