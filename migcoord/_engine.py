"""The commands that run migrations: `up` and `down`, and `status` (the facade's
counterpart of goose's provider_run.go); the connection, the migration lock and the
refusal of files `check` reports, which `_repair` (mark, adopt, renumber's records) shares.

Each function takes the values the facade gathered (config, catalog, an open History,
a request) and returns a result value. Plans come from core/planning; this module holds
the lock, runs the steps through db/executor and logs what it did.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from migcoord.core import planning, reconcile
from migcoord.core.ddl import DdlSettings
from migcoord.core.model import (
    Catalog,
    Config,
    Direction,
    Finding,
    HistoryRow,
    Migration,
    Status,
)
from migcoord.core.progress import OnStep, StepStarted, ignore
from migcoord.db.connect import session
from migcoord.db.history import History
from migcoord.errors import Interrupted, MigcoordError
from migcoord.local.target import resolve_dsn
from migcoord.repo.config import lock_wait
from migcoord.results import (
    DownResult,
    MigrationState,
    PlannedStep,
    StatusReport,
    StepResult,
    UpResult,
)

if TYPE_CHECKING:
    import psycopg

    from migcoord.db.lockwait import LockWatch

log = logging.getLogger("migcoord")


@contextlib.contextmanager
def connected(config: Config, environ: Mapping[str, str], dsn: str | None,
              conn: psycopg.Connection | None, application_name: str) -> Iterator[History]:
    """The history of the database at `conn` (left open), else at `dsn` or the configured
    environment variable (opened and closed here)."""
    if conn is None:
        dsn = resolve_dsn(dsn, config, environ)
    with session(dsn, conn, application_name=application_name) as connection:
        yield History(connection, config.history_schema)


@contextlib.contextmanager
def locked(config: Config, history: History, timeout: float | None,
           needless: Callable[[], bool] | None = None) -> Iterator[int]:
    """Hold the migration lock (waiting at most `timeout`, default the configured one);
    yields the pid of the session that holds it. NothingLeft when `needless` says, while
    waiting, that the holder did the work."""
    # Loaded only when there is work, as db/lockwait: a replica with nothing to apply
    # does not pay for them.
    from migcoord.db.lock import advisory_lock, lock_key

    # NaN would wait forever: every comparison with it is false.
    wait = lock_wait(config.lock_timeout if timeout is None else timeout)
    with advisory_lock(history.conn, lock_key(config.history_schema), timeout=wait,
                       needless=needless) as pid:
        yield pid


@contextlib.contextmanager
def watched(history: History) -> Iterator[LockWatch]:
    """Who blocks the migrations of this run, watched from a second connection that is
    opened only if a migration runs long enough to be worth a look (db/lockwait)."""
    from migcoord.db.lockwait import LockWatch

    watch = LockWatch.of(history.conn)
    try:
        yield watch
    finally:
        watch.close()


# -- up and down ------------------------------------------------------------------------

def up(config: Config, catalog: Catalog, history: History, request: planning.UpRequest, *,
       dry_run: bool, lock_timeout: float | None, sync_each: bool,
       ddl: DdlSettings | None = None,
       wider: Callable[[], Catalog] | None = None, on_step: OnStep = ignore) -> UpResult:
    """Plan; unless that is a dry run or there is nothing to do, take the lock, plan
    again (others may have applied some of it meanwhile) and apply each step, telling
    `on_step` as each one starts.

    `wider` reads every folder here; it is used when another service's row holds the
    number of a file in `catalog`, so the refusal can say whether a merge renumbered it.
    """
    rows = history.rows()
    if wider is not None and _number_taken(catalog, rows):
        catalog = wider()
    plan = planning.plan_up(catalog, rows, request)
    scope = (None if request.service is None else
             {request.service, *(step.migration.service for step in plan.steps)})
    refuse_invalid_files(config, catalog, plan.steps, "up", scope)
    for warning in plan.warnings:
        log.warning("%s", warning)
    if dry_run:
        return UpResult(planned=planned(plan, "up"), dry_run=True, warnings=plan.warnings)
    if not plan.steps:
        log.debug("nothing to apply: %s is up to date", request.service or "the database")
        return UpResult(warnings=plan.warnings)
    from migcoord.db.lock import NothingLeft

    try:
        return _up_locked(config, catalog, history, request, plan, scope, lock_timeout,
                          sync_each=sync_each, ddl=ddl, on_step=on_step)
    except NothingLeft:
        log.info("another migcoord applied everything this run would have: nothing to do")
        return UpResult(warnings=plan.warnings)


def _nothing_left(catalog: Catalog, history: History, request: planning.UpRequest,
                  plan: planning.Plan) -> Callable[[], bool]:
    """While waiting for the lock: whether the holder has applied all this run would.
    Each poll counts the planned versions applied (one cheap query: twenty replicas poll
    at once); only when all are does it plan again on every row to be sure. Anything
    unclear (a dirty row part-way, a refusal) is left to the run under the lock."""
    versions = [step.migration.version for step in plan.steps]

    def needless() -> bool:
        if history.applied_count(versions) < len(set(versions)):
            return False
        try:
            return not planning.plan_up(catalog, history.rows(), request).steps
        except MigcoordError:
            return False
    return needless


def _up_locked(config: Config, catalog: Catalog, history: History,
               request: planning.UpRequest, plan: planning.Plan, scope: set[str] | None,
               lock_timeout: float | None, *, sync_each: bool,
               ddl: DdlSettings | None, on_step: OnStep) -> UpResult:
    """`up` once the plan has steps: take the lock (or learn that the holder did it all),
    plan again and apply."""
    with locked(config, history, lock_timeout,
                needless=_nothing_left(catalog, history, request, plan)) as lock_pid:
        history.ensure()
        # Others may have applied some of it while this process waited.
        checked = {id(step.migration) for step in plan.steps}
        plan = planning.plan_up(catalog, history.rows(), request)
        refuse_invalid_files(config, catalog, [s for s in plan.steps
                                               if id(s.migration) not in checked], "up", scope)
        relaxed = not (sync_each or config.synchronous_commit == "each")
        applied: list[StepResult] = []
        try:
            with watched(history) as watch:
                _apply_up(config, history, plan.steps, _Run(lock_pid, ddl, watch, on_step),
                          relaxed=relaxed, applied=applied)
        except MigcoordError as error:
            error.with_applied(applied)
            raise
        except KeyboardInterrupt:
            raise Interrupted(applied) from None
    return UpResult(applied=tuple(applied), warnings=plan.warnings)


def _number_taken(catalog: Catalog, rows: Sequence[HistoryRow]) -> bool:
    by_version = {row.version: row.service for row in rows}
    return any(by_version.get(m.version, m.service) != m.service for m in catalog.migrations)


@attrs.frozen
class _Run:
    """What each step of one run of `up` or `down` shares."""

    lock_pid: int
    #: The command line's DDL settings, above every other layer.
    ddl: DdlSettings | None
    watch: LockWatch
    on_step: OnStep = ignore

    def starts(self, index: int, steps: Sequence[planning.Step], command: Direction) -> None:
        """Tell on_step that `steps[index]` starts."""
        migration = steps[index].migration
        self.on_step(StepStarted(index=index + 1, total=len(steps), command=command,
                                 name=migration.name, version=migration.version,
                                 service=migration.service))


def _apply_up(config: Config, history: History, steps: Sequence[planning.Step], run: _Run,
              *, relaxed: bool, applied: list[StepResult]) -> None:
    """Apply `steps` in order, each with its history row; `applied` grows as each
    commits, so on a failure it holds what committed before it."""
    # Loaded only when there is work: a replica with nothing to apply does not pay for it.
    from migcoord.db import executor

    with executor.relaxed_commits(history, enabled=relaxed and len(steps) > 1):
        for index, step in enumerate(steps):
            if relaxed and index == len(steps) - 1:
                # The last commit waits for the WAL flush, and so makes every earlier
                # commit of this run durable too.
                executor.synchronous(history)
            run.starts(index, steps, "up")
            _run_step(config, history, step.migration, "up", run, done=applied)


def down(config: Config, catalog: Catalog, history: History, request: planning.DownRequest, *,
         dry_run: bool, lock_timeout: float | None,
         ddl: DdlSettings | None = None, on_step: OnStep = ignore) -> DownResult:
    """Plan; unless that is a dry run or there is nothing to do, take the lock, plan
    again and roll back each step, newest first, telling `on_step` as each one starts."""
    plan = planning.plan_down(catalog, history.rows(), request)
    refuse_invalid_files(config, catalog, plan.steps, "down", {request.service})
    if dry_run or not plan.steps:
        return DownResult(planned=planned(plan, "down"), dry_run=dry_run)
    with locked(config, history, lock_timeout) as lock_pid:
        history.ensure()
        checked = {id(step.migration) for step in plan.steps}
        plan = planning.plan_down(catalog, history.rows(), request)
        refuse_invalid_files(config, catalog, [s for s in plan.steps
                                               if id(s.migration) not in checked], "down",
                             {request.service})
        rolled_back: list[StepResult] = []
        try:
            with watched(history) as watch:
                _apply_down(config, history, plan.steps, _Run(lock_pid, ddl, watch, on_step),
                            rolled_back=rolled_back)
        except MigcoordError as error:
            error.with_applied(rolled_back)
            raise
        except KeyboardInterrupt:
            raise Interrupted(rolled_back) from None
    return DownResult(rolled_back=tuple(rolled_back))


def refuse_invalid_files(config: Config, catalog: Catalog,
                         steps: Sequence[planning.Step | Migration], files: Direction,
                         services: set[str] | None, command: str | None = None) -> None:
    """Refuse, before anything is sent, files these steps would read that `check` reports
    as errors, and any entry of `services` that cannot be read (checks/runnable.py, the
    rules of `check` itself). With nothing to run and nothing unreadable it costs nothing."""
    if not steps and not catalog.has_unreadable(services):
        return
    from migcoord.checks import runnable

    migrations = [s.migration if isinstance(s, planning.Step) else s for s in steps]
    runnable.refuse(catalog, config, migrations, files=files, services=services,
                    command=command or files)


def _apply_down(config: Config, history: History, steps: Sequence[planning.Step],
                run: _Run, *, rolled_back: list[StepResult]) -> None:
    """Roll back `steps` in order; `rolled_back` grows as each commits."""
    for index, step in enumerate(steps):
        migration = step.migration
        if step.reason.startswith("cascade"):
            log.warning("rolling back %s %s %s first (%s)", migration.version_text,
                        migration.service, migration.name, step.reason)
        run.starts(index, steps, "down")
        _run_step(config, history, migration, "down", run, done=rolled_back)


def _run_step(config: Config, history: History, migration: Migration, direction: Direction,
              run: _Run, *, done: list[StepResult]) -> None:
    """Run one file and change its history row in one transaction (unless the file opts
    out), as the service's role when it has one, with its timeouts and retries; add it to
    `done` once committed, also when an interrupt comes after its COMMIT."""
    from migcoord.db import executor

    service = config.service(migration.service)
    role = service.role if service is not None else None
    policy = config.ddl_policy(migration, direction, run.ddl)
    done_word = "applied" if direction == "up" else "rolled back"
    try:
        if direction == "up":
            duration = executor.apply_up(history, migration, lock_pid=run.lock_pid, role=role,
                                         policy=policy, watch=run.watch)
        else:
            duration = executor.apply_down(history, migration, lock_pid=run.lock_pid,
                                           role=role, policy=policy, watch=run.watch)
    except KeyboardInterrupt:
        recorded = executor.committed_all_the_same(history, migration, direction)
        if recorded is not None:
            log.info("%s %s %s %s (committed before the interrupt was noticed)", done_word,
                     migration.version_text, migration.service, migration.name)
            done.append(StepResult(migration.version, migration.service, migration.name,
                                   recorded))
        raise
    log.info("%s %s %s %s (%d ms)", done_word, migration.version_text, migration.service,
             migration.name, duration)
    done.append(StepResult(migration.version, migration.service, migration.name, duration))


def planned(plan: planning.Plan, direction: Direction) -> tuple[PlannedStep, ...]:
    """What a dry run shows: each step with the SQL it would run."""
    from migcoord.db import executor

    return tuple(
        PlannedStep(version=step.migration.version, service=step.migration.service,
                    name=step.migration.name, direction=direction,
                    sql=step.migration.up_sql if direction == "up" else step.migration.down_sql,
                    no_transaction=executor.outside_transaction(step.migration, direction),
                    reason=step.reason)
        for step in plan.steps)


# -- status -----------------------------------------------------------------------------

def status(config: Config, catalog: Catalog, rows: Sequence[HistoryRow],
           service: str | None) -> StatusReport:
    """Every migration's state (of `service`, or all), judged from files and history,
    and what `up` would refuse in the files here (see refuse_invalid_files)."""
    states = reconcile.reconcile(catalog, rows, width=config.version_width)
    shown = [s for s in states if service is None or s.service == service]
    pending = [s.migration for s in shown
               if s.state == Status.PENDING and s.migration is not None]
    problems: tuple[Finding, ...] = ()
    scope = None if service is None else {service}
    if pending or catalog.has_unreadable(scope):
        from migcoord.checks import runnable

        problems = tuple(runnable.refusals(catalog, config, pending, files="up",
                                           services=scope))
    warnings = planning.down_only_warnings(catalog, rows, scope)
    for warning in warnings:
        log.warning("%s", warning)
    return StatusReport(
        warnings=warnings,
        problems=problems,
        database_version=reconcile.database_version(rows),
        dirty=any(row.dirty for row in rows),
        migrations=tuple(
            MigrationState(version=s.version, service=s.service, name=s.name,
                           state=s.state,
                           applied_at=s.row.applied_at if s.row else None,
                           applied_by=s.row.applied_by if s.row else None,
                           detail=s.detail if s.judged else "folder not here",
                           judged=s.judged)
            for s in shown),
        unjudged_services=tuple(name for name in catalog.absent_services
                                if service is None or name == service))
