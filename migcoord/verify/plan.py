"""Which migrations a verify run applies and round-trips, and why it cannot run (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import attrs

from migcoord.core.model import Catalog, Migration

CHECK_SEPARATOR = "-- migcoord:check"

#: Why a migration is applied without a round trip: another service's (below the one
#: verified), one the ref of `--against` has, or one of an adopted history without a
#: down file.
NoRoundTrip = Literal["other-service", "base", "adopted"]


@attrs.frozen
class VerifyStep:
    """One migration of the run, and whether it is round-tripped or only applied."""

    migration: Migration
    round_trip: bool
    #: The base (`--against REF`) has it: applied once, as `up` would, without measuring.
    base: bool = False
    #: Why it is not round-tripped; None when it is.
    no_round_trip: NoRoundTrip | None = None


def plan(catalog: Catalog, service: str | None, *,
         adopted_through: int | None = None,
         base: frozenset[tuple[str, int]] | None = None) -> tuple[VerifyStep, ...]:
    """The migrations to apply, in global version order, and which to round-trip.

    Every migration is round-tripped, or with `service` only that service's, and then
    only up to its newest one; the other services' migrations numbered below it are
    applied (once) because a shared database has them, and later ones may need them.
    A migration of an adopted history (at most `adopted_through`) without a down file is
    only applied: there is nothing to round-trip. With `base` (the (service, version) of
    each migration the ref of `--against` has), those are only applied, and when none is
    left to round-trip there is nothing to do: the plan is empty.
    """
    migrations = list(catalog.migrations)

    def on_base(migration: Migration) -> bool:
        return base is not None and (migration.service, migration.version) in base

    def why_not(migration: Migration) -> NoRoundTrip | None:
        if on_base(migration):
            return "base"
        if service is not None and migration.service != service:
            return "other-service"
        if (adopted_through is not None and migration.version <= adopted_through
                and migration.down is None):
            return "adopted"
        return None

    def step(migration: Migration) -> VerifyStep:
        why = why_not(migration)
        return VerifyStep(migration, round_trip=why is None, base=on_base(migration),
                          no_round_trip=why)

    if service is None:
        steps = tuple(step(m) for m in migrations)
    else:
        own = [m.version for m in migrations if m.service == service]
        if not own:
            return ()
        last = max(own)
        steps = tuple(step(m) for m in migrations if m.version <= last)
    if base is not None and not any(step.round_trip for step in steps):
        return ()
    return steps


def sequence_start(steps: Sequence[VerifyStep]) -> int:
    """How many of the first steps the whole-sequence check leaves applied: the leading
    base migrations with `--against` (the branch's part is rolled back and applied again,
    with any base migration numbered after its first one), and every step up to the last
    migration without a down file (an adopted history's: nothing rolls back past it); 0
    otherwise (everything)."""
    count = 0
    for step in steps:
        if not step.base:
            break
        count += 1
    for index, step in enumerate(steps, start=1):
        if step.migration.down is None:
            count = max(count, index)
    return count


def split_verify_script(text: str) -> tuple[str, str] | None:
    """A verify-data script's two halves: (seed, check); None without the separator line.

    The separator is a line holding only `-- migcoord:check`.
    """
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip() == CHECK_SEPARATOR:
            return "\n".join(lines[:index]), "\n".join(lines[index + 1:])
    return None


@attrs.frozen
class RebuildRoute:
    """How to build the throwaway database again: from the saved copy or from empty, and
    whether to save the result."""

    from_saved: bool
    save_after: bool


def rebuild_route(costs: Sequence[int], saved: int, copy_ms: int) -> RebuildRoute:
    """The cheaper way to build the database again with migrations applied whose first ups
    took `costs` ms each, when a copy holding the first `saved` of them exists (0: none)
    and copying a database takes about `copy_ms`.

    From the copy: one copy and the ups after it; from empty: every up. Saving costs a
    copy now and spares the ups since the last copy at the next rebuild, so it is done
    when those cost more than two copies.
    """
    everything = sum(costs)
    since_saved = sum(costs[saved:])
    return RebuildRoute(from_saved=saved > 0 and copy_ms + since_saved < everything,
                        save_after=since_saved > 2 * copy_ms)
