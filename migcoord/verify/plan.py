"""Which migrations a verify run applies and round-trips, and why it cannot run (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from migcoord.core.model import Catalog, Migration

CHECK_SEPARATOR = "-- migcoord:check"


@attrs.frozen
class VerifyStep:
    """One migration of the run, and whether it is round-tripped or only applied."""

    migration: Migration
    round_trip: bool


def plan(catalog: Catalog, service: str | None, *,
         adopted_through: int | None = None) -> tuple[VerifyStep, ...]:
    """The migrations to apply, in global version order, and which to round-trip.

    Every migration is round-tripped, or with `service` only that service's, and then
    only up to its newest one; the other services' migrations numbered below it are
    applied (once) because a shared database has them, and later ones may need them.
    A migration of an adopted history (at most `adopted_through`) without a down file is
    only applied: there is nothing to round-trip.
    """
    migrations = list(catalog.migrations)

    def trip(migration: Migration) -> bool:
        return not (adopted_through is not None and migration.version <= adopted_through
                    and migration.down is None)

    if service is None:
        return tuple(VerifyStep(m, round_trip=trip(m)) for m in migrations)
    own = [m.version for m in migrations if m.service == service]
    if not own:
        return ()
    last = max(own)
    return tuple(VerifyStep(m, round_trip=m.service == service and trip(m))
                 for m in migrations if m.version <= last)


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
