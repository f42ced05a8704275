"""Files x history rows -> the state of every migration (pure).

A migration is judged only where its service's folder is here: a deployed image usually
carries one service's folder, and the other services' rows are then simply reported as
recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from migcoord.core.model import Catalog, HistoryRow, Migration, Status, format_version


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


def reconcile(catalog: Catalog, rows: Iterable[HistoryRow]) -> list[Reconciled]:
    """Every migration known from files or history, in version order.

    Every file is in the result: where one service has two migrations of one version (a
    duplicate-version), the row goes to the one of its name and the other is pending,
    so `status` lists both and `up` refuses the pair instead of skipping one.
    """
    by_key: dict[tuple[int, str], list[Migration]] = {}
    highest_file: dict[str, int] = {}
    for migration in catalog.migrations:
        by_key.setdefault((migration.version, migration.service), []).append(migration)
        highest_file[migration.service] = max(highest_file.get(migration.service, 0),
                                              migration.version)
    present = {folder.name for folder in catalog.folders if folder.present}
    states: list[Reconciled] = []
    matched: set[int] = set()
    recorded: dict[int, HistoryRow] = {}
    rows = list(rows)
    moved = _moved(catalog, rows)
    for row in rows:
        recorded[row.version] = row
        candidates = by_key.get((row.version, row.service), [])
        found = next((m for m in candidates if m.name == row.name),
                     candidates[0] if candidates else None)
        if found is not None:
            matched.add(id(found))
        state = _judge_row(row, found, row.service in present, highest_file.get(row.service, 0))
        if state.state == Status.MISSING and row.version in moved:
            new = moved[row.version]
            state = attrs.evolve(state, moved_to=new,
                                 detail=f"renumbered to {new.version_text} (same checksum)")
        states.append(state)
    moved_from = {id(m): version for version, m in moved.items()}
    for migration in catalog.migrations:
        if id(migration) in matched:
            continue
        detail = None
        other = recorded.get(migration.version)
        if id(migration) in moved_from:
            detail = f"applied here as {format_version(moved_from[id(migration)])} (renumbered)"
        elif other is not None:
            detail = ("its number is recorded for another service" if other.service !=
                      migration.service else f"its number is recorded for {other.name}")
        states.append(Reconciled(version=migration.version, service=migration.service,
                                 name=migration.name, state=Status.PENDING,
                                 migration=migration, detail=detail))
    states.sort(key=lambda s: (s.version, s.service, s.name))
    return states


def _moved(catalog: Catalog, rows: list[HistoryRow]) -> dict[int, Migration]:
    """Rows whose file is gone from their number, by version -> the one file of the same
    service, name and checksum under a number no row records: the migration a merge
    (`migcoord resolve`, `renumber`) moved after it was applied here. Both keep the name;
    the checksum says the content is what was applied."""
    recorded = {(row.version, row.service) for row in rows}
    on_disk = {(m.version, m.service) for m in catalog.migrations}
    unrecorded: dict[tuple[str, str, str], list[Migration]] = {}
    for migration in catalog.migrations:
        if (migration.version, migration.service) not in recorded and migration.up is not None \
                and migration.up.read_error is None:
            key = (migration.service, migration.name, migration.checksum)
            unrecorded.setdefault(key, []).append(migration)
    moved: dict[int, Migration] = {}
    for row in rows:
        if row.dirty or (row.version, row.service) in on_disk:
            continue
        candidates = unrecorded.get((row.service, row.name, row.checksum), [])
        if len(candidates) == 1:
            moved[row.version] = candidates[0]
    return moved


def _judge_row(row: HistoryRow, migration: Migration | None, folder_here: bool,
               highest_file: int) -> Reconciled:
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


def database_version(rows: Iterable[HistoryRow]) -> int | None:
    return max((row.version for row in rows), default=None)


def rows_by_version(rows: Iterable[HistoryRow]) -> Mapping[int, HistoryRow]:
    return {row.version: row for row in rows}
