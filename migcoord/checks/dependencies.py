"""Rules on the order between migrations: `-- migcoord:depends`, declared and inferred.

From the directives alone: `unknown-dependency` (no such service or migration, or the
wrong owner) and `forward-dependency` (not older than the migration). From the SQL
analysis: `undeclared-dependency` (a migration uses a table another service's migration
created, and nothing orders it after that migration) and `unnecessary-dependency` (a
`depends` entry that is provably not needed). `Graph` is the order `up` guarantees.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from migcoord.checks._located import finding_at
from migcoord.checks.analysis import Analyses
from migcoord.checks.numbering import Ledger
from migcoord.checks.ownership import Owners
from migcoord.core.model import Catalog, Config, Finding, Migration, format_version
from migcoord.core.owners import display


def declared_dependencies(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    """`unknown-dependency` and `forward-dependency`; a dependency on a folder that is not
    here is judged from migcoord.sum (see Ledger), or not at all without it."""
    by_version = catalog.by_version()
    present = {f.name for f in catalog.folders if f.present}
    known = set(config.service_names)
    for migration in catalog.migrations:
        for ref in migration.directives.depends:
            shown = ref.render(config.version_width)
            if ref.service is not None and ref.service not in known:
                yield finding_at(migration, "unknown-dependency",
                                 f"depends on {shown}, but there is no service {ref.service!r}",
                                 line=ref.line,
                                 hint="services: " + ", ".join(config.service_names))
                continue
            if ref.version >= migration.version:
                yield finding_at(
                    migration, "forward-dependency",
                    f"depends on {shown}, which is not older than {migration.version_text}: "
                    "a migration can only need migrations numbered before it",
                    line=ref.line,
                    hint="if the order is really the other way, renumber this migration "
                    f"(`migcoord renumber {migration.version_text} --service "
                    f"{migration.service}`) so it comes after {shown}",
                )
                continue
            owners = ledger.owners.get(ref.version)
            if owners is None:
                judged = ledger.complete or (ref.service is not None and ref.service in present)
                if judged:
                    yield finding_at(migration, "unknown-dependency",
                                     f"depends on {shown}, which does not exist", line=ref.line,
                                     hint="check the number; `migcoord status` lists every "
                                     "migration")
                continue
            if ref.service is not None and ref.service not in owners:
                target = by_version.get(ref.version)
                label = f" ({target.label})" if target is not None else ""
                number = format_version(ref.version, config.version_width)
                yield finding_at(
                    migration, "unknown-dependency",
                    f"depends on {shown}, but {number} belongs to {owners[0]}{label}",
                    line=ref.line,
                    hint=f"write `{owners[0]}:{number}` or fix the number",
                )


class Graph:
    """The order `up` guarantees between migrations: declared `depends` edges, and each
    migration after its service's earlier ones.

    `reaches(start, service, version)` says whether the migration numbered `start` is
    applied only after `service`'s migration `version`: through edges it reaches a
    migration of `service` numbered `version` or above (whose own service's earlier
    migrations come before it).
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._by_version = catalog.by_version()
        #: version -> the previous version of the same service
        self._previous: dict[int, int] = {}
        last: dict[str, int] = {}
        for migration in catalog.migrations:
            if migration.service in last and last[migration.service] != migration.version:
                self._previous[migration.version] = last[migration.service]
            last[migration.service] = migration.version
        self._highest: dict[int, dict[str, int]] | None = None

    def _sources(self, migration: Migration, skip: int | None = None) -> list[int]:
        sources = [v for v in migration.depends_on if v != skip and v < migration.version]
        if migration.version in self._previous:
            sources.append(self._previous[migration.version])
        return sources

    def _table(self) -> dict[int, dict[str, int]]:
        """For each version: the highest version of each service it is applied after
        (itself included). Built once, in version order, since edges point downwards."""
        if self._highest is not None:
            return self._highest
        highest: dict[int, dict[str, int]] = {}
        for migration in self._catalog.migrations:
            if self._by_version[migration.version] is not migration:
                continue  # a duplicate version: duplicate-version says so
            reach: dict[str, int] = {}
            for source in self._sources(migration):
                for service, version in self._reach_of(source, highest).items():
                    if version > reach.get(service, 0):
                        reach[service] = version
            reach[migration.service] = migration.version
            highest[migration.version] = reach
        self._highest = highest
        return highest

    def _reach_of(self, version: int, highest: Mapping[int, dict[str, int]]) -> Mapping[str, int]:
        if version in highest:
            return highest[version]
        target = self._by_version.get(version)
        return {target.service: version} if target is not None else {}

    def reaches(self, start: int, service: str, version: int) -> bool:
        return self._table().get(start, {}).get(service, 0) >= version

    def reaches_through(self, migration: Migration, service: str, version: int,
                        skip: int | None = None) -> bool:
        """Whether `migration`'s edges (its service's previous migration and its
        depends, except the one on `skip`) already order it after `service`:`version`."""
        table = self._table()
        return any(self._reach_of(source, table).get(service, 0) >= version
                   for source in self._sources(migration, skip))


