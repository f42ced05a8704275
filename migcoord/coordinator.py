"""The facade: gather inputs, ask the pure core, act through the edges.

Every CLI command is one Coordinator call; service start-up code and ops scripts use the
same calls. Nothing here prints or exits: results are values, problems are exceptions
under MigcoordError.

Each method checks its arguments, reads what the command needs and hands over to the
module of its concern: `_engine` for `up`, `down` and `status`, `_repair` for `mark`,
`adopt` and the database side of `renumber` and `resolve`, `_upkeep` for the files kept
beside the migrations (`create`, `write_sum`, `docs`, the moves), `_checking` and
`_analyses` for `check` and the SQL analysis. Those are imported where they are used,
so that `import migcoord` in a service stays light (no psycopg, filelock, pglast) and
`up` with nothing to do loads no parser.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack

from migcoord.core import merged, planning, progress, reconcile
from migcoord.core.ddl import command_line_settings
from migcoord.core.model import Catalog, Config, Finding, ServiceConfig
from migcoord.core.naming import normalize_name
from migcoord.core.progress import OnStep
from migcoord.errors import UsageError
from migcoord.repo import discovery, filefacts
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
    from migcoord._analyses import SqlAnalyses
    from migcoord._upkeep import Upkeep
    from migcoord.core import docsgen, registry
    from migcoord.db.history import History

__all__ = ["Coordinator", "Created", "Renumbered", "Settings"]

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
        # SQL analyses, for the same reason; made at the first one (_analyses.py).
        self._sql: SqlAnalyses | None = None

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
        from migcoord.repo import codeconfig

        return cls(codeconfig.for_service(service, migrations, settings), environ=environ)

    # -- reading ------------------------------------------------------------------------

    def catalog(self, services: list[str] | None = None, *, up_only: bool = False) -> Catalog:
        """Read the migration folders (all, or only `services`; with `up_only`, no down
        files: see discovery.read_catalog)."""
        if services is not None:
            for service in services:
                self._service(service)
        if not up_only:
            return discovery.read_catalog(self.config, services=services, cache=self._files)
        # `up` and `status` (every boot of a service): files known by their stat are not
        # read (repo/filefacts.py).
        state = self.config.state_dir if self.config.path is not None else None
        facts = filefacts.FileFacts.load(state, self.config.root)
        catalog = discovery.read_catalog(self.config, services=services, up_only=True,
                                         cache=self._files, facts=facts)
        facts.save(complete=services is None)
        return catalog

    def check(self, *, against: str | None = None, sql: bool = True,
              parallel: bool = False) -> list[Finding]:
        """Every offline finding; `against` (a git ref) validates the merge with that ref.

        `sql=False` leaves out the SQL analysis (and with it docs-stale). `parallel` lets
        a large analysis use worker processes; only single-threaded programs should ask.
        """
        from migcoord import _checking

        return _checking.offline_findings(self.config, self.catalog(),
                                          self._analyses() if sql else None,
                                          against=against, parallel=parallel)

    def check_against(self, ref: str, *, sql: bool = True,
                      parallel: bool = False) -> merged.Scoped:
        """`check(against=ref)` as a pull request needs it: `shown`, every finding but the
        warnings `ref` reports too in migrations it has unchanged; those are `merged`
        (they cannot be fixed on a branch: see migcoord.core.merged)."""
        from migcoord import _checking

        return _checking.scoped_findings(self.config, self.catalog(),
                                         self._analyses() if sql else None,
                                         against=ref, parallel=parallel)

    def _analyses(self) -> SqlAnalyses:
        """This Coordinator's SQL analyses, made at the first use."""
        if self._sql is None:
            from migcoord._analyses import SqlAnalyses

            self._sql = SqlAnalyses(self.config)
        return self._sql

    def _analyze(self, catalog: Catalog, *, parallel: bool = False) -> checks.Analyses:
        """The SQL analysis of `catalog`, parsing only what was not parsed before."""
        return self._analyses().analyze(catalog, parallel=parallel)

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
        if schema is None:
            schema = self.config.docs_schema
        return self._upkeep().docs(check=check, lock_timeout=lock_timeout,
                                   schema=functools.partial(self.schema_registry, dsn=dsn)
                                   if schema else None)

    def schema_registry(self, *, dsn: str | None = None) -> registry.Registry:
        """What each service owns, as the migrations really build it: applies them all on
        a throwaway database (see `docs`) and joins the catalog with the SQL analysis."""
        from migcoord.verify import schema

        return schema.schema_registry(self.catalog(), self.config, dsn=self._dsn(dsn),
                                      environ=self.environ, analyze=self._analyze)

    def create(self, service: str, name: str, *,
               lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> Created:
        """Allocate the next global version under the file lock and write both files.

        Never overwrites; updates migcoord.sum in the same critical section.
        """
        return self._upkeep().create(self._service(service), normalize_name(name),
                                     lock_timeout=lock_timeout)

    def write_sum(self, *, lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT) -> Path:
        """Rewrite migcoord.sum from the files on disk (after a deliberate rename), and
        refresh the docs file. Refuses two migrations with one version (`resolve` first)."""
        return self._upkeep().write_sum(lock_timeout=lock_timeout)

    def renumber(self, version: int, service: str, *, to: int | None = None,
                 name: str | None = None,
                 lock_timeout: float = DEFAULT_FILE_LOCK_TIMEOUT, dsn: str | None = None,
                 conn: psycopg.Connection | None = None) -> Renumbered:
        """Move one migration to the next free number (or `to`), with its references.
        `name` picks one of two migrations of `service` that share `version` (a
        duplicate-version); without it such a version is refused, naming both.

        Files only, unless a database is given (`dsn` or `conn`): then a migration applied
        there is refused (renumbering it would make it pending again) and the renumber
        is recorded in migcoord_events.
        """
        self._service(service)
        return self._upkeep().renumber(
            version, service, to, self._database_given(dsn, conn, f"migcoord renumber {service}"),
            name=name, lock_timeout=lock_timeout)

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
        return self._upkeep().resolve(onto, self._database_given(dsn, conn, "migcoord resolve"),
                                      lock_timeout=lock_timeout)

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

        ddl = command_line_settings(ddl_lock_timeout)
        merging.refuse_unresolved_merge(self.config)
        # Dependencies are checked in the database, so one service's folder is enough
        # unless --with-deps may have to apply another service's files.
        narrow = not (with_deps or service is None)
        catalog = self.catalog([service] if narrow and service else None, up_only=True)
        request = planning.UpRequest(service=service, to=to, with_deps=with_deps,
                                     allow_out_of_order=allow_out_of_order,
                                     width=self.config.version_width)
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
        ddl = command_line_settings(ddl_lock_timeout)
        catalog = self.catalog()
        request = planning.DownRequest(service=service, steps=steps, to=to, cascade=cascade,
                                       width=self.config.version_width)
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
        return verify_module.run(self.catalog(), self.config, service=service,
                                 dsn=self._dsn(dsn), environ=self.environ, keep=keep,
                                 on_progress=on_progress, on_step=on_step, against=against)

    def check_database(self, *, dsn: str | None = None,
                       conn: psycopg.Connection | None = None) -> list[Finding]:
        """Findings that need the database: missing-file, modified, dirty, out-of-order."""
        from migcoord import checks

        catalog = self.catalog()
        with self._database(dsn, conn, "migcoord check --db") as history:
            rows = history.rows()
        return checks.database_findings(
            reconcile.reconcile(catalog, rows, width=self.config.version_width), rows,
            self.config)

    def mark(self, version: int, *, applied: bool, reason: str | None = None,
             lock_timeout: float | None = None, dsn: str | None = None,
             conn: psycopg.Connection | None = None) -> MarkResult:
        """Record `version` as applied (or pending) without running it: operator repair.

        `applied` takes the checksum from the file here (accepting an edit), or keeps the
        recorded one when the file is not here; `pending` deletes the history row.
        Both append an event with `reason`.
        """
        from migcoord import _repair

        migration = _repair.migration_numbered(self.catalog(), version,
                                               self.config.version_width)
        with self._database(dsn, conn, "migcoord mark") as history:
            return _repair.mark(self.config, history, version, migration, applied=applied,
                                reason=reason, lock_timeout=lock_timeout)

    def adopt(self, *, table: str = "schema_migrations", lock_timeout: float | None = None,
              dsn: str | None = None, conn: psycopg.Connection | None = None) -> AdoptResult:
        """Take over a database golang-migrate managed: record every migration at or below
        its version as applied. Leaves golang-migrate's table untouched; idempotent."""
        from migcoord import _repair
        from migcoord.repo import sumkeeper

        catalog = self.catalog()
        sum_text = sumkeeper.read(self.config)
        with self._database(dsn, conn, "migcoord adopt") as history:
            return _repair.adopt(self.config, catalog, sum_text, history, table=table,
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

    def _dsn(self, dsn: str | None) -> str | None:
        """`dsn`, else the configured environment variable's value (None when unset)."""
        if dsn is None:
            dsn = self.environ.get(self.config.database_url_env, "").strip() or None
        return dsn

    def _database_given(self, dsn: str | None, conn: psycopg.Connection | None,
                        application_name: str
                        ) -> contextlib.AbstractContextManager[History] | None:
        """The database of `dsn` or `conn`, for commands that use one only when given."""
        if dsn is None and conn is None:
            return None
        return self._database(dsn, conn, application_name)

    def _upkeep(self) -> Upkeep:
        """The file commands, reading through this Coordinator's caches."""
        from migcoord._upkeep import Upkeep

        return Upkeep(self.config, self.catalog, self._owned_tables)

    def _owned_tables(self, catalog: Catalog) -> dict[str, list[str]]:
        """The tables each service owns, as the docs name them."""
        return self._analyses().owned_tables(catalog)

