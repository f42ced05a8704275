"""The last step of `migcoord verify`: after the round trips, every migration down,
newest first, to the schema before them, then every one up again, to the schema the
round trips left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from migcoord.core.model import Migration
from migcoord.verify.report import Problem, SequenceVerdict
from migcoord.verify.throwaway import StepFailed, elapsed_ms, schema_changes, who

if TYPE_CHECKING:
    from migcoord.db.snapshot_sql import CatalogRows

#: The name of the last step, after the per-migration round trips.
SEQUENCE_STEP = "whole sequence down and up again"


class Steps(Protocol):
    """The steps the whole sequence takes on the throwaway database (roundtrip.RoundTrips)."""

    clock: Callable[[], float]

    def snapshot(self) -> CatalogRows: ...

    def up(self, migration: Migration) -> int: ...

    def down(self, migration: Migration) -> int: ...

    def new_command(self) -> None: ...


def whole_sequence(steps: Steps, applied: list[Migration], start: int, empty: CatalogRows,
                   full: CatalogRows | None, stop_cause: str | None) -> SequenceVerdict:
    """Every migration of `applied[start:]` down, newest first, to `empty` (the schema
    with the first `start` applied), then every one up again, to `full`.

    Not run when the run stopped (an up failed: the later migrations were never applied);
    nothing to run when no migration follows the first `start`. A down that failed in
    its own round trip is run here all the same: what it needs may exist by the end of
    the sequence (a value a later migration adds), and the database is a throwaway one.
    The sequence fails at the down where rolling back really stops, if it does.
    """
    if stop_cause is not None:
        return SequenceVerdict("not-run", note=f"not run: {stop_cause}")
    part = applied[start:]
    if not part:
        if not applied:
            return SequenceVerdict("nothing", note="nothing to roll back: no migration was "
                                   "applied")
        last = applied[start - 1]
        why = ", which has no down file (adopted history)" if last.down is None else ""
        return SequenceVerdict("nothing", note=f"nothing to roll back after {who(last)}{why}")
    return _down_and_up(steps, part, empty, full,
                        before=None if start == 0 else who(applied[start - 1]))


def _down_and_up(steps: Steps, part: list[Migration], empty: CatalogRows,
                 full: CatalogRows | None, *, before: str | None) -> SequenceVerdict:
    """`part` down and up again; `before`: the migration after which it starts (None: the
    first of all)."""
    target = "empty schema" if before is None else f"schema with {before} and those before it"
    if full is None:
        full = steps.snapshot()
    steps.new_command()
    started = steps.clock()
    for migration in reversed(part):
        try:
            steps.down(migration)
        except StepFailed as failure:
            return SequenceVerdict("failed", problems=(Problem(
                "sequence-down", f"rolling everything back stopped at {who(migration)}: "
                f"{failure.message}"),))
    down_ms = elapsed_ms(steps.clock() - started)
    problems: list[Problem] = []
    changes = schema_changes(empty, steps.snapshot())
    if changes:
        problems.append(Problem(
            "sequence-down", f"rolling everything back did not give the {target} "
            "(+ left behind, - removed, ~ changed):", changes))
    steps.new_command()
    started = steps.clock()
    for migration in part:
        try:
            steps.up(migration)
        except StepFailed as failure:
            problems.append(Problem(
                "sequence-up", f"applying everything again stopped at {who(migration)}: "
                f"{failure.message}"))
            return SequenceVerdict("failed", problems=tuple(problems), down_ms=down_ms)
    up_ms = elapsed_ms(steps.clock() - started)
    changes = schema_changes(full, steps.snapshot())
    if changes:
        problems.append(Problem(
            "sequence-up", "applying everything again gave another schema than the round "
            "trips left (+ only now, - only before, ~ changed):", changes))
    return SequenceVerdict("failed" if problems else "ok", problems=tuple(problems),
                           down_ms=down_ms, up_ms=up_ms)
