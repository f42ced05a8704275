"""Decide version numbers: the next free one, and what a renumber rewrites.

Pure: it decides, `workspace` writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from migcoord.errors import RefusedError, UsageError
from migcoord.model import Catalog, Config, Migration, format_version
from migcoord.naming import format_filename


def next_version(catalog: Catalog, config: Config, service: str) -> int:
    """The number `create` gives service's next migration.

    One global sequence: one past the highest version of any service, stepping over
    ranges reserved for other services. A service with its own reserved range uses the
    free numbers left at the top of that range first.
    """
    used = {m.version for m in catalog.migrations}
    own = config.service(service)
    if own is not None and own.reserved is not None:
        used_in_range = [v for v in used if v in own.reserved]
        start = max(used_in_range, default=own.reserved.first - 1) + 1
        if start <= own.reserved.last:
            return start
    candidate = max(used, default=0) + 1
    others = [s.reserved for s in config.services if s.reserved is not None and s.name != service]
    moved = True
    while moved:
        moved = False
        for reservation in others:
            if candidate in reservation:
                candidate = reservation.last + 1
                moved = True
    return candidate


@attrs.frozen
class FileMove:
    source: Path
    target: Path


@attrs.frozen
class TextEdit:
    path: Path
    old: str
    new: str


@attrs.frozen
class RenumberPlan:
    migration: Migration
    new_version: int
    new_version_text: str
    moves: tuple[FileMove, ...]
    edits: tuple[TextEdit, ...]
    #: Bare references elsewhere that may mean either migration of a duplicated version.
    ambiguous: tuple[str, ...] = ()


_DEPENDS_LINE = re.compile(r"^(\s*--\s*migcoord\s*:\s*depends\s+)(.*)$", re.MULTILINE)


def plan_renumber(catalog: Catalog, config: Config, version: int, service: str,
                  to: int | None = None) -> RenumberPlan:
    """Move `service`'s migration `version` to `to` (default: the next free number).

    References in `-- migcoord:depends` lines move with it: `service:old` everywhere;
    a bare `old` everywhere when the version is unique, else only in service's own
    files (elsewhere it is ambiguous and listed, not guessed).
    """
    mine = [m for m in catalog.for_service(service) if m.version == version]
    if not mine:
        raise UsageError(
            f"{service} has no migration numbered {format_version(version, config.version_width)}",
            hint=f"`migcoord status --service {service}` lists its migrations",
        )
    if len(mine) > 1:
        names = ", ".join(m.label for m in mine)
        raise RefusedError(f"{service} has two migrations numbered {version}: {names}",
                           hint="rename one of them by hand first")
    migration = mine[0]
    others_with_version = [m for m in catalog.migrations
                           if m.version == version and m is not migration]
    if to is None:
        rest = Catalog.of(
            attrs.evolve(f, migrations=tuple(m for m in f.migrations if m is not migration))
            for f in catalog.folders)
        to = next_version(rest, config, service)
    taken = [m for m in catalog.migrations if m.version == to and m is not migration]
    if taken:
        raise RefusedError(f"version {to} is already used by {taken[0].service}/{taken[0].label}",
                           hint="choose a free number, or leave out --to for the next free one")
    width = max(config.version_width, len(migration.version_text))
    new_text = format_version(to, width)
    moves = []
    for direction, sql_file in (("up", migration.up), ("down", migration.down)):
        if sql_file is None:
            continue
        target = sql_file.path.with_name(
            format_filename(to, migration.name, direction, width))  # type: ignore[arg-type]
        moves.append(FileMove(sql_file.path, target))

    edits: list[TextEdit] = []
    ambiguous: list[str] = []
    for other in catalog.migrations:
        if other.up is None or other.up.text is None:
            continue
        if not any(ref.version == version for ref in other.directives.depends):
            continue
        bare_allowed = not others_with_version or other.service == service
        new_text_file, skipped = _rewrite_depends(other.up.text, version, service, new_text,
                                                  bare_allowed)
        if skipped:
            ambiguous.append(f"{other.up.path}: {', '.join(skipped)}")
        if new_text_file != other.up.text:
            edits.append(TextEdit(other.up.path, other.up.text, new_text_file))
    return RenumberPlan(migration=migration, new_version=to, new_version_text=new_text,
                        moves=tuple(moves), edits=tuple(edits), ambiguous=tuple(ambiguous))


def _rewrite_depends(text: str, version: int, service: str, new: str,
                     bare_allowed: bool) -> tuple[str, list[str]]:
    skipped: list[str] = []

    def rewrite_item(item: str) -> str:
        stripped = item.strip()
        owner, _, number = stripped.rpartition(":")
        owner = owner.strip()
        number = number.strip()
        if not number.isdigit() or int(number) != version:
            return item
        if owner:
            return item.replace(stripped, f"{service}:{new}") if owner == service else item
        if not bare_allowed:
            skipped.append(stripped)
            return item
        return item.replace(stripped, new)

    def rewrite_line(match: re.Match[str]) -> str:
        return match.group(1) + ",".join(rewrite_item(i) for i in match.group(2).split(","))

    return _DEPENDS_LINE.sub(rewrite_line, text), skipped
