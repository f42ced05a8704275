"""Request + state -> an ordered plan, or a refusal that says why (pure).

`plan_up` never reads files or the database: it gets the catalog and the history rows.
Dependencies are checked against history, so a service can migrate when the other
services' folders are not in its image.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import attrs

from migcoord.core.model import Catalog, HistoryRow, Migration, Status, format_version
from migcoord.core.reconcile import Reconciled, down_only, moved_repair_hint, reconcile
from migcoord.errors import DependencyNotApplied, RefusedError, UsageError


@attrs.frozen
class Step:
    migration: Migration
    reason: str = "pending"


@attrs.frozen
class Plan:
    steps: tuple[Step, ...]
    warnings: tuple[str, ...] = ()

    @property
    def versions(self) -> list[int]:
        return [step.migration.version for step in self.steps]


@attrs.frozen
class UpRequest:
    #: The service to migrate; None means every service (`up --all`).
    service: str | None
    to: int | None = None
    with_deps: bool = False
    allow_out_of_order: bool = False
    #: How messages write versions: the project's `version_width`.
    width: int = 6


def _v(version: int, width: int) -> str:
    return format_version(version, width)


def plan_up(catalog: Catalog, rows: Sequence[HistoryRow], request: UpRequest) -> Plan:
    """What `up` would apply, in version order; raises RefusedError when it must not run."""
    width = request.width
    states = reconcile(catalog, rows, width=width)
    in_scope = [s for s in states if request.service is None or s.service == request.service]
    _refuse_broken(in_scope, states, width)
    warnings = (*_future_warnings(in_scope, width), *down_only_warnings(
        catalog, rows, None if request.service is None else {request.service}))

    pending = {s.version: s.migration for s in states
               if s.state == Status.PENDING and s.migration is not None}
    candidates = [m for s in in_scope if s.state == Status.PENDING and s.migration is not None
                  for m in (s.migration,) if request.to is None or m.version <= request.to]
    _refuse_conflicts(candidates, rows, states, width)
    if not request.allow_out_of_order:
        _refuse_out_of_order(candidates, rows, width)

    by_row = {row.version: row for row in rows}
    available = {row.version for row in rows if not row.dirty}
    chosen: dict[int, Step] = {m.version: Step(m) for m in candidates}
    work = sorted(chosen)
    while work:
        migration = chosen[work.pop(0)].migration
        for ref in migration.directives.depends:
            needed = ref.version
            if needed in available or needed in chosen:
                continue
            row = by_row.get(needed)
            if row is not None and row.dirty:
                raise RefusedError(
                    f"{migration.label} ({migration.service}) needs {_v(needed, width)}, which is "
                    f"dirty in this database ({row.service} {row.name})",
                    hint=f"repair it first: see `migcoord status`, then `migcoord mark "
                    f"{_v(needed, width)} --pending` or `--applied`",
                    version=migration.version, service=migration.service, direction="up")
            target = pending.get(needed)
            owner = target.service if target is not None else (ref.service or "another service")
            if target is None or not request.with_deps:
                raise DependencyNotApplied(
                    f"{migration.version_text} ({migration.service} {migration.name}) needs "
                    f"{owner}:{_v(needed, width)}, which is not applied in this database",
                    hint=f"run `migcoord up --service {owner}` first"
                    + (" (its files are not in this checkout, so --with-deps cannot apply it)"
                       if request.with_deps else
                       ", or pass --with-deps to apply it from this checkout"),
                    version=migration.version, service=migration.service,
                    needs=(target.service if target is not None else ref.service, needed))
            for extra in _chain(catalog, target, available, chosen):
                chosen[extra.version] = Step(extra, reason=f"needed by {migration.version_text}")
                work.append(extra.version)
            work.sort()
    involved = {step.migration.service for step in chosen.values()}
    _refuse_broken([s for s in states if s.service in involved], states, width)
    # Two pending migrations with one version (a duplicate-version) both stay in the
    # plan: the file checks before anything runs refuse the pair, never skip one.
    shared = [Step(m) for m in candidates if chosen[m.version].migration is not m]
    steps = tuple(sorted((*chosen.values(), *shared),
                         key=lambda step: (step.migration.version, step.migration.service,
                                           step.migration.name)))
    return Plan(steps=steps, warnings=warnings)


def _chain(catalog: Catalog, target: Migration, available: set[int],
           chosen: dict[int, Step]) -> list[Migration]:
    """target and its service's earlier pending migrations (they apply in order)."""
    return [m for m in catalog.for_service(target.service)
            if m.version <= target.version and m.version not in available
            and m.version not in chosen]


