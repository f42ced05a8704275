"""Files x history rows -> the state of every migration (pure).

A migration is judged only where its service's folder is here: a deployed image usually
carries one service's folder, and the other services' rows are then simply reported as
recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from migcoord.core.model import Catalog, HistoryRow, Migration, Status


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
    for row in rows:
        recorded[row.version] = row
        candidates = by_key.get((row.version, row.service), [])
        found = next((m for m in candidates if m.name == row.name),
                     candidates[0] if candidates else None)
        if found is not None:
            matched.add(id(found))
        states.append(_judge_row(row, found, row.service in present,
                                 highest_file.get(row.service, 0)))
    for migration in catalog.migrations:
        if id(migration) in matched:
            continue
        detail = None
        other = recorded.get(migration.version)
        if other is not None:
            detail = ("its number is recorded for another service" if other.service !=
                      migration.service else f"its number is recorded for {other.name}")
        states.append(Reconciled(version=migration.version, service=migration.service,
                                 name=migration.name, state=Status.PENDING,
                                 migration=migration, detail=detail))
    states.sort(key=lambda s: (s.version, s.service, s.name))
    return states


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
