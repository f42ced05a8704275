"""The schema registry: what each service owns, as the migrations really build it (pure).

`migcoord docs --schema` applies every migration on a throwaway database and reads its
catalog (a core.snapshot.Snapshot). `build` joins that picture with what the SQL
analysis knows (`Facts`: who owns each table, which service created each view, function,
type or sequence, which other services' migrations use each table) into a Registry:
per service, its tables with columns, keys, indexes, constraints and foreign keys (to
whose table), the other objects it created, and who else uses each table; the tables no
service owns; and the edges between services. core/registry_render.py writes it as
Markdown with Mermaid diagrams, and as JSON.

The registry records a fingerprint of the migration set it was built from
(`fingerprint`: versions, services, names, up-file checksums and the `owns` lists), so
that `check` can tell, without a server, that it is out of date.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping

import attrs

from migcoord.core.model import Catalog, Config
from migcoord.core.owners import display
from migcoord.core.snapshot import SchemaObject, Snapshot

#: A table or object name as PostgreSQL stores it: (schema, name).
Name = tuple[str, str]

#: The kinds listed under "other objects" of the service that created them.
OBJECT_KINDS = ("view", "materialized view", "function", "procedure", "aggregate",
                "enum", "domain", "composite type", "range type", "sequence")
_TABLE_KINDS = ("table", "partitioned table", "foreign table")
_REFERENCES = re.compile(r"REFERENCES\s+((?:\"(?:[^\"]|\"\")+\"|[^\s.(\"]+)"
                         r"(?:\.(?:\"(?:[^\"]|\"\")+\"|[^\s.(\"]+))?)")
_FK_COLUMNS = re.compile(r"FOREIGN KEY\s*\(([^)]*)\)")


@attrs.frozen
class TableOwner:
    """Who owns one table according to the analysis: a service (declared in `owns`, or
    whose migration created it), and the migration that created it, as a label."""

    service: str | None
    declared: bool = False
    created_by: str | None = None


@attrs.frozen
class Use:
    """A migration of another service that uses a table: `how` is "references" (reads it,
    or points a foreign key at it), "changes" or "depends on" (its `depends` names the
    migration that created the table)."""

    service: str
    migration: str
    how: str

    def as_json(self) -> dict[str, str]:
        return {"service": self.service, "migration": self.migration, "how": self.how}


@attrs.frozen
class Facts:
    """What the SQL analysis and the config say about the schema's objects."""

    owners: Mapping[Name, TableOwner] = attrs.field(factory=dict)
    #: (kind family: "relation", "function" or "type", name) -> the creating service.
    creators: Mapping[tuple[str, Name], str] = attrs.field(factory=dict)
    uses: Mapping[Name, tuple[Use, ...]] = attrs.field(factory=dict)
    #: Declared `depends` between services: (dependent, dependency).
    depends: frozenset[tuple[str, str]] = frozenset()


@attrs.frozen
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None = None
    primary: bool = False

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable,
                "default": self.default, "primary_key": self.primary}


@attrs.frozen
class ForeignKey:
    name: str
    columns: str
    target: str
    #: The service that owns the referenced table; None when no service does.
    target_owner: str | None
    definition: str

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "columns": self.columns, "references": self.target,
                "owner": self.target_owner, "definition": self.definition}


@attrs.frozen
class Table:
    """One table of the built schema, with whom it belongs to and who else uses it."""

    name: str
    owner: str | None
    declared: bool
    created_by: str | None
    columns: tuple[Column, ...]
    primary_key: str | None = None
    indexes: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    used_by: tuple[Use, ...] = ()
    #: "table", "partitioned table" or "foreign table", as the catalog says.
    kind: str = "table"

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "kind": self.kind, "owner": self.owner,
                "declared": self.declared,
                "created_by": self.created_by,
                "columns": [column.as_json() for column in self.columns],
                "primary_key": self.primary_key, "indexes": list(self.indexes),
                "constraints": list(self.constraints),
                "foreign_keys": [key.as_json() for key in self.foreign_keys],
                "used_by": [use.as_json() for use in self.used_by]}


@attrs.frozen
class SchemaItem:
    """A view, function, type or sequence, under the service that created it."""

    kind: str
    name: str
    summary: str = ""

    def as_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "summary": self.summary}