def _refuse_broken(states: Iterable[Reconciled], everything: Sequence[Reconciled],
                   width: int) -> None:
    """RefusedError naming each dirty, modified or missing migration among `states`, with
    its repair. A migration applied under its old number is repaired together with every
    other one in `everything` (all services): their new numbers are one another's old ones."""
    problems = [s for s in states if s.judged and s.state in
                (Status.DIRTY, Status.MODIFIED, Status.MISSING)]
    if not problems:
        return
    lines = []
    hints = []
    for s in problems:
        label = f"{_v(s.version, width)} {s.service} {s.name}"
        if s.state == Status.DIRTY:
            lines.append(f"{label} is dirty ({s.detail}): a no-transaction migration stopped "
                         "part-way" + _recorded_failure(s))
            hints.append(f"finish or undo it by hand (an INVALID index a failed concurrent "
                         "build left is dropped with DROP INDEX CONCURRENTLY), then "
                         f"`migcoord mark {_v(s.version, width)} --applied` (finished) or `--pending` "
                         "(undone)")
        elif s.state == Status.MODIFIED:
            lines.append(f"{label} was changed after it was applied here")
            hints.append("restore the applied content (git log -p on the file); if the edit "
                         "is deliberate and already reflected in the database, "
                         f"`migcoord mark {_v(s.version, width)} --applied --reason ...` records it")
        elif s.moved_to is not None:
            lines.append(f"{label} is applied in this database under its old number: its file "
                         f"is now {s.service} {s.moved_to.label} (same content; a merge "
                         "renumbered it)")
            hints.append(moved_repair_hint(everything, width))
        elif s.down_only is not None:
            up_name = f"{s.down_only.label}.up.sql"
            lines.append(f"{label} is applied in the database but its up file ({up_name}) is "
                         f"gone from {s.service}'s folder; its down file is still there")
            hints.append(f"restore {up_name} from git history (then `migcoord down --service "
                         f"{s.service}` can roll it back); if the migration is abandoned, undo "
                         "it by hand (its down file says how), record that with `migcoord mark "
                         f"{_v(s.version, width)} --pending`, and delete the down file")
        else:
            lines.append(f"{label} is applied in the database but its file is gone from "
                         f"{s.service}'s folder (deleted or renamed)")
            hints.append(f"restore {s.service}'s file for {_v(s.version, width)}; if it was "
                         f"abandoned on purpose, roll it back from a checkout that has it, or "
                         f"`migcoord mark {_v(s.version, width)} --pending`")
    # One broken migration is named in the fields too; several are named in the message.
    only = problems[0] if len(problems) == 1 else None
    raise RefusedError("; ".join(lines), hint="; ".join(dict.fromkeys(hints)),
                       version=only.version if only else None,
                       service=only.service if only else None)


def _recorded_failure(state: Reconciled) -> str:
    """What the failed run recorded on the dirty row, in brief: the server's error and
    what it left behind (an INVALID index), so the repair does not start blind."""
    error = state.row.error if state.row is not None else None
    if not error:
        return ""
    lines = [line.strip() for line in error.splitlines()]
    kept = [lines[0], *(line for line in lines[1:] if "INVALID index" in line)]
    return "; it recorded: " + "; ".join(kept)


def _refuse_conflicts(candidates: Iterable[Migration], rows: Sequence[HistoryRow],
                      states: Sequence[Reconciled], width: int) -> None:
    """A pending migration whose number another service's row holds. When that row's
    migration was renumbered by a merge (its file is here under a new number), the row
    moves; otherwise the pending one is this branch's and moves."""
    by_version = {row.version: row for row in rows}
    moved = {s.version: s.moved_to for s in states if s.moved_to is not None}
    for migration in candidates:
        row = by_version.get(migration.version)
        if row is None or row.service == migration.service:
            continue
        message = (f"{migration.service} {migration.label} has the number of {row.service}'s "
                   f"{row.name}, which is already applied in this database")
        new = moved.get(row.version)
        if new is not None:
            hint = (f"{row.service}'s migration was renumbered to {new.version_text} by a "
                    "merge; " + moved_repair_hint(states, width))
        else:
            hint = (f"if {row.service}'s {row.name} was renumbered by a merge, `migcoord status` "
                    "(in a checkout with its folder) shows its new number, and `up` there names "
                    f"the `mark` commands that record it; if {migration.service}'s "
                    f"{migration.label} is your branch's, move it: `migcoord resolve --onto "
                    "<ref>` (the branch it merges into)")
        raise RefusedError(message, hint=hint, version=migration.version,
                           service=migration.service, direction="up")


def _refuse_out_of_order(candidates: Iterable[Migration], rows: Sequence[HistoryRow],
                         width: int) -> None:
    highest: dict[str, int] = {}
    for row in rows:
        highest[row.service] = max(highest.get(row.service, 0), row.version)
    late = [m for m in candidates if m.version < highest.get(m.service, 0)]
    if late:
        service = late[0].service
        numbers = ", ".join(m.version_text for m in late)
        raise RefusedError(
            f"{service} has pending migration(s) {numbers} numbered below its applied "
            f"{_v(highest[service], width)}: out of order (usually a branch merged after a newer one "
            "was deployed)",
            hint="check that they do not conflict with what is applied, then run up with "
            "--allow-out-of-order; or `migcoord renumber` them after the applied ones",
            version=late[0].version if len(late) == 1 else None, service=service,
            direction="up")


