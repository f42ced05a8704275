"""The facade: gather inputs, ask the pure core, act through the edges.

Every CLI command is one Coordinator call; service start-up code and ops scripts use the
same calls. Nothing here prints or exits: results are values, problems are exceptions
under MigcoordError.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from migcoord.core import planning, reconcile
from migcoord.core.model import (
    Catalog,
    Config,
    Finding,
    HistoryRow,
    Migration,
    ServiceConfig,
    format_version,
)
from migcoord.core.naming import format_filename, normalize_name
from migcoord.errors import FileExists, MigcoordError, RefusedError, UsageError
from migcoord.repo import discovery
from migcoord.results import (
    AdoptResult,
    DownResult,
    MarkResult,
    MigrationState,
    PlannedStep,
    StatusReport,
    StepResult,
    UpResult,
)

if TYPE_CHECKING:
    import psycopg

    from migcoord import checks
    from migcoord.core import docsgen, numbering, sumfile
    from migcoord.db.history import History
    from migcoord.verify import roundtrip as verify_module

log = logging.getLogger("migcoord")

DEFAULT_FILE_LOCK_TIMEOUT = 30.0


@attrs.frozen
class Created:
    """What `create` wrote."""

    version: int
    version_text: str
    service: str
    name: str
    up: Path
    down: Path


@attrs.frozen
class Renumbered:
    service: str
    name: str
    old_version: int
    new_version: int
    new_version_text: str
    moved: tuple[tuple[Path, Path], ...]
    edited: tuple[Path, ...]
    ambiguous: tuple[str, ...] = ()
    #: (old, new) for every migration moved: the requested one and its service's later ones.
    versions: tuple[tuple[int, int], ...] = ()


class Coordinator:
    """Coordinates the migrations of every service sharing one database."""

    def __init__(self, config: Config, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        # Files already read, so a long-lived process re-reads only what changed.
        self._files: discovery.FileCache = {}
        # SQL analyses by file checksums, for the same reason.
        self._sql: checks.Cache = {}

    # -- construction -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str | None = None, *, start: Path | None = None,
             environ: Mapping[str, str] | None = None) -> Coordinator:
        """Load migcoord.toml: `path`, else $MIGCOORD_CONFIG, else the nearest one above
        `start` (default: the working directory)."""
        from migcoord.repo import config as config_module

        env = os.environ if environ is None else environ
        located = config_module.locate(
            start=start or Path.cwd(), environ=env,
            explicit=Path(path) if path is not None else None)
        return cls(config_module.load(located), environ=env)

    @classmethod
    def for_service(cls, service: str, *, migrations: Path | str,
                    environ: Mapping[str, str] | None = None, **settings: object) -> Coordinator:
        """A coordinator for one service's folder with no config file (start-up code).

        `settings` are Config fields such as history_schema or database_url_env.
        """
        allowed = {f.name for f in attrs.fields(Config)} - {"root", "services", "path"}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise UsageError(f"unknown setting(s) for Coordinator.for_service: "
                             f"{', '.join(unknown)}", hint="known: " + ", ".join(sorted(allowed)))
        folder = Path(migrations).resolve()
        config = Config(root=folder.parent,
                        services=(ServiceConfig(name=service, migrations=folder),),
                        **settings)  # type: ignore[arg-type]
        return cls(config, environ=environ)

    # -- reading ------------------------------------------------------------------------

    def catalog(self, services: list[str] | None = None, *, up_only: bool = False) -> Catalog:
        """Read the migration folders (all, or only `services`; with `up_only`, no down
        files: see discovery.read_catalog)."""
        if services is not None:
            for service in services:
                self._service(service)
        return discovery.read_catalog(self.config, services=services,
                                      up_only=up_only, cache=self._files)

    def check(self, *, against: str | None = None, sql: bool = True,
              parallel: bool = False) -> list[Finding]:
        """Every offline finding; `against` (a git ref) validates the merge with that ref.

        `sql=False` leaves out the SQL analysis (and with it docs-stale). `parallel` lets
        a large analysis use worker processes; only single-threaded programs should ask.
        """
        from migcoord import checks

        catalog = self.catalog()
        check_sum = self.config.sum_path is not None
        if against is not None:
            from migcoord.repo import git as gitref

            catalog = gitref.merged_catalog(self.config, catalog, against)
            # The merge's sum file does not exist yet; collisions show as duplicate-version.
            check_sum = False
        sum_text = self._read_sum() if check_sum else None
        # SQL analysis when pglast is installed; else one sql-skipped warning.
        analyses = (checks.analyse(catalog, self.config, cache=self._sql, parallel=parallel)
                    if sql else None)
        findings = checks.run_all(catalog, self.config, sum_text=sum_text, check_sum=check_sum,
                                  sql=analyses)
        if (against is None and self.config.docs is not None and analyses is not None
                and analyses.available):
            findings.extend(self._docs_findings(catalog, analyses))
        return checks.sort_findings(findings)

    # -- generated docs -----------------------------------------------------------------

    def docs(self, *, check: bool = False,
             lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> docsgen.DocsUpdate:
        """Write the generated tables into the configured `docs` file; with `check`, only
        report whether it is out of date. Needs the SQL analysis (`migcoord[sql]`)."""
        from migcoord.core import docsgen
        from migcoord.repo import workspace

        path = self.config.docs
        if path is None:
            where = f" to {self.config.path}" if self.config.path else ""
            raise UsageError("no docs file is configured",
                             hint=f'add docs = "docs/MIGRATIONS.md"{where}')
        if check:
            existing, wanted = self._docs_texts(self.catalog(), None)
            return docsgen.DocsUpdate(path, stale=existing != wanted,
                                      reason=_docs_reason(path, existing))
        with workspace.repo_lock(self.config.lock_path, timeout=lock_timeout):
            return self._write_docs(self.catalog())

    def _docs_texts(self, catalog: Catalog,
                    analyses: checks.Analyses | None) -> tuple[str | None, str]:
        """The docs file as it is (None when absent) and as it should be."""
        from migcoord import checks
        from migcoord.core import docsgen

        assert self.config.docs is not None
        absent = self._absent_with_migrations(catalog)
        if absent:
            raise RefusedError(
                "the docs list every service's migrations, and these folders are not here: "
                + ", ".join(absent), hint="run `migcoord docs` in a full checkout")
        if analyses is None:
            analyses = checks.analyse(catalog, self.config, cache=self._sql)
        analyses.require()
        owners = checks.Owners.of(catalog, self.config, analyses)
        owned = {service.name: [checks.display(t, self.config)
                                for t in owners.owned_by(service.name)]
                 for service in self.config.services}
        try:
            existing: str | None = self.config.docs.read_text(encoding="utf-8")
        except FileNotFoundError:
            existing = None
        return existing, docsgen.merge(existing, docsgen.render(catalog, self.config, owned))

    def _write_docs(self, catalog: Catalog) -> docsgen.DocsUpdate:
        from migcoord.core import docsgen
        from migcoord.repo import workspace

        path = self.config.docs
        assert path is not None
        existing, wanted = self._docs_texts(catalog, None)
        if existing == wanted:
            return docsgen.DocsUpdate(path, stale=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        workspace.replace_atomically(path, wanted)
        return docsgen.DocsUpdate(path, stale=True, written=True,
                                  reason=_docs_reason(path, existing))

    def _docs_findings(self, catalog: Catalog, analyses: checks.Analyses) -> list[Finding]:
        """docs-stale, when it can be judged here (every folder with migrations present)."""
        from migcoord.core import docsgen

        path = self.config.docs
        if path is None or "docs-stale" in self.config.allow:
            return []
        if self._absent_with_migrations(catalog):
            return []
        try:
            existing, wanted = self._docs_texts(catalog, analyses)
        except MigcoordError as error:  # unbalanced markers
            return [docsgen.stale_finding(path, error.message)]
        if existing == wanted:
            return []
        return [docsgen.stale_finding(path, _docs_reason(path, existing))]

    def _absent_with_migrations(self, catalog: Catalog) -> list[str]:
        """Services whose folder is absent although migcoord.sum lists migrations of them."""
        from migcoord.core import sumfile

        absent = {f.name for f in catalog.folders if not f.present}
        text = self._read_sum() if absent else None
        if not absent or text is None:
            return []
        return sorted({line.service for line in sumfile.parse(text).lines} & absent)

    def _refresh_docs(self) -> None:
        """`create` keeps the docs current when configured; a problem is logged, since
        the migration itself was created."""
        if self.config.docs is None:
            return
        try:
            if self._write_docs(self.catalog()).written:
                log.info("updated %s", self.config.docs)
        except MigcoordError as error:
            log.warning("%s was not refreshed: %s", self.config.docs, error)

    def _read_sum(self) -> str | None:
        path = self.config.sum_path
        if path is None:
            return None
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    # -- writing ------------------------------------------------------------------------

    def create(self, service: str, name: str, *,
               lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> Created:
        """Allocate the next global version under the file lock and write both files.

        Never overwrites; updates migcoord.sum in the same critical section.
        """
        from migcoord.core import numbering
        from migcoord.repo import workspace

        service_config = self._service(service)
        clean_name = normalize_name(name)
        with workspace.repo_lock(self.config.lock_path, timeout=lock_timeout):
            catalog = self.catalog()
            self._refuse_broken_sum()
            version = numbering.next_version(catalog, self.config, service)
            width = self.config.version_width
            folder = service_config.migrations
            up = folder / format_filename(version, clean_name, "up", width)
            down = folder / format_filename(version, clean_name, "down", width)
            workspace.create_exclusive(up, _up_template(service_config, catalog, version, width))
            try:
                workspace.create_exclusive(down, _down_template(service_config, version, width))
            except Exception:
                up.unlink(missing_ok=True)
                raise
            self._update_sum(add=[discovery.read_pair(service, up, down)])
            self._refresh_docs()
        log.debug("created %s and %s", up, down)
        return Created(version=version, version_text=format_version(version, width),
                       service=service, name=clean_name, up=up, down=down)

    def write_sum(self, *, lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> Path:
        """Rewrite migcoord.sum from the files on disk (after a deliberate edit or merge)."""
        from migcoord.core import sumfile
        from migcoord.repo import workspace

        path = self._sum_path()
        with workspace.repo_lock(self.config.lock_path, timeout=lock_timeout):
            catalog = self.catalog()
            absent = {f.name for f in catalog.folders if not f.present}
            if absent:
                kept = self._kept_sum_lines(absent)
                workspace.replace_atomically(
                    path, _render_sum(list(catalog.migrations), kept))
            else:
                workspace.replace_atomically(path, sumfile.render(catalog.migrations))
        return path

    def renumber(self, version: int, service: str, *, to: int | None = None,
                 lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT, dsn: str | None = None,
                 conn: psycopg.Connection | None = None) -> Renumbered:
        """Move one migration to the next free number (or `to`), with its references.

        Files only, unless a database is given (`dsn` or `conn`): then a migration applied
        there is refused (renumbering it would make it pending again) and the renumber
        is recorded in migcoord_events.
        """
        from migcoord.core import numbering
        from migcoord.repo import workspace

        self._service(service)
        with workspace.repo_lock(self.config.lock_path, timeout=lock_timeout):
            catalog = self.catalog()
            plan = numbering.plan_renumber(catalog, self.config, version, service, to)
            if dsn is not None or conn is not None:
                with self._database(dsn, conn, f"migcoord renumber {service}") as history:
                    _refuse_renumbering_applied(history.rows(), plan)
                    self._apply_renumber(plan)
                    history.ensure()
                    for item in plan.renumberings:
                        history.event("renumber", version=item.new_version, service=service,
                                      name=item.migration.name,
                                      detail={"from": item.migration.version,
                                              "to": item.new_version})
            else:
                self._apply_renumber(plan)
        migration = plan.migration
        log.debug("renumbered %s/%s from %s to %s", service, migration.name,
                 migration.version_text, plan.new_version_text)
        return Renumbered(
            service=service, name=migration.name, old_version=version,
            new_version=plan.new_version, new_version_text=plan.new_version_text,
            moved=tuple((m.source, m.target) for m in plan.moves),
            edited=tuple(e.path for e in plan.edits), ambiguous=plan.ambiguous,
            versions=tuple((item.migration.version, item.new_version)
                           for item in plan.renumberings))

    def _apply_renumber(self, plan: numbering.RenumberPlan) -> None:
        from migcoord.repo import workspace

        sources = {move.source for move in plan.moves}
        for move in plan.moves:
            if move.target not in sources and (move.target.exists() or move.target.is_symlink()):
                raise FileExists(f"{move.target} already exists; nothing was renamed or edited",
                                 hint="move that file out of the way, or choose --to")
        for edit in plan.edits:
            workspace.rewrite_keeping_style(edit.path, edit.old, edit.new)
        done: list[tuple[Path, Path]] = []
        try:
            for move in plan.moves:
                workspace.move_exclusive(move.source, move.target)
                done.append((move.source, move.target))
        except Exception:
            for source, target in reversed(done):
                workspace.move_exclusive(target, source)
            raise
        self._rewrite_sum_after_renumber()

    # -- database -----------------------------------------------------------------------

    def up(self, service: str | None = None, *, all_services: bool = False,
           to: int | None = None, with_deps: bool = False, allow_out_of_order: bool = False,
           dry_run: bool = False, lock_timeout: float | None = None, sync_each: bool = False,
           dsn: str | None = None, conn: psycopg.Connection | None = None) -> UpResult:
        """Apply pending migrations of `service` (or of every service with all_services).

        Each migration and its history row commit together. Checks for pending work
        before taking the lock, so a replica with nothing to do never waits.
        """
        from migcoord.db import executor

        if (service is None) == (not all_services):
            raise UsageError("name one service, or pass all_services=True (--all)")
        if service is not None:
            self._service(service)
        # Dependencies are checked in the database, so one service's folder is enough
        # unless --with-deps may have to apply another service's files.
        catalog = self.catalog(None if with_deps or service is None else [service],
                               up_only=True)
        request = planning.UpRequest(service=service, to=to, with_deps=with_deps,
                                     allow_out_of_order=allow_out_of_order)
        name = f"migcoord up {service or '--all'}"
        with self._database(dsn, conn, name) as history:
            plan = planning.plan_up(catalog, history.rows(), request)
            for warning in plan.warnings:
                log.warning("%s", warning)
            if dry_run:
                return UpResult(planned=_planned(plan, "up"), dry_run=True,
                                warnings=plan.warnings)
            if not plan.steps:
                log.debug("nothing to apply: %s is up to date", service or "the database")
                return UpResult(warnings=plan.warnings)
            with self._lock(history, lock_timeout) as lock_pid:
                history.ensure()
                # Others may have applied some of it while this process waited.
                plan = planning.plan_up(catalog, history.rows(), request)
                applied: list[StepResult] = []
                relaxed = not (sync_each or self.config.synchronous_commit == "each")
                with executor.relaxed_commits(history, enabled=relaxed and len(plan.steps) > 1):
                    for index, step in enumerate(plan.steps):
                        migration = step.migration
                        if relaxed and index == len(plan.steps) - 1:
                            # The last commit waits for the WAL flush, and so makes every
                            # earlier commit of this run durable too.
                            executor.synchronous(history)
                        duration = executor.apply_up(history, migration, lock_pid=lock_pid,
                                                     role=self._role(migration.service))
                        applied.append(StepResult(migration.version, migration.service,
                                                  migration.name, duration))
                        log.info("applied %s %s %s (%d ms)", migration.version_text,
                                 migration.service, migration.name, duration)
        return UpResult(applied=tuple(applied), warnings=plan.warnings)

    def down(self, service: str, *, steps: int | None = None, to: int | None = None,
             cascade: bool = False, dry_run: bool = False, lock_timeout: float | None = None,
             dsn: str | None = None, conn: psycopg.Connection | None = None) -> DownResult:
        """Roll back service's newest applied migrations (default one), newest first."""
        from migcoord.db import executor

        self._service(service)
        catalog = self.catalog()
        request = planning.DownRequest(service=service, steps=steps, to=to, cascade=cascade)
        with self._database(dsn, conn, f"migcoord down {service}") as history:
            plan = planning.plan_down(catalog, history.rows(), request)
            if dry_run or not plan.steps:
                return DownResult(planned=_planned(plan, "down"), dry_run=dry_run)
            with self._lock(history, lock_timeout) as lock_pid:
                history.ensure()
                plan = planning.plan_down(catalog, history.rows(), request)
                done: list[StepResult] = []
                for step in plan.steps:
                    migration = step.migration
                    if step.reason.startswith("cascade"):
                        log.warning("rolling back %s %s %s first (%s)", migration.version_text,
                                    migration.service, migration.name, step.reason)
                    duration = executor.apply_down(history, migration, lock_pid=lock_pid,
                                                   role=self._role(migration.service))
                    done.append(StepResult(migration.version, migration.service,
                                           migration.name, duration))
                    log.info("rolled back %s %s %s (%d ms)", migration.version_text,
                             migration.service, migration.name, duration)
        return DownResult(rolled_back=tuple(done))

    def status(self, *, service: str | None = None, dsn: str | None = None,
               conn: psycopg.Connection | None = None) -> StatusReport:
        """Every migration's state (files x history), the database version, dirty rows."""
        if service is not None:
            self._service(service)
        catalog = self.catalog(up_only=True)
        with self._database(dsn, conn, f"migcoord status {service or ''}".strip()) as history:
            rows = history.rows()
        states = reconcile.reconcile(catalog, rows)
        shown = [s for s in states if service is None or s.service == service]
        return StatusReport(
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
            unjudged_services=tuple(f.name for f in catalog.folders if not f.present
                                    and (service is None or f.name == service)))

    def verify(self, service: str | None = None, *, dsn: str | None = None, keep: bool = False,
               on_progress: verify_module.Progress | None = None) -> verify_module.VerifyReport:
        """Round-trip every migration (or `service`'s) up, down and up again on a
        throwaway database, comparing catalog snapshots; see migcoord.verify.roundtrip.

        The database is created on the server of `dsn` (else of the env var named by
        database_url_env), or on the embedded development server when neither is set.
        """
        from migcoord.verify import roundtrip as verify_module

        if service is not None:
            self._service(service)
        if dsn is None:
            dsn = self.environ.get(self.config.database_url_env, "").strip() or None
        return verify_module.run(self.catalog(), self.config, service=service, dsn=dsn,
                                 environ=self.environ, keep=keep, on_progress=on_progress)

    def check_database(self, *, dsn: str | None = None,
                       conn: psycopg.Connection | None = None) -> list[Finding]:
        """Findings that need the database: missing-file, modified, dirty, out-of-order."""
        from migcoord import checks

        catalog = self.catalog()
        with self._database(dsn, conn, "migcoord check --db") as history:
            rows = history.rows()
        return checks.database_findings(reconcile.reconcile(catalog, rows), rows, self.config)

    def mark(self, version: int, *, applied: bool, reason: str | None = None,
             lock_timeout: float | None = None, dsn: str | None = None,
             conn: psycopg.Connection | None = None) -> MarkResult:
        """Record `version` as applied (or pending) without running it: operator repair.

        `applied` takes the checksum from the file here (accepting an edit), or keeps the
        recorded one when the file is not here; `pending` deletes the history row.
        Both append an event with `reason`.
        """
        matches = [m for m in self.catalog().migrations if m.version == version]
        if len(matches) > 1:
            raise RefusedError(f"version {format_version(version)} belongs to several "
                               "migrations here", hint="run `migcoord check` and renumber first")
        migration = matches[0] if matches else None
        with self._database(dsn, conn, "migcoord mark") as history, \
                self._lock(history, lock_timeout):
            history.ensure()
            row = {r.version: r for r in history.rows()}.get(version)
            previous = None if row is None else row.status
            if applied:
                target = _applied_row(version, migration, row)
                with history.conn.transaction():
                    history.upsert_applied(target)
                    history.event("mark-applied", version=version, service=target.service,
                                  name=target.name, reason=reason, detail={"previous": previous})
                service, name = target.service, target.name
            else:
                if row is None:
                    raise UsageError(f"{format_version(version)} is not recorded in the "
                                     "database: it is already pending")
                with history.conn.transaction():
                    history.delete(version)
                    history.event("mark-pending", version=version, service=row.service,
                                  name=row.name, reason=reason, detail={"previous": previous})
                service, name = row.service, row.name
        log.debug("marked %s %s %s as %s", format_version(version), service, name,
                 "applied" if applied else "pending")
        return MarkResult(version=version, service=service, name=name, applied=applied,
                          previous=previous)

    def adopt(self, *, table: str = "schema_migrations", lock_timeout: float | None = None,
              dsn: str | None = None, conn: psycopg.Connection | None = None) -> AdoptResult:
        """Take over a database golang-migrate managed: record every migration at or below
        its version as applied. Leaves golang-migrate's table untouched; idempotent."""
        from migcoord.checks import Ledger
        from migcoord.db import golang

        catalog = self.catalog()
        absent = {f.name for f in catalog.folders if not f.present}
        ledger = Ledger.of(catalog, self._read_sum())
        with self._database(dsn, conn, "migcoord adopt") as history:
            state = golang.read_state(history.conn, table)
            # A folder that is absent because the service has no migrations yet is fine;
            # one that holds migrations (per migcoord.sum) would leave them unrecorded.
            hidden = sorted({owner for version, owners in ledger.owners.items()
                             if version <= state.version for owner in owners
                             if owner in absent})
            if hidden or not ledger.complete:
                raise RefusedError(
                    "adopt needs the migrations folder of every service that has migrations; "
                    "not here: " + ", ".join(hidden or sorted(absent)),
                    hint="run adopt once from a full checkout of the repository")
            with self._lock(history, lock_timeout):
                history.ensure()
                rows = {row.version: row for row in history.rows()}
                recorded: list[int] = []
                already: list[int] = []
                with history.conn.transaction():
                    for migration in catalog.migrations:
                        if migration.version > state.version:
                            continue
                        if migration.version in rows:
                            already.append(migration.version)
                            continue
                        history.upsert_applied(HistoryRow(
                            version=migration.version, service=migration.service,
                            name=migration.name, checksum=migration.checksum,
                            status="applied", depends=migration.depends_on))
                        recorded.append(migration.version)
                    history.event("adopt", version=state.version,
                                  detail={"table": table, "recorded": recorded,
                                          "already": already})
        return AdoptResult(golang_version=state.version, recorded=tuple(recorded),
                           already=tuple(already))

    @contextlib.contextmanager
    def _database(self, dsn: str | None, conn: psycopg.Connection | None,
                  application_name: str) -> Iterator[History]:
        from migcoord.db.connect import session
        from migcoord.db.history import History
        from migcoord.local.target import resolve_dsn

        if conn is None:
            dsn = resolve_dsn(dsn, self.config, self.environ)
        with session(dsn, conn, application_name=application_name) as connection:
            yield History(connection, self.config.history_schema)

    @contextlib.contextmanager
    def _lock(self, history: History, timeout: float | None) -> Iterator[int]:
        from migcoord.db.lock import advisory_lock, lock_key

        wait = self.config.lock_timeout if timeout is None else timeout
        with advisory_lock(history.conn, lock_key(self.config.history_schema),
                           timeout=wait) as pid:
            yield pid

    def _role(self, service: str) -> str | None:
        config = self.config.service(service)
        return config.role if config is not None else None

    # -- helpers --------------------------------------------------------------------------

    def _service(self, name: str) -> ServiceConfig:
        service = self.config.service(name)
        if service is None:
            known = ", ".join(self.config.service_names) or "(none)"
            where = f" in {self.config.path}" if self.config.path else ""
            raise UsageError(f"unknown service {name!r}{where}",
                             hint=f"configured services: {known}")
        return service

    def _sum_path(self) -> Path:
        path = self.config.sum_path
        if path is None:
            raise UsageError("this coordinator has no config file, so it has no migcoord.sum",
                             hint="use Coordinator.load() with a migcoord.toml")
        return path

    def _refuse_broken_sum(self) -> None:
        from migcoord.core import sumfile

        text = self._read_sum()
        if text is None:
            return
        parsed = sumfile.parse(text)
        if parsed.problems:
            line, problem = parsed.problems[0]
            raise RefusedError(
                f"{self.config.sum_path}:{line}: {problem}",
                hint="resolve migcoord.sum first: after a merge, `migcoord renumber` your "
                "branch's migration, then `migcoord sum`")

    def _kept_sum_lines(self, services: set[str]) -> list[sumfile.SumLine]:
        from migcoord.core import sumfile

        text = self._read_sum()
        if text is None:
            return []
        return [line for line in sumfile.parse(text).lines if line.service in services]

    def _update_sum(self, *, add: list[Migration]) -> None:
        """Add lines for new migrations, keeping every recorded line as it was.

        Recorded lines are not refreshed from disk: an edit made since stays visible to
        `check` as sum-mismatch instead of being blessed by an unrelated `create`.
        """
        from migcoord.core import sumfile
        from migcoord.repo import workspace

        path = self.config.sum_path
        if path is None:
            return
        text = self._read_sum()
        if text is None:
            workspace.replace_atomically(path, sumfile.render(self.catalog().migrations))
            return
        recorded = list(sumfile.parse(text).lines)
        workspace.replace_atomically(path, _render_sum(add, recorded))

    def _rewrite_sum_after_renumber(self) -> None:
        from migcoord.repo import workspace

        if self.config.sum_path is None:
            return
        catalog = self.catalog()
        absent = {f.name for f in catalog.folders if not f.present}
        workspace.replace_atomically(
            self.config.sum_path, _render_sum(list(catalog.migrations),
                                              self._kept_sum_lines(absent)))


