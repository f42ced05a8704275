"""The round trips of `migcoord verify`, in one throwaway database.

For each migration, in global version order:

    snapshot A -> up -> snapshot B -> down -> must equal A -> up again -> must equal B

then everything down to empty (must equal the empty start) and up again (must equal
the full schema; sequence.py). With `--against REF`, the migrations REF has are applied once without
a round trip, and the whole sequence is the branch's part: rolled back to the schema
REF's migrations made, and applied again. Migrations run through the real executor, with their history rows,
so no-transaction migrations and the history bookkeeping are exercised as in
production.

Every round trip starts from the state "every migration before it applied once". When a
round trip does not end in that state with this migration applied (its down failed
half-way, or left another schema that the up again did not put right, or the up again
failed), the throwaway database is dropped and built again, running each migration so
far up once (and each verify-data seed after its up), and the run goes on: one run
reports every broken down. Only a first up that fails stops the run, since nothing
after it can be applied.

A rebuilt database may be saved (copied); a later rebuild then starts from that copy and
runs only the migrations after it. Which way is cheaper is decided from the measured
times of the ups and of copying a database (`plan.rebuild_route`): with many
migrations before a broken down, copies spare running them all again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from migcoord.core.model import Config, Migration
from migcoord.core.progress import OnStep, StepStarted, ignore
from migcoord.verify import data
from migcoord.verify.plan import VerifyStep, rebuild_route, sequence_start
from migcoord.verify.report import MigrationVerdict, Problem, Progress, SequenceVerdict, VerdictStatus
from migcoord.verify.sequence import SEQUENCE_STEP, whole_sequence
from migcoord.verify.throwaway import (
    Database,
    Session,
    StepFailed,
    elapsed_ms,
    lost_not_failed,
    schema_changes,
    who,
)

if TYPE_CHECKING:
    import psycopg

    from migcoord.core.lockreport import LockImpact
    from migcoord.db.snapshot_sql import CatalogRows
    from migcoord.errors import ConnectionLost, MigrationFailed


@attrs.frozen
class TripOutcome:
    """One migration's round trip: its verdict; the schema its first up made (None when
    that up failed); whether the database is now in the state "everything up to this
    migration applied", and then its schema; the verify-data seed that ran after the
    up."""

    verdict: MigrationVerdict
    after_up: CatalogRows | None
    in_place: bool = False
    schema_after: CatalogRows | None = None
    seed: str | None = None


class RoundTrips:
    """The per-migration round trips and the whole sequence, in one throwaway database."""

    def __init__(self, steps: tuple[VerifyStep, ...], config: Config,
                 read_verify_file: Callable[[Migration], str | None], progress: Progress,
                 clock: Callable[[], float], on_step: OnStep = ignore) -> None:
        self.steps = steps
        self.config = config
        self.read_verify_file = read_verify_file
        self.progress = progress
        self.on_step = on_step
        self.clock = clock

    def run(self, session: Session, database: Database
            ) -> tuple[tuple[MigrationVerdict, ...], SequenceVerdict]:
        """Run everything in `session`, of `database`, which a rebuild starts over.

        Every step is committed before a snapshot is taken.
        """
        self.session = session
        self.database = database
        self.saved = 0  # how many of the applied migrations the saved copy holds
        verdicts: list[MigrationVerdict] = []
        applied: list[Migration] = []  # what the database holds, in order
        self.costs: list[int] = []  # the ms of each one's first up
        seeds: dict[int, str] = {}  # verify-data seeds that ran, replayed by a rebuild
        stop_cause: str | None = None  # why the migrations from here on are not run
        empty = self.snapshot()
        current: CatalogRows | None = empty
        # With --against, the whole sequence is the branch's part: it rolls back to the
        # schema the base's leading migrations made, not to empty; in an adopted history,
        # to the schema with the last migration without a down file.
        start = sequence_start(self.steps)
        for index, step in enumerate(self.steps, start=1):
            migration = step.migration
            if index == start + 1 and start > 0 and stop_cause is None:
                empty = current if current is not None else self.snapshot()
                current = empty
            self.on_step(StepStarted(index=index, total=len(self.steps), command="verify",
                                     name=migration.name, version=migration.version,
                                     service=migration.service))
            if stop_cause is not None:
                verdict = _verdict(step, "skipped", [Problem(
                    "skipped", f"not run: {stop_cause}, so nothing after it could be applied")])
            elif not step.round_trip:
                verdict, ok = self.apply_base(step) if step.base else self.apply_only(step)
                current = None
                if ok:
                    applied.append(migration)
                    self.costs.append(verdict.up_ms or 0)
                else:
                    stop_cause = f"the up of {who(migration)} failed"
            else:
                before = current if current is not None else self.snapshot()
                trip = self.round_trip(step, before)
                verdict = trip.verdict
                if trip.after_up is None:
                    stop_cause = f"the up of {who(migration)} failed"
                else:
                    applied.append(migration)
                    self.costs.append(verdict.up_ms or 0)
                    if trip.seed is not None:
                        seeds[migration.version] = trip.seed
                    if trip.in_place:
                        current = trip.schema_after
                    else:
                        verdict, current, stop_cause = self.rebuild(verdict, applied, seeds,
                                                                    trip.after_up)
            verdicts.append(verdict)
            self.progress(verdict)
        self.on_step(StepStarted(index=len(self.steps), total=len(self.steps), command="verify",
                                 name=SEQUENCE_STEP))
        sequence = whole_sequence(self, applied, start, empty, current, stop_cause)
        self.progress(sequence)
        return tuple(verdicts), sequence

    def snapshot(self) -> CatalogRows:
        return self.session.observer.snapshot()

    def up(self, migration: Migration,
           before_commit: Callable[[psycopg.Connection], None] | None = None) -> int:
        from migcoord.db import executor
        from migcoord.db.lockwait import LockWatch

        try:
            return executor.apply_up(self.session.history, migration,
                                     lock_pid=self.session.lock_pid, role=self._role(migration),
                                     policy=self.config.ddl_policy(migration, "up"),
                                     watch=LockWatch(None), before_commit=before_commit)
        except StepFailed as failure:
            self._stop_if_lost(failure, migration, "up")
            raise

    def measured_up(self, migration: Migration) -> tuple[int, LockImpact]:
        """The first up of `migration`, with what it locked (read before its commit) and
        which tables' storage it replaced (core/lockreport)."""
        from migcoord.verify.measured import measured_up

        return measured_up(migration, lambda before_commit: self.up(migration, before_commit),
                           self.session.observer, self.config)

    def down(self, migration: Migration) -> int:
        from migcoord.db import executor
        from migcoord.db.lockwait import LockWatch

        try:
            return executor.apply_down(self.session.history, migration,
                                       lock_pid=self.session.lock_pid,
                                       role=self._role(migration),
                                       policy=self.config.ddl_policy(migration, "down"),
                                       watch=LockWatch(None))
        except StepFailed as failure:
            self._stop_if_lost(failure, migration, "down")
            raise

    def _stop_if_lost(self, failure: MigrationFailed | ConnectionLost, migration: Migration,
                      direction: str) -> None:
        """Stop the run when the step failed because its connection was lost, not by the
        migration's doing (throwaway.lost_not_failed)."""
        lost = lost_not_failed(failure, migration, direction, self.session.history.conn,
                               command="verify")
        if lost is not None:
            raise lost from failure

    def new_command(self) -> None:
        """Forget the temporary tables and functions of the steps before: in production
        a down and the up after it are other commands, in other sessions."""
        from migcoord.db import scratch

        scratch.forget_temporary_objects(self.session.history.conn)

    def _role(self, migration: Migration) -> str | None:
        service = self.config.service(migration.service)
        return service.role if service is not None else None

    def apply_only(self, step: VerifyStep) -> tuple[MigrationVerdict, bool]:
        try:
            up_ms, impact = self.measured_up(step.migration)
        except StepFailed as failure:
            return _verdict(step, "failed", [Problem("up", failure.message)]), False
        return _verdict(step, "applied", [], up_ms=up_ms, impact=impact), True

    def apply_base(self, step: VerifyStep) -> tuple[MigrationVerdict, bool]:
        """A migration the base has: applied once as `up` applies it, without reading its
        locks or the relations around it (the base's own verify measured it)."""
        try:
            up_ms = self.up(step.migration)
        except StepFailed as failure:
            return _verdict(step, "failed", [Problem("up", failure.message)]), False
        return _verdict(step, "applied", [], up_ms=up_ms), True

    def round_trip(self, step: VerifyStep, before: CatalogRows) -> TripOutcome:
        """One migration's round trip from `before`."""
        migration = step.migration
        problems: list[Problem] = []
        script = data.halves(migration, self.read_verify_file, problems)
        times: dict[str, int | None] = {"up_ms": None, "down_ms": None, "up_again_ms": None}
        measured: list[LockImpact] = []

        def verdict() -> MigrationVerdict:
            return _verdict(step, "failed" if problems else "ok", problems, **times,
                            impact=measured[0] if measured else None)

        try:
            times["up_ms"], impact = self.measured_up(migration)
            measured.append(impact)
        except StepFailed as failure:
            problems.append(Problem("up", f"the up failed: {failure.message}"))
            return TripOutcome(verdict(), None)
        after_up = self.snapshot()
        seed = None
        if script is not None and data.has_sql(script[0]):
            error = self.seed(script[0])
            if error is not None:
                problems.append(Problem("verify-data", f"the seed part of "
                                        f"{migration.label}.verify.sql failed: {error}"))
                script = None
            else:
                seed = script[0]
        self.new_command()
        try:
            times["down_ms"] = self.down(migration)
        except StepFailed as failure:
            problems.append(Problem("down", f"the down failed: {failure.message}"))
            in_place = self.still_applied(migration, after_up)
            return TripOutcome(verdict(), after_up, in_place=in_place,
                               schema_after=after_up if in_place else None, seed=seed)
        changes = schema_changes(before, self.snapshot())
        if changes:
            problems.append(Problem(
                "down-restore", "the down did not restore the schema the up started from "
                "(+ left behind by the down, - removed by it, ~ changed from before the up):",
                changes))
        self.new_command()
        try:
            times["up_again_ms"] = self.up(migration)
        except StepFailed as failure:
            problems.append(Problem("up-again", "the up failed when run again after the down "
                                    f"(the down does not undo all of it): {failure.message}"))
            return TripOutcome(verdict(), after_up, seed=seed)
        after_again = self.snapshot()
        changes = schema_changes(after_up, after_again)
        if changes:
            problems.append(Problem(
                "up-again-restore", "the up run again after the down made another schema than "
                "the first time (+ only now, - only the first time, ~ changed):", changes))
        if script is not None:
            problems.extend(data.check(self.session.history.conn, migration, script[1]))
        return TripOutcome(verdict(), after_up, in_place=not changes, schema_after=after_again,
                           seed=seed)

    def still_applied(self, migration: Migration, after_up: CatalogRows) -> bool:
        """After a failed down: whether it left nothing behind (its transaction rolled back),
        so that the migration is applied, clean, with the schema its up made."""
        session = self.session
        if session.history.conn.closed or session.history.conn.broken:
            return False
        rows = [row for row in session.history.rows() if row.version == migration.version]
        return [row.status for row in rows] == ["applied"] and self.snapshot() == after_up

    def rebuild(self, verdict: MigrationVerdict, applied: list[Migration], seeds: dict[int, str],
                expected: CatalogRows) -> tuple[MigrationVerdict, CatalogRows | None, str | None]:
        """Build the throwaway database again, with `applied` run up once each in order (and
        the verify-data seeds after theirs), so that the next round trip starts from the
        state it would have after clean runs: (the verdict noting it, the schema now or
        None, why the run must stop or None). It starts from empty or from the copy
        saved by an earlier rebuild, which holds the first `self.saved` of them, whichever
        is cheaper, and may be saved in turn.

        `expected` is the schema the first up of the last migration made; the rebuilt
        database must have it too, or the difference is reported.
        """
        started = self.clock()
        route = rebuild_route(self.costs, self.saved, self.database.copy_ms)
        self.session = self.database.rebuild(from_saved=route.from_saved)
        problems: list[Problem] = []
        stop_cause = None
        current = None
        last = applied[-1]
        for migration in applied[self.saved if route.from_saved else 0:]:
            try:
                self.up(migration)
            except StepFailed as failure:
                problems.append(Problem(
                    "rebuild", f"building the throwaway database again up to {who(last)} "
                    f"stopped at the up of {who(migration)}: {failure.message}"))
                stop_cause = f"the throwaway database could not be built again up to {who(last)}"
                break
            seed = seeds.get(migration.version)
            error = self.seed(seed) if seed is not None else None
            if error is not None:
                problems.append(Problem(
                    "rebuild", f"building the throwaway database again up to {who(last)}: the "
                    f"seed part of {migration.label}.verify.sql failed: {error}"))
        else:
            current = self.snapshot()
            changes = schema_changes(expected, current)
            if changes:
                problems.append(Problem(
                    "rebuild", "built again with every migration up to here applied once, the "
                    "throwaway database has another schema than the first up of this migration "
                    "made (+ only now, - only then, ~ changed):", changes))
            if route.save_after:
                self.session = self.database.save()
                self.saved = len(applied)
        return (attrs.evolve(verdict, problems=verdict.problems + tuple(problems), rebuilt=True,
                             rebuild_ms=elapsed_ms(self.clock() - started)), current, stop_cause)

    def seed(self, text: str) -> str | None:
        return data.seed(self.session.history.conn, text)


def _verdict(step: VerifyStep, status: VerdictStatus, problems: list[Problem], *,
             up_ms: int | None = None, down_ms: int | None = None,
             up_again_ms: int | None = None, impact: LockImpact | None = None
             ) -> MigrationVerdict:
    m = step.migration
    return MigrationVerdict(version=m.version, version_text=m.version_text, service=m.service,
                            name=m.name, status=status, round_trip=step.round_trip,
                            problems=tuple(problems), up_ms=up_ms, down_ms=down_ms,
                            up_again_ms=up_again_ms, impact=impact, base=step.base,
                            no_round_trip=step.no_round_trip)