def _future_warnings(states: Iterable[Reconciled], width: int) -> tuple[str, ...]:
    return tuple(
        f"{_v(s.version, width)} {s.service} {s.name} is applied in the database but newer than "
        "every file here: this checkout is behind the database (a rolled-back deployment?); "
        "carrying on"
        for s in states if s.state == Status.FUTURE)


def down_only_warnings(catalog: Catalog, rows: Sequence[HistoryRow],
                       services: Collection[str] | None) -> tuple[str, ...]:
    """Each migration of `services` (None: all) that has only a down file: nothing to
    apply, so `up` runs the others (DESIGN: a file error stops `up` for that migration)
    and `status` lists no state for it, but neither passes it over in silence; `check`
    reports it as missing-up."""
    return tuple(
        f"{m.service} {m.label} has a down file and no up file ({m.label}.up.sql is "
        "missing; `migcoord check` reports it as missing-up): nothing of it is applied; "
        "restore the up file, or delete the down file if the migration was abandoned"
        for m in down_only(catalog, rows, services))


@attrs.frozen
class DownRequest:
    service: str
    steps: int | None = None
    to: int | None = None
    cascade: bool = False
    #: How messages write versions: the project's `version_width`.
    width: int = 6


def plan_down(catalog: Catalog, rows: Sequence[HistoryRow], request: DownRequest) -> Plan:
    """What `down` would roll back, newest first; raises RefusedError when it must not."""
    if request.steps is not None and request.to is not None:
        raise UsageError("give --steps or --to, not both")
    width = request.width
    states = reconcile(catalog, rows, width=width)
    mine = [s for s in states if s.service == request.service and s.row is not None]
    _refuse_broken(mine, states, width)
    applied = sorted(mine, key=lambda s: s.version, reverse=True)
    if request.to is not None:
        targets = [s for s in applied if s.version > request.to]
    else:
        targets = applied[: request.steps or 1]
    reasons = {s.version: "requested" for s in targets}
    selected = _with_dependents({s.version: s for s in targets}, states, reasons,
                                cascade=request.cascade, width=width)
    _refuse_broken(selected.values(), states, width)
    return Plan(steps=tuple(_down_step(selected[version], reasons[version], width)
                            for version in sorted(selected, reverse=True)))


def _with_dependents(selected: dict[int, Reconciled], states: Sequence[Reconciled],
                     reasons: dict[int, str], *, cascade: bool, width: int,
                     ) -> dict[int, Reconciled]:
    """`selected` grown by every applied migration that depends on one in it (and, for
    each, its service's newer migrations), noting why in `reasons`; without `cascade`
    the first such dependent is refused."""
    others = [s for s in states if s.row is not None and not s.row.dirty]
    changed = True
    while changed:
        changed = False
        for state in others:
            if state.version in selected:
                continue
            needs = _depends_of(state) & selected.keys()
            if not needs:
                continue
            if not cascade:
                raise RefusedError(
                    f"{_v(min(needs), width)} cannot be rolled back: {state.service}'s "
                    f"{_v(state.version, width)} {state.name} depends on it and is applied",
                    hint=f"roll back {state.service} first (`migcoord down --service "
                    f"{state.service} --to {_v(state.version - 1, width)}`), or pass --cascade to "
                    "roll back the dependents first",
                    version=min(needs), service=selected[min(needs)].service, direction="down")
            # Rolling back a dependent also rolls back its service's newer migrations.
            for later in others:
                if (later.service == state.service and later.version >= state.version
                        and later.version not in selected):
                    selected[later.version] = later
                    reasons[later.version] = f"cascade: depends on {_v(min(needs), width)}"
                    changed = True
    return selected


def _depends_of(state: Reconciled) -> set[int]:
    """What a migration needs: as recorded when it was applied, and as its file says now."""
    found = set(state.row.depends) if state.row is not None else set()
    if state.migration is not None:
        found |= set(state.migration.depends_on)
    return found


def _down_step(state: Reconciled, reason: str, width: int) -> Step:
    migration = state.migration
    if migration is not None and migration.down is None and migration.up is not None:
        # The folder is here; the migration simply has no down file (many real histories
        # ship none).
        down = migration.up.path.with_name(f"{migration.label}.down.sql")
        raise RefusedError(
            f"cannot roll back {migration.version_text} {state.service} {state.name}: it has "
            f"no down file ({down.name} does not exist)",
            hint=f"write {down} to undo it, then run down again; or undo it by hand and "
            f"record that with `migcoord mark {migration.version_text} --pending`",
            version=state.version, service=state.service, direction="down")
    if migration is None or migration.down is None:
        raise RefusedError(
            f"cannot roll back {_v(state.version, width)} {state.service} {state.name}: its down file "
            "is not in this checkout",
            hint=f"run down from a checkout that has {state.service}'s migrations folder",
            version=state.version, service=state.service, direction="down")
    return Step(migration, reason=reason)
