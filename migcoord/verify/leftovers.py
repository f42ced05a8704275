"""Throwaway databases that earlier verify runs left on a server (a run killed with
SIGKILL cannot drop its own): which to mention, and how. Verify never drops them: one
may belong to a run still going on elsewhere."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migcoord.db.scratch import ThrowawayFound

#: A database nobody is connected to and older than this is taken for a leftover; a
#: running verify is connected to its database all the time but for a moment.
STALE_AFTER = datetime.timedelta(hours=1)


def stale(found: Sequence[ThrowawayFound], now: datetime.datetime) -> list[ThrowawayFound]:
    """Those of `found` that nobody is connected to and that were made `STALE_AFTER` ago or
    earlier, or at a time not known (made by an older migcoord)."""
    return [one for one in found
            if one.sessions == 0 and (one.made is None or now - one.made >= STALE_AFTER)]


def note(left: Sequence[ThrowawayFound], now: datetime.datetime, drop_command: str) -> str:
    """The warning naming `left` (each with its age) and the command that drops them."""
    many = len(left) != 1
    names = ", ".join(f"{one.name} ({_age(one.made, now)})" for one in left)
    return (f"found {len(left)} throwaway database{'s' if many else ''} of earlier verify "
            f"runs on this server that nobody is connected to: {names}; a run killed with "
            f"SIGKILL leaves {'them' if many else 'it'}. Unless a verify still uses "
            f"{'them' if many else 'it'}, drop {'them' if many else 'it'}: {drop_command}")


def _age(made: datetime.datetime | None, now: datetime.datetime) -> str:
    if made is None:
        return "made at a time not known"
    hours = (now - made).total_seconds() / 3600
    if hours < 48:
        return f"made {max(1, round(hours))} h ago"
    return f"made {round(hours / 24)} days ago"
