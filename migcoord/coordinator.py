"""The facade: gather inputs, ask the pure core, act through the edges.

Every CLI command is one Coordinator call; service start-up code and ops scripts use the
same calls. Nothing here prints or exits: results are values, problems are exceptions
under MigcoordError.

Each method checks its arguments, reads what the command needs and hands over to the
module of its concern: `_engine` for the database commands, `repo.sumkeeper` and
`repo.docskeeper` for the files kept beside the migrations, `repo.workspace` for the
writes, `core.templates` for what `create` writes. Those are imported where they are
used, so that `import migcoord` in a service stays light (no psycopg, filelock, pglast).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

import attrs

from migcoord.core import planning, progress, reconcile
from migcoord.core.ddl import DdlSettings, parse_duration
from migcoord.core.model import Catalog, Config, Finding, ServiceConfig, format_version
from migcoord.core.naming import format_filename, normalize_name
from migcoord.core.progress import OnStep
from migcoord.errors import UsageError
from migcoord.repo import discovery
from migcoord.results import (
    AdoptResult,
    Created,
    DownResult,
    MarkResult,
    Renumbered,
    Resolved,
    StatusReport,
    UpResult,
)

if TYPE_CHECKING:
    import psycopg

    from migcoord import checks
    from migcoord import verify as verify_module
    from migcoord.core import docsgen, registry
    from migcoord.core.numbering import RenumberPlan
    from migcoord.core.resolution import BranchEdit
    from migcoord.core.scaffold import FoundFolder
    from migcoord.db.history import History

__all__ = ["Coordinator", "Created", "Renumbered", "Settings"]

log = logging.getLogger("migcoord")

DEFAULT_FILE_LOCK_TIMEOUT = 30.0


class Settings(TypedDict, total=False):
    """The Config fields `Coordinator.for_service` accepts: all but the folders'."""

    database_url_env: str
    version_width: int
    history_schema: str
    default_schema: str
    docs: Path | None
    docs_schema: bool
    adopted_through: int | None
    allow: frozenset[str]
    synchronous_commit: str
    lock_timeout: float
    #: Spelt as migcoord.toml's `[ddl]` table: {"lock_timeout": "5s", "retries": 5, ...}.
    ddl: Mapping[str, str | int]


