"""Decide version numbers: the next free one, and what a renumber rewrites.

Pure: it decides, `workspace` writes.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import attrs

from migcoord.core.model import Catalog, Config, Direction, Migration, format_version
from migcoord.core.naming import format_filename
from migcoord.errors import RefusedError, UsageError


def next_version(catalog: Catalog, config: Config, service: str) -> int:
    """The number `create` gives service's next migration.

    One global sequence: one past the highest version of any service, stepping over
    ranges reserved for other services. A service with its own reserved range uses the
    free numbers left at the top of that range first.
    """
    return next_free({m.version for m in catalog.migrations}, config, service)


def next_free(used: set[int], config: Config, service: str) -> int:
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
class LeftReferences:
    """The bare `depends` references of one file that a move left unchanged: each may
    mean either migration of a number two migrations had."""

    path: Path
    references: tuple[str, ...]

    def describe(self, shown_path: str) -> str:
        """`path: 0005, 0007`, with the path written as the caller shows paths."""
        return f"{shown_path}: {', '.join(self.references)}"


@attrs.frozen
class Renumbering:
    """One migration's move."""

    migration: Migration
    new_version: int
    new_version_text: str


@attrs.frozen
class RenumberPlan:
    #: The requested migration first, then the same service's later ones that follow it.
    renumberings: tuple[Renumbering, ...]
    moves: tuple[FileMove, ...]
    edits: tuple[TextEdit, ...]
    #: Bare references elsewhere that may mean either migration of a duplicated version.
    ambiguous: tuple[LeftReferences, ...] = ()
    #: The service's other migrations with a moved one's number (a duplicate-version):
    #: they keep it.
    staying: tuple[Migration, ...] = ()

    @property
    def migration(self) -> Migration:
        return self.renumberings[0].migration

    @property
    def new_version(self) -> int:
        return self.renumberings[0].new_version

    @property
    def new_version_text(self) -> str:
        return self.renumberings[0].new_version_text


DEPENDS_LINE = re.compile(r"^(\s*--\s*migcoord\s*:\s*depends\s+)(.*)$", re.MULTILINE)
#: One comma-separated item of a depends line: `service:number` or a bare number.
DEPENDS_ITEM = re.compile(r"^\s*(?:(?P<service>[^:,\s]+)\s*:\s*)?(?P<number>\d+)\s*$")


def plan_renumber(catalog: Catalog, config: Config, version: int, service: str,
                  to: int | None = None, *, name: str | None = None) -> RenumberPlan:
    """Move `service`'s migration `version` (the one called `name`, when two of the
    service's migrations share that number), with the references to it.

    Without `to` (after a merge collision): the migration and the same service's later
    migrations, which must stay after it, move to the numbers after every other
    migration, consecutively, so the sequence keeps no gap. With `to` (e.g. into a gap):
    only this migration moves, and only where it stays in its service's order.

    `depends` references follow: `service:old` everywhere; a bare `old` everywhere when
    the version is unique, else only in service's own files (elsewhere it is ambiguous
    and listed, not guessed), and nowhere when two of service's own migrations share it.
    """
    migration = _the_migration(catalog, config, version, service, name)
    if to is None:
        # The migration and its service's later ones; another of the same number stays.
        tail = [m for m in catalog.for_service(service)
                if m.version > version or m is migration]
        in_tail = {id(m) for m in tail}
        others = {m.version for m in catalog.migrations if id(m) not in in_tail}
        targets = _consecutive(others, config, service, len(tail))
        if targets[0] == version:
            raise UsageError(
                f"{service} {migration.label} already follows every other migration; "
                "there is nothing to renumber",
                hint="give --to V to move it to a particular number")
        moving = list(zip(tail, targets, strict=True))
    else:
        _refuse_target(catalog, config, migration, to)
        moving = [(migration, to)]

    width = max(config.version_width, len(migration.version_text))
    renumberings = tuple(Renumbering(m, new, format_version(new, width)) for m, new in moving)
    # By identity: comparing migrations as values hashes every file they hold.
    moved = {id(item.migration) for item in renumberings}
    _refuse_passing_dependents(catalog, renumberings, moved)
    edits, ambiguous = _reference_edits(catalog, renumberings, service)
    old = {item.migration.version for item in renumberings}
    staying = tuple(m for m in catalog.for_service(service)
                    if m.version in old and id(m) not in moved)
    return RenumberPlan(renumberings=renumberings, moves=file_moves(renumberings, width),
                        edits=edits, ambiguous=ambiguous, staying=staying)


