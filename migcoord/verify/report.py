"""What `migcoord verify` found: one verdict per migration, one for the whole sequence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs

from migcoord.core.lockreport import LockImpact
from migcoord.verify.plan import NoRoundTrip

#: Where the throwaway database lives: a server the user gave, this repository's dev
#: server, or a server started for this run only.
ServerKind = Literal["given", "dev", "temporary"]
#: A migration's verdict: see MigrationVerdict.
VerdictStatus = Literal["ok", "failed", "skipped", "applied"]


@attrs.frozen
class Problem:
    """One thing a round trip found: at which stage, what happened, and the schema diff."""

    stage: str
    message: str
    diff: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "message": self.message, "diff": list(self.diff)}


@attrs.frozen
class MigrationVerdict:
    """What verify found for one migration.

    `status`: `ok` (round trip passed), `failed` (see problems), `applied` (applied
    once without a round trip, for the reason `no_round_trip` gives: another service's
    migration that later ones need, one the ref of `--against` has (`base`), or one of
    an adopted history without a down file) or
    `skipped` (not run: an earlier migration's up failed, so nothing after it could be
    applied; its one problem, of stage `skipped`, says which). A skipped migration was
    not verified: it is neither ok nor failed.

    `rebuilt`: after this migration's round trip failed, the throwaway database was built
    again with every migration up to and including this one applied once (taking
    `rebuild_ms`), so that the next round trip starts where it should.
    """

    version: int
    version_text: str
    service: str
    name: str
    status: VerdictStatus
    round_trip: bool
    problems: tuple[Problem, ...] = ()
    up_ms: int | None = None
    down_ms: int | None = None
    up_again_ms: int | None = None
    rebuilt: bool = False
    rebuild_ms: int | None = None
    #: What its first up locked and rewrote (None when that up did not run or failed).
    impact: LockImpact | None = None
    #: The ref of `--against` has it: applied once, not round-tripped, not measured.
    base: bool = False
    #: Why it is not round-tripped (see verify.plan.NoRoundTrip); None when it is.
    no_round_trip: NoRoundTrip | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "applied")

    @property
    def lock_flags(self) -> tuple[str, ...]:
        """Its locks on other services' tables and its table rewrites (core/lockreport)."""
        return self.impact.flags(self.service) if self.impact is not None else ()

    @property
    def skip_reason(self) -> str | None:
        """Why a skipped migration was not run; None for the others."""
        if self.status != "skipped":
            return None
        return next((p.message for p in self.problems if p.stage == "skipped"), "not run")

    @property
    def label(self) -> str:
        return f"{self.version_text} {self.service} {self.name}"

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "service": self.service, "name": self.name,
                "ok": self.ok, "status": self.status, "round_trip": self.round_trip,
                "problems": [p.as_json() for p in self.problems], "up_ms": self.up_ms,
                "down_ms": self.down_ms, "up_again_ms": self.up_again_ms,
                "rebuilt": self.rebuilt, "rebuild_ms": self.rebuild_ms, "base": self.base,
                "no_round_trip": self.no_round_trip,
                "locks": (None if self.impact is None or self.impact.locks is None
                          else [lock.as_json() for lock in self.impact.locks]),
                "rewrites": list(self.impact.rewrites) if self.impact is not None else [],
                "lock_flags": list(self.lock_flags)}


#: The whole sequence's verdict: see SequenceVerdict.
SequenceStatus = Literal["ok", "failed", "not-run", "nothing"]


@attrs.frozen
class SequenceVerdict:
    """The whole sequence down to empty and up again, after the per-migration round trips.

    `status`: `ok` (it ran and gave both schemas), `failed` (see problems), `not-run` (an
    up failed, so the migrations after it were never applied and there is no whole
    sequence; `note` says which) or `nothing` (nothing for it to roll back: no migration
    to verify, or the last one has no down file; `note` says which). Only `ok` is ok: a
    step that did not run did not pass; `nothing` does not fail the run either.
    """

    status: SequenceStatus
    problems: tuple[Problem, ...] = ()
    down_ms: int | None = None
    up_ms: int | None = None
    #: Why it did not run, when it did not.
    note: str | None = None

    @property
    def ran(self) -> bool:
        return self.status in ("ok", "failed")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def lets_pass(self) -> bool:
        """Whether the run can pass with it: it passed, or it had nothing to roll back. A
        sequence not run because an up failed never lets the run pass on its own."""
        return self.status in ("ok", "nothing")

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "ran": self.ran,
                "problems": [p.as_json() for p in self.problems],
                "down_ms": self.down_ms, "up_ms": self.up_ms, "note": self.note}


@attrs.frozen
class VerifyReport:
    """The outcome of one `verify` run."""

    migrations: tuple[MigrationVerdict, ...]
    sequence: SequenceVerdict
    database: str | None = None
    server: str | None = None
    server_kind: ServerKind | None = None
    #: The throwaway database's DSN (no password) when it was kept.
    kept_dsn: str | None = None
    elapsed_ms: int = 0

    @property
    def ok(self) -> bool:
        return all(m.ok for m in self.migrations) and self.sequence.lets_pass

    @property
    def failed(self) -> tuple[MigrationVerdict, ...]:
        """The migrations whose up or round trip failed (never the skipped ones)."""
        return tuple(m for m in self.migrations if m.status == "failed")

    @property
    def skipped(self) -> tuple[MigrationVerdict, ...]:
        return tuple(m for m in self.migrations if m.status == "skipped")

    @property
    def counts(self) -> dict[str, int]:
        """How many migrations were round-tripped (passed or failed), failed, skipped
        (not run), applied without a round trip, and after how many the database was
        rebuilt. `ok` + `failed` + `skipped` + `applied` is every migration."""
        statuses = [m.status for m in self.migrations]
        return {"round_tripped": sum(1 for m in self.migrations
                                     if m.round_trip and m.status in ("ok", "failed")),
                "ok": statuses.count("ok"), "failed": statuses.count("failed"),
                "skipped": statuses.count("skipped"), "applied": statuses.count("applied"),
                "rebuilt": sum(1 for m in self.migrations if m.rebuilt)}

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts,
                "migrations": [m.as_json() for m in self.migrations],
                "sequence": self.sequence.as_json(), "database": self.database,
                "server": self.server, "server_kind": self.server_kind,
                "kept_dsn": self.kept_dsn, "elapsed_ms": self.elapsed_ms}


Progress = Callable[[MigrationVerdict | SequenceVerdict], None]
