"""The files migcoord keeps beside the migrations, written under the repository's file
lock: `create`'s pair, migcoord.sum, the docs file and the moves of `renumber` and
`resolve`; each write brings the sum and the docs file up to date in the same critical
section, from the files as they then are.

`renumber` and `resolve` touch a database only when one is given: then a migration it
has applied is refused before anything moves, and the moves are recorded there after
(`_repair`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from migcoord.core.model import Catalog, Config, ServiceConfig, format_version
from migcoord.core.naming import format_filename
from migcoord.repo import config as config_module
from migcoord.repo import discovery, docskeeper, sumkeeper, workspace
from migcoord.results import Created, Renumbered, Resolved

if TYPE_CHECKING:
    from migcoord.core import docsgen, registry
    from migcoord.core.numbering import RenumberPlan
    from migcoord.db.history import History

log = logging.getLogger("migcoord")

#: A database to record moves in, or None for the files alone.
Database = contextlib.AbstractContextManager["History"] | None


def file_lock(config: Config, timeout: float) -> contextlib.AbstractContextManager[None]:
    """The repository's file lock, waited for at most `timeout` seconds."""
    return workspace.repo_lock(config.lock_path, timeout=config_module.lock_wait(timeout))


class Upkeep:
    """The file commands of one repository. `read` reads the folders (the facade's
    cached `catalog`); `owned` gives the tables each service owns in a catalog, by the
    SQL analysis, and is called only when the docs file needs them."""

    def __init__(self, config: Config, read: Callable[[], Catalog],
                 owned: Callable[[Catalog], dict[str, list[str]]]) -> None:
        self.config = config
        self.read = read
        self.owned = owned

    def create(self, service: ServiceConfig, name: str, *, lock_timeout: float) -> Created:
        """Allocate the next global version under the file lock and write both files of
        `name` (normalized); never overwrites; migcoord.sum and the docs file follow."""
        from migcoord.core import numbering, templates

        config, width = self.config, self.config.version_width
        with file_lock(config, lock_timeout):
            catalog = self.read()
            sumkeeper.refuse_broken(config)
            version = numbering.next_version(catalog, config, service.name)
            up = service.migrations / format_filename(version, name, "up", width)
            down = service.migrations / format_filename(version, name, "down", width)
            workspace.create_exclusive_all([
                (up, templates.up_file(service, catalog, version, width)),
                (down, templates.down_file(service, version, width))])
            written = self.read()
            sumkeeper.add(config, written, [discovery.read_pair(service.name, up, down)])
            docskeeper.refresh(config, written, functools.partial(self.owned, written))
        log.debug("created %s and %s", up, down)
        return Created(version=version, version_text=format_version(version, width),
                       service=service.name, name=name, up=up, down=down)

    def write_sum(self, *, lock_timeout: float) -> Path:
        """Rewrite migcoord.sum from the files on disk and refresh the docs file; refuses
        two migrations with one version."""
        sumkeeper.path_of(self.config)  # no sum file without a config: say so before locking
        with file_lock(self.config, lock_timeout):
            catalog = self.read()
            path = sumkeeper.write(self.config, catalog)
            docskeeper.refresh(self.config, catalog, functools.partial(self.owned, catalog))
            return path

    def docs(self, *, check: bool, schema: Callable[[], registry.Registry] | None,
             lock_timeout: float) -> docsgen.DocsUpdate:
        """Write the docs file's generated tables (with the registry `schema` builds, when
        given: before the lock, since it takes a server); with `check`, only say whether
        the file is out of date."""
        docskeeper.path_of(self.config)  # no docs file configured: say so before locking
        if check:
            catalog = self.read()
            return docskeeper.check(self.config, catalog, functools.partial(self.owned, catalog))
        built = schema() if schema is not None else None
        with file_lock(self.config, lock_timeout):
            catalog = self.read()
            tables = functools.partial(self.owned, catalog)
            if built is not None:
                return docskeeper.write_with_schema(self.config, catalog, tables, built)
            return docskeeper.write(self.config, catalog, tables)

    def renumber(self, version: int, service: str, to: int | None, database: Database, *,
                 name: str | None = None, lock_timeout: float) -> Renumbered:
        """Move one migration (the one called `name`, where two share `version`) to the
        next free number (or `to`), with its references."""
        from migcoord import _repair
        from migcoord.core import numbering

        with file_lock(self.config, lock_timeout):
            plan = numbering.plan_renumber(self.read(), self.config, version, service, to,
                                           name=name)
            self._move(plan, database, _repair.refuse_renumbering_applied)
        log.debug("renumbered %s/%s from %s to %s", service, plan.migration.name,
                  plan.migration.version_text, plan.new_version_text)
        return Renumbered.of(plan)

    def resolve(self, onto: str | None, database: Database, *, lock_timeout: float) -> Resolved:
        """Move this branch's migrations that collide with the other side's (`onto`, else
        the merge or rebase in progress) after the highest number of the union."""
        from migcoord import _repair
        from migcoord.core import resolution
        from migcoord.repo import merging

        with file_lock(self.config, lock_timeout):
            catalog = self.read()
            side, theirs = merging.their_side(self.config, onto, catalog)
            written = merging.written_against(self.config, side, catalog, theirs)
            plan = resolution.plan_resolve(catalog, self.config, theirs, written)
            sum_updated = self._move(plan.renumber, database, _repair.refuse_resolving_applied)
        return Resolved.of(plan.renumber, plan.kept, side.label, side.kind,
                           sum_updated=sum_updated)

    def _move(self, plan: RenumberPlan, database: Database,
              refuse: Callable[[History, RenumberPlan], None]) -> bool:
        """Carry out `plan` on the files; with a `database`, first `refuse` what it has
        applied, and record the moves there after. Whether the sum's content changed."""
        if database is None:
            return self._renumber_files(plan)
        from migcoord._repair import record_renumber

        with database as history:
            refuse(history, plan)
            changed = self._renumber_files(plan)
            record_renumber(history, plan)
        return changed

    def _renumber_files(self, plan: RenumberPlan) -> bool:
        """Carry out `plan`, then rewrite migcoord.sum (a conflicted one included) and
        refresh the docs file from the files as they now are; whether the sum's content
        changed."""
        workspace.apply_renumber(plan)
        catalog = self.read()
        changed = False
        if self.config.sum_path is not None:
            before = sumkeeper.read(self.config)
            sumkeeper.write(self.config, catalog, refuse_duplicates=False)
            changed = sumkeeper.read(self.config) != before
        docskeeper.refresh(self.config, catalog, functools.partial(self.owned, catalog))
        return changed
