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


def installed_wheel(scratch: Path) -> Path:
    """Build migcoord's wheel from a copy of the sources (offline) and install it into a
    fresh virtual environment under `scratch`, as a user gets it (byte-compiled by pip, no
    editable finder); its dependencies come from this environment's site-packages. Returns
    that environment's python."""
    import sysconfig
    import venv

    repo = Path(__file__).resolve().parent.parent
    source = scratch / "wheel-src"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (repo / name).exists():
            shutil.copy2(repo / name, source / name)
    shutil.copytree(repo / "migcoord", source / "migcoord",
                    ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(scratch / "dist"), str(source)], check=True, cwd=scratch)
    (wheel,) = (scratch / "dist").glob("migcoord-*.whl")
    env = scratch / "wheel-env"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, cwd=scratch)
    purelib = subprocess.run([str(python), "-c",
                              "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # psycopg and the rest from here; a plain path entry, so this environment's editable
    # migcoord (a .pth finder) is not seen there.
    (Path(purelib) / "benchmark-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return python


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
