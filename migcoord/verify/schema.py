"""The schema the migrations build, read from a throwaway database (`docs --schema`),
and the schema registry made of it.

Every migration is applied once, in version order, on a database created for the run on
the same servers `verify` uses (`--dsn`, the dev server, or a temporary one), and the
catalog is read as a core.snapshot.Snapshot. The database is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from migcoord.core.model import Catalog, Config, Migration
from migcoord.core.snapshot import Snapshot
from migcoord.verify.throwaway import StepFailed, lost_not_failed

if TYPE_CHECKING:
    from migcoord.checks import Analyses
    from migcoord.core.registry import Registry

log = logging.getLogger("migcoord")



def throwaway_hint(migration: Migration) -> str:
    """What to do when `migration` failed while building the schema: nothing happened to
    any real database, so the advice is to fix the file and build again. (Whether the
    throwaway database could be dropped is said after this, when it could not.)"""
    return (f"this ran on a throwaway database (no other database was touched): fix "
            f"{migration.label}.up.sql and run `migcoord docs --schema` again")


def built_schema(catalog: Catalog, config: Config, *, dsn: str | None,
                 environ: Mapping[str, str]) -> Snapshot:
    """Apply every migration of `catalog` on a throwaway database; its schema.

    The files `check` reports as errors are refused first, as `up` refuses them; a
    migration that fails raises its MigrationFailed, naming the file and line, with a
    hint for this command: its own advice (`up` again, `mark`) is for a real database.
    """
    from migcoord.checks import runnable
    from migcoord.db import executor
    from migcoord.db.lockwait import LockWatch
    from migcoord.verify import servers

    migrations = list(catalog.migrations)
    runnable.refuse(catalog, config, migrations, files="up", services=None,
                    command="docs --schema")
    with contextlib.ExitStack() as stack:
        admin_dsn, _kind = stack.enter_context(
            servers.admin_server(config, environ, dsn, keep=False))
        session = stack.enter_context(servers.throwaway_session(admin_dsn, config))
        log.info("building the schema: applying %d migration%s on a throwaway database",
                 len(migrations), "" if len(migrations) == 1 else "s")
        for migration in migrations:
            service = config.service(migration.service)
            try:
                executor.apply_up(session.history, migration, lock_pid=session.lock_pid,
                                  role=service.role if service is not None else None,
                                  policy=config.ddl_policy(migration, "up"),
                                  watch=LockWatch(None))
            except StepFailed as failed:
                lost = lost_not_failed(failed, migration, "up", session.history.conn,
                                       command="docs --schema")
                if lost is not None:
                    raise lost from failed
                failed.hint = throwaway_hint(migration)
                raise
        return session.observer.snapshot().snapshot()


def schema_registry(catalog: Catalog, config: Config, *, dsn: str | None, environ: Mapping[str, str],
             analyze: Callable[[Catalog], Analyses]) -> Registry:
    """What each service owns, as the migrations really build it: `built_schema`, joined
    with the SQL analysis `analyze` makes of `catalog`."""
    from migcoord.checks import registry as registry_facts
    from migcoord.core import registry

    snapshot = built_schema(catalog, config, dsn=dsn, environ=environ)
    analyses = analyze(catalog)
    return registry.build(snapshot, registry_facts.facts(catalog, config, analyses),
                          config, fingerprint=registry.fingerprint(catalog, config),
                          migrations=len(catalog.migrations))
