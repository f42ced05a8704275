"""What `up` and `status` learned of each migration file, kept by the file's stat in
`.migcoord/file-facts`, so that a boot with nothing changed reads no file's content.

A service starting with every migration applied needs each up file's checksum (an
edited applied file must stop it: `modified`) and its directives, but none of their
texts. For a file whose stat (size, mtime, ctime, inode, device) is the one recorded,
the checksum and the encoding verdict come from here and the text is read only if asked
for (`model.LaterText`: a pending migration's, to run it). Reading it then checks it
against the recorded checksum, so a file changed after all is refused, never run
unchecked.

What makes a stat trustworthy is git's rule for its index: a write changes the mtime
and the ctime, unless it lands in the same clock tick as the write before it. So a
file whose mtime or ctime is within `RACY_SECONDS` of the moment it was read is not
recorded (it is read again next time); ctime cannot be set back by tools that restore
mtimes (`cp -p`, `rsync -a`, `tar`), and a file replaced by a rename has another inode.
A file whose text mentions `migcoord` is not recorded either: its directives need its
text, so it is always read. Nor is any file whose own device is not a local file
system of Linux (`LOCAL_FILE_SYSTEMS`), where the stat cannot be relied on to follow a
change. A run saves only over the file it loaded: one another run rewrote or discarded
meanwhile is left alone, so a dropped fact is never written back.

Like the analysis cache, this is an optimisation only: without a config file, or when
`.migcoord/` cannot be written (a read-only image), nothing is stored and every file is
read. The file is written to a temporary name and renamed into place, so a reader never
sees half of it; twenty replicas booting at once leave one whole file. Its entries are
`marshal`ed plain values, and a file of another format, migcoord or Python, or one that
is damaged, is ignored as a whole.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
from pathlib import Path

from migcoord.repo import cachefile

FILE_NAME = "file-facts"
#: Changed whenever what is stored changes shape or meaning.
FORMAT = 2
_MAGIC = b"migcoord file facts"
#: A file changed this close to the moment it was read may change again without its
#: stat showing it (coarse clocks, FAT's 2 s mtimes, a network file system's skew).
RACY_SECONDS = 3

#: The stat a fact holds for: (size, mtime_ns, ctime_ns, inode, device).
Stat = tuple[int, int, int, int, int]
#: What is known of one file: (stat, checksum, encoding_error, encoding_line, body_line).
Fact = tuple[Stat, str, "str | None", "int | None", int]


def stat_of(info: os.stat_result) -> Stat:
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def settled(stat: Stat, read_at_ns: int) -> bool:
    """Whether a file with this stat, read at `read_at_ns` (time.time_ns()), may be
    recorded: neither written nor had its metadata changed near that moment."""
    return max(stat[1], stat[2]) < read_at_ns - RACY_SECONDS * 10**9


#: File systems that change a file's ctime with every write to it: the local disks of
#: Linux and its container layers. Not trusted: read-only images (squashfs, erofs,
#: iso9660: a ctime there is just the image's stored time, and another image of the same
#: build can put other content under the same stat), network file systems (a client's
#: stat may be tens of seconds behind an edit on another host), FUSE (times are what
#: the user-space driver says) and FAT (no ctime of changes).
LOCAL_FILE_SYSTEMS = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "bcachefs",
    "tmpfs", "ramfs", "overlay"})


class FileFacts:
    """The recorded facts of one repository's files, by path relative to its root."""

    def __init__(self, path: Path | None, root: Path, known: dict[str, Fact]) -> None:
        self.path = path
        self.root = root
        self.known = known
        self._learned: dict[str, Fact] = {}
        self._forgotten: set[str] = set()
        self._used: set[str] = set()
        self._prefix = os.path.join(root, "")
        self._file_systems: dict[int, str] | None = None
        #: The facts file as this run found it (see `save`).
        self._loaded: tuple[int, int, int] | None = None

    @classmethod
    def load(cls, state_dir: Path | None, root: Path) -> FileFacts:
        """The facts stored under `state_dir` (None: nowhere to keep them). Only Linux
        says which file system a file is on (`trusts`): elsewhere nothing is kept."""
        path = None if state_dir is None or not sys.platform.startswith("linux") \
            else state_dir / FILE_NAME
        loaded = _identity(path)
        stored = None if path is None else cachefile.read(path, _MAGIC, _stamp())
        facts = cls(path, root, stored if isinstance(stored, dict) else {})
        facts._loaded = loaded
        return facts

    def trusts(self, device: int) -> bool:
        """Whether a stat tells when a file on `device` (its st_dev, the file's own: a
        symlink or a bind mount may lead elsewhere) changes: the device is a mounted
        local file system (LOCAL_FILE_SYSTEMS). A device mountinfo does not list (a
        btrfs subvolume, an overlay's lower layer) is not trusted."""
        if self.path is None:
            return False
        if self._file_systems is None:
            self._file_systems = _file_systems()
        return self._file_systems.get(device) in LOCAL_FILE_SYSTEMS

    def key(self, file_path: str) -> str:
        """The key of a file of the repository: its path from the root."""
        prefix = self._prefix
        if file_path.startswith(prefix):  # a path join would cost more than the rest
            return file_path[len(prefix):]
        return os.path.relpath(file_path, self.root)

    def get(self, key: str, stat: Stat) -> Fact | None:
        """The fact recorded for the file at `key` with this stat, else None (and a fact
        recorded with another stat is dropped when this run saves)."""
        fact = self.known.get(key)
        if fact is None:
            return None
        if not _well_formed(fact) or fact[0] != stat or not self.trusts(stat[4]):
            self._forgotten.add(key)
            return None
        self._used.add(key)
        return fact

    def learn(self, key: str, fact: Fact) -> None:
        """Record a file read in full this run (one whose stat has `settled`), when its
        device is trusted."""
        if self.trusts(fact[0][4]):
            self._learned[key] = fact

    def save(self, *, complete: bool) -> None:
        """Store what this run learned beside what was known; never raises. After a run
        that looked at every folder (`complete`), only the facts it used or learned are
        kept: a file renamed or deleted leaves none behind."""
        if self.path is None:
            return
        if _identity(self.path) != self._loaded:
            # Another run wrote or discarded the file meanwhile: what this one loaded may
            # be what that one dropped, and must not be written back.
            return
        if complete:
            entries = {k: v for k, v in self.known.items() if k in self._used}
        else:
            entries = {k: v for k, v in self.known.items() if k not in self._forgotten}
        entries.update(self._learned)
        if entries.keys() != self.known.keys() or self._learned:
            cachefile.write(self.path, _MAGIC, _stamp(), entries)

    def discard(self) -> None:
        """Forget every fact: one of them did not hold (a file had other content than
        its stat said), so none is trusted again; the next run reads every file."""
        self.known = {}
        self._learned.clear()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _identity(path: Path | None) -> tuple[int, int, int] | None:
    """The facts file's inode, size and mtime, or None when there is none."""
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _file_systems() -> dict[int, str]:
    """Each mounted file system's device number and type (Linux), or {} when unknown."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return {}
    found: dict[int, str] = {}
    for line in lines:
        # ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - TYPE SOURCE ...
        fields = line.split(" ")
        try:
            major, minor = fields[2].split(":")
            kind = fields[fields.index("-", 6) + 1]
            found.setdefault(os.makedev(int(major), int(minor)), kind)
        except (ValueError, IndexError):
            continue
    return found


@functools.cache  # the modules do not change under a running process: load and save
def _stamp() -> str:
    """What every fact depends on besides the file: the format, Python, and the modules
    that compute the facts as installed (another release, or an edited checkout, has
    other files there; reading the version would cost a scan of the installed
    packages)."""
    package = os.path.dirname(os.path.dirname(__file__))
    parts = [f"format {FORMAT}", sys.version]
    for module in ("repo/discovery.py", "repo/filefacts.py", "sql/reader.py"):
        with contextlib.suppress(OSError):
            info = os.stat(os.path.join(package, module))
            parts.append(f"{module} {info.st_size} {info.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _well_formed(fact: object) -> bool:
    # Only this module writes the file, and its digest catches damage: a cheap look at
    # the shape is enough (a service's boot looks at every fact).
    return type(fact) is tuple and len(fact) == 5 and type(fact[1]) is str
