"""Render, parse and compare migcoord.sum, the allocation ledger (pure).

    migcoord.sum v2 sha256:<hash of every line below> - if git reports a conflict ...
    000001 rule-service create_clients_table
    000006 aggregator create_notifications_table

One line per migration, sorted by version: which service took which number, under which
name. Two branches that each take "the next" number both change the first line and the
last lines, so git reports a conflict instead of merging two migrations numbered 000007
without a word; the first line says what to do then (`migcoord resolve`).

The lines hold no content hash: editing a migration's SQL does not change the ledger
(`check --against` and the database's `modified` state catch the edits that matter).
The earlier format (`migcoord.sum v1`, with a sha256 of each file after the name) is
still read, and is rewritten in this one by the next write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import attrs

from migcoord.core.model import Migration

HEADER_PREFIX = "migcoord.sum v2 sha256:"
#: What the first line tells someone who opens the file during a merge.
HEADER_ADVICE = "- if git reports a conflict in this file, run: migcoord resolve"
_OLD_HEADER_PREFIX = "migcoord.sum v1 sha256:"
_CONFLICT_MARKERS = ("<<<<<<<", "=======", ">>>>>>>", "|||||||")
_NO_FILE = "-"


@attrs.frozen
class SumLine:
    version_text: str
    service: str
    name: str

    @property
    def version(self) -> int:
        return int(self.version_text)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.version_text, self.service, self.name)

    def render(self) -> str:
        return f"{self.version_text} {self.service} {self.name}"


@attrs.frozen
class SumFile:
    lines: tuple[SumLine, ...]
    #: The hash the header claims; None when the header is absent or unreadable.
    claimed_hash: str | None = None
    #: The hash of the body lines as they are written in the file.
    body_hash: str = ""
    problems: tuple[tuple[int, str], ...] = ()
    #: Whether git left conflict markers in the file (a merge or rebase in progress).
    conflicted: bool = False
    #: Whether the file is in the earlier format (a sha256 per file), rewritten on the next write.
    old_format: bool = False


def lines_for(migrations: Iterable[Migration]) -> tuple[SumLine, ...]:
    """One line per migration, sorted; its name is the up file's (an up and a down of
    one version whose names differ are one migration)."""
    return sort_lines(SumLine(m.version_text, m.service, m.name) for m in migrations)


def sort_lines(lines: Iterable[SumLine]) -> tuple[SumLine, ...]:
    """Distinct lines in the file's order: by version, then service and name."""
    return tuple(sorted(set(lines), key=lambda line: (line.version, line.service, line.name)))


def render(migrations: Iterable[Migration]) -> str:
    return render_lines(lines_for(migrations))


def render_lines(lines: Iterable[SumLine]) -> str:
    """The whole file for sorted lines."""
    body = [line.render() for line in lines]
    return "\n".join([f"{HEADER_PREFIX}{_hash_lines(body)} {HEADER_ADVICE}", *body]) + "\n"


def parse(text: str) -> SumFile:
    """Read a sum file of either format; unreadable lines are kept as (line number,
    problem) pairs.

    Git conflict markers are problems too, yet the lines between them are read: after a
    merge in which two branches both added migrations, the lines of both sides are
    here, which is what `migcoord resolve` needs.
    """
    # Only "\n" ends a line: a migration name may hold any other character that
    # str.splitlines() would also split at (\x0b, \x1c, \x85, U+2028...).
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    problems: list[tuple[int, str]] = []
    claimed: str | None = None
    old_format = False
    body: list[str] = []
    lines: list[SumLine] = []
    markers: list[int] = []
    # A checkout with autocrlf ends every line with "\r\n"; only then is the "\r" not
    # part of the line (a name may end with one).
    crlf = bool(raw_lines) and all(raw.endswith("\r") for raw in raw_lines)
    for number, raw in enumerate(raw_lines, start=1):
        if crlf:
            raw = raw[:-1]
        header = _header_hash(raw)
        if header is not None:
            # Inside a conflict the header is on a later line, once per side.
            if claimed is None:
                claimed, old_format = header, raw.startswith(_OLD_HEADER_PREFIX)
            continue
        if raw.startswith(_CONFLICT_MARKERS):
            markers.append(number)
            continue
        if not raw.strip():
            continue
        line = _parse_line(raw)
        if line is None:
            problems.append((number, f"cannot read line {raw!r}"))
            continue
        body.append(raw)
        lines.append(line)
    if markers:
        problems.insert(0, (markers[0], "git left a merge conflict in it (markers on lines "
                            f"{', '.join(map(str, markers))}): two branches added migrations"))
    elif claimed is None:
        problems.insert(0, (1, f"first line should be '{HEADER_PREFIX}<hash> ...'"))
    return SumFile(lines=tuple(lines), claimed_hash=claimed, body_hash=_hash_lines(body),
                   problems=tuple(problems), conflicted=bool(markers), old_format=old_format)


def _header_hash(raw: str) -> str | None:
    for prefix in (HEADER_PREFIX, _OLD_HEADER_PREFIX):
        if raw.startswith(prefix):
            rest = raw[len(prefix):].strip()
            return rest.split(" ", 1)[0] if rest else ""
    return None


def _parse_line(raw: str) -> SumLine | None:
    """`{version} {service} {name}`: the name is the rest of the line and may hold
    spaces. A line of the earlier format ends with two file sums, which are dropped."""
    head = raw.split(" ", 2)
    if len(head) != 3:
        return None
    version_text, service, name = head
    if not version_text.isascii() or not version_text.isdigit() or not service or not name:
        return None
    old = name.rsplit(" ", 2)
    if len(old) == 3 and old[0] and _is_file_sum(old[1]) and _is_file_sum(old[2]):
        name = old[0]
    return SumLine(version_text, service, name)


def _is_file_sum(text: str) -> bool:
    return text == _NO_FILE or (len(text) == 64 and all(c in "0123456789abcdef" for c in text))


def is_conflict_marker(line: str) -> bool:
    """Whether a line is one git writes around a conflict (`<<<<<<< HEAD`, `>>>>>>> x`).

    `=======` alone is left out: in Markdown it underlines a heading."""
    return line.startswith(("<<<<<<< ", ">>>>>>> ")) or line in ("<<<<<<<", ">>>>>>>")


@attrs.frozen
class SumDifference:
    version_text: str
    service: str
    what: str


def compare(recorded: SumFile, migrations: Iterable[Migration]) -> list[SumDifference]:
    """What differs between the ledger and the files on disk, one entry per migration."""
    actual = {(m.version_text, m.service, m.name) for m in migrations}  # lines_for's keys
    stored = {line.key for line in recorded.lines}
    differences: list[SumDifference] = []
    for key in sorted(actual ^ stored, key=lambda k: (int(k[0]), k[1], k[2])):
        version_text, service, name = key
        what = (f"{version_text}_{name} is not in migcoord.sum" if key in actual else
                f"migcoord.sum lists {version_text}_{name}, which is not on disk")
        differences.append(SumDifference(version_text, service, what))
    return differences


def _hash_lines(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
