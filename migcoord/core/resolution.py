"""What `migcoord resolve` moves after (or before) a merge collision (pure).

Two branches each took "the next" number. The other side's migrations keep their
numbers: they may be applied somewhere already (main is deployed). This branch's
colliding migrations, and this branch's later ones, move after the highest number of
the union, in their order, with the `depends` references that name them:

    plan = resolution.plan_resolve(catalog, config, theirs)
    workspace.apply_renumber(plan.renumber)

`theirs` is every migration file the other side has (`repo/git` reads it from git's
merge or rebase state, or from `--onto REF`), as paths. A migration here with a file
among them is the other side's (or shared): it never moves. A plan for a tree without
a collision moves nothing, so running resolve twice changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from migcoord.core import duplicates
from migcoord.core.model import Catalog, Config, Direction, Migration, format_version
from migcoord.core.naming import parse_filename
from migcoord.core.numbering import (
    DEPENDS_ITEM,
    DEPENDS_LINE,
    LeftReferences,
    Renumbering,
    RenumberPlan,
    TextEdit,
    file_moves,
    next_free,
)
from migcoord.errors import RefusedError


@attrs.frozen
class TheirFile:
    """One migration file of the other side: the service whose folder holds it, its
    version and its file name."""

    service: str
    version: int
    name: str


@attrs.frozen
class BranchEdit:
    """A migration file that this branch changed (or removed) although `ref` already has
    the migration: read by `repo/git.branch_edits`, reported by `checks/merging`."""

    path: Path
    service: str
    version: int
    direction: Direction
    ref: str
    removed: bool = False


@attrs.frozen
class MergeSides:
    """Which migrations the other side of a merge already has, for the hints that name
    the migration to move (`duplicate-version`) and the command that moves it."""

    #: (service, file name) of every migration file of the other side.
    theirs: frozenset[tuple[str, str]]
    #: How a person calls the other side: "origin/main", "main (being merged)".
    label: str
    #: The resolve command that works here: "migcoord resolve --onto origin/main".
    command: str

    @classmethod
    def of(cls, files: Iterable[TheirFile], label: str, command: str) -> MergeSides:
        return cls(frozenset((f.service, f.name) for f in files), label, command)

    def has(self, migration: Migration) -> bool:
        """Whether `migration` is the other side's (or shared): it keeps its number."""
        return _is_theirs(migration, set(self.theirs))


@attrs.frozen
class WrittenAgainst:
    """The tree this branch's files were written in: a merge's HEAD, the commit a rebase
    is replaying, or HEAD before merging (`repo/merging.written_against` reads it).

    A `depends` number means the migration that had it THERE. After a rebase's first stop
    moved this branch's 000007 to 000008, the next commit's `depends 000007` still means
    that migration, although 000007 is now the other side's.
    """

    #: version -> (service, name) of each up file there.
    numbers: Mapping[int, tuple[tuple[str, str], ...]]
    #: (service, name) -> that up file's depends lines there, stripped, for this branch's
    #: files that have any: a file whose lines differ here was rewritten (or edited) since.
    depends: Mapping[tuple[str, str], tuple[str, ...]]


def depends_lines(text: str) -> tuple[str, ...]:
    """The `-- migcoord:depends` lines of `text`, stripped (line endings ignored)."""
    return tuple(m.group(0).strip() for m in DEPENDS_LINE.finditer(text))


@attrs.frozen
class Resolution:
    """The moves, and what stays: the other side's migrations that this branch's collided with."""

    renumber: RenumberPlan
    #: The other side's migrations (here, or only on the other side) that keep their numbers
    #: although one of this branch's had the same: (service, version text and name).
    kept: tuple[str, ...] = ()

    @property
    def moves_anything(self) -> bool:
        return bool(self.renumber.renumberings)


def their_files(paths: Iterable[str], folders: Mapping[str, str]) -> tuple[TheirFile, ...]:
    """The migration files among `paths` (the other side's tree, as POSIX paths), with
    the service whose folder (`folders`: folder, spelt alike -> service) holds each;
    other paths are left out."""
    found = []
    for path in paths:
        folder, _, name = path.rpartition("/")
        service = folders.get(folder)
        parsed = parse_filename(name)
        if service is not None and parsed is not None:
            found.append(TheirFile(service, parsed.version, name))
    return tuple(found)


