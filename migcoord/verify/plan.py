"""Which migrations a verify run applies and round-trips, and why it cannot run (pure)."""

from __future__ import annotations

import attrs

from migcoord.core.model import Catalog, Migration

CHECK_SEPARATOR = "-- migcoord:check"


@attrs.frozen
class VerifyStep:
    """One migration of the run, and whether it is round-tripped or only applied."""

    migration: Migration
    round_trip: bool


def plan(catalog: Catalog, service: str | None) -> tuple[VerifyStep, ...]:
    """The migrations to apply, in global version order, and which to round-trip.

    Every migration is round-tripped, or with `service` only that service's, and then
    only up to its newest one; the other services' migrations numbered below it are
    applied (once) because a shared database has them, and later ones may need them.
    """
    migrations = list(catalog.migrations)
    if service is None:
        return tuple(VerifyStep(m, round_trip=True) for m in migrations)
    own = [m.version for m in migrations if m.service == service]
    if not own:
        return ()
    last = max(own)
    return tuple(VerifyStep(m, round_trip=m.service == service) for m in migrations
                 if m.version <= last)


def split_verify_script(text: str) -> tuple[str, str] | None:
    """A verify-data script's two halves: (seed, check); None without the separator line.

    The separator is a line holding only `-- migcoord:check`.
    """
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.strip() == CHECK_SEPARATOR:
            return "\n".join(lines[:index]), "\n".join(lines[index + 1:])
    return None
