"""`migcoord dev`: one local PostgreSQL per repository, for development only.

The server runs from the pip-installed binaries (`migcoord[embedded]`, see
migcoord.local.embedded), keeps its data in `.migcoord/dev/` beside migcoord.toml (git-ignored),
listens on 127.0.0.1 only, trusts the `postgres` user without a password, and holds a
database named `dev` (created on first start). A restart reuses the previous port when it
is free, so `DATABASE_URL` stays valid.

It is only ever used when asked for by name: `migcoord dev ...`, `--dsn embedded` or
`DATABASE_URL=embedded`. A missing DATABASE_URL never leads here (target.resolve_dsn).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping
from pathlib import Path

import attrs

from migcoord.core.model import Config
from migcoord.errors import DevServerNotRunning, EmbeddedServerError
from migcoord.local.binaries import find_postgres_bin_for
from migcoord.local.embedded import EmbeddedServer

log = logging.getLogger("migcoord")

DEV_DATABASE = "dev"
DATA_DIR = "dev"


@attrs.frozen
class DevStatus:
    """Where the dev server of one repository is, and whether it runs."""

    data_dir: Path
    running: bool
    dsn: str | None = None
    port: int | None = None
    #: True when this call started (or stopped) the server; False when it already was.
    changed: bool = False

    def as_json(self) -> dict[str, object]:
        return {"running": self.running, "dsn": self.dsn, "port": self.port,
                "data_dir": str(self.data_dir), "changed": self.changed}


#: Where the data goes instead of `.migcoord/dev/` (e.g. when, as root, the repository
#: sits in a folder the unprivileged server user cannot enter).
DATA_DIR_ENV = "MIGCOORD_DEV_DIR"


def data_dir(config: Config, environ: Mapping[str, str]) -> Path:
    """`$MIGCOORD_DEV_DIR`, else `.migcoord/dev/` beside the config."""
    chosen = environ.get(DATA_DIR_ENV, "").strip()
    return Path(chosen).resolve() if chosen else config.state_dir / DATA_DIR


def status(config: Config, environ: Mapping[str, str]) -> DevStatus:
    """Whether the server runs, and its DSN when it does. Starts nothing."""
    folder = data_dir(config, environ)
    if not (folder / "PG_VERSION").is_file():
        # Never set up: no need for the binaries to know that nothing runs.
        return DevStatus(data_dir=folder, running=False)
    server = _server(config, environ)
    if not server.is_running():
        return DevStatus(data_dir=folder, running=False, port=server.port)
    return DevStatus(data_dir=folder, running=True, dsn=server.dsn(DEV_DATABASE), port=server.port)


def start(config: Config, environ: Mapping[str, str], *, port: int | None = None) -> DevStatus:
    """Start the dev server unless it runs (then only report it); returns where it is.

    The first start creates the cluster and the `dev` database. Later starts use the
    port of the last start when it is free (else `port`, else any free port).
    """
    from migcoord.db import scratch
    from migcoord.repo import workspace

    current = status(config, environ)
    if current.running:
        return current
    workspace.ensure_state_dir(config.state_dir)
    server = _server(config, environ)
    server.init()
    wanted = port or (server.port if server.port is not None and port_is_free(server.port)
                      else None)
    try:
        server.start(wanted)
    except EmbeddedServerError:
        if not server.is_running():
            raise
        # Another `migcoord dev start` won the race; its server is as good as ours.
        return status(config, environ)
    scratch.ensure(server.dsn("postgres"), DEV_DATABASE)
    return attrs.evolve(status(config, environ), changed=True)


def stop(config: Config, environ: Mapping[str, str]) -> DevStatus:
    """Stop the dev server if it runs (its data stays for the next start)."""
    current = status(config, environ)
    if not current.running:
        return current
    _server(config, environ).stop()
    return DevStatus(data_dir=current.data_dir, running=False, port=current.port, changed=True)


def running_dsn(config: Config, environ: Mapping[str, str], *, asked_by: str) -> str:
    """The dev server's DSN, or DevServerNotRunning saying how to start it.

    `asked_by` names what asked for it in the message (`DATABASE_URL=embedded`).
    """
    current = status(config, environ)
    if not current.running or current.dsn is None:
        raise DevServerNotRunning(
            f"this repository's development server ({_display(current.data_dir)}) is not "
            f"running, and {asked_by} asks for it",
            hint="start it with `migcoord dev start` (it is never started implicitly)")
    return current.dsn


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:`port` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As PostgreSQL does: connections of the last run in TIME_WAIT do not block it.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _server(config: Config, environ: Mapping[str, str]) -> EmbeddedServer:
    folder = data_dir(config, environ)
    return EmbeddedServer(folder, find_postgres_bin_for(folder, environ))


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
