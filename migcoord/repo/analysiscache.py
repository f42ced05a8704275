"""The SQL analysis cache: `.migcoord/analysis-cache` beside the config, so that the next
`check` parses only the migrations whose text changed.

An entry's key names what one migration's analysis depends on (checks/analysis.py
`CacheKey`: both files' texts, the default schema, both no-transaction directives). What
every entry depends on besides is the file's fingerprint: the cache format, Python's
version, migcoord's version and the size and mtime of each of its modules (an edited
checkout), and where pglast is installed (another parser). A file with another
fingerprint, or that is damaged (its payload's sha256 is in its header), is ignored as
a whole; an entry of the wrong shape is parsed again (checks/plain.py).

The cache is an optimisation only: with no config file (`Coordinator.for_service`), or
when `.migcoord/` cannot be created or written (a read-only checkout), nothing is stored
and every migration is parsed, as before. Writes go to a temporary file renamed into
place, so a reader never sees half a file; two runs writing at once leave one's whole.
The entries are `marshal`ed plain values (no objects, no code is run to read them).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from migcoord.core.model import Config
from migcoord.repo import cachefile

FILE_NAME = "analysis-cache"
#: Changed whenever what is stored changes shape.
FORMAT = 2
_MAGIC = b"migcoord analysis cache"


def path_of(config: Config) -> Path | None:
    """Where the cache lives; None when there is no config file to put it beside."""
    if config.path is None:
        return None
    return config.state_dir / FILE_NAME


def fingerprint() -> str:
    """What every stored analysis depends on besides its own key (see the module)."""
    try:
        version = metadata.version("migcoord")
    except metadata.PackageNotFoundError:  # a source tree on PYTHONPATH: its files count
        version = "unknown"
    parts = [f"format {FORMAT}", sys.version, version]
    package = Path(__file__).resolve().parent.parent  # migcoord/
    for folder, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    info = os.stat(os.path.join(folder, name))
                    parts.append(f"{folder}/{name} {info.st_size} {info.st_mtime_ns}")
    spec = importlib.util.find_spec("pglast")  # where it is, without importing it
    if spec is not None and spec.origin is not None:
        with contextlib.suppress(OSError):
            info = os.stat(spec.origin)
            parts.append(f"pglast {spec.origin} {info.st_size} {info.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load(config: Config, expected: str) -> dict[Any, Any]:
    """The stored entries (key -> plain analysis), or {} when there is no usable cache
    with the fingerprint `expected`."""
    path = path_of(config)
    entries = None if path is None else cachefile.read(path, _MAGIC, expected)
    return entries if isinstance(entries, dict) else {}


def save(config: Config, entries: dict[Any, Any], stamp: str) -> None:
    """Store `entries` (plain values only) with the fingerprint `stamp`, replacing the
    cache; never raises for a folder that cannot be written (the next run parses again)."""
    path = path_of(config)
    if path is not None:
        cachefile.write(path, _MAGIC, stamp, entries)
