"""How to part migrations that share a version (a `duplicate-version`), as commands (pure).

The one step that works in every such tree is `migcoord renumber`: it moves one of them
(named by version and name where both are one service's) to the next free number, with
its service's later migrations and the references to it, and rewrites migcoord.sum and
the docs file. `check`, `sum` and `resolve` give these commands in their hints:

    moves = duplicates.moves(catalog, config)
    hint = duplicates.describe(moves)

Which of two migrations is "applied nowhere" is not known from the files: the command
moves the last of them (by service and name), and the text says to name the other one
when that one is applied somewhere. During a merge or rebase, `resolve` knows the sides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import attrs

from migcoord.core.model import Catalog, Config, Migration
from migcoord.core.numbering import RenumberPlan, plan_renumber
from migcoord.errors import MigcoordError


@attrs.frozen
class DuplicateMove:
    """One `renumber` command that parts one group of migrations sharing a version."""

    #: The migrations that share the number (before the command), in catalog order.
    shared: tuple[Migration, ...]
    #: The one the command moves.
    migration: Migration
    command: str
    #: Its new number; None when renumber refuses it as things are (its refusal says why).
    new_version_text: str | None
    #: How many of its service's later migrations move with it (they must stay after it).
    carried: int = 0

    @property
    def others(self) -> tuple[Migration, ...]:
        return tuple(m for m in self.shared if m is not self.migration)


def move_for(catalog: Catalog, config: Config, shared: Sequence[Migration]) -> DuplicateMove:
    """The command that moves the last of `shared` (migrations of one version), and
    where it goes in `catalog` as it is."""
    return _move_and_plan(catalog, config, shared)[0]


def _move_and_plan(catalog: Catalog, config: Config, shared: Sequence[Migration],
                   ) -> tuple[DuplicateMove, RenumberPlan | None]:
    migration = shared[-1]
    # renumber names a migration by version; by version and name where that is ambiguous.
    by_name = sum(1 for m in shared if m.service == migration.service) > 1
    command = command_for(migration, shared)
    try:
        plan: RenumberPlan | None = plan_renumber(
            catalog, config, migration.version, migration.service,
            name=migration.name if by_name else None)
    except MigcoordError:
        plan = None
    if plan is None:
        return DuplicateMove(tuple(shared), migration, command, None), None
    return (DuplicateMove(tuple(shared), migration, command, plan.new_version_text,
                          carried=len(plan.renumberings) - 1), plan)


def moves(catalog: Catalog, config: Config) -> tuple[DuplicateMove, ...]:
    """The commands, in the order to run them, that leave no version shared: one per
    group, lowest version first, each where the previous ones leave things (a move also
    carries its service's later migrations, which may part a later group too). Stops
    after a command that renumber would refuse as things are."""
    found: list[DuplicateMove] = []
    current = catalog
    for _ in range(len(catalog.migrations)):
        shared = _lowest_shared(current)
        if shared is None:
            break
        move, plan = _move_and_plan(current, config, shared)
        found.append(move)
        if plan is None:
            break
        current = _after(current, plan)
    return tuple(found)


def describe(found: Sequence[DuplicateMove], *, targets: bool = True) -> str:
    """The hint that gives `found` (not empty): one command, or the commands in order;
    with `targets`, each with the number it moves to (leave them out where the catalog
    may hold only some folders: `up` reads only its service's)."""
    if len(found) == 1:
        move = found[0]
        where = (f" ({'from ' if move.carried else ''}{move.new_version_text})"
                 if targets and move.new_version_text is not None else "")
        numbers = "numbers" if move.carried else "number"
        other = move.others[-1]
        return (f"move the one applied nowhere: `{move.command}` moves "
                f"{_named(move.migration)}{_carried(move)} to the next free {numbers}{where} "
                "and updates "
                f"migcoord.sum; if {_named(move.migration)} is applied somewhere, run "
                f"`{command_for(other, move.shared)}` instead")
    steps = []
    for move in found:
        where = (f" to {move.new_version_text}"
                 if targets and move.new_version_text is not None else "")
        steps.append(f"`{move.command}` ({_named(move.migration)}{_carried(move)}{where})")
    return ("move one migration of each number, the one applied nowhere, in this order: "
            + ", then ".join(steps) + "; each updates migcoord.sum (where the one named is "
            "applied somewhere, name the other of its number instead)")


def command_for(migration: Migration, shared: Sequence[Migration]) -> str:
    """The renumber command that moves `migration`, one of `shared` (one version): by
    version, or by version and name where another of `shared` is of its service."""
    by_name = sum(1 for m in shared if m.service == migration.service) > 1
    return (f"migcoord renumber {migration.label if by_name else migration.version_text} "
            f"--service {migration.service}")


def _carried(move: DuplicateMove) -> str:
    """The later migrations a move takes along: a number reused in the middle of a
    history moves the rest of its service's history, which the hint must not hide."""
    if not move.carried:
        return ""
    later = "later migration" if move.carried == 1 else f"{move.carried} later migrations"
    return f" and {move.migration.service}'s {later}"


def _named(migration: Migration) -> str:
    return f"{migration.service}/{migration.label}"


def _lowest_shared(catalog: Catalog) -> list[Migration] | None:
    by_version: dict[int, list[Migration]] = defaultdict(list)
    for migration in catalog.migrations:
        by_version[migration.version].append(migration)
    shared = [group for _, group in sorted(by_version.items()) if len(group) > 1]
    return shared[0] if shared else None


def _after(catalog: Catalog, plan: RenumberPlan) -> Catalog:
    """`catalog` as `plan` leaves it: the moved migrations under their new numbers."""
    new = {id(item.migration): item for item in plan.renumberings}

    def moved(migration: Migration) -> Migration:
        item = new.get(id(migration))
        if item is None:
            return migration
        return attrs.evolve(migration, version=item.new_version,
                            version_text=item.new_version_text)

    return Catalog.of(attrs.evolve(folder, migrations=tuple(moved(m) for m in folder.migrations))
                      for folder in catalog.folders)