def plan_resolve(catalog: Catalog, config: Config, theirs: Iterable[TheirFile],
                 written: WrittenAgainst | None = None) -> Resolution:
    """Keep every migration the other side has at its number; move this branch's
    colliding migrations and this branch's later ones after the highest number of the
    union, in order, with the `depends` lines of this branch's files that name them.

    With `written` (the tree this branch's files were written in), a depends number of
    a file unchanged since then follows the migration it meant there, wherever that
    migration is now, even when an earlier resolve (a rebase's earlier stop) moved it.

    Raises RefusedError (nothing decided) when numbers would still be shared afterwards:
    two of the other side's own migrations with one version are not this branch's to fix.
    """
    theirs = tuple(theirs)
    their_paths = {(f.service, f.name) for f in theirs}
    their_versions = {f.version for f in theirs}
    ours = [m for m in catalog.migrations if not _is_theirs(m, their_paths)]
    shared = [m for m in catalog.migrations if _is_theirs(m, their_paths)]
    taken = their_versions | {m.version for m in shared}
    counts: dict[int, int] = {}
    for migration in ours:
        counts[migration.version] = counts.get(migration.version, 0) + 1
    colliding = [m for m in ours if m.version in taken or counts[m.version] > 1]
    _refuse_their_own_duplicates(catalog, shared, config)
    first = min((m.version for m in colliding), default=None)
    moving = [m for m in ours if first is not None and m.version >= first]
    used = taken | {m.version for m in ours if first is None or m.version < first}
    renumberings: list[Renumbering] = []
    for migration in moving:
        new = next_free(used, config, migration.service)
        used.add(new)
        width = max(config.version_width, len(migration.version_text))
        renumberings.append(Renumbering(migration, new, format_version(new, width)))
    # A migration of this branch that keeps its number stays put (a second resolve).
    changed = tuple(r for r in renumberings if r.new_version != r.migration.version
                    or r.new_version_text != r.migration.version_text)
    width = config.version_width
    edits, ambiguous = _depends_edits(ours, changed, _final_numbers(catalog, changed), written)
    moved_from = {r.migration.version for r in changed}
    kept = tuple(sorted({f"{f.service} {f.name.removesuffix('.up.sql')}" for f in theirs
                         if f.version in moved_from and f.name.endswith(".up.sql")}))
    return Resolution(
        RenumberPlan(renumberings=changed, moves=file_moves(changed, width), edits=edits,
                     ambiguous=ambiguous),
        kept=kept)


def _is_theirs(migration: Migration, their_paths: set[tuple[str, str]]) -> bool:
    return any(f is not None and (migration.service, f.path.name) in their_paths
               for f in (migration.up, migration.down))


def _refuse_their_own_duplicates(catalog: Catalog, shared: list[Migration],
                                 config: Config) -> None:
    """Refuse when two of the other side's migrations share a number, with the command
    that parts them: run on the branch that has both (the number it moves to is that
    branch's next free one, so it is not given here)."""
    seen: dict[int, Migration] = {}
    for migration in shared:
        other = seen.setdefault(migration.version, migration)
        if other is not migration:
            move = duplicates.move_for(catalog, config, [other, migration])
            raise RefusedError(
                f"{other.service}/{other.label} and {migration.service}/{migration.label} "
                "share a number and are both on the other side of the merge; resolve moves "
                "only this branch's migrations",
                hint="part them on the branch that has both (a checkout of it): "
                + duplicates.describe([move], targets=False)
                + "; commit that, then run resolve here again",
                version=migration.version, service=migration.service)


def _final_numbers(catalog: Catalog, changed: tuple[Renumbering, ...]) -> dict[tuple[str, str], str]:
    """(service, name) -> version text once `changed` is carried out, for the names that
    one migration holds."""
    new = {id(r.migration): r.new_version_text for r in changed}
    found: dict[tuple[str, str], list[str]] = {}
    for migration in catalog.migrations:
        found.setdefault((migration.service, migration.name), []).append(
            new.get(id(migration), migration.version_text))
    return {key: texts[0] for key, texts in found.items() if len(texts) == 1}


