"""Files x history rows -> the state of every migration (pure).

A migration is judged only where its service's folder is here: a deployed image usually
carries one service's folder, and the other services' rows are then simply reported as
recorded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping

import attrs

from migcoord.core.model import Catalog, HistoryRow, Migration, Status, format_version
from migcoord.core.numbering import DEPENDS_ITEM, DEPENDS_LINE


@attrs.frozen
class Reconciled:
    """One migration's state: its file (if here), its history row (if any) and the verdict."""

    version: int
    service: str
    name: str
    state: Status
    migration: Migration | None = None
    row: HistoryRow | None = None
    #: False when the service's folder is absent, so the row could not be judged.
    judged: bool = True
    detail: str | None = None
    #: For a row whose file is gone: the file of the same service with the same checksum
    #: under another number, which no row records (a merge renumbered it).
    moved_to: Migration | None = None
    #: For a row whose up file is gone while its down file is still here: that down-only
    #: migration (the row is `missing`, not `future`: the folder still holds its number).
    down_only: Migration | None = None


def reconcile(catalog: Catalog, rows: Iterable[HistoryRow], *, width: int = 6,
              ) -> list[Reconciled]:
    """Every migration known from files or history, in version order (`width`: how
    the details write versions, the project's `version_width`).

    Every migration with an up file is in the result: where one service has two
    migrations of one version (a duplicate-version), the row goes to the one of its
    name and the other is pending, so `status` lists both and `up` refuses the pair
    instead of skipping one. A migration without an up file (`missing-up`) is none of
    this: there is nothing to apply, so it is never pending, and a row of its version
    is judged as if no file were here (`up` and `status` read no down files, and must
    say what `check --db` says).
    """
    by_key: dict[tuple[int, str], list[Migration]] = {}
    highest_file: dict[str, int] = {}
    for migration in with_up(catalog.migrations):
        by_key.setdefault((migration.version, migration.service), []).append(migration)
        highest_file[migration.service] = max(highest_file.get(migration.service, 0),
                                              migration.version)
    present = {folder.name for folder in catalog.folders if folder.present}
    only_down = {(m.version, m.service): m for m in catalog.migrations if m.up is None}
    states: list[Reconciled] = []
    matched: set[int] = set()
    recorded: dict[int, HistoryRow] = {}
    rows = list(rows)
    moved = _moved(catalog, rows)
    for row in rows:
        recorded[row.version] = row
        if row.version in moved:
            new = moved[row.version]
            states.append(Reconciled(
                version=row.version, service=row.service, name=row.name, state=Status.MISSING,
                row=row, moved_to=new, detail=f"renumbered to {new.version_text}"))
            continue
        candidates = by_key.get((row.version, row.service), [])
        found = candidates[0] if len(candidates) == 1 else next(
            (m for m in candidates if m.name == row.name), candidates[0] if candidates else None)
        if found is not None:
            matched.add(id(found))
        states.append(_judge_row(row, found, row.service in present,
                                 highest_file.get(row.service, 0),
                                 only_down.get((row.version, row.service))))
    moved_from = {id(m): version for version, m in moved.items()}
    for migration in with_up(catalog.migrations):
        if id(migration) in matched:
            continue
        detail = None
        other = recorded.get(migration.version)
        if id(migration) in moved_from:
            detail = f"applied here as {format_version(moved_from[id(migration)], width)} (renumbered)"
        elif other is not None:
            detail = ("its number is recorded for another service" if other.service !=
                      migration.service else f"its number is recorded for {other.name}")
        states.append(Reconciled(version=migration.version, service=migration.service,
                                 name=migration.name, state=Status.PENDING,
                                 migration=migration, detail=detail))
    states.sort(key=lambda s: (s.version, s.service, s.name))
    return states


def with_up(migrations: Iterable[Migration]) -> list[Migration]:
    """The migrations that have an up file: the ones that can be applied or recorded."""
    return [m for m in migrations if m.up is not None]


def down_only(catalog: Catalog, rows: Iterable[HistoryRow],
              services: Collection[str] | None = None) -> list[Migration]:
    """The migrations (of `services`, None: all) that have only a down file and no
    history row of their service and version: never pending, and `check` reports them
    (missing-up); `up` names them rather than pass over them in silence."""
    recorded = {(row.version, row.service) for row in rows}
    return [m for m in catalog.migrations if m.up is None
            and (services is None or m.service in services)
            and (m.version, m.service) not in recorded]