def _refuse_renumbering_applied(rows: list[HistoryRow], plan: numbering.RenumberPlan) -> None:
    moving = {(item.migration.version, item.migration.service): item.migration
              for item in plan.renumberings}
    for row in rows:
        migration = moving.get((row.version, row.service))
        if migration is not None:
            raise RefusedError(
                f"{migration.service} {migration.label} is applied in this database; "
                f"renumbering it would make it pending again and apply it twice",
                hint="renumber only migrations never applied anywhere; to change an applied "
                "one, write a new migration")


def _docs_reason(path: Path, existing: str | None) -> str:
    if existing is None:
        return f"{path.name} does not exist yet"
    return f"{path.name} no longer matches the migrations and migcoord.toml"


def _applied_row(version: int, migration: Migration | None, row: HistoryRow | None) -> HistoryRow:
    if migration is not None:
        return HistoryRow(version=version, service=migration.service, name=migration.name,
                          checksum=migration.checksum, status="applied",
                          depends=migration.depends_on)
    if row is not None:
        return attrs.evolve(row, status="applied")
    raise UsageError(f"no migration numbered {format_version(version)} in this checkout or in "
                     "the database", hint="check the number with `migcoord status`")


def _planned(plan: planning.Plan, direction: str) -> tuple[PlannedStep, ...]:
    return tuple(
        PlannedStep(version=step.migration.version, service=step.migration.service,
                    name=step.migration.name, direction=direction,
                    sql=step.migration.up_sql if direction == "up" else step.migration.down_sql,
                    no_transaction=step.migration.directives.no_transaction and direction == "up",
                    reason=step.reason)
        for step in plan.steps)


