"""What each statement of a migration does to tables and other schema objects.

The values: `StatementEffects` holds what one statement does (migcoord/sql/extract.py
reads it from the parse tree): the tables it creates, alters, drops, renames, truncates,
writes, indexes, gives triggers, policies, comments or row security; the tables it only
reads (foreign keys, view and function bodies, `LIKE`, `INHERITS`, `PARTITION OF`, the
queries of data migrations); the schema objects it creates, drops or renames (an index
created without a name under the name PostgreSQL gives it, migcoord/sql/index_names.py);
and the columns `ALTER TABLE` adds, drops or renames.

Names resolve as PostgreSQL would at that point of the file (`Scope`): unqualified
names go to the default schema (or to the first schema of a `SET search_path` earlier in
the file), names of temporary tables and CTEs are not tables, and PostgreSQL's own
relations belong to no service, so they are left out: those in `pg_*` schemas and
`information_schema`, and unqualified `pg_*` names (pg_catalog is searched first).
"""

from __future__ import annotations

import enum

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import quote_ident, relation_parts, wrapped
from migcoord.sql.index_names import ServerName


@attrs.frozen(order=True)
class QualifiedName:
    """A schema-qualified name as PostgreSQL stores it.

    Unquoted identifiers arrive lower-cased and quoted ones keep their case, so `"Rules"`
    and `rules` are different names. Schemas and extensions, whose names are
    database-wide, have an empty `schema`.
    """

    schema: str
    name: str

    def __str__(self) -> str:
        if not self.schema:
            return quote_ident(self.name)
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


class TableAction(enum.StrEnum):
    """How a statement touches a table. Every action but REFERENCED changes the table."""

    CREATED = "created"
    ALTERED = "altered"
    DROPPED = "dropped"
    RENAMED = "renamed"
    TRUNCATED = "truncated"
    WRITTEN = "written"
    INDEXED = "indexed"
    TRIGGER = "trigger"
    POLICY = "policy"
    COMMENT = "comment"
    ROW_SECURITY = "row-security"
    REFERENCED = "referenced"


class ObjectKind(enum.StrEnum):
    """Schema objects whose creation and removal `down-mismatch` follows."""

    TABLE = "table"
    VIEW = "view"
    MATERIALIZED_VIEW = "materialized view"
    INDEX = "index"
    SEQUENCE = "sequence"
    FUNCTION = "function"  # also procedures and aggregates
    TYPE = "type"
    DOMAIN = "domain"
    SCHEMA = "schema"
    EXTENSION = "extension"
    TRIGGER = "trigger"
    POLICY = "policy"
    #: A table constraint added or dropped by `ALTER TABLE` (those of `CREATE TABLE` go
    #: with their table and are not followed).
    CONSTRAINT = "constraint"


class ObjectAction(enum.StrEnum):
    CREATED = "created"
    DROPPED = "dropped"
    RENAMED = "renamed"
    #: Changed in place, keeping its name: `ALTER VIEW` / `ALTER MATERIALIZED VIEW`.
    ALTERED = "altered"
    #: `ALTER SEQUENCE ... OWNED BY`: the sequence now goes with `on`'s table (none for
    #: `OWNED BY NONE`); `ALTER TABLE p ATTACH PARTITION x`: table x goes with p.
    OWNED = "owned"


class ColumnAction(enum.StrEnum):
    ADDED = "added"
    DROPPED = "dropped"
    RENAMED = "renamed"


@attrs.frozen
class TableEffect:
    """One way one statement touches one table; `line` is the statement's first line."""

    action: TableAction
    table: QualifiedName
    line: int
    #: RENAMED: the table's new name (a new schema for `ALTER TABLE ... SET SCHEMA`).
    new_name: QualifiedName | None = None
    #: INDEXED: the index's name; None when `CREATE INDEX` leaves the naming to PostgreSQL.
    index: QualifiedName | None = None
    #: INDEXED: built `CONCURRENTLY`.
    concurrently: bool = False


@attrs.frozen
class ObjectEffect:
    """One schema object a statement creates, drops or renames.

    `CREATE OR REPLACE` counts as CREATED (with `replace`). A trigger, policy or
    constraint is named in its table's schema and `on` holds that table (and, for a
    foreign key, the table it references, whose drop takes it along); an index's `on`
    holds its table; a
    view's `on` holds the relations its query reads; a sequence's `on` holds the table
    that owns it (`OWNED BY table.column`), which takes it along when dropped; a
    partition's `on` holds its parent (`PARTITION OF`), which does the same.
    """

    action: ObjectAction
    kind: ObjectKind
    name: QualifiedName
    line: int
    on: tuple[QualifiedName, ...] = ()
    #: RENAMED: the new name.
    new_name: QualifiedName | None = None
    #: DROPPED: `DROP ... CASCADE`.
    cascade: bool = False
    #: CREATED: by `CREATE OR REPLACE`, so the object may have existed before.
    replace: bool = False
    #: SEQUENCE, CREATED or OWNED: the column of `on`'s table that owns it.
    owner_column: str = ""
    #: INDEX or CONSTRAINT, CREATED without a name: what PostgreSQL builds its name from;
    #: `name` is the name it gets when that name is free in the schema (else a numbered
    #: form).
    server_name: ServerName | None = None