def _moved(catalog: Catalog, rows: list[HistoryRow]) -> dict[int, Migration]:
    """Rows whose migration a merge (`migcoord resolve`, `renumber`) moved after it was
    applied here, by version -> its file under the new number.

    A row is moved when its number holds no file of its service and name, and exactly
    one file of the same service and name sits at a number no row of that name records.
    Its content must be what was applied: the same checksum, or the same once the
    `depends` references to the other moved migrations are put back to their old
    numbers (resolve rewrites them, which changes the checksum). The name alone never
    decides: another migration under an old name has other SQL.
    """
    in_place = {(row.version, row.service, row.name) for row in rows}
    files: dict[tuple[str, str], list[Migration]] = {}
    for migration in catalog.migrations:
        if migration.up is not None and migration.up.read_error is None \
                and (migration.version, migration.service, migration.name) not in in_place:
            files.setdefault((migration.service, migration.name), []).append(migration)
    on_disk = {(m.version, m.service, m.name) for m in catalog.migrations}
    candidates: dict[int, tuple[HistoryRow, Migration]] = {}
    for row in rows:
        if row.dirty or (row.version, row.service, row.name) in on_disk:
            continue
        found = [m for m in files.get((row.service, row.name), []) if m.version != row.version]
        if len(found) == 1:
            candidates[row.version] = (row, found[0])
    back = {m.version: (old, m.service) for old, (_, m) in candidates.items()}
    moved: dict[int, Migration] = {}
    for old, (row, migration) in candidates.items():
        text = migration.up.text if migration.up is not None else None
        if migration.checksum == row.checksum or (
                text is not None and text_checksum(_old_references(text, back)) == row.checksum):
            moved[old] = migration
    # One file is one migration: two rows claiming it are not a move.
    claimed = [id(m) for m in moved.values()]
    return {old: m for old, m in moved.items() if claimed.count(id(m)) == 1}


def _old_references(text: str, back: Mapping[int, tuple[int, str]]) -> str:
    """`text` with each `depends` reference to a moved migration's new number put back to
    its old number (`back`: new -> (old, service)), as resolve wrote it before the move;
    the digits keep their width."""

    def item(part: str) -> str:
        match = DEPENDS_ITEM.match(part)
        if match is None or int(match["number"]) not in back:
            return part
        old, service = back[int(match["number"])]
        if match["service"] is not None and match["service"] != service:
            return part
        start, end = match.span("number")
        return part[:start] + str(old).zfill(end - start) + part[end:]

    return DEPENDS_LINE.sub(lambda line: line.group(1) + ",".join(
        item(part) for part in line.group(2).split(",")), text)


def text_checksum(text: str) -> str:
    """The checksum recorded for an up file of this text: sha256 of the UTF-8 content with
    line endings made `\\n` (the BOM is not part of the text)."""
    return hashlib.sha256(text.replace("\r\n", "\n").replace("\r", "\n").encode()).hexdigest()


def _judge_row(row: HistoryRow, migration: Migration | None, folder_here: bool,
               highest_file: int, down_only: Migration | None) -> Reconciled:
    base = Reconciled(version=row.version, service=row.service, name=row.name,
                      state=Status.APPLIED, migration=migration, row=row)
    if row.dirty:
        detail = "failed"
        if row.statements_done is not None and row.statement_count:
            detail = (f"stopped after statement {row.statements_done} of "
                      f"{row.statement_count}")
        return attrs.evolve(base, state=Status.DIRTY, detail=detail)
    if migration is None:
        if not folder_here:
            return attrs.evolve(base, judged=False)
        if down_only is not None:
            return attrs.evolve(base, state=Status.MISSING, down_only=down_only,
                                detail="up file deleted; its down file is here")
        if row.version > highest_file:
            return attrs.evolve(base, state=Status.FUTURE,
                                detail="newer than every file here")
        return attrs.evolve(base, state=Status.MISSING, detail="file deleted or renamed")
    if migration.up is not None and migration.up.read_error is not None:
        # Nothing to compare with; `status` and `up` name the file (unreadable-file).
        return attrs.evolve(base, detail="its file cannot be read")
    if migration.up is not None and migration.checksum != row.checksum:
        return attrs.evolve(base, state=Status.MODIFIED, detail="up file changed since applied")
    if migration.name != row.name:
        return attrs.evolve(base, detail=f"file renamed from {row.name}")
    return base


def moved_repair(states: Iterable[Reconciled], width: int = 6) -> list[str]:
    """The `mark` commands, in a safe order, that record every migration these states find
    applied under an old number (`moved_to`) at its new one, without running it."""
    from migcoord.core.resolution import moved_rows_repair

    return moved_rows_repair((format_version(s.version, width), s.moved_to.version_text)
                             for s in states if s.moved_to is not None)


def moved_repair_hint(states: Iterable[Reconciled], width: int = 6) -> str:
    """The hint that names `moved_repair`'s commands."""
    commands = moved_repair(states, width)
    # One moved migration takes two commands (record the new, clear the old); each more
    # in a chain of renumbered ones adds one.
    numbers = "number" if len(commands) <= 2 else "numbers"
    return (f"record the new {numbers} without running anything again, in this order: "
            + " then ".join(commands))


def database_version(rows: Iterable[HistoryRow]) -> int | None:
    return max((row.version for row in rows), default=None)


def rows_by_version(rows: Iterable[HistoryRow]) -> Mapping[int, HistoryRow]:
    return {row.version: row for row in rows}
