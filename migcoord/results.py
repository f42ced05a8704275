"""What the commands return: frozen values the CLI renders and scripts inspect."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from migcoord.core.model import Finding, Status
from migcoord.core.numbering import LeftReferences

if TYPE_CHECKING:
    from migcoord.core.numbering import RenumberPlan


@attrs.frozen
class StepResult:
    """One migration applied or rolled back."""

    version: int
    service: str
    name: str
    duration_ms: int

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "service": self.service, "name": self.name,
                "duration_ms": self.duration_ms}


@attrs.frozen
class PlannedStep:
    """One step of a plan, as `--dry-run` shows it."""

    version: int
    service: str
    name: str
    direction: str
    sql: str
    no_transaction: bool = False
    #: Why this step is in the plan ("pending", "dependency of 000006", "cascade").
    reason: str = ""

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "service": self.service, "name": self.name,
                "direction": self.direction, "no_transaction": self.no_transaction,
                "reason": self.reason, "sql": self.sql}


@attrs.frozen
class UpResult:
    applied: tuple[StepResult, ...] = ()
    planned: tuple[PlannedStep, ...] = ()
    dry_run: bool = False
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"applied": [s.as_json() for s in self.applied], "dry_run": self.dry_run,
                "planned": [s.as_json() for s in self.planned], "warnings": list(self.warnings)}


@attrs.frozen
class DownResult:
    rolled_back: tuple[StepResult, ...] = ()
    planned: tuple[PlannedStep, ...] = ()
    dry_run: bool = False
    warnings: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"rolled_back": [s.as_json() for s in self.rolled_back], "dry_run": self.dry_run,
                "planned": [s.as_json() for s in self.planned], "warnings": list(self.warnings)}


@attrs.frozen
class MigrationState:
    """One row of `status`."""

    version: int
    service: str
    name: str
    state: Status
    applied_at: datetime.datetime | None = None
    applied_by: str | None = None
    #: Extra words for the state: where a dirty migration stopped, what changed.
    detail: str | None = None
    #: False when the service's folder is not here, so the row is reported, not judged.
    judged: bool = True

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "service": self.service, "name": self.name,
                "state": str(self.state),
                "applied_at": self.applied_at.isoformat() if self.applied_at else None,
                "applied_by": self.applied_by, "detail": self.detail,
                "judged": self.judged}


@attrs.frozen
class StatusReport:
    database_version: int | None
    dirty: bool
    migrations: tuple[MigrationState, ...]
    #: Services whose folder is absent here: their rows are shown but not judged.
    unjudged_services: tuple[str, ...] = ()
    #: What `up` would refuse in the files here, as `check` reports it: errors in pending
    #: migrations' up files (duplicate-version, encoding, ...) and unreadable entries.
    problems: tuple[Finding, ...] = ()
    #: What is here but has no state (a migration with only a down file), logged too.
    warnings: tuple[str, ...] = ()

    @property
    def has_errors(self) -> bool:
        bad = {Status.DIRTY, Status.MODIFIED, Status.MISSING}
        return bool(self.problems) or any(m.state in bad for m in self.migrations)

    def as_json(self, relative_to: Path | None = None) -> dict[str, object]:
        """Paths of `problems` relative to `relative_to` (the config's folder)."""
        return {"database_version": self.database_version, "dirty": self.dirty,
                "migrations": [m.as_json() for m in self.migrations],
                "problems": [f.as_json(relative_to) for f in self.problems],
                "warnings": list(self.warnings)}


@attrs.frozen
class MarkResult:
    version: int
    service: str
    name: str
    applied: bool
    previous: str | None

    @property
    def state(self) -> str:
        return "applied" if self.applied else "pending"

    def as_json(self) -> dict[str, object]:
        return {"version": self.version, "service": self.service, "name": self.name,
                "state": self.state, "previous": self.previous}


@attrs.frozen
class AdoptResult:
    golang_version: int
    recorded: tuple[int, ...]
    already: tuple[int, ...]

    def as_json(self) -> dict[str, object]:
        return {"golang_version": self.golang_version, "recorded": list(self.recorded),
                "already": list(self.already)}


def shown_path(path: Path, relative_to: Path | None) -> str:
    """`path` relative to `relative_to` (`/`-separated) when inside it, else as it is."""
    if relative_to is not None and path.is_relative_to(relative_to):
        return path.relative_to(relative_to).as_posix()
    return str(path)


@attrs.frozen
class Created:
    """What `create` wrote."""

    version: int
    version_text: str
    service: str
    name: str
    up: Path
    down: Path

    def as_json(self, relative_to: Path | None = None) -> dict[str, object]:
        """Paths relative to `relative_to` (the config's folder), as `check` gives them."""
        return {"version": self.version, "service": self.service, "name": self.name,
                "up": shown_path(self.up, relative_to), "down": shown_path(self.down, relative_to)}


@attrs.frozen
class Renumbered:
    """What `renumber` moved and edited."""

    service: str
    name: str
    old_version: int
    new_version: int
    new_version_text: str
    moved: tuple[tuple[Path, Path], ...]
    edited: tuple[Path, ...]
    #: Bare references left unchanged, in the files as they are after the moves.
    ambiguous: tuple[LeftReferences, ...] = ()
    #: (old, new) for every migration moved: the requested one and its service's later ones.
    versions: tuple[tuple[int, int], ...] = ()

    def as_json(self, relative_to: Path | None = None) -> dict[str, object]:
        """Paths relative to `relative_to` (the config's folder), as `check` gives them."""
        return {"service": self.service, "name": self.name, "old_version": self.old_version,
                "new_version": self.new_version,
                "moved": [[shown_path(a, relative_to), shown_path(b, relative_to)]
                          for a, b in self.moved],
                "versions": [list(pair) for pair in self.versions],
                "edited": [shown_path(p, relative_to) for p in self.edited],
                "ambiguous": [left.describe(shown_path(left.path, relative_to))
                              for left in self.ambiguous]}

    @classmethod
    def of(cls, plan: RenumberPlan) -> Renumbered:
        """The result of carrying out `plan` (edited files named where they are after it)."""
        migration = plan.migration
        renamed = {m.source: m.target for m in plan.moves}
        return cls(
            service=migration.service, name=migration.name, old_version=migration.version,
            new_version=plan.new_version, new_version_text=plan.new_version_text,
            moved=tuple((m.source, m.target) for m in plan.moves),
            edited=tuple(renamed.get(e.path, e.path) for e in plan.edits),
            ambiguous=_renamed(plan.ambiguous, renamed),
            versions=tuple((item.migration.version, item.new_version)
                           for item in plan.renumberings))


@attrs.frozen
class Resolved:
    """What `resolve` kept, moved and edited."""

    #: The other side, as a person calls it: "origin/main", "main (being merged)".
    other_side: str
    #: "merge", "rebase" or "ref" (--onto).
    state: str
    #: (service, name, old version text, new version text) for every migration moved.
    versions: tuple[tuple[str, str, str, str], ...] = ()
    moved: tuple[tuple[Path, Path], ...] = ()
    edited: tuple[Path, ...] = ()
    #: Bare references left unchanged, in the files as they are after the moves.
    ambiguous: tuple[LeftReferences, ...] = ()
    #: The other side's migrations that kept the numbers this branch's left.
    kept: tuple[str, ...] = ()
    #: Whether migcoord.sum's content changed (a second resolve leaves it as it was).
    sum_updated: bool = False

    def as_json(self) -> dict[str, object]:
        return {"other_side": self.other_side, "state": self.state,
                "migrations": [{"service": s, "name": n, "old_version": int(old),
                                "new_version": int(new)} for s, n, old, new in self.versions],
                "moved": [[str(a), str(b)] for a, b in self.moved],
                "edited": [str(p) for p in self.edited],
                "ambiguous": [left.describe(str(left.path)) for left in self.ambiguous],
                "kept": list(self.kept), "sum_updated": self.sum_updated}

    @classmethod
    def of(cls, plan: RenumberPlan, kept: tuple[str, ...], other_side: str,
           state: str, *, sum_updated: bool) -> Resolved:
        """The result of carrying out `plan` against `other_side`; edited files are named
        where they are after the moves."""
        renamed = {m.source: m.target for m in plan.moves}
        return cls(
            other_side=other_side, state=state,
            versions=tuple((r.migration.service, r.migration.name, r.migration.version_text,
                            r.new_version_text) for r in plan.renumberings),
            moved=tuple((m.source, m.target) for m in plan.moves),
            edited=tuple(renamed.get(e.path, e.path) for e in plan.edits),
            ambiguous=_renamed(plan.ambiguous, renamed), kept=kept, sum_updated=sum_updated)


def _renamed(left: tuple[LeftReferences, ...], renamed: dict[Path, Path],
             ) -> tuple[LeftReferences, ...]:
    """`left` with each file named where the moves put it."""
    return tuple(attrs.evolve(item, path=renamed.get(item.path, item.path)) for item in left)
