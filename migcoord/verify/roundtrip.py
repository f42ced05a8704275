"""The round trips of `migcoord verify`, in one throwaway database.

For each migration, in global version order:

    snapshot A -> up -> snapshot B -> down -> must equal A -> up again -> must equal B

then everything down to empty (must equal the empty start) and up again (must equal
the full schema). Migrations run through the real executor, with their history rows,
so no-transaction migrations and the history bookkeeping are exercised as in
production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from migcoord.core import snapshot as snapshots
from migcoord.core.model import Config, Migration
from migcoord.errors import MigrationFailed
from migcoord.verify.plan import CHECK_SEPARATOR, VerifyStep, split_verify_script
from migcoord.verify.report import MigrationVerdict, Problem, Progress, SequenceVerdict, VerdictStatus

if TYPE_CHECKING:
    import psycopg

    from migcoord.db.history import History
    from migcoord.db.snapshot_sql import CatalogRows


@attrs.frozen
class TripOutcome:
    """One migration's round trip: its verdict, the schema it leaves (None when unknown),
    whether the migration is applied at the end, and whether its down failed."""

    verdict: MigrationVerdict
    schema_after: CatalogRows | None
    applied: bool
    down_failed: bool = False


class RoundTrips:
    """The per-migration round trips and the whole sequence, in one throwaway database."""

    def __init__(self, steps: tuple[VerifyStep, ...], config: Config,
                 read_verify_file: Callable[[Migration], str | None], progress: Progress,
                 clock: Callable[[], float]) -> None:
        self.steps = steps
        self.config = config
        self.read_verify_file = read_verify_file
        self.progress = progress
        self.clock = clock

    def run(self, history: History, lock_pid: int, observer: psycopg.Connection[Any]
            ) -> tuple[tuple[MigrationVerdict, ...], SequenceVerdict]:
        """Run everything with `history`'s connection; read snapshots on `observer` (every
        step is committed before a snapshot is taken)."""
        from migcoord.db import executor

        self.history = history
        self.lock_pid = lock_pid
        self.observer = observer
        verdicts: list[MigrationVerdict] = []
        applied: list[Migration] = []
        stopped: str | None = None
        down_failed = False
        # The throwaway database needs no durable commits.
        with executor.relaxed_commits(history, enabled=True):
            empty = self.snapshot()
            current: CatalogRows | None = empty
            for step in self.steps:
                migration = step.migration
                if stopped is not None:
                    verdict = _verdict(step, "skipped", [Problem("skipped", stopped)])
                elif not step.round_trip:
                    verdict, ok = self.apply_only(step)
                    current = None
                    if ok:
                        applied.append(migration)
                    else:
                        stopped = f"not run: {migration.service} {migration.label} could not be applied"
                else:
                    before = current if current is not None else self.snapshot()
                    outcome = self.round_trip(step, before)
                    verdict, current = outcome.verdict, outcome.schema_after
                    down_failed = down_failed or outcome.down_failed
                    if outcome.applied:
                        applied.append(migration)
                    else:
                        stopped = (f"not run: {migration.service} {migration.label} is not "
                                   "applied after its round trip")
                verdicts.append(verdict)
                self.progress(verdict)
            sequence = self.whole_sequence(applied, empty, current, stopped, down_failed)
        self.progress(sequence)
        return tuple(verdicts), sequence

    def snapshot(self) -> CatalogRows:
        from migcoord.db import snapshot_sql

        return snapshot_sql.read(self.observer, self.config.history_schema)

    def up(self, migration: Migration) -> int:
        from migcoord.db import executor

        return executor.apply_up(self.history, migration, lock_pid=self.lock_pid,
                                 role=self._role(migration))

    def down(self, migration: Migration) -> int:
        from migcoord.db import executor

        return executor.apply_down(self.history, migration, lock_pid=self.lock_pid,
                                   role=self._role(migration))

    def _role(self, migration: Migration) -> str | None:
        service = self.config.service(migration.service)
        return service.role if service is not None else None

    def apply_only(self, step: VerifyStep) -> tuple[MigrationVerdict, bool]:
        try:
            up_ms = self.up(step.migration)
        except MigrationFailed as failure:
            return _verdict(step, "failed", [Problem("up", str(failure))]), False
        return _verdict(step, "applied", [], up_ms=up_ms), True

    def round_trip(self, step: VerifyStep, before: CatalogRows) -> TripOutcome:
        """One migration's round trip from `before`."""
        migration = step.migration
        problems: list[Problem] = []
        data = self.verify_data(migration, problems)
        times: dict[str, int | None] = {"up_ms": None, "down_ms": None, "up_again_ms": None}

        def verdict() -> MigrationVerdict:
            return _verdict(step, "failed" if problems else "ok", problems, **times)

        try:
            times["up_ms"] = self.up(migration)
        except MigrationFailed as failure:
            problems.append(Problem("up", f"the up failed: {failure}"))
            return TripOutcome(verdict(), None, applied=False)
        after_up = self.snapshot()
        if data is not None:
            error = self.seed(data[0])
            if error is not None:
                problems.append(Problem("verify-data", f"the seed part of "
                                        f"{migration.label}.verify.sql failed: {error}"))
                data = None
        try:
            times["down_ms"] = self.down(migration)
        except MigrationFailed as failure:
            problems.append(Problem("down", f"the down failed: {failure}"))
            return TripOutcome(verdict(), after_up, applied=True, down_failed=True)
        changes = schema_changes(before, self.snapshot())
        if changes:
            problems.append(Problem(
                "down-restore", "the down did not restore the schema the up started from "
                "(+ left behind by the down, - removed by it, ~ changed from before the up):",
                changes))
        try:
            times["up_again_ms"] = self.up(migration)
        except MigrationFailed as failure:
            problems.append(Problem("up-again", "the up failed when run again after the down "
                                    f"(the down does not undo all of it): {failure}"))
            return TripOutcome(verdict(), None, applied=False)
        after_again = self.snapshot()
        changes = schema_changes(after_up, after_again)
        if changes:
            problems.append(Problem(
                "up-again-restore", "the up run again after the down made another schema than "
                "the first time (+ only now, - only the first time, ~ changed):", changes))
        if data is not None:
            problems.extend(self.check(migration, data[1]))
        return TripOutcome(verdict(), after_again, applied=True)

    def verify_data(self, migration: Migration, problems: list[Problem]) -> tuple[str, str] | None:
        """The (seed, check) halves of the migration's verify file, or None; notes problems."""
        wanted = migration.directives.verify_data
        try:
            text = self.read_verify_file(migration)
        except OSError as err:
            problems.append(Problem("verify-data", f"{migration.label}.verify.sql cannot be "
                                    f"read: {err.strerror}"))
            return None
        if text is None:
            if wanted:
                problems.append(Problem(
                    "verify-data", f"the up file says `-- migcoord:verify-data`, and there is "
                    f"no {migration.label}.verify.sql beside it"))
            return None
        if not wanted:
            problems.append(Problem(
                "verify-data", f"{migration.label}.verify.sql was not run: the up file has no "
                "`-- migcoord:verify-data` line"))
            return None
        halves = split_verify_script(text)
        if halves is None:
            problems.append(Problem(
                "verify-data", f"{migration.label}.verify.sql has no `{CHECK_SEPARATOR}` line "
                "between the rows it inserts and the query that checks them"))
            return None
        if not _has_sql(halves[1]):
            problems.append(Problem(
                "verify-data", f"{migration.label}.verify.sql checks nothing: no statement "
                f"after `{CHECK_SEPARATOR}`"))
            return None
        return halves

    def seed(self, text: str) -> str | None:
        from migcoord.db import scratch

        return scratch.run_seed(self.history.conn, text) if _has_sql(text) else None

    def check(self, migration: Migration, text: str) -> list[Problem]:
        from migcoord.db import scratch

        rows, error = scratch.run_check(self.history.conn, text)
        if error is not None:
            return [Problem("verify-data", f"the check part of {migration.label}.verify.sql "
                            f"failed after down and up again: {error}")]
        if rows:
            return [Problem("verify-data", f"the check part of {migration.label}.verify.sql "
                            "returned rows after down and up again: the round trip lost or "
                            "changed data", tuple(rows))]
        return []

    def whole_sequence(self, applied: list[Migration], empty: CatalogRows,
                       full: CatalogRows | None, stopped: str | None,
                       down_failed: bool) -> SequenceVerdict:
        if stopped is not None:
            return SequenceVerdict(ran=False, note="not run: a migration could not be applied")
        if down_failed:
            return SequenceVerdict(ran=False, note="not run: a down failed")
        if full is None:
            full = self.snapshot()
        started = self.clock()
        for migration in reversed(applied):
            try:
                self.down(migration)
            except MigrationFailed as failure:
                return SequenceVerdict(ran=True, problems=(Problem(
                    "sequence-down", f"rolling everything back stopped at {migration.service} "
                    f"{migration.label}: {failure}"),))
        down_ms = _ms(self.clock() - started)
        problems: list[Problem] = []
        changes = schema_changes(empty, self.snapshot())
        if changes:
            problems.append(Problem(
                "sequence-down", "rolling everything back did not give the empty schema "
                "(+ left behind, - removed, ~ changed):", changes))
        started = self.clock()
        for migration in applied:
            try:
                self.up(migration)
            except MigrationFailed as failure:
                problems.append(Problem(
                    "sequence-up", f"applying everything again stopped at {migration.service} "
                    f"{migration.label}: {failure}"))
                return SequenceVerdict(ran=True, problems=tuple(problems), down_ms=down_ms)
        up_ms = _ms(self.clock() - started)
        changes = schema_changes(full, self.snapshot())
        if changes:
            problems.append(Problem(
                "sequence-up", "applying everything again gave another schema than the round "
                "trips left (+ only now, - only before, ~ changed):", changes))
        return SequenceVerdict(ran=True, problems=tuple(problems), down_ms=down_ms, up_ms=up_ms)


def _verdict(step: VerifyStep, status: VerdictStatus, problems: list[Problem], **times: int | None
             ) -> MigrationVerdict:
    m = step.migration
    return MigrationVerdict(version=m.version, version_text=m.version_text, service=m.service,
                            name=m.name, status=status, round_trip=step.round_trip,
                            problems=tuple(problems), **times)


def schema_changes(before: CatalogRows, after: CatalogRows) -> tuple[str, ...]:
    """The rendered diff between two states; empty when they are the same schema."""
    if before == after:  # the common case, decided without building any object
        return ()
    return tuple(snapshots.render(snapshots.diff(before.snapshot(), after.snapshot())))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _has_sql(text: str) -> bool:
    from migcoord.sql import reader

    return reader.has_statements(text)
