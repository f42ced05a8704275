"""Generate benchmark repositories: many services, many small migrations."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migcoord.local.embedded import EmbeddedServer

UP = """-- {service}: migration {version}
CREATE TABLE IF NOT EXISTS t_{version} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS t_{version}_name ON t_{version} (name);
"""
DOWN = "DROP TABLE IF EXISTS t_{version};\n"


def compile_installed() -> None:
    """Byte-compile migcoord as `pip install` does.

    An editable checkout under PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every
    module in every CLI process, which no installed copy does.
    """
    import compileall

    import migcoord

    compileall.compile_dir(Path(migcoord.__file__).parent, quiet=1)


@contextlib.contextmanager
def scratch_server(*, fast: bool) -> Iterator[tuple[Path, EmbeddedServer, str]]:
    """A new embedded PostgreSQL in a scratch folder: (folder, server, admin DSN).

    `fast=False` keeps fsync on, so commits wait for the disk as in production. The
    server is stopped and the folder removed afterwards.
    """
    from migcoord.local.embedded import EmbeddedServer

    scratch = Path(tempfile.mkdtemp(prefix="migcoord-bench-"))
    scratch.chmod(0o755)  # the server may run as another user (nobody, under root)
    server = EmbeddedServer.from_environ(scratch / "data", os.environ, fast=fast)
    try:
        server.init()
        yield scratch, server, server.start()
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def generate(root: Path, *, migrations: int, services: int, depends_every: int = 0) -> Path:
    """A repository with `migrations` migrations spread round-robin over `services`.

    With depends_every=N, every Nth migration declares a dependency on the previous
    migration of another service. migcoord.sum is written by `migcoord sum`.
    """
    root.mkdir(parents=True, exist_ok=True)
    names = [f"service-{i:02d}" for i in range(services)]
    config = "".join(f'[services.{n}]\nmigrations = "{n}/migrations"\n\n' for n in names)
    (root / "migcoord.toml").write_text(config)
    for name in names:
        (root / name / "migrations").mkdir(parents=True, exist_ok=True)
    for version in range(1, migrations + 1):
        service = names[(version - 1) % services]
        text = f"{version:06d}"
        header = ""
        if depends_every and version % depends_every == 0 and version > services:
            other = names[(version - 2) % services]
            header = f"-- migcoord:depends {other}:{version - 1:06d}\n"
        folder = root / service / "migrations"
        (folder / f"{text}_create_t_{text}.up.sql").write_text(
            header + UP.format(service=service, version=text))
        (folder / f"{text}_create_t_{text}.down.sql").write_text(DOWN.format(version=text))
    subprocess.run([sys.executable, "-m", "migcoord", "sum"], cwd=root, check=True,
                   capture_output=True)
    return root