def _the_migration(catalog: Catalog, config: Config, version: int, service: str,
                   name: str | None) -> Migration:
    mine = [m for m in catalog.for_service(service) if m.version == version]
    number = mine[0].version_text if mine else format_version(version, config.version_width)
    named = [m for m in mine if name is None or m.name == name]
    if not named:
        raise UsageError(
            f"{service} has no migration {number}_{name}" if mine and name is not None
            else f"{service} has no migration numbered {number}",
            hint=(f"{service}'s migrations numbered {number}: "
                  + ", ".join(m.label for m in mine)) if mine else
            f"`migcoord status --service {service}` lists its migrations",
        )
    if len(named) > 1:
        labels = [m.label for m in named]
        raise RefusedError(
            f"{service} has {len(named)} migrations numbered {number}: {', '.join(labels)}",
            hint="name the one to move (the one applied nowhere) by its version and name: "
            + " or ".join(f"`migcoord renumber {label} --service {service}`"
                          for label in labels[::-1]))
    return named[0]


def file_moves(renumberings: tuple[Renumbering, ...], width: int) -> tuple[FileMove, ...]:
    """Every file to rename: up, down and verify file of each migration, highest first,
    so that a service's tail shifts up over its own old numbers."""
    moves = []
    directions: tuple[Direction, Direction] = ("up", "down")
    for item in sorted(renumberings, key=lambda r: r.migration.version, reverse=True):
        m = item.migration
        for direction, sql_file in zip(directions, (m.up, m.down), strict=True):
            if sql_file is None:
                continue
            # Each file keeps its own name: golang-migrate pairs halves by version, and
            # real histories have an up and a down of one version named differently.
            target = sql_file.path.with_name(
                format_filename(item.new_version, sql_file.name, direction, width))
            moves.append(FileMove(sql_file.path, target))
        if m.verify_path is not None:
            moves.append(FileMove(m.verify_path, m.verify_path.with_name(
                f"{item.new_version_text}_{m.name}.verify.sql")))
    return tuple(moves)


def _reference_edits(catalog: Catalog, renumberings: tuple[Renumbering, ...], service: str,
                     ) -> tuple[tuple[TextEdit, ...], tuple[LeftReferences, ...]]:
    """The `depends` lines to rewrite, and the references left alone as ambiguous."""
    mapping = {item.migration.version: item.new_version_text for item in renumberings}
    # A number that two migrations had is ambiguous whether one of them stays or both
    # move (then to two different numbers): a bare reference to it is never guessed.
    uses = Counter(m.version for m in catalog.migrations)
    duplicated = {v for v in mapping if uses[v] > 1}
    # Shared within `service` itself: `service:number` and its own bare ones are ambiguous too.
    own_uses = Counter(m.version for m in catalog.for_service(service))
    own_shared = {v for v in duplicated if own_uses[v] > 1}
    edits: list[TextEdit] = []
    ambiguous: list[LeftReferences] = []
    for other in catalog.migrations:
        if other.up is None or other.up.text is None:
            continue
        if not any(ref.version in mapping for ref in other.directives.depends):
            continue
        new_text_file, skipped = _rewrite_depends(other.up.text, mapping, service,
                                                  duplicated, other.service == service,
                                                  own_shared)
        if skipped:
            ambiguous.append(LeftReferences(other.up.path, tuple(skipped)))
        if new_text_file != other.up.text:
            edits.append(TextEdit(other.up.path, other.up.text, new_text_file))
    return tuple(edits), tuple(ambiguous)


def _consecutive(used: set[int], config: Config, service: str, count: int) -> list[int]:
    """`count` numbers for service after every number in `used`, as `create` would give."""
    # next_free looks only at the highest number used and the highest in the service's
    # reserved range: keep just those, not every number of the repository, per step.
    own = config.service(service)
    highest_own = max((v for v in used if own is not None and own.reserved is not None
                       and v in own.reserved), default=None)
    taken = {v for v in (max(used, default=None), highest_own) if v is not None}
    numbers = []
    for _ in range(count):
        number = next_free(taken, config, service)
        numbers.append(number)
        taken.add(number)
    return numbers


