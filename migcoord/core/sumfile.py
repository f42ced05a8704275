"""Render, parse and compare migcoord.sum.

    migcoord.sum v1 sha256:<hash of every line below>
    000001 rule-service create_clients_table <sha256 up> <sha256 down>
    ...

One line per migration, sorted by version. Two branches that each take "the next"
number both change the first line and the last lines, so git reports a conflict
instead of merging two migrations numbered 000007 without a word.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import attrs

from migcoord.core.model import Migration, SqlFile

HEADER_PREFIX = "migcoord.sum v1 sha256:"
_MISSING = "-"


@attrs.frozen
class SumLine:
    version_text: str
    service: str
    name: str
    up: str
    down: str

    @property
    def version(self) -> int:
        return int(self.version_text)

    def render(self) -> str:
        return f"{self.version_text} {self.service} {self.name} {self.up} {self.down}"


@attrs.frozen
class SumFile:
    lines: tuple[SumLine, ...]
    #: The hash the header claims; None when the header is absent or unreadable.
    claimed_hash: str | None = None
    problems: tuple[tuple[int, str], ...] = ()

    @property
    def body_hash(self) -> str:
        return _hash_lines(line.render() for line in self.lines)


def lines_for(migrations: Iterable[Migration]) -> tuple[SumLine, ...]:
    """One line per migration; its name is the up file's (an up and a down of one
    version whose names differ are one migration)."""
    return tuple(
        SumLine(
            version_text=m.version_text,
            service=m.service,
            name=m.name,
            up=_file_sum(m.up),
            down=_file_sum(m.down),
        )
        for m in sorted(migrations, key=lambda m: (m.version, m.service, m.name))
    )


def _file_sum(sql_file: SqlFile | None) -> str:
    if sql_file is None or sql_file.read_error is not None:
        return _MISSING
    return sql_file.checksum


def render(migrations: Iterable[Migration]) -> str:
    return render_lines(line.render() for line in lines_for(migrations))


def render_lines(rendered: Iterable[str]) -> str:
    """The whole file for already rendered, sorted body lines."""
    body = list(rendered)
    return "\n".join([HEADER_PREFIX + _hash_lines(body), *body]) + "\n"


def parse(text: str) -> SumFile:
    """Read a sum file; unreadable lines are kept as (line number, problem) pairs.

    Git conflict markers are reported as problems, which is what `check` shows after a
    merge in which two branches both added migrations.
    """
    # Only "\n" ends a line: a migration name may hold any other character that
    # str.splitlines() would also split at (\x0b, \x1c, \x85, U+2028...).
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    problems: list[tuple[int, str]] = []
    claimed: str | None = None
    lines: list[SumLine] = []
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw.removesuffix("\r")  # a checkout with autocrlf
        if number == 1 and raw.startswith(HEADER_PREFIX):
            claimed = raw[len(HEADER_PREFIX):].strip()
            continue
        if raw.startswith(("<<<<<<<", "=======", ">>>>>>>", "|||||||")):
            problems.append((number, "git conflict marker: two branches changed migrations"))
            continue
        if not raw.strip():
            continue
        line = _parse_line(raw)
        if line is None:
            problems.append((number, f"cannot read line {raw!r}"))
            continue
        lines.append(line)
    if claimed is None:
        problems.insert(0, (1, f"first line should be '{HEADER_PREFIX}<hash>'"))
    return SumFile(lines=tuple(lines), claimed_hash=claimed, problems=tuple(problems))


def _parse_line(raw: str) -> SumLine | None:
    """`{version} {service} {name} {up} {down}`; the name may hold spaces (it is what
    lies between the service and the two sums), which `render` writes as they are."""
    head = raw.split(" ", 2)
    if len(head) != 3:
        return None
    version_text, service, rest = head
    tail = rest.rsplit(" ", 2)
    if len(tail) != 3 or not version_text.isascii() or not version_text.isdigit() or not service:
        return None
    name, up, down = tail
    if not (_is_sum(up) and _is_sum(down)):
        return None
    return SumLine(version_text, service, name, up, down)


def _is_sum(text: str) -> bool:
    return text == _MISSING or (len(text) == 64 and all(c in "0123456789abcdef" for c in text))


@attrs.frozen
class SumDifference:
    version_text: str
    service: str
    what: str


def compare(recorded: SumFile, migrations: Iterable[Migration]) -> list[SumDifference]:
    """What differs between the sum file and the files on disk, one entry per migration."""
    actual = {(line.version_text, line.service, line.name): line for line in lines_for(migrations)}
    stored = {(line.version_text, line.service, line.name): line for line in recorded.lines}
    differences: list[SumDifference] = []
    for key in sorted(actual.keys() | stored.keys(), key=lambda k: (int(k[0]), k[1], k[2])):
        version_text, service, name = key
        have, want = actual.get(key), stored.get(key)
        if want is None:
            differences.append(SumDifference(version_text, service,
                                             f"{version_text}_{name} is not in migcoord.sum"))
        elif have is None:
            differences.append(SumDifference(version_text, service,
                                             f"migcoord.sum lists {version_text}_{name}, "
                                             "which is not on disk"))
        else:
            changed = [d for d, a, b in (("up", have.up, want.up), ("down", have.down, want.down))
                       if a != b]
            if changed:
                differences.append(SumDifference(
                    version_text, service,
                    f"{version_text}_{name}: the {' and '.join(changed)} file changed since "
                    "migcoord.sum was written"))
    return differences


def _hash_lines(lines: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
