"""What the schema registry needs from the SQL analysis (core/registry.py builds it).

`facts` says, from the migration files alone: who owns each table (the same `Owners`
that the `ownership` rule uses), which service's migration created each view, function,
type and sequence, which migrations of OTHER services read or change each table, and
which services declare `depends` on which. The catalog snapshot of the built schema
supplies the rest.
"""

from __future__ import annotations

from collections import defaultdict

from migcoord.checks.analysis import Analyses, Table
from migcoord.checks.ownership import Owners
from migcoord.core.model import Catalog, Config, Migration
from migcoord.core.registry import Facts, TableOwner, Use

_FAMILIES = {"view": "relation", "materialized view": "relation", "sequence": "relation",
             "table": "relation", "function": "function", "type": "type", "domain": "type"}


def facts(catalog: Catalog, config: Config, analyses: Analyses) -> Facts:
    owners = Owners.of(catalog, config, analyses)
    declares = {service.name for service in config.services if service.owns}
    table_owners = {}
    for name, owner in owners.owners.items():
        declared = name in owners.declared
        creators = owners.creators.get(name)
        # As the `unowned-table` rule has it: a table that no `owns` lists belongs to the
        # service that created it only when that service lists no `owns` at all.
        service = owner.service if declared or owner.service not in declares else None
        table_owners[name] = TableOwner(service, declared=declared,
                                        created_by=_label(creators[0]) if creators else None)
    return Facts(owners=table_owners, creators=_creators(catalog, config),
                 uses=_uses(catalog, analyses, owners), depends=_depends(catalog))


def _label(migration: Migration) -> str:
    return f"{migration.service} {migration.version_text}"


def _creators(catalog: Catalog, config: Config) -> dict[tuple[str, Table], str]:
    """(family, name) -> the service whose migration first created that view, function,
    type or sequence (parsed here: the rules keep only table effects)."""
    from migcoord import sql

    created: dict[tuple[str, Table], str] = {}
    for migration in catalog.migrations:
        text = migration.up_sql
        if not text or "create" not in text.lower():
            continue
        for effect in sql.analyze(text, default_schema=config.default_schema).object_effects:
            family = _FAMILIES.get(str(effect.kind))
            if family is None or str(effect.action) != "created":
                continue
            created.setdefault((family, (effect.name.schema, effect.name.name)),
                               migration.service)
    return created


def _uses(catalog: Catalog, analyses: Analyses, owners: Owners) -> dict[Table, tuple[Use, ...]]:
    """Per table, the migrations of services other than its owner that read or change it,
    or that declare `depends` on the migration that created it."""
    found: dict[Table, dict[tuple[str, str], str]] = defaultdict(dict)
    by_version = catalog.by_version()
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        effects = analysed.up.effects if analysed is not None and analysed.up else ()
        for effect in effects:
            owner = owners.owners.get(effect.table)
            if owner is None or owner.service == migration.service:
                continue
            how = "references" if effect.action == "referenced" else "changes"
            uses = found[effect.table]
            key = (migration.service, _label(migration))
            if uses.get(key) != "changes":
                uses[key] = how
        for ref in migration.directives.depends:
            target = by_version.get(ref.version)
            if target is None or target.service == migration.service:
                continue
            for table, creators in owners.creators.items():
                if target in creators:
                    found[table].setdefault((migration.service, _label(migration)), "depends on")
    return {table: tuple(Use(service, label, how) for (service, label), how in sorted(
        uses.items(), key=lambda item: item[0][1])) for table, uses in found.items()}


def _depends(catalog: Catalog) -> frozenset[tuple[str, str]]:
    by_version = catalog.by_version()
    pairs = set()
    for migration in catalog.migrations:
        for ref in migration.directives.depends:
            target = by_version.get(ref.version)
            if target is not None and target.service != migration.service:
                pairs.add((migration.service, target.service))
    return frozenset(pairs)
