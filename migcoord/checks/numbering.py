"""Rules on the one version sequence every service shares, and on migcoord.sum.

`duplicate-version`, `version-width`, `gap`, `reserved-range` and `sum-mismatch`.
`Ledger` says which service owns each version, including services whose folder is
absent from this checkout (from migcoord.sum); `gap` and the dependency rules judge
against it.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping

import attrs

from migcoord.checks._located import finding_at
from migcoord.core import duplicates, sumfile
from migcoord.core.model import Catalog, Config, Finding, Migration, Reservation, format_version
from migcoord.core.naming import TIMESTAMP_WIDTH
from migcoord.core.numbering import GAP_HINT_COMMANDS, close_gap
from migcoord.core.resolution import MergeSides


@attrs.frozen
class Ledger:
    """Which service owns each version, including services whose folder is not here.

    A deployed image holds one service's folder; migcoord.sum still lists every
    migration, so numbers of absent folders are known from it. `complete` is False when
    a folder is absent and no readable sum says what it holds.
    """

    #: version -> the services that have a migration with it (two during a collision)
    owners: Mapping[int, tuple[str, ...]]
    complete: bool
    #: During a merge or rebase, or with `check --against`: what the other side has.
    sides: MergeSides | None = None

    @classmethod
    def of(cls, catalog: Catalog, sum_text: str | None,
           sides: MergeSides | None = None) -> Ledger:
        owners: dict[int, tuple[str, ...]] = {}

        def add(version: int, service: str) -> None:
            if service not in owners.get(version, ()):
                owners[version] = (*owners.get(version, ()), service)

        for migration in catalog.migrations:
            add(migration.version, migration.service)
        absent = set(catalog.absent_services)
        if not absent:
            return cls(owners, True, sides)
        recorded = sumfile.parse(sum_text) if sum_text is not None else None
        if recorded is None or recorded.problems:
            return cls(owners, False, sides)
        for line in recorded.lines:
            if line.service in absent:
                add(line.version, line.service)
        return cls(owners, True, sides)


def duplicate_version(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    by_version: dict[int, list[Migration]] = defaultdict(list)
    for migration in catalog.migrations:
        by_version[migration.version].append(migration)
    for version, group in by_version.items():
        if len(group) < 2:
            continue
        names = ", ".join(f"{m.service}/{m.label}" for m in group)
        # The same for each of the group, and planning the move is the costly part: once.
        plain = functools.cache(functools.partial(_plain_duplicate_hint, catalog, config, group))
        for migration in group:
            yield finding_at(
                migration, "duplicate-version",
                f"version {format_version(version, config.version_width)} is used "
                f"{len(group)} times: {names}",
                hint=_duplicate_hint(ledger.sides, migration, group, plain),
            )


def _duplicate_hint(sides: MergeSides | None, migration: Migration, group: list[Migration],
                    plain: Callable[[], str]) -> str:
    """Which of the group moves, and the command that moves it: this branch's, never one
    the other side of the merge already has (git tells which, when a merge or rebase is
    in progress or with --against); else `plain`."""
    if sides is not None:
        theirs = [m for m in group if sides.has(m)]
        if theirs and len(theirs) < len(group):
            if sides.has(migration):
                return (f"keep this one: {sides.label} has it. `{sides.command}` moves this "
                        "branch's migration with the same number (and this branch's later ones)"
                        " after the other side's")
            return (f"this branch's migration moves: {sides.label} already has "
                    + ", ".join(f"{m.service}/{m.label}" for m in theirs)
                    + f". `{sides.command}` moves it (and this branch's later ones) after "
                    "the other side's, with the references and migcoord.sum")
    return plain()


def _plain_duplicate_hint(catalog: Catalog, config: Config, group: list[Migration]) -> str:
    # `up` and `status` report this rule on the folders they read, which may be only
    # some: the command is right there too, a number it would move to might not be.
    return (duplicates.describe([duplicates.move_for(catalog, config, group)], targets=False)
            + "; during the merge or rebase that brought them together, `migcoord resolve` "
            "moves your branch's (before merging: `migcoord resolve --onto <ref>`, the "
            "branch you merge into, e.g. origin/main)")


def version_width(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    width = config.version_width
    for migration in catalog.migrations:
        if len(migration.version_text) != width:
            expected = format_version(migration.version, width)
            yield finding_at(
                migration, "version-width",
                f"version {migration.version_text!r} is {len(migration.version_text)} digits "
                f"wide; this project writes {width} (read as {migration.version})",
                hint=f"rename the files to {expected}_{migration.name}.up.sql/.down.sql "
                "(the version number stays the same), or set version_width in migcoord.toml",
            )


def gap(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    if config.version_width >= TIMESTAMP_WIDTH or not ledger.complete:
        return
    by_version = catalog.by_version()
    versions = sorted(ledger.owners)
    reserved = [s.reserved for s in config.services if s.reserved is not None]
    if not versions:
        return
    adopted = config.adopted_through
    for first, last in _holes(versions, reserved):
        if adopted is not None and last < adopted:
            continue  # numbered before migcoord: a history's gaps are not ours to close
        message = (f"version {_span(first, last, config.version_width)} is missing: the "
                   "numbers form one sequence across all services, with no skips")
        next_version = versions[bisect.bisect_right(versions, last)]
        after = by_version.get(next_version)
        if after is None:
            yield Finding.of("gap", message, path=config.sum_path,
                             service=ledger.owners[next_version][0], version=next_version,
                             hint="restore the missing migration")
            continue
        missing = format_version(first, config.version_width)
        yield finding_at(
            after, "gap", message,
            # Never "move it into the gap" first: after `resolve --onto`, the gap is the
            # number the other branch took, and moving into it recreates the collision.
            hint=f"if another branch took {missing} (`migcoord check --against origin/main` "
            "shows it), the gap closes when you merge that branch into this one "
            f"(`git merge`, then `migcoord resolve`); if the migration at {missing} was "
            "deleted, restore it; " + _close_hint(
                catalog, config, first, last,
                here=all(v in by_version for v in versions if v > last)),
        )


def _close_hint(catalog: Catalog, config: Config, first: int, last: int, *,
                here: bool) -> str:
    """The renumber commands that close the gap (never ones that only move it up); none
    unless every migration after it is `here` (not in an absent folder)."""
    moves = close_gap(catalog, first, last) if here else []
    if not moves:
        return ("only if no branch has it and the migrations after it were never applied "
                "anywhere, renumber them down into it, lowest first, in a checkout with every "
                "service's folder")
    commands = [f"`migcoord renumber {m.version_text} --service {m.service} --to "
                f"{format_version(to, max(config.version_width, len(m.version_text)))}`"
                for m, to in moves]
    moved = (f"{moves[0][0].service} {moves[0][0].label} was" if len(moves) == 1
             else f"the {len(moves)} migrations it moves were")
    if len(commands) > GAP_HINT_COMMANDS:
        shown = " then ".join(commands[:GAP_HINT_COMMANDS])
        rest = (f" then each of the {len(commands) - GAP_HINT_COMMANDS} later migrations "
                f"down by {last - first + 1} the same way, lowest first")
    else:
        shown, rest = " then ".join(commands), ""
    return (f"only if no branch has it and {moved} never applied anywhere, close it: "
            f"{shown}{rest}")


def _holes(versions: list[int], reserved: list[Reservation]) -> Iterator[tuple[int, int]]:
    """The runs of missing numbers between consecutive `versions` (sorted, distinct),
    leaving out reserved ranges: [1, 2, 5] -> (3, 4). Works on the runs' ends only, so
    a version far above the others costs nothing (a 20-digit one once made this rule
    build a range of that size)."""
    ranges = sorted((r.first, r.last) for r in reserved)
    for low, high in itertools.pairwise(versions):
        start = low + 1
        for first, last in ranges:
            if last < start or first >= high:
                continue
            if first > start:
                yield start, first - 1
            start = max(start, last + 1)
        if start < high:
            yield start, high - 1


def _span(first: int, last: int, width: int) -> str:
    if first == last:
        return format_version(first, width)
    return f"{format_version(first, width)}-{format_version(last, width)}"


def reserved_range(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for service in config.services:
            if service.reserved is None or service.name == migration.service:
                continue
            if migration.version in service.reserved:
                yield finding_at(
                    migration, "reserved-range",
                    f"version {migration.version_text} of {migration.service} lies in "
                    f"{service.reserved.first}-{service.reserved.last}, reserved for "
                    f"{service.name}",
                    hint=f"`migcoord renumber {migration.version_text} --service "
                    f"{migration.service}` moves it to the next free number",
                )


def sum_mismatch(catalog: Catalog, config: Config, sum_text: str | None) -> Iterator[Finding]:
    """migcoord.sum (`sum_text`, None when the file is absent) against the files here:
    the versions, services and names it lists (editing SQL changes none of them). The
    lines of services whose folder is absent are not judged."""
    path = config.sum_path
    migrations = list(catalog.migrations)
    # `migcoord sum` refuses while two migrations share a number: part them first.
    shared = duplicates.moves(catalog, config)
    parted = ("migcoord.sum gives each number to one migration, and two share one "
              "(duplicate-version): " + duplicates.describe(shared)) if shared else None
    if sum_text is None:
        if migrations:
            yield Finding.of("sum-mismatch", "migcoord.sum does not exist", path=path,
                             hint=parted or "run `migcoord sum` to write it, and commit it")
        return
    recorded = sumfile.parse(sum_text)
    hint = _CONFLICT_HINT if recorded.conflicted else parted or _SUM_HINT
    for line, problem in recorded.problems:
        yield Finding.of("sum-mismatch", problem, path=path, line=line, hint=hint)
    absent = set(catalog.absent_services)
    judged = recorded if not absent else attrs.evolve(recorded, lines=tuple(
        line for line in recorded.lines if line.service not in absent))
    for difference in sumfile.compare(judged, migrations):
        yield Finding.of("sum-mismatch", difference.what, path=path,
                         service=difference.service, version=int(difference.version_text),
                         hint=hint)
    if (not recorded.problems and recorded.claimed_hash is not None
            and recorded.claimed_hash != recorded.body_hash):
        yield Finding.of("sum-mismatch",
                         "the first line's hash does not match the lines below it "
                         "(the file was edited by hand)", path=path, line=1,
                         hint=parted or _SUM_HINT)


_SUM_HINT = ("migcoord.sum lists each migration's version, service and name; after a "
             "deliberate rename, run `migcoord sum` and commit it (after a merge that "
             "brought two migrations of one number together: `migcoord resolve`)")
_CONFLICT_HINT = ("git left a conflict in migcoord.sum: run `migcoord resolve` (during the "
                  "merge or rebase; before one, `migcoord resolve --onto <ref>`), which "
                  "moves your branch's migrations after the other side's and rewrites it")
