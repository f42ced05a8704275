"""Keep the configured `docs` file's generated tables current (the tables: core/docsgen.py).

`migcoord docs` writes the file, `docs --check` and `check` report it stale, and
`create` refreshes it. The tables list the tables each service owns, which only the SQL
analysis knows; this module does not depend on it: callers pass `owned`, a function
that returns those tables and runs only once the checkout is known to be complete
(every folder that has migrations is here), since the analysis is the costly part.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from migcoord.core import docsgen, registry, registry_render
from migcoord.core.model import Catalog, Config, Finding
from migcoord.errors import MigcoordError, RefusedError, UsageError
from migcoord.repo import sumkeeper, workspace

log = logging.getLogger("migcoord")

#: Returns each service's owned tables as the docs name them.
OwnedTables = Callable[[], Mapping[str, Sequence[str]]]


def path_of(config: Config) -> Path:
    """The configured docs file; UsageError (saying how to configure one) when none is."""
    if config.docs is None:
        where = f" to {config.path}" if config.path else ""
        raise UsageError("no docs file is configured",
                         hint=f'add docs = "docs/MIGRATIONS.md"{where}')
    return config.docs


def check(config: Config, catalog: Catalog, owned: OwnedTables) -> docsgen.DocsUpdate:
    """Whether the docs file is out of date, and why; writes nothing. The schema
    registry is judged by its recorded fingerprint: no server needed."""
    path = path_of(config)
    existing, wanted = _texts(config, catalog, owned)
    schema = _schema_reason(config, catalog, existing)
    # `docs --schema` rewrites both parts: when the registry is stale too, it is the fix.
    command = _SCHEMA_COMMAND if schema is not None else "migcoord docs"
    if existing != wanted:
        return docsgen.DocsUpdate(path, stale=True, reason=_reason(path, existing),
                                  command=command)
    return docsgen.DocsUpdate(path, stale=schema is not None, reason=schema or "",
                              command=command)


def write_with_schema(config: Config, catalog: Catalog, owned: OwnedTables,
                      built: registry.Registry) -> docsgen.DocsUpdate:
    """Write the generated tables and the schema registry `built` (the caller holds the
    file lock)."""
    path = path_of(config)
    existing, wanted = _texts(config, catalog, owned)
    wanted = registry_render.merge(wanted, registry_render.render(built))
    if existing == wanted:
        return docsgen.DocsUpdate(path, stale=False, registry=built.as_json())
    path.parent.mkdir(parents=True, exist_ok=True)
    workspace.replace_atomically(path, wanted)
    return docsgen.DocsUpdate(path, stale=True, written=True, reason=_reason(path, existing),
                              registry=built.as_json())


_SCHEMA_COMMAND = "migcoord docs --schema"


def _schema_reason(config: Config, catalog: Catalog, existing: str | None) -> str | None:
    """Why the schema registry in the docs file is out of date, or None: it was built from
    another set of migrations (or `owns`), or `docs_schema` asks for one that is not
    there."""
    recorded = registry_render.recorded_fingerprint(existing)
    if recorded is None:
        return ("the schema registry is missing (docs_schema = true in migcoord.toml)"
                if config.docs_schema else None)
    if recorded != registry.fingerprint(catalog, config):
        return ("the schema registry was built from other migrations (or other `owns` "
                "lists) than those here")
    return None


def write(config: Config, catalog: Catalog, owned: OwnedTables) -> docsgen.DocsUpdate:
    """Write the generated tables into the docs file when they changed (the caller holds
    the file lock). Raises RefusedError in a partial checkout, UsageError for unbalanced
    markers."""
    path = path_of(config)
    existing, wanted = _texts(config, catalog, owned)
    if existing == wanted:
        return docsgen.DocsUpdate(path, stale=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    workspace.replace_atomically(path, wanted)
    return docsgen.DocsUpdate(path, stale=True, written=True, reason=_reason(path, existing))


def refresh(config: Config, catalog: Catalog, owned: OwnedTables) -> None:
    """After `create`: write the docs file when one is configured. A problem is logged,
    not raised, since the migration itself was created."""
    if config.docs is None:
        return
    try:
        if write(config, catalog, owned).written:
            log.info("updated %s", _shown(config.docs))
    except MigcoordError as error:
        log.warning("%s was not refreshed: %s", config.docs, error)


def stale_findings(config: Config, catalog: Catalog, owned: OwnedTables) -> list[Finding]:
    """docs-conflict when git left conflict markers in the docs file; else docs-stale for
    `check`, when it can be judged here: a docs file is configured, the code is not
    allowed, and every folder with migrations is present."""
    path = config.docs
    if path is None:
        return []
    try:
        conflict = docsgen.conflict_finding(path, path.read_text(encoding="utf-8",
                                                                 errors="replace"))
    except OSError:
        conflict = None  # absent or unreadable: docs-stale says so below
    if conflict is not None:
        return [conflict]
    if "docs-stale" in config.allow or sumkeeper.absent_with_migrations(config, catalog):
        return []
    try:
        existing, wanted = _texts(config, catalog, owned)
    except MigcoordError as error:  # unbalanced markers
        return [docsgen.stale_finding(path, error.message)]
    schema = _schema_reason(config, catalog, existing)
    command = _SCHEMA_COMMAND if schema is not None else "migcoord docs"
    if existing != wanted:
        return [docsgen.stale_finding(path, _reason(path, existing), command=command)]
    if schema is not None:
        return [docsgen.stale_finding(path, schema, command=command)]
    return []


def _texts(config: Config, catalog: Catalog, owned: OwnedTables) -> tuple[str | None, str]:
    """The docs file as it is (None when absent) and as it should be."""
    path = path_of(config)
    absent = sumkeeper.absent_with_migrations(config, catalog)
    if absent:
        raise RefusedError(
            "the docs list every service's migrations, and these folders are not here: "
            + ", ".join(absent), hint="run `migcoord docs` in a full checkout")
    block = docsgen.render(catalog, config, owned())
    try:
        existing: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = None
    # A conflicted schema registry cannot be written again offline: it becomes a stale
    # record (check says to run `docs --schema`), and the tables are written as always.
    unconflicted = registry_render.without_conflicts(existing) if existing else existing
    return existing, docsgen.merge(unconflicted, block)


def _shown(path: Path) -> str:
    """`path` as the other messages show paths: relative to the working directory."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def _reason(path: Path, existing: str | None) -> str:
    if existing is None:
        return f"{path.name} does not exist yet"
    return f"{path.name} no longer matches the migrations and migcoord.toml"
