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


def whole_sequence(steps: Steps, applied: list[Migration], empty: CatalogRows,
                   full: CatalogRows | None, stop_cause: str | None,
                   broken_downs: list[Migration], *, part: bool = False) -> SequenceVerdict:
    """Every migration of `applied` down, newest first, then every one up again; not
    run when the run stopped or a down failed (rolling back would stop there). `part`:
    `applied` is the branch's part, and `empty` the schema before it."""
    if stop_cause is not None:
        return SequenceVerdict(ran=False, note=f"not run: {stop_cause}")
    if broken_downs:
        named = ", ".join(who(m) for m in broken_downs[:3])
        more = f" and {len(broken_downs) - 3} more" if len(broken_downs) > 3 else ""
        downs = "downs" if len(broken_downs) > 1 else "down"
        return SequenceVerdict(ran=False, note=f"not run: the {downs} of {named}{more} "
                               "failed, and rolling everything back would stop there")
    without_down = [m for m in applied if m.down is None]
    if without_down:
        return SequenceVerdict(ran=False, note=f"not run: {who(without_down[-1])} has no "
                               "down file (adopted history), so nothing can roll back past it")
    if full is None:
        full = steps.snapshot()
    steps.new_command()
    started = steps.clock()
    for migration in reversed(applied):
        try:
            steps.down(migration)
        except StepFailed as failure:
            return SequenceVerdict(ran=True, problems=(Problem(
                "sequence-down", f"rolling everything back stopped at {who(migration)}: "
                f"{failure.message}"),))
    down_ms = elapsed_ms(steps.clock() - started)
    problems: list[Problem] = []
    changes = schema_changes(empty, steps.snapshot())
    if changes:
        problems.append(Problem(
            "sequence-down", "rolling everything back did not give the "
            + ("schema the base's migrations made " if part else "empty schema ")
            + "(+ left behind, - removed, ~ changed):", changes))
    steps.new_command()
    started = steps.clock()
    for migration in applied:
        try:
            steps.up(migration)
        except StepFailed as failure:
            problems.append(Problem(
                "sequence-up", f"applying everything again stopped at {who(migration)}: "
                f"{failure.message}"))
            return SequenceVerdict(ran=True, problems=tuple(problems), down_ms=down_ms)
    up_ms = elapsed_ms(steps.clock() - started)
    changes = schema_changes(full, steps.snapshot())
    if changes:
        problems.append(Problem(
            "sequence-up", "applying everything again gave another schema than the round "
            "trips left (+ only now, - only before, ~ changed):", changes))
    return SequenceVerdict(ran=True, problems=tuple(problems), down_ms=down_ms, up_ms=up_ms)