@attrs.frozen
class Service:
    name: str
    tables: tuple[Table, ...] = ()
    items: tuple[SchemaItem, ...] = ()


@attrs.frozen
class Edge:
    """Service `user` depends on service `owner`: it uses these tables of it (foreign
    keys, reads, changes), or declares `depends` on its migrations (no tables)."""

    user: str
    owner: str
    tables: tuple[str, ...] = ()


@attrs.frozen
class Registry:
    fingerprint: str
    migrations: int
    services: tuple[Service, ...]
    unowned: tuple[Table, ...] = ()
    #: Objects no service's migration is known to have created.
    unattributed: tuple[SchemaItem, ...] = ()
    edges: tuple[Edge, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {"fingerprint": self.fingerprint, "migrations": self.migrations,
                "services": [{"name": s.name, "tables": [t.as_json() for t in s.tables],
                              "objects": [i.as_json() for i in s.items]}
                             for s in self.services],
                "unowned_tables": [t.as_json() for t in self.unowned],
                "unattributed_objects": [i.as_json() for i in self.unattributed],
                "dependencies": [{"service": e.user, "on": e.owner, "tables": list(e.tables)}
                                 for e in self.edges]}


def fingerprint(catalog: Catalog, config: Config) -> str:
    """A hash of what the registry depends on: every migration's version, service, name
    and up-file checksum, and each service's `owns` (which decides ownership)."""
    digest = hashlib.sha256()
    for migration in catalog.migrations:
        up = migration.up.checksum if migration.up is not None else ""
        digest.update(f"{migration.version} {migration.service} {migration.name} {up}\n"
                      .encode())
    for service in config.services:
        digest.update(f"owns {service.name}: {', '.join(service.owns)}\n".encode())
    return digest.hexdigest()


def split_name(qualified: str) -> Name:
    """`public."Order"` (as the catalog snapshot writes names) -> ("public", "Order")."""
    parts = [piece[1:-1].replace('""', '"') if piece.startswith('"') else piece
             for piece in re.findall(r'"(?:[^"]|"")*"|[^.]+', qualified)]
    return (parts[0], parts[1]) if len(parts) == 2 else ("", qualified)


def build(snapshot: Snapshot, facts: Facts, config: Config, *, fingerprint: str,
          migrations: int) -> Registry:
    """The registry of the schema `snapshot` shows, with `facts` joined in."""
    children: dict[str, list[SchemaObject]] = defaultdict(list)
    for obj in snapshot.objects:
        if obj.parent is not None:
            children[obj.parent].append(obj)
    tables = [obj for obj in snapshot.objects if obj.kind in _TABLE_KINDS]
    owner_of = {split_name(t.name): facts.owners.get(split_name(t.name)) for t in tables}
    by_service: dict[str | None, list[Table]] = defaultdict(list)
    for obj in tables:
        name = split_name(obj.name)
        owner = owner_of[name] or TableOwner(None)
        entry = _table(obj, children.get(obj.name, ()), owner, facts, owner_of, config)
        by_service[owner.service].append(entry)
    items: dict[str | None, list[SchemaItem]] = defaultdict(list)
    for obj in snapshot.objects:
        if obj.kind in OBJECT_KINDS and obj.parent is None:  # a serial's sequence goes with its table
            creator = facts.creators.get((_family(obj.kind), split_name(_bare(obj.name))))
            items[creator].append(SchemaItem(obj.kind, _shown(obj.name, config),
                                             _item_summary(obj)))
    services = tuple(Service(s.name, tuple(by_service.get(s.name, ())),
                             tuple(items.get(s.name, ()))) for s in config.services)
    return Registry(fingerprint=fingerprint, migrations=migrations, services=services,
                    unowned=tuple(by_service.get(None, ())),
                    unattributed=tuple(items.get(None, ())),
                    edges=_edges(services, facts))


def _table(obj: SchemaObject, parts: Iterable[SchemaObject], owner: TableOwner, facts: Facts,
           owner_of: Mapping[Name, TableOwner | None], config: Config) -> Table:
    name = split_name(obj.name)
    primary: str | None = None
    primary_columns: set[str] = set()
    constraints: list[str] = []
    keys: list[ForeignKey] = []
    indexes: list[str] = []
    columns: list[SchemaObject] = []
    for part in parts:
        if part.kind == "column":
            columns.append(part)
        elif part.kind == "index":
            indexes.append(f"{_shown(part.name, config)}: {part.summary}")
        elif part.kind == "constraint":
            definition = part.attribute("definition") or ""
            label = part.name.split(" on ", 1)[0]
            if definition.startswith("PRIMARY KEY"):
                primary = definition.removeprefix("PRIMARY KEY ")
                primary_columns = {c.strip().strip('"') for c in primary.strip("()").split(",")}
            elif definition.startswith("FOREIGN KEY"):
                keys.append(_foreign_key(label, definition, owner_of, config))
            else:
                constraints.append(f"{label}: {definition}")
    # Key columns first, then by name in natural order (c2 before c10): the catalog's
    # column order is not in the snapshot, and a name order keeps a new column one line
    # of the diff.
    column_entries = sorted(
        (Column(c.name.rsplit(".", 1)[-1].strip('"'), c.attribute("type") or "",
                nullable=c.attribute("not null") != "yes", default=c.attribute("default"),
                primary=c.name.rsplit(".", 1)[-1].strip('"') in primary_columns)
         for c in columns), key=lambda c: (not c.primary, natural_key(c.name)))
    return Table(name=display(name, config), kind=obj.kind, owner=owner.service,
                 declared=owner.declared,
                 created_by=owner.created_by, columns=tuple(column_entries),
                 primary_key=primary, indexes=tuple(indexes), constraints=tuple(constraints),
                 foreign_keys=tuple(keys), used_by=facts.uses.get(name, ()))


def natural_key(text: str) -> tuple[tuple[int, str], ...]:
    """Sorts names as a person reads them: `c2` before `c10`, then by the text itself."""
    return tuple((int(part), part) if part.isdigit() else (-1, part)
                 for part in re.split(r"(\d+)", text))


def _item_summary(obj: SchemaObject) -> str:
    """What a reader wants to see of an object beside its name: an enum's values, a
    domain's base type; else the snapshot's own summary."""
    if obj.kind == "enum":
        return obj.attribute("values") or obj.summary
    if obj.kind == "domain":
        base = obj.attribute("base type") or ""
        return (base + (" NOT NULL" if obj.attribute("not null") == "yes" else "")
                or obj.summary)
    return obj.summary


def _foreign_key(label: str, definition: str, owner_of: Mapping[Name, TableOwner | None],
                 config: Config) -> ForeignKey:
    match = _REFERENCES.search(definition)
    target = split_name(match.group(1)) if match else ("", "")
    columns = _FK_COLUMNS.search(definition)
    owner = owner_of.get(target)
    return ForeignKey(name=label, columns=columns.group(1) if columns else "",
                      target=display(target, config),
                      target_owner=owner.service if owner is not None else None,
                      definition=definition)


def _edges(services: tuple[Service, ...], facts: Facts) -> tuple[Edge, ...]:
    """Which service uses which other service's tables, by foreign key or by a migration
    that reads or changes them; and declared `depends` that name no table."""
    used: dict[tuple[str, str], set[str]] = defaultdict(set)
    for service in services:
        for table in service.tables:
            for key in table.foreign_keys:
                if key.target_owner is not None and key.target_owner != service.name:
                    used[(service.name, key.target_owner)].add(key.target)
            for use in table.used_by:
                if use.service != service.name:
                    used[(use.service, service.name)].add(table.name)
    for user, owner in facts.depends:
        if user != owner:
            used.setdefault((user, owner), set())
    return tuple(Edge(user, owner, tuple(sorted(tables)))
                 for (user, owner), tables in sorted(used.items()))


def _family(kind: str) -> str:
    if kind in ("function", "procedure", "aggregate"):
        return "function"
    if kind in ("enum", "domain", "composite type", "range type"):
        return "type"
    return "relation"


def _bare(name: str) -> str:
    """A function's name without its argument list: `public.f(integer)` -> `public.f`."""
    return name.split("(", 1)[0] if "(" in name else name


def _shown(name: str, config: Config) -> str:
    bare = _bare(name)
    schema_prefix = f"{config.default_schema}."
    return name[len(schema_prefix):] if bare.startswith(schema_prefix) else name