@attrs.frozen
class ColumnEffect:
    """A column that `ALTER TABLE` adds, drops or renames (not the columns of `CREATE
    TABLE`)."""

    action: ColumnAction
    table: QualifiedName
    column: str
    line: int
    #: RENAMED: the column's new name.
    new_name: str = ""


@attrs.frozen
class StatementEffects:
    """Everything `extract` learns from one statement."""

    tables: tuple[TableEffect, ...] = ()
    objects: tuple[ObjectEffect, ...] = ()
    columns: tuple[ColumnEffect, ...] = ()
    #: The statement runs code whose effects cannot be seen here (`DO`, `CALL`, `EXECUTE`).
    opaque: bool = False


@attrs.frozen
class Scope:
    """How unqualified names resolve at one point of a file."""

    #: Where unqualified names go now; `SET search_path` earlier in the file moves it.
    schema: str
    #: The file's default schema, which `RESET search_path` restores.
    base_schema: str
    #: Unqualified names of temporary relations created earlier in the file.
    temporary: frozenset[str] = frozenset()

    @classmethod
    def start(cls, default_schema: str) -> Scope:
        return cls(schema=default_schema, base_schema=default_schema)

    def relation(self, parts: list[str]) -> QualifiedName | None:
        """The relation a written name denotes; None for temporary and system relations."""
        if not parts:
            return None
        if len(parts) == 1:
            name = parts[0]
            if name in self.temporary:
                return None
            # pg_catalog comes first in every search_path, and it is where pg_* names live.
            schema = "pg_catalog" if name.startswith("pg_") else self.schema
        else:
            schema, name = parts[-2], parts[-1]
        if schema.startswith("pg_") or schema == "information_schema":
            return None
        return QualifiedName(schema, name)

    def range_var(self, range_var: Node | None) -> QualifiedName | None:
        """The relation a RangeVar denotes; None for temporary and system relations."""
        if not range_var or range_var.get("relpersistence") == "t":
            return None
        return self.relation(relation_parts(range_var))

    def qualify(self, parts: list[str]) -> QualifiedName | None:
        """A function, type or domain name, resolved without the relation special cases."""
        if not parts:
            return None
        if len(parts) == 1:
            return QualifiedName(self.schema, parts[0])
        return QualifiedName(parts[-2], parts[-1])

    def after(self, node_type: str, body: Node) -> Scope:
        """The scope for the next statement, after this one has run."""
        if node_type == "VariableSetStmt":
            return self._after_set(body)
        temporary = _temporary_relation(node_type, body)
        if temporary is not None:
            return attrs.evolve(self, temporary=self.temporary | {temporary})
        return self

    def _after_set(self, body: Node) -> Scope:
        kind = body.get("kind")
        if kind == "VAR_RESET_ALL" or (
            body.get("name") == "search_path" and kind in ("VAR_SET_DEFAULT", "VAR_RESET")
        ):
            return attrs.evolve(self, schema=self.base_schema)
        if body.get("name") != "search_path" or kind != "VAR_SET_VALUE":
            return self
        for argument in wrapped(body.get("args"), "A_Const"):
            schema = argument.get("sval", {}).get("sval")
            # "$user" names the role's own schema, which migrations rarely have.
            if schema and schema != "$user":
                return attrs.evolve(self, schema=schema)
        return self


# Where each statement that can create a temporary relation keeps that relation's RangeVar.
_CREATED_RELATION_PATH = {
    "CreateStmt": ("relation",),
    "CreateTableAsStmt": ("into", "rel"),
    "SelectStmt": ("intoClause", "rel"),
    "ViewStmt": ("view",),
    "CreateSeqStmt": ("sequence",),
}


def _temporary_relation(node_type: str, body: Node) -> str | None:
    """The unqualified name of the temporary relation this statement creates, if any."""
    path = _CREATED_RELATION_PATH.get(node_type)
    if path is None:
        return None
    relation: Node = body
    for field in path:
        relation = relation.get(field) or {}
    if relation.get("relpersistence") == "t" and not relation.get("schemaname"):
        name: str = relation.get("relname", "")
        return name
    return None
