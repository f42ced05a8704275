"""Every write migcoord makes to the repository (the only module that uses filelock).

Writes are exclusive creates (never overwrite) or atomic replacements (write a temporary
file beside the target, fsync, rename), so a crash or a full disk never leaves half a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from migcoord.errors import FileExists, LockTimeout, WorkspaceError

if TYPE_CHECKING:
    from migcoord.core.numbering import RenumberPlan


@contextlib.contextmanager
def repo_lock(path: Path, *, timeout: float) -> Iterator[None]:
    """Hold the repository's file lock (used by `create`, `renumber` and `sum`).

    Raises LockTimeout (exit 3) after `timeout` seconds, naming the lock file.
    """
    import filelock  # here, not at import: a service's `up` never takes this lock

    lock = filelock.FileLock(str(path), timeout=timeout)
    started = time.monotonic()
    try:
        ensure_state_dir(path.parent)
        lock.acquire()
    except filelock.Timeout:
        waited = time.monotonic() - started
        raise LockTimeout(
            f"could not get the lock {path} within {timeout:g} s: another migcoord "
            "create/renumber/sum is running in this repository",
            hint="wait for it to finish and retry; if no migcoord process is running, the "
            "lock is held by a stuck process (the file itself can stay; only a live holder "
            f"blocks). Waited {waited:.1f} s.",
            path=path, waited_s=waited,
        ) from None
    except OSError as err:
        raise WorkspaceError(f"cannot create the lock file {path}: {err.strerror}",
                             hint=_permission_hint(err), path=path) from None
    try:
        yield
    finally:
        lock.release()


def ensure_state_dir(folder: Path) -> None:
    """Create `.migcoord/` with a .gitignore that ignores everything in it."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        # Several processes may get here at once; the first one writes it.
        with contextlib.suppress(FileExists):
            create_exclusive(ignore, "# migcoord's local state: lock files, the embedded server\n*\n")


def create_exclusive(path: Path, content: str) -> None:
    """Write a new file; raise FileExists (and write nothing) if it is already there."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise FileExists(f"{path} already exists; it was not overwritten",
                         hint="another migration already has this number and name; run "
                         "`migcoord check` to see what is in the folder", path=path) from None
    except OSError as err:
        raise WorkspaceError(f"cannot create {path}: {err.strerror}",
                             hint=_permission_hint(err), path=path) from None
    try:
        _write_synced(fd, content)
    except OSError as err:
        path.unlink(missing_ok=True)
        raise WorkspaceError(f"cannot write {path}: {err.strerror}",
                             hint=_permission_hint(err), path=path) from None


def create_exclusive_all(files: Sequence[tuple[Path, str]]) -> None:
    """Write new files as create_exclusive does, all or none: when one cannot be
    created, the ones this call created are removed before the error propagates."""
    created: list[Path] = []
    try:
        for path, content in files:
            create_exclusive(path, content)
            created.append(path)
    except Exception:
        for path in created:
            path.unlink(missing_ok=True)
        raise


def replace_atomically(path: Path, content: str) -> None:
    """Replace (or create) a file in one step: readers see the old or the new content."""
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise WorkspaceError(f"cannot write beside {path}: {err.strerror}",
                             hint=_permission_hint(err), path=path) from None
    try:
        _write_synced(fd, content)
        if path.exists():
            os.chmod(temp_name, path.stat().st_mode & 0o777)
        else:
            os.chmod(temp_name, 0o644)
        os.replace(temp_name, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise WorkspaceError(f"cannot write {path}: {err.strerror}",
                             hint=_permission_hint(err), path=path) from None


def _write_synced(fd: int, content: str) -> None:
    """Write UTF-8 text with `\n` line ends to an open descriptor, close it, and fsync it
    first, so a crash right after never leaves a renamed-in but empty file."""
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def rewrite_keeping_style(path: Path, expected_text: str, new_text: str) -> None:
    """Replace a migration file's text, keeping its BOM and line endings.

    `expected_text` is the content read earlier (compared whatever its line ends); if the
    file changed since, nothing is written.
    """
    raw = path.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    body = raw[3:] if bom else raw
    crlf = b"\r\n" in body
    if _lf(body.decode("utf-8")) != _lf(expected_text):
        raise WorkspaceError(f"{path} changed while migcoord was working; nothing was written",
                             hint="run the command again", path=path)
    out = _lf(new_text)
    out = out.replace("\n", "\r\n") if crlf else out
    data = ("\ufeff" if bom else "") + out
    replace_atomically(path, data)


def _lf(text: str) -> str:
    """`text` with `\r\n` and lone `\r` line ends made `\n`."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def move_exclusive(source: Path, target: Path) -> None:
    """Rename a file, refusing to overwrite an existing target."""
    try:
        os.link(source, target)
    except FileExistsError:
        raise FileExists(f"{target} already exists; nothing was renamed",
                         path=target) from None
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EXDEV, errno.ENOTSUP):
            if target.exists():
                raise FileExists(f"{target} already exists; nothing was renamed",
                                 path=target) from None
            os.rename(source, target)
            return
        raise WorkspaceError(f"cannot rename {source} to {target}: {err.strerror}",
                             hint=_permission_hint(err), path=source) from None
    os.unlink(source)


def apply_renumber(plan: RenumberPlan) -> None:
    """Rewrite the references a renumber changes, then rename its files.

    Refuses (FileExists, nothing written) when a target is taken by a file that is not
    itself moving; a failed rename undoes the renames done before it.
    """
    sources = {move.source for move in plan.moves}
    for move in plan.moves:
        if move.target not in sources and (move.target.exists() or move.target.is_symlink()):
            raise FileExists(f"{move.target} already exists; nothing was renamed or edited",
                             hint="move that file out of the way, or choose --to")
    for edit in plan.edits:
        rewrite_keeping_style(edit.path, edit.old, edit.new)
    done: list[tuple[Path, Path]] = []
    try:
        for move in plan.moves:
            move_exclusive(move.source, move.target)
            done.append((move.source, move.target))
    except Exception:
        for source, target in reversed(done):
            move_exclusive(target, source)
        raise


def _permission_hint(err: OSError) -> str | None:
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is not writable by this user; check its permissions"
    if err.errno == errno.ENOSPC:
        return "the disk is full; free space and retry (nothing was left half-written)"
    return None