def undeclared_dependency(catalog: Catalog, config: Config, analyses: Analyses,
                          owners: Owners, graph: Graph) -> Iterator[Finding]:
    """A migration uses a table another service's migration created, without an order."""
    width = config.version_width
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None or analysed.up is None:
            continue
        own = set(analysed.up.created)
        needs: dict[int, tuple[Migration, list[str], int]] = {}
        for effect in analysed.up.effects:
            if effect.table in own:
                continue
            creator = _latest_creator(owners.creators.get(effect.table, ()), migration.version)
            if creator is None or creator.service == migration.service:
                continue
            if graph.reaches(migration.version, creator.service, creator.version):
                continue
            _, tables, _ = needs.setdefault(creator.version, (creator, [], effect.line))
            table = display(effect.table, config)
            if table not in tables:
                tables.append(table)
        for creator, tables, line in needs.values():
            target = f"{creator.service}:{format_version(creator.version, width)}"
            declared = migration.directives.depends
            how = (f"add {target} to its `-- migcoord:depends` line (line {declared[0].line})"
                   if declared else
                   f"add the line `-- migcoord:depends {target}` at the top of the up file, "
                   "before the first statement")
            yield finding_at(
                migration, "undeclared-dependency",
                f"{migration.service}:{migration.version_text} uses {', '.join(tables)}, "
                f"created by {target} ({creator.name}), but does not depend on it: "
                f"`up --service {migration.service}` could run it before {creator.service} "
                "has migrated",
                hint=how, line=line)


def _latest_creator(creators: Iterable[Migration], before: int) -> Migration | None:
    found = None
    for creator in creators:
        if creator.version < before:
            found = creator
    return found


def unnecessary_dependency(catalog: Catalog, config: Config, analyses: Analyses,
                           graph: Graph) -> Iterator[Finding]:
    """A `depends` entry that is provably not needed: on an earlier migration of the same
    service, or on one that only changes tables (and indexes), none of which this migration
    mentions, and that another of its dependencies (or its service's previous migration)
    already orders it after."""
    by_version = catalog.by_version()
    width = config.version_width
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        seen: set[int] = set()
        for ref in migration.directives.depends:
            target = by_version.get(ref.version)
            if (target is None or ref.version >= migration.version or ref.version in seen
                    or (ref.service is not None and ref.service != target.service)):
                continue
            seen.add(ref.version)
            shown = f"{target.service}:{format_version(target.version, width)}"
            if target.service == migration.service:
                yield finding_at(
                    migration, "unnecessary-dependency",
                    f"depends on {shown}, an earlier migration of {migration.service}: "
                    "a service's migrations are always applied in version order",
                    hint=f"remove {ref.text} from the depends line", line=ref.line)
                continue
            needed = analyses.of(target)
            if (analysed is None or analysed.up is None or needed is None or needed.up is None
                    or not analysed.up.parsed or not needed.up.parsed
                    or analysed.up.opaque or needed.up.opaque):
                continue  # cannot prove anything about SQL we cannot see
            if (not needed.up.changed or not needed.up.tables_only
                    or needed.up.changed & analysed.up.mentioned):
                # It changes no table (what it does is not seen here), makes objects this
                # migration may use by name, or changes a table this migration uses.
                continue
            if graph.reaches_through(migration, target.service, target.version, skip=ref.version):
                yield finding_at(
                    migration, "unnecessary-dependency",
                    f"depends on {shown}, whose tables this migration never mentions, and "
                    "which its other dependencies (or its service's earlier migrations) "
                    "already order it after",
                    hint=f"remove {ref.text} from the depends line", line=ref.line)

