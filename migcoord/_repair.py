"""The commands that change the history without running a migration: `mark` and `adopt`
(operator repair), and the database side of `renumber` and `resolve` (a migration this
database applied is not moved; a move is recorded).

Like `_engine`, each function takes the values the facade gathered and an open History;
the lock and the check of the files a row would vouch for are `_engine`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from migcoord._engine import locked, refuse_invalid_files
from migcoord.core.model import Catalog, Config, HistoryRow, Migration, format_version
from migcoord.errors import RefusedError, UsageError
from migcoord.results import AdoptResult, MarkResult

if TYPE_CHECKING:
    from migcoord.core.numbering import RenumberPlan
    from migcoord.db.history import History

log = logging.getLogger("migcoord")


# -- operator repair --------------------------------------------------------------------

def migration_numbered(catalog: Catalog, version: int, width: int = 6) -> Migration | None:
    """The one migration here with `version` (None when its file is not here); refuses a
    version that several migrations share."""
    matches = [m for m in catalog.migrations if m.version == version]
    if len(matches) > 1:
        raise RefusedError(f"version {format_version(version, width)} belongs to several "
                           "migrations here", hint="run `migcoord check` and renumber first")
    return matches[0] if matches else None


def mark(config: Config, history: History, version: int, migration: Migration | None, *,
         applied: bool, reason: str | None, lock_timeout: float | None) -> MarkResult:
    """Record `version` as applied (with `migration`'s checksum, else the recorded one) or
    pending (delete its row), with an event; under the lock, in one transaction."""
    with locked(config, history, lock_timeout):
        history.ensure()
        row = {r.version: r for r in history.rows()}.get(version)
        previous = None if row is None else row.status
        if applied:
            target = _applied_row(version, migration, row, config.version_width)
            with history.conn.transaction():
                history.upsert_applied(target)
                history.event("mark-applied", version=version, service=target.service,
                              name=target.name, reason=reason, detail={"previous": previous})
            service, name = target.service, target.name
        else:
            if row is None:
                raise UsageError(f"{format_version(version, config.version_width)} is not "
                                 "recorded in the database: it is already pending")
            with history.conn.transaction():
                history.delete(version)
                history.event("mark-pending", version=version, service=row.service,
                              name=row.name, reason=reason, detail={"previous": previous})
            service, name = row.service, row.name
    log.debug("marked %s %s %s as %s", format_version(version, config.version_width), service, name,
              "applied" if applied else "pending")
    return MarkResult(version=version, service=service, name=name, applied=applied,
                      previous=previous)


def _applied_row(version: int, migration: Migration | None, row: HistoryRow | None,
                 width: int) -> HistoryRow:
    if migration is not None and migration.up is not None and migration.up.read_error:
        raise RefusedError(
            f"{migration.up.path}: {migration.up.read_error}; mark records the checksum of "
            "the file here", hint="make the file readable first (`migcoord check` names it)",
            path=migration.up.path, version=version, service=migration.service)
    if migration is not None:
        return HistoryRow(version=version, service=migration.service, name=migration.name,
                          checksum=migration.checksum, status="applied",
                          depends=migration.depends_on)
    if row is not None:
        return attrs.evolve(row, status="applied")
    raise UsageError(f"no migration numbered {format_version(version, width)} in this checkout or in "
                     "the database", hint="check the number with `migcoord status`")


def adopt(config: Config, catalog: Catalog, sum_text: str | None, history: History, *,
          table: str, lock_timeout: float | None) -> AdoptResult:
    """Record every migration at or below golang-migrate's version in `table` as applied,
    in one transaction with an event; refuses when a folder that holds such migrations
    (per migcoord.sum, `sum_text`) is not here."""
    from migcoord.checks.numbering import Ledger
    from migcoord.db import golang

    absent = catalog.absent_services
    ledger = Ledger.of(catalog, sum_text)
    state = golang.read_state(history.conn, table)
    # Recorded as applied with their checksums, so they must be what `up` would run.
    refuse_invalid_files(config, catalog,
                         [m for m in catalog.migrations if m.version <= state.version],
                         "up", None, command="adopt")
    # A folder that is absent because the service has no migrations yet is fine;
    # one that holds migrations (per migcoord.sum) would leave them unrecorded.
    hidden = sorted({owner for version, owners in ledger.owners.items()
                     if version <= state.version for owner in owners if owner in absent})
    if hidden or not ledger.complete:
        raise RefusedError(
            "adopt needs the migrations folder of every service that has migrations; "
            "not here: " + ", ".join(hidden or sorted(absent)),
            hint="run adopt once from a full checkout of the repository")
    with locked(config, history, lock_timeout):
        history.ensure()
        rows = {row.version: row for row in history.rows()}
        recorded: list[int] = []
        already: list[int] = []
        with history.conn.transaction():
            for migration in catalog.migrations:
                if migration.version > state.version:
                    continue
                if migration.version in rows:
                    already.append(migration.version)
                    continue
                history.upsert_applied(HistoryRow(
                    version=migration.version, service=migration.service,
                    name=migration.name, checksum=migration.checksum,
                    status="applied", depends=migration.depends_on))
                recorded.append(migration.version)
            history.event("adopt", version=state.version,
                          detail={"table": table, "recorded": recorded, "already": already})
    return AdoptResult(golang_version=state.version, recorded=tuple(recorded),
                       already=tuple(already))


# -- renumber ---------------------------------------------------------------------------

def refuse_renumbering_applied(history: History, plan: RenumberPlan) -> None:
    """Refuse to move a migration this database has applied: under its new number it
    would be pending again, and applied twice."""
    moving = {(item.migration.version, item.migration.service): item.migration
              for item in plan.renumberings}
    # Where two of a service's migrations share the number, the row is the one of its name.
    staying = {(m.version, m.service, m.name) for m in plan.staying}
    for row in history.rows():
        migration = moving.get((row.version, row.service))
        if migration is not None and (row.version, row.service, row.name) not in staying:
            raise RefusedError(
                f"{migration.service} {migration.label} is applied in this database; "
                f"renumbering it would make it pending again and apply it twice",
                hint="renumber only migrations never applied anywhere; to change an applied "
                "one, write a new migration")


def refuse_resolving_applied(history: History, plan: RenumberPlan) -> None:
    """Refuse `resolve` when a migration it would move is applied in this database,
    naming the exact repair: resolve the files alone, then record each move there."""
    rows = {(row.version, row.service) for row in history.rows()}
    applied = [item for item in plan.renumberings
               if (item.migration.version, item.migration.service) in rows]
    if not applied:
        return
    from migcoord.core.resolution import moved_rows_repair

    names = ", ".join(f"{item.migration.service} {item.migration.label}" for item in applied)
    steps = moved_rows_repair((item.migration.version_text, item.new_version_text)
                              for item in applied)
    one = len(applied) == 1
    raise RefusedError(
        f"{names} {'is' if one else 'are'} applied in this database; moving "
        f"{'it' if one else 'them'} would make {'it' if one else 'them'} pending there, to "
        "be applied twice. Nothing was moved",
        hint=f"run `migcoord resolve` without --dsn, then record the new number{'' if one else 's'} "
        "in that database without running anything (with the same --dsn), in this order: "
        + " then ".join(steps),
        version=applied[0].migration.version, service=applied[0].migration.service)


def record_renumber(history: History, plan: RenumberPlan) -> None:
    """Append one `renumber` event per migration moved."""
    history.ensure()
    for item in plan.renumberings:
        history.event("renumber", version=item.new_version, service=item.migration.service,
                      name=item.migration.name,
                      detail={"from": item.migration.version, "to": item.new_version})
