"""The format of migcoord's cache files under `.migcoord/` (analysis-cache, file-facts).

A cache file is a magic line, a stamp (what every entry depends on: another migcoord,
Python or parser makes another stamp), the sha256 of the payload, and the payload:
plain values in `marshal` format, so no object is built and no code runs to read it.
A cache is an optimisation only: a file that is missing, damaged or of another stamp
reads as None, and a folder that cannot be written is logged and the run goes on.

Reading imports nothing beyond what every run has loaded: a service's boot reads one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import marshal
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("migcoord")


def read(path: Path, magic: bytes, stamp: str) -> Any:
    """The values stored by `write` at `path` under this `magic` and `stamp`, or None
    when there are none, they have another stamp, or the file is damaged."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    found_magic, _, rest = raw.partition(b"\n")
    found_stamp, _, rest = rest.partition(b"\n")
    digest, _, payload = rest.partition(b"\n")
    if found_magic != magic or hashlib.sha256(payload).hexdigest().encode() != digest:
        log.debug("ignoring %s: not a file this version wrote, or damaged", path)
        return None
    if found_stamp.decode("ascii", "replace") != stamp:
        log.debug("ignoring %s: written by another migcoord, Python or parser", path)
        return None
    try:
        return marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None


def write(path: Path, magic: bytes, stamp: str, values: Any) -> None:
    """Store plain `values` at `path`, replacing what is there through a temporary file
    renamed into place, so a reader never sees half of it and two runs writing at once
    leave one's whole; never raises for a folder that cannot be written."""
    import tempfile

    from migcoord.errors import WorkspaceError
    from migcoord.repo import workspace

    payload = marshal.dumps(values)
    header = b"\n".join([magic, stamp.encode(), hashlib.sha256(payload).hexdigest().encode()])
    temporary: str | None = None
    try:
        workspace.ensure_state_dir(path.parent)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(header + b"\n" + payload)
        os.replace(temporary, path)
        temporary = None
    except (OSError, WorkspaceError) as err:
        log.debug("%s was not stored in %s: %s", path.name, path.parent, err)
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