class Coordinator:
    """Coordinates the migrations of every service sharing one database."""

    def __init__(self, config: Config, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        # Files already read, so a long-lived process re-reads only what changed.
        self._files: discovery.FileCache = {}
        # SQL analyses by file checksums, for the same reason; the stored ones
        # (.migcoord/analysis-cache) are read at the first analysis.
        self._sql: checks.Cache = {}
        self._sql_stored: str | None = None  # the fingerprint, once the store was read

    # -- construction -------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str | None = None, *, start: Path | None = None,
             environ: Mapping[str, str] | None = None) -> Coordinator:
        """Load migcoord.toml: `path`, else $MIGCOORD_CONFIG, else the nearest one above
        `start` (default: the working directory)."""
        from migcoord.repo import config as config_module

        env = os.environ if environ is None else environ
        if start is None:
            try:
                start = Path.cwd()
            except FileNotFoundError:
                raise UsageError(
                    "the working directory no longer exists (it was deleted or moved)",
                    hint="cd into the repository and run the command again") from None
        located = config_module.locate(
            start=start, environ=env, explicit=Path(path) if path is not None else None)
        return cls(config_module.load(located), environ=env)

    @classmethod
    def for_service(cls, service: str, *, migrations: Path | str,
                    environ: Mapping[str, str] | None = None,
                    **settings: Unpack[Settings]) -> Coordinator:
        """A coordinator for one service's folder with no config file (start-up code).

        `settings` are Config fields such as history_schema or database_url_env, checked
        exactly as migcoord.toml's keys are (ConfigError naming each mistake); paths
        (`docs`) must lie beside the migrations folder, as a config file's lie beside it.
        """
        from migcoord.repo import config as config_module

        allowed = {f.name for f in attrs.fields(Config)} - {"root", "services", "path"}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise UsageError(f"unknown setting(s) for Coordinator.for_service: "
                             f"{', '.join(unknown)}", hint="known: " + ", ".join(sorted(allowed)))
        where = "Coordinator.for_service"
        why = config_module.service_name_problem(service)
        if why is not None:
            raise UsageError(f"{where}: {service!r}: {why}")
        folder = Path(migrations).resolve()
        # Spelt as in migcoord.toml, so the config file's own checks judge them.
        spelt: dict[str, object] = {
            key: (str(value) if isinstance(value, Path)
                  else list(value) if isinstance(value, frozenset | set) else value)
            for key, value in settings.items() if not (key == "docs" and value is None)}
        fields = config_module.settings(spelt, root=folder.parent, where=where)
        config = Config(root=folder.parent,
                        services=(ServiceConfig(name=service, migrations=folder),), **fields)
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
        from migcoord.repo import docskeeper, merging, sumkeeper

        catalog = self.catalog()
        check_sum = self.config.sum_path is not None
        edits: list[BranchEdit] = []
        if against is not None:
            from migcoord.repo import git as gitref

            edits = gitref.branch_edits(self.config, against)
            catalog = gitref.merged_catalog(self.config, catalog, against)
            # The merge's sum file does not exist yet; collisions show as duplicate-version.
            check_sum = False
        sum_text = sumkeeper.read(self.config) if check_sum else None
        analyses = self._analyze(catalog, parallel=parallel) if sql else None
        findings = checks.run_all(catalog, self.config, sum_text=sum_text, check_sum=check_sum,
                                  sql=analyses, sides=merging.merge_sides(self.config, catalog,
                                                                          against),
                                  edits=edits, unconfigured=self._unconfigured_folders())
        if against is None and analyses is not None:
            findings.extend(docskeeper.stale_findings(
                self.config, catalog, functools.partial(self._owned_tables, catalog, analyses)))
        return checks.sort_findings(findings)

    def _unconfigured_folders(self) -> tuple[FoundFolder, ...]:
        """Folders of migrations near the configured ones that no service configures;
        none for a config made in code (`for_service`), which names its one folder."""
        from migcoord.repo import unconfigured

        if self.config.path is None:
            return ()
        return unconfigured.near_configured(self.config)

    def _analyze(self, catalog: Catalog, *, parallel: bool = False) -> checks.Analyses:
        """The SQL analysis of `catalog`, parsing only what neither this Coordinator nor
        the stored cache has; what was parsed is stored for the next run."""
        from migcoord import checks
        from migcoord.checks import plain
        from migcoord.repo import analysiscache

        if self._sql_stored is None:
            self._sql_stored = analysiscache.fingerprint()
            stored = plain.cache_from_plain(analysiscache.load(self.config, self._sql_stored))
            self._sql.update({k: v for k, v in stored.items() if k not in self._sql})
        analyses = checks.analyze_catalog(catalog, self.config, cache=self._sql,
                                          parallel=parallel)
        if analyses.parsed:
            analysiscache.save(self.config, {key: plain.to_plain(self._sql[key])
                                             for key in analyses.cache_keys},
                               self._sql_stored)
        return analyses

    # -- the files beside the migrations --------------------------------------------------

    def docs(self, *, check: bool = False, schema: bool | None = None, dsn: str | None = None,
             lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> docsgen.DocsUpdate:
        """Write the generated tables into the configured `docs` file; with `check`, only
        report whether it is out of date (the schema registry by its fingerprint, with no
        server).

        `schema` (default: the config's `docs_schema`) also writes the schema registry:
        every migration is applied on a throwaway database on the server of `dsn` (else
        of the configured env var, else the dev server or a temporary one, as for
        `verify`), and its catalog is read.
        """
        from migcoord.repo import docskeeper

        docskeeper.path_of(self.config)  # no docs file configured: say so before locking
        if check:
            catalog = self.catalog()
            return docskeeper.check(self.config, catalog,
                                    functools.partial(self._owned_tables, catalog))
        if schema is None:
            schema = self.config.docs_schema
        if schema:
            built = self.schema_registry(dsn=dsn)
        with self._file_lock(lock_timeout):
            catalog = self.catalog()
            owned = functools.partial(self._owned_tables, catalog)
            if schema:
                return docskeeper.write_with_schema(self.config, catalog, owned, built)
            return docskeeper.write(self.config, catalog, owned)

    def schema_registry(self, *, dsn: str | None = None) -> registry.Registry:
        """What each service owns, as the migrations really build it: applies them all on
        a throwaway database (see `docs`) and joins the catalog with the SQL analysis."""
        from migcoord.checks import registry as registry_facts
        from migcoord.core import registry
        from migcoord.verify import schema as built_schema

        catalog = self.catalog()
        if dsn is None:
            dsn = self.environ.get(self.config.database_url_env, "").strip() or None
        snapshot = built_schema.built_schema(catalog, self.config, dsn=dsn,
                                             environ=self.environ)
        analyses = self._analyze(catalog)
        return registry.build(snapshot, registry_facts.facts(catalog, self.config, analyses),
                              self.config, fingerprint=registry.fingerprint(catalog, self.config),
                              migrations=len(catalog.migrations))

    def create(self, service: str, name: str, *,
               lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> Created:
        """Allocate the next global version under the file lock and write both files.

        Never overwrites; updates migcoord.sum in the same critical section.
        """
        from migcoord.core import numbering, templates
        from migcoord.repo import docskeeper, sumkeeper, workspace

        service_config = self._service(service)
        clean_name = normalize_name(name)
        width = self.config.version_width
        with self._file_lock(lock_timeout):
            catalog = self.catalog()
            sumkeeper.refuse_broken(self.config)
            version = numbering.next_version(catalog, self.config, service)
            up = service_config.migrations / format_filename(version, clean_name, "up", width)
            down = service_config.migrations / format_filename(version, clean_name, "down", width)
            workspace.create_exclusive_all([
                (up, templates.up_file(service_config, catalog, version, width)),
                (down, templates.down_file(service_config, version, width))])
            written = self.catalog()
            sumkeeper.add(self.config, written, [discovery.read_pair(service, up, down)])
            docskeeper.refresh(self.config, written,
                               functools.partial(self._owned_tables, written))
        log.debug("created %s and %s", up, down)
        return Created(version=version, version_text=format_version(version, width),
                       service=service, name=clean_name, up=up, down=down)

    def write_sum(self, *, lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> Path:
        """Rewrite migcoord.sum from the files on disk (after a deliberate rename), and
        refresh the docs file. Refuses two migrations with one version (`resolve` first)."""
        from migcoord.repo import docskeeper, sumkeeper

        sumkeeper.path_of(self.config)  # no sum file without a config: say so before locking
        with self._file_lock(lock_timeout):
            catalog = self.catalog()
            path = sumkeeper.write(self.config, catalog)
            docskeeper.refresh(self.config, catalog,
                               functools.partial(self._owned_tables, catalog))
            return path

    def renumber(self, version: int, service: str, *, to: int | None = None,
                 lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT, dsn: str | None = None,
                 conn: psycopg.Connection | None = None) -> Renumbered:
        """Move one migration to the next free number (or `to`), with its references.

        Files only, unless a database is given (`dsn` or `conn`): then a migration applied
        there is refused (renumbering it would make it pending again) and the renumber
        is recorded in migcoord_events.
        """
        from migcoord import _engine
        from migcoord.core import numbering

        self._service(service)
        with self._file_lock(lock_timeout):
            plan = numbering.plan_renumber(self.catalog(), self.config, version, service, to)
            if dsn is None and conn is None:
                self._renumber_files(plan)
            else:
                with self._database(dsn, conn, f"migcoord renumber {service}") as history:
                    _engine.refuse_renumbering_applied(history, plan)
                    self._renumber_files(plan)
                    _engine.record_renumber(history, plan)
        log.debug("renumbered %s/%s from %s to %s", service, plan.migration.name,
                  plan.migration.version_text, plan.new_version_text)
        return Renumbered.of(plan)

    def resolve(self, *, onto: str | None = None,
                lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT, dsn: str | None = None,
                conn: psycopg.Connection | None = None) -> Resolved:
        """After (or before, with `onto`) a merge in which two branches took the same
        numbers: keep every migration the other side has at its number, move this
        branch's colliding and later migrations after the highest number of the union,
        with their references, migcoord.sum and the docs file. Idempotent.

        The other side is `onto` (a git ref), else the merge or rebase in progress
        (git's own state). With a database (`dsn` or `conn`), a migration to move that
        is applied there is refused, with the repair, and the moves are recorded.
        """
        from migcoord import _engine
        from migcoord.core import resolution
        from migcoord.repo import merging

        with self._file_lock(lock_timeout):
            side, theirs = merging.their_side(self.config, onto)
            catalog = self.catalog()
            written = merging.written_against(self.config, side, catalog, theirs)
            plan = resolution.plan_resolve(catalog, self.config, theirs, written)
            if dsn is None and conn is None:
                sum_updated = self._renumber_files(plan.renumber)
            else:
                with self._database(dsn, conn, "migcoord resolve") as history:
                    _engine.refuse_resolving_applied(history, plan.renumber)
                    sum_updated = self._renumber_files(plan.renumber)
                    _engine.record_renumber(history, plan.renumber)
        return Resolved.of(plan.renumber, plan.kept, side.label, side.kind,
                           sum_updated=sum_updated)

    # -- database -----------------------------------------------------------------------

    def up(self, service: str | None = None, *, all_services: bool = False,
           to: int | None = None, with_deps: bool = False, allow_out_of_order: bool = False,
           dry_run: bool = False, lock_timeout: float | None = None, sync_each: bool = False,
           ddl_lock_timeout: str | None = None, dsn: str | None = None,
           conn: psycopg.Connection | None = None, on_step: OnStep | None = None) -> UpResult:
        """Apply pending migrations of `service` (or of every service with all_services).

        Each migration and its history row commit together. Checks for pending work
        before taking the lock, so a replica with nothing to do never waits.
        `lock_timeout` (seconds) bounds the wait for another migcoord's migration lock;
        `ddl_lock_timeout` ("5s", "500ms", "0": none) is each migration's own PostgreSQL
        lock_timeout, above the files' and the config's (docs/operations.md).
        `on_step` is told as each migration starts (migcoord.core.progress).
        """
        from migcoord import _engine

        if (service is None) == (not all_services):
            raise UsageError("name one service, or pass all_services=True (--all)")
        if service is not None:
            self._service(service)
        from migcoord.repo import merging

        ddl = _ddl_override(ddl_lock_timeout)
        merging.refuse_unresolved_merge(self.config)
        # Dependencies are checked in the database, so one service's folder is enough
        # unless --with-deps may have to apply another service's files.
        narrow = not (with_deps or service is None)
        catalog = self.catalog([service] if narrow and service else None, up_only=True)
        request = planning.UpRequest(service=service, to=to, with_deps=with_deps,
                                     allow_out_of_order=allow_out_of_order)
        with self._database(dsn, conn, f"migcoord up {service or '--all'}") as history:
            return _engine.up(self.config, catalog, history, request, dry_run=dry_run,
                              lock_timeout=lock_timeout, sync_each=sync_each, ddl=ddl,
                              wider=functools.partial(self.catalog, up_only=True)
                              if narrow else None, on_step=on_step or progress.ignore)

    def down(self, service: str, *, steps: int | None = None, to: int | None = None,
             cascade: bool = False, dry_run: bool = False, lock_timeout: float | None = None,
             ddl_lock_timeout: str | None = None, dsn: str | None = None,
             conn: psycopg.Connection | None = None,
             on_step: OnStep | None = None) -> DownResult:
        """Roll back service's newest applied migrations (default one), newest first
        (`lock_timeout`, `ddl_lock_timeout` and `on_step` as for `up`)."""
        from migcoord import _engine

        self._service(service)
        ddl = _ddl_override(ddl_lock_timeout)
        catalog = self.catalog()
        request = planning.DownRequest(service=service, steps=steps, to=to, cascade=cascade)
        with self._database(dsn, conn, f"migcoord down {service}") as history:
            return _engine.down(self.config, catalog, history, request, dry_run=dry_run,
                                lock_timeout=lock_timeout, ddl=ddl,
                                on_step=on_step or progress.ignore)

    def status(self, *, service: str | None = None, dsn: str | None = None,
               conn: psycopg.Connection | None = None) -> StatusReport:
        """Every migration's state (files x history), the database version, dirty rows."""
        from migcoord import _engine

        if service is not None:
            self._service(service)
        catalog = self.catalog(up_only=True)
        with self._database(dsn, conn, f"migcoord status {service or ''}".strip()) as history:
            rows = history.rows()
        return _engine.status(self.config, catalog, rows, service)

    def verify(self, service: str | None = None, *, dsn: str | None = None, keep: bool = False,
               on_progress: verify_module.Progress | None = None,
               on_step: OnStep | None = None,
               against: str | None = None) -> verify_module.VerifyReport:
        """Round-trip every migration (or `service`'s) up, down and up again on a
        throwaway database, comparing catalog snapshots; see migcoord.verify.

        The database is created on the server of `dsn` (else of the env var named by
        database_url_env), or on the embedded development server when neither is set.
        `on_progress` gets each verdict as it is reached, `on_step` each round trip as it
        starts.

        `against` (a git ref; the pull-request case): verify the merge with that ref, as
        `check --against` reads it; the migrations the ref has are applied once without
        a round trip, only the ones this branch adds are round-tripped, and the whole
        sequence check covers only them.
        """
        from migcoord import verify as verify_module

        if service is not None:
            self._service(service)
        if dsn is None:
            dsn = self.environ.get(self.config.database_url_env, "").strip() or None
        catalog = self.catalog()
        base = None
        if against is not None:
            from migcoord.repo import git as gitref

            catalog = gitref.merged_catalog(self.config, catalog, against)
            base = gitref.migrations_on_ref(self.config, catalog, against)
        return verify_module.run(catalog, self.config, service=service, dsn=dsn,
                                 environ=self.environ, keep=keep, on_progress=on_progress,
                                 on_step=on_step, against=against, base=base)

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
        from migcoord import _engine

        migration = _engine.migration_numbered(self.catalog(), version)
        with self._database(dsn, conn, "migcoord mark") as history:
            return _engine.mark(self.config, history, version, migration, applied=applied,
                                reason=reason, lock_timeout=lock_timeout)

    def adopt(self, *, table: str = "schema_migrations", lock_timeout: float | None = None,
              dsn: str | None = None, conn: psycopg.Connection | None = None) -> AdoptResult:
        """Take over a database golang-migrate managed: record every migration at or below
        its version as applied. Leaves golang-migrate's table untouched; idempotent."""
        from migcoord import _engine
        from migcoord.repo import sumkeeper

        catalog = self.catalog()
        sum_text = sumkeeper.read(self.config)
        with self._database(dsn, conn, "migcoord adopt") as history:
            return _engine.adopt(self.config, catalog, sum_text, history, table=table,
                                 lock_timeout=lock_timeout)

    # -- helpers --------------------------------------------------------------------------

    def _service(self, name: str) -> ServiceConfig:
        service = self.config.service(name)
        if service is None:
            known = ", ".join(self.config.service_names) or "(none)"
            where = f" in {self.config.path}" if self.config.path else ""
            raise UsageError(f"unknown service {name!r}{where}",
                             hint=f"configured services: {known}")
        return service

    def _database(self, dsn: str | None, conn: psycopg.Connection | None,
                  application_name: str) -> contextlib.AbstractContextManager[History]:
        from migcoord import _engine

        return _engine.connected(self.config, self.environ, dsn, conn, application_name)

    def _file_lock(self, timeout: float) -> contextlib.AbstractContextManager[None]:
        from migcoord.repo import config as config_module
        from migcoord.repo import workspace

        return workspace.repo_lock(self.config.lock_path, timeout=config_module.lock_wait(timeout))

    def _renumber_files(self, plan: RenumberPlan) -> bool:
        """Carry out `plan`, then rewrite migcoord.sum (a conflicted one included) and
        refresh the docs file from the files as they now are; whether the sum's content
        changed."""
        from migcoord.repo import docskeeper, sumkeeper, workspace

        workspace.apply_renumber(plan)
        catalog = self.catalog()
        changed = False
        if self.config.sum_path is not None:
            before = sumkeeper.read(self.config)
            sumkeeper.write(self.config, catalog, refuse_duplicates=False)
            changed = sumkeeper.read(self.config) != before
        docskeeper.refresh(self.config, catalog, functools.partial(self._owned_tables, catalog))
        return changed

    def _owned_tables(self, catalog: Catalog,
                      analyses: checks.Analyses | None = None) -> dict[str, list[str]]:
        """The tables each service owns, as the docs name them, from `analyses` or a new
        SQL analysis."""
        from migcoord import checks

        if analyses is None:
            analyses = self._analyze(catalog)
        owners = checks.Owners.of(catalog, self.config, analyses)
        return {service.name: [checks.display(t, self.config)
                               for t in owners.owned_by(service.name)]
                for service in self.config.services}


def _ddl_override(lock_timeout: str | None) -> DdlSettings | None:
    """The `ddl_lock_timeout` argument as the top layer of the DDL settings, judged by the
    rule of `[ddl] lock_timeout` in migcoord.toml (UsageError naming the argument)."""
    if lock_timeout is None:
        return None
    milliseconds, why = parse_duration(lock_timeout)
    if why is not None:
        raise UsageError(f"ddl_lock_timeout: {why}")
    return DdlSettings(lock_timeout_ms=milliseconds)