def _refuse_passing_dependents(catalog: Catalog, renumberings: tuple[Renumbering, ...],
                               moved: set[int]) -> None:
    """A migration may not move to a number at or after one that depends on it (`moved`:
    the id() of each migration that moves)."""
    uses = Counter(m.version for m in catalog.migrations)
    # Each migration that depends on a number, by that number, in catalog order: a move
    # looks only at those (most migrations depend on nothing).
    dependents: dict[int, list[Migration]] = defaultdict(list)
    for other in catalog.migrations:
        for number in dict.fromkeys(ref.version for ref in other.directives.depends):
            dependents[number].append(other)
    for item in renumberings:
        old = item.migration
        # A bare number shared by two migrations is ambiguous outside old's service.
        shared = uses[old.version] > 1
        for other in dependents.get(old.version, ()):
            if id(other) in moved or other.version > item.new_version:
                continue
            if any(ref.version == old.version
                   and (ref.service == old.service
                        or (ref.service is None and (not shared or other.service == old.service)))
                   for ref in other.directives.depends):
                raise RefusedError(
                    f"{old.service} {old.label} would move to "
                    f"{item.new_version_text}, after {other.service} {other.label}, which "
                    "depends on it",
                    hint=f"renumber {other.service}'s {other.version_text} as well "
                    f"(`migcoord renumber {other.version_text} --service {other.service}`, "
                    "first), or choose --to")


def _refuse_target(catalog: Catalog, config: Config, migration: Migration, to: int) -> None:
    taken = [m for m in catalog.migrations if m.version == to and m is not migration]
    if taken:
        raise RefusedError(f"version {format_version(to, config.version_width)} is already "
                           f"used by {taken[0].service}/{taken[0].label}",
                           hint="choose a free number, or leave out --to")
    own = [m.version for m in catalog.for_service(migration.service) if m is not migration]
    before = [v for v in own if v < migration.version]
    after = [v for v in own if v > migration.version]
    if (before and to < max(before)) or (after and to > min(after)):
        raise RefusedError(
            f"moving {migration.label} to {format_version(to, config.version_width)} would "
            f"change the order of {migration.service}'s migrations",
            hint="leave out --to to move it with the service's later migrations")


def _rewrite_depends(text: str, mapping: dict[int, str], service: str,
                     duplicated: set[int], own_file: bool,
                     own_shared: set[int]) -> tuple[str, list[str]]:
    skipped: list[str] = []

    def rewrite_item(item: str) -> str:
        stripped = item.strip()
        owner, _, number = stripped.rpartition(":")
        owner = owner.strip()
        number = number.strip()
        if not number.isdigit() or int(number) not in mapping:
            return item
        new = mapping[int(number)]
        if int(number) in own_shared and owner in ("", service):
            skipped.append(stripped)
            return item
        if owner:
            return item.replace(stripped, f"{service}:{new}") if owner == service else item
        if int(number) in duplicated and not own_file:
            skipped.append(stripped)
            return item
        return item.replace(stripped, new)

    def rewrite_line(match: re.Match[str]) -> str:
        return match.group(1) + ",".join(rewrite_item(i) for i in match.group(2).split(","))

    return DEPENDS_LINE.sub(rewrite_line, text), skipped


#: A hint lists at most this many `renumber` commands; a longer tail is described.
GAP_HINT_COMMANDS = 4


def close_gap(catalog: Catalog, first: int, last: int) -> list[tuple[Migration, int]]:
    """The `renumber --to` moves, in the order to run them, that close the gap of
    numbers `first`..`last` without opening another one: (migration, its new number).

    The highest migrations move down into the gap when each keeps its service's order
    and its dependencies before it: one command for a gap of one. Otherwise every
    migration after the gap moves down by the gap's size, lowest first, which keeps
    every order. [] when a migration concerned is not here (an absent folder) or shares
    its number (`resolve` first).
    """
    size = last - first + 1
    ordered = sorted(catalog.migrations, key=lambda m: m.version)
    versions = [m.version for m in ordered]
    if len(set(versions)) != len(versions):
        return []
    above = [m for m in ordered if m.version > last]
    top = above[-size:]
    if len(top) == size and top[0].version > last and _may_jump(ordered, top, first):
        return [(m, first + i) for i, m in enumerate(top)]
    return [(m, m.version - size) for m in above]


def _may_jump(ordered: list[Migration], movers: list[Migration], first: int) -> bool:
    """Whether `movers` (ascending), moved one by one to `first`, `first + 1`, ..., stay
    after their service's other migrations and after what they depend on."""
    moving = {id(m) for m in movers}
    for i, mover in enumerate(movers):
        target = first + i
        passed = [m for m in ordered if id(m) not in moving and target < m.version < mover.version]
        if any(m.service == mover.service for m in passed):
            return False
        if any(m.version in mover.depends_on for m in passed):
            return False
    return True
