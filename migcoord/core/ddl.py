"""How long a migration may wait for a table lock, and how it is retried (pure).

A migration that needs a lock another session holds waits for it, and every query that
comes after it on that table queues behind the waiting migration: on a database several
services share, one blocked `ALTER TABLE` stops them all. So every migration runs with a
PostgreSQL `lock_timeout` (default 5 s) and, optionally, a `statement_timeout`; when the
lock timeout fires, the migration is rolled back and tried again after a growing,
jittered pause, and after the last attempt it fails naming who held the lock.

The settings come in layers, the first that sets a value wins: the command line
(`--ddl-lock-timeout`), the file (`-- migcoord:lock-timeout 30s`), the service
(`[services.X.ddl]`), the config (`[ddl]`), then the defaults (`DEFAULTS`).

Durations are written as PostgreSQL writes them: a number and a unit, `500ms`, `5s`,
`10min`, `1h`, `1d` (fractions such as `1.5s` too). A bare `0` turns the timeout off. Any
other bare number is refused: PostgreSQL reads `SET lock_timeout = 5` as 5 ms, and
migcoord's `--lock-timeout 5` as 5 s, so a number without a unit would be misread by
somebody.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from random import Random

import attrs

from migcoord.errors import UsageError

#: The largest value PostgreSQL accepts for lock_timeout and statement_timeout (ms).
MAX_MS = 2_147_483_647
#: The most retries a migration may ask for.
MAX_RETRIES = 100

_UNITS_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")

#: The keys of a `[ddl]` table (and of `[services.X.ddl]`), as migcoord.toml spells them.
KEYS = ("lock_timeout", "statement_timeout", "retries", "retry_delay", "retry_delay_max")
_DURATION_KEYS = frozenset(KEYS) - {"retries"}


def shown(value: object) -> str:
    """A value from migcoord.toml (or a directive) as TOML spells it in a message: `true`,
    not Python's `True`; a text quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a table"
    return repr(value)


def duration_problem(value: object) -> str | None:
    """Why `value` is not a duration (see the module), or None when it is one."""
    return parse_duration(value)[1]


def parse_duration(value: object) -> tuple[int, str | None]:
    """(milliseconds, None) for a duration such as "5s", "500ms", "10min" or "0" (also the
    number 0); (0, why) for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return 0, None
    if not isinstance(value, str):
        return 0, (f'expected a duration with a unit such as "5s", "500ms" or "10min" '
                   f'("0" turns it off), got {shown(value)}')
    match = _DURATION.match(value)
    if match is None:
        return 0, (f'{value!r} is not a duration: write a number and a unit, such as "5s", '
                   f'"500ms", "10min" or "1h" ("0" turns it off)')
    number, unit = float(match.group(1)), match.group(2).lower()
    if not unit:
        if number == 0:
            return 0, None
        return 0, (f"{value!r} has no unit: write {match.group(1)}s or {match.group(1)}ms "
                   "(PostgreSQL would read a bare number as milliseconds, migcoord's "
                   "--lock-timeout as seconds)")
    if unit not in _UNITS_MS:
        return 0, (f"{value!r}: unknown unit {match.group(2)!r}; use one of "
                   f"{', '.join(_UNITS_MS)}")
    ms = number * _UNITS_MS[unit]
    if not math.isfinite(ms) or round(ms) > MAX_MS:
        return 0, f"{value!r} is longer than PostgreSQL allows ({MAX_MS} ms, about 24 days)"
    if ms and round(ms) == 0:
        return 0, f"{value!r} is shorter than a millisecond, the smallest step PostgreSQL takes"
    return round(ms), None


def parse_retries(value: object) -> tuple[int, str | None]:
    """(count, None) for a whole number of retries from 0 to MAX_RETRIES (an int, or its
    digits as text); (0, why) for anything else."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        return 0, (f"expected a whole number of retries from 0 to {MAX_RETRIES}, got "
                   f"{shown(value)}")
    return value, None