def _render_sum(migrations: list[Migration], kept: list[sumfile.SumLine]) -> str:
    from migcoord.core import sumfile

    fresh = {(line.version_text, line.service, line.name): line
             for line in sumfile.lines_for(migrations)}
    merged = {(line.version_text, line.service, line.name): line for line in kept}
    merged.update(fresh)
    lines = sorted(merged.values(), key=lambda line: (line.version, line.service, line.name))
    body = [line.render() for line in lines]
    return sumfile.render_lines(body)


def _up_template(service: ServiceConfig, catalog: Catalog, version: int, width: int) -> str:
    owns = ", ".join(service.owns) if service.owns else "(not declared in migcoord.toml)"
    example = _dependency_example(catalog, service.name, width)
    return (
        f"-- {service.name}: migration {format_version(version, width)}\n"
        f"-- Tables owned by {service.name}: {owns}\n"
        "-- Needs another service's tables? Declare it before the first statement:\n"
        f"--   -- migcoord:depends {example}\n"
        "-- No BEGIN/COMMIT: migcoord runs this file and its history row in one transaction.\n"
        "\n"
    )


def _down_template(service: ServiceConfig, version: int, width: int) -> str:
    return (
        f"-- {service.name}: undo migration {format_version(version, width)}\n"
        "-- Undo exactly what the up file does, in reverse order.\n"
        "\n"
    )


def _dependency_example(catalog: Catalog, service: str, width: int) -> str:
    for migration in reversed(catalog.migrations):
        if migration.service != service:
            return f"{migration.service}:{migration.version_text}"
    return f"other-service:{format_version(1, width)}"