def _depends_edits(ours: list[Migration], changed: tuple[Renumbering, ...],
                   final: Mapping[tuple[str, str], str], written: WrittenAgainst | None,
                   ) -> tuple[tuple[TextEdit, ...], tuple[LeftReferences, ...]]:
    """The `depends` lines of this branch's files that name a moved migration.

    Only this branch's files change: the other side's were written without knowing this
    branch's migrations, so a bare number there means the other side's. In a file of
    this branch unchanged since `written`, a number means the migration that had it
    there, and follows it to its number in `final`. Otherwise (a file new since, or one
    rewritten by an earlier resolve) a bare number means this branch's migration when one
    of them moved from it (the file was written before the merge brought the other one
    in); two of this branch's moving from one number leave the bare reference alone,
    listed as ambiguous.
    """
    qualified = {(r.migration.service, r.migration.version): r.new_version_text for r in changed}
    bare: dict[int, list[str]] = {}
    for r in changed:
        bare.setdefault(r.migration.version, []).append(r.new_version_text)
    edits: list[TextEdit] = []
    ambiguous: list[LeftReferences] = []
    for migration in ours:
        up = migration.up
        if up is None or up.text is None:
            continue
        skipped: list[str] = []
        there = written.depends.get((migration.service, migration.name)) if written else None
        meant = written.numbers if written is not None and there is not None \
            and there == depends_lines(up.text) else None

        def rewrite_item(item: str, skipped: list[str] = skipped,
                         meant: Mapping[int, tuple[tuple[str, str], ...]] | None = meant) -> str:
            match = DEPENDS_ITEM.match(item)
            if match is None:
                return item
            number = int(match["number"])
            service = match["service"]
            new = _followed(meant, final, service, number)
            if new is None and service is not None:
                new = qualified.get((service, number))
            elif new is None:
                targets = bare.get(number, [])
                if len(targets) > 1:
                    skipped.append(item.strip())
                new = targets[0] if len(targets) == 1 else None
            if new is None or int(new) == number:
                return item
            start, end = match.span("number")
            return item[:start] + new + item[end:]

        def rewrite_line(line: re.Match[str]) -> str:
            return line.group(1) + ",".join(rewrite_item(i) for i in line.group(2).split(","))

        new_text = DEPENDS_LINE.sub(rewrite_line, up.text)
        if skipped:
            ambiguous.append(LeftReferences(up.path, tuple(skipped)))
        if new_text != up.text:
            edits.append(TextEdit(up.path, up.text, new_text))
    return tuple(edits), tuple(ambiguous)


def _followed(meant: Mapping[int, tuple[tuple[str, str], ...]] | None,
              final: Mapping[tuple[str, str], str], service: str | None,
              number: int) -> str | None:
    """The number the migration that had `number` where the file was written has now;
    None when that tree had no one migration there (or of `service`), or it is gone."""
    if meant is None:
        return None
    there = meant.get(number, ())
    if len(there) != 1 or (service is not None and there[0][0] != service):
        return None
    return final.get(there[0])


def moved_row_repair(old: str, new: str) -> list[str]:
    """The commands that record a migration applied as `old` under its new number `new`,
    without running it: the new row first, so it is never pending in between."""
    return moved_rows_repair([(old, new)])


def moved_rows_repair(moves: Iterable[tuple[str, str]]) -> list[str]:
    """The `mark` commands that record migrations applied under old numbers at their new
    numbers, without running them; `moves` holds (old, new) version texts.

    Run in the order given, no command overwrites or deletes a row another one wrote: a
    merge moves migrations up, so a new number is often another moved migration's old
    one. The highest new number is recorded first (its own old row is still there, to
    be overwritten or cleared later), then each lower one; an old number is cleared
    (`--pending`) last, and only when no moved migration took it.
    """
    ordered = sorted(set(moves), key=lambda move: int(move[1]), reverse=True)
    taken = {int(new) for _, new in ordered}
    applied = [f"`migcoord mark {new} --applied --reason 'renumbered from {old}'`"
               for old, new in ordered]
    cleared = [f"`migcoord mark {old} --pending --reason 'renumbered to {new}'`"
               for old, new in ordered if int(old) not in taken]
    return applied + cleared