def format_ms(ms: int) -> str:
    """A duration as a person writes it: `5s`, `250ms`, `10min`, `1h`; `0` for none."""
    if ms == 0:
        return "0"
    for unit in ("d", "h", "min", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


@attrs.frozen
class DdlSettings:
    """One layer of the settings (the command line, a file, a service, `[ddl]`): each
    value None where this layer leaves it to the next."""

    lock_timeout_ms: int | None = None
    statement_timeout_ms: int | None = None
    retries: int | None = None
    #: The first pause between attempts; each next one doubles, up to retry_delay_max.
    retry_delay_ms: int | None = None
    retry_delay_max_ms: int | None = None

    def over(self, base: DdlSettings) -> DdlSettings:
        """This layer's values, and `base`'s where this one has none."""
        return DdlSettings(**{field.name: (getattr(self, field.name)
                                           if getattr(self, field.name) is not None
                                           else getattr(base, field.name))
                              for field in attrs.fields(DdlSettings)})


@attrs.frozen
class DdlPolicy:
    """What one migration runs with: its timeouts (ms, 0 for none) and its retries.

    A statement_timeout of None leaves the session's own (a role's or database's
    `ALTER ... SET statement_timeout`) in force; the lock_timeout is always set.
    """

    lock_timeout_ms: int = 5000
    statement_timeout_ms: int | None = None
    retries: int = 5
    retry_delay_ms: int = 1000
    retry_delay_max_ms: int = 30_000

    @property
    def attempts(self) -> int:
        return self.retries + 1


DEFAULTS = DdlPolicy()


@functools.lru_cache(maxsize=1024)
def resolve(*layers: DdlSettings) -> DdlPolicy:
    """The policy of one migration from its layers, the first that sets a value winning
    (command line, file, service, config), then DEFAULTS."""
    # Cached: the layers are frozen values, nearly all migrations of a run share theirs,
    # and merging them anew cost a run of 1,000 migrations ~30 ms.
    merged = DdlSettings()
    for layer in layers:
        merged = merged.over(layer)
    return DdlPolicy(**{field.name: (getattr(merged, field.name)
                                     if getattr(merged, field.name) is not None
                                     else getattr(DEFAULTS, field.name))
                        for field in attrs.fields(DdlPolicy)})


def pause_before_retry(policy: DdlPolicy, retry: int, rng: Random) -> float:
    """Seconds to wait before retry number `retry` (1 for the first): the base pause
    (retry_delay, doubling each time, at most retry_delay_max), half of it fixed and half
    drawn at random, so that replicas that timed out together do not come back together."""
    base = min(policy.retry_delay_max_ms, policy.retry_delay_ms * 2 ** min(retry - 1, 40))
    return float(base / 2 + rng.uniform(0, base / 2)) / 1000


def pauses(policy: DdlPolicy, rng: Random) -> list[float]:
    """Every pause a migration that keeps timing out waits, in order (seconds)."""
    return [pause_before_retry(policy, retry, rng) for retry in range(1, policy.retries + 1)]


def settings_from(table: Mapping[str, object], problem: Callable[[str, str], None]) -> DdlSettings:
    """A `[ddl]` table (keys as in migcoord.toml) as one layer; each mistake goes to
    `problem(key, why)` and that key is left to the next layer, so all are reported."""
    values: dict[str, int] = {}
    for key, value in table.items():
        if key not in KEYS:
            problem(key, f"unknown key; known keys: {', '.join(KEYS)}")
            continue
        number, why = parse_duration(value) if key in _DURATION_KEYS else parse_retries(value)
        if why is None and number == 0 and key.startswith("retry_delay"):
            # No pause would hammer the blocked table with attempts.
            why = "the pause between attempts must be above 0"
        if why is not None:
            problem(key, why)
            continue
        values[key if key == "retries" else f"{key}_ms"] = number
    return DdlSettings(**values)


def command_line_settings(lock_timeout: str | None) -> DdlSettings | None:
    """The `ddl_lock_timeout` argument of `up` and `down` as the top layer, judged by the
    rule of `[ddl] lock_timeout` in migcoord.toml (UsageError naming the argument)."""
    if lock_timeout is None:
        return None
    milliseconds, why = parse_duration(lock_timeout)
    if why is not None:
        raise UsageError(f"ddl_lock_timeout: {why}")
    return DdlSettings(lock_timeout_ms=milliseconds)
