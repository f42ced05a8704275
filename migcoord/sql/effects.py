"""What each statement of a migration does to tables and other schema objects.

`extract` reads one statement's parse tree and returns its `StatementEffects`: the tables
it creates, alters, drops, renames, truncates, writes, indexes, gives triggers, policies,
comments or row security; the tables it only reads (foreign keys, view and function
bodies, `LIKE`, `INHERITS`, `PARTITION OF`, the queries of data migrations); the schema
objects it creates, drops or renames; and the columns `ALTER TABLE` adds or drops.

Names resolve as PostgreSQL would at that point of the file (`Scope`): unqualified
names go to the default schema (or to the first schema of a `SET search_path` earlier in
the file), names of temporary tables and CTEs are not tables, and PostgreSQL's own
relations belong to no service, so they are left out: those in `pg_*` schemas and
`information_schema`, and unqualified `pg_*` names (pg_catalog is searched first).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import name_parts, quote_ident, relation_parts, wrapped


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


class ObjectAction(enum.StrEnum):
    CREATED = "created"
    DROPPED = "dropped"
    RENAMED = "renamed"
    #: Changed in place, keeping its name: `ALTER VIEW` / `ALTER MATERIALIZED VIEW`.
    ALTERED = "altered"
    #: `ALTER SEQUENCE ... OWNED BY`: the sequence now goes with `on`'s table (none for
    #: `OWNED BY NONE`).
    OWNED = "owned"


class ColumnAction(enum.StrEnum):
    ADDED = "added"
    DROPPED = "dropped"


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

    `CREATE OR REPLACE` counts as CREATED (with `replace`). A trigger or policy is named
    in its table's schema and `on` holds that table; an index's `on` holds its table; a
    view's `on` holds the relations its query reads; a sequence's `on` holds the table
    that owns it (`OWNED BY table.column`), which takes it along when dropped.
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


@attrs.frozen
class ColumnEffect:
    """A column that `ALTER TABLE` adds or drops (not the columns of `CREATE TABLE`)."""

    action: ColumnAction
    table: QualifiedName
    column: str
    line: int


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


def extract(node_type: str, body: Node, scope: Scope, line: int) -> StatementEffects:
    """The effects of one top-level statement, each recorded at `line`."""
    collector = _Collector(scope, line)
    _collect(node_type, body, collector)
    return collector.result()


# -- collecting ---------------------------------------------------------------------------

_DML = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
# Frequent subtrees that never hold a relation; skipping them saves ~40% of the walk.
_NO_RELATIONS = frozenset({"TypeName", "typeName", "ColumnRef", "A_Const", "String"})
_TABLE_TYPES = frozenset({"OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"})
_RELATION_KINDS = {
    "OBJECT_INDEX": ObjectKind.INDEX,
    "OBJECT_VIEW": ObjectKind.VIEW,
    "OBJECT_MATVIEW": ObjectKind.MATERIALIZED_VIEW,
    "OBJECT_SEQUENCE": ObjectKind.SEQUENCE,
}
_DROP_KINDS = {
    "OBJECT_TABLE": ObjectKind.TABLE,
    "OBJECT_FOREIGN_TABLE": ObjectKind.TABLE,
    **_RELATION_KINDS,
    "OBJECT_FUNCTION": ObjectKind.FUNCTION,
    "OBJECT_PROCEDURE": ObjectKind.FUNCTION,
    "OBJECT_ROUTINE": ObjectKind.FUNCTION,
    "OBJECT_AGGREGATE": ObjectKind.FUNCTION,
    "OBJECT_TYPE": ObjectKind.TYPE,
    "OBJECT_DOMAIN": ObjectKind.DOMAIN,
    "OBJECT_SCHEMA": ObjectKind.SCHEMA,
    "OBJECT_EXTENSION": ObjectKind.EXTENSION,
    "OBJECT_TRIGGER": ObjectKind.TRIGGER,
    "OBJECT_POLICY": ObjectKind.POLICY,
}
_DATABASE_WIDE = frozenset({ObjectKind.SCHEMA, ObjectKind.EXTENSION})
_TABLE_ATTACHED = {ObjectKind.TRIGGER: TableAction.TRIGGER, ObjectKind.POLICY: TableAction.POLICY}


class _Collector:
    """Gathers the effects of one statement, in order and without repeats."""

    def __init__(self, scope: Scope, line: int) -> None:
        self.scope = scope
        self.line = line
        # dicts used as ordered sets; shared with `within` collectors
        self.tables: dict[TableEffect, None] = {}
        self.objects: dict[ObjectEffect, None] = {}
        self.columns: dict[ColumnEffect, None] = {}
        self.opaque = False

    def within(self, schema: str) -> _Collector:
        """A collector into the same effects whose unqualified names go to `schema`."""
        inner = _Collector(attrs.evolve(self.scope, schema=schema), self.line)
        inner.tables, inner.objects, inner.columns = self.tables, self.objects, self.columns
        return inner

    def table(self, action: TableAction, table: QualifiedName | None, **details: Any) -> None:
        if table is not None:
            self.tables[TableEffect(action, table, self.line, **details)] = None

    def object(
        self,
        action: ObjectAction,
        kind: ObjectKind,
        name: QualifiedName | None,
        **details: Any,
    ) -> None:
        if name is not None:
            self.objects[ObjectEffect(action, kind, name, self.line, **details)] = None

    def column(self, action: ColumnAction, table: QualifiedName | None, column: str) -> None:
        if table is not None and column:
            self.columns[ColumnEffect(action, table, column, self.line)] = None

    def walk(self, *trees: Any, execute: bool = True) -> tuple[QualifiedName, ...]:
        """Record the tables read and written under `trees`; return those read.

        With `execute` False (view, policy and function bodies, which are stored, not
        run) the targets of INSERT/UPDATE/DELETE/MERGE count as read.
        """
        reads, writes, ctes = _relations_in(trees)
        for range_var in writes:
            self.table(
                TableAction.WRITTEN if execute else TableAction.REFERENCED,
                self.scope.range_var(range_var),
            )
        names: dict[QualifiedName, None] = {}
        for range_var in reads:
            if not range_var.get("schemaname") and range_var.get("relname") in ctes:
                continue
            name = self.scope.range_var(range_var)
            if name is not None:
                names[name] = None
                self.table(TableAction.REFERENCED, name)
        return tuple(names)

    def result(self) -> StatementEffects:
        return StatementEffects(
            tables=tuple(self.tables),
            objects=tuple(self.objects),
            columns=tuple(self.columns),
            opaque=self.opaque,
        )


def _relations_in(trees: Iterable[Any]) -> tuple[list[Node], list[Node], set[str]]:
    """RangeVars read and written anywhere under `trees`, and the CTE names defined there.

    Reads are wrapped `RangeVar` nodes (FROM items, INHERITS, ...), foreign keys'
    `pktable` and `LIKE` sources; writes are the targets of INSERT/UPDATE/DELETE/MERGE,
    including those inside data-modifying CTEs.
    """
    reads: list[Node] = []
    writes: list[Node] = []
    ctes: set[str] = set()
    stack: list[Any] = list(reversed(list(trees)))
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(reversed(value))
            continue
        if not isinstance(value, dict):
            continue
        for key, child in value.items():
            if key == "RangeVar":
                reads.append(child)
            elif key in _DML:
                writes.append(child.get("relation", {}))
                stack.append(child)
            elif key == "Constraint":
                if "pktable" in child:
                    reads.append(child["pktable"])
            elif key == "TableLikeClause":
                reads.append(child.get("relation", {}))
            elif key == "CommonTableExpr":
                ctes.add(child.get("ctename", ""))
                stack.append(child)
            elif key not in _NO_RELATIONS and isinstance(child, (dict, list)):
                stack.append(child)
    return reads, writes, ctes


# -- one handler per statement kind -------------------------------------------------------


def _create_table(body: Node, c: _Collector) -> None:
    table = c.scope.range_var(body.get("relation"))
    c.table(TableAction.CREATED, table)
    c.object(ObjectAction.CREATED, ObjectKind.TABLE, table)
    # Foreign keys, LIKE sources, INHERITS parents and the PARTITION OF parent are read.
    c.walk(body.get("tableElts"), body.get("inhRelations"))


def _create_table_as(body: Node, c: _Collector) -> None:
    name = c.scope.range_var(body.get("into", {}).get("rel"))
    reads = c.walk(body.get("query"))
    if body.get("objtype") == "OBJECT_MATVIEW":
        c.object(ObjectAction.CREATED, ObjectKind.MATERIALIZED_VIEW, name, on=reads)
    else:
        c.table(TableAction.CREATED, name)
        c.object(ObjectAction.CREATED, ObjectKind.TABLE, name)


def _select(body: Node, c: _Collector) -> None:
    into = body.get("intoClause")
    if into:  # SELECT ... INTO new_table
        name = c.scope.range_var(into.get("rel"))
        c.table(TableAction.CREATED, name)
        c.object(ObjectAction.CREATED, ObjectKind.TABLE, name)
    c.walk(body)


def _write(body: Node, c: _Collector) -> None:
    c.table(TableAction.WRITTEN, c.scope.range_var(body.get("relation")))
    c.walk(body)


def _copy(body: Node, c: _Collector) -> None:
    relation = body.get("relation")
    if relation:
        action = TableAction.WRITTEN if body.get("is_from") else TableAction.REFERENCED
        c.table(action, c.scope.range_var(relation))
    c.walk(body.get("query"))


def _truncate(body: Node, c: _Collector) -> None:
    for range_var in wrapped(body.get("relations"), "RangeVar"):
        c.table(TableAction.TRUNCATED, c.scope.range_var(range_var))


def _alter_table(body: Node, c: _Collector) -> None:
    objtype = body.get("objtype")
    if objtype in ("OBJECT_VIEW", "OBJECT_MATVIEW"):  # options, column defaults, owner
        c.object(ObjectAction.ALTERED, _RELATION_KINDS[objtype],
                 c.scope.range_var(body.get("relation")))
        return
    if objtype not in _TABLE_TYPES:
        return  # ALTER INDEX / SEQUENCE ... share this node
    table = c.scope.range_var(body.get("relation"))
    c.table(TableAction.ALTERED, table)
    for command in wrapped(body.get("cmds"), "AlterTableCmd"):
        _alter_table_command(command, table, c)
    c.walk(body.get("cmds"))  # foreign keys added, INHERIT parents


def _alter_table_command(command: Node, table: QualifiedName | None, c: _Collector) -> None:
    subtype = command.get("subtype")
    definition = command.get("def") or {}
    if subtype == "AT_AddColumn":
        column = definition.get("ColumnDef", {}).get("colname", "")
        c.column(ColumnAction.ADDED, table, column)
    elif subtype == "AT_DropColumn":
        c.column(ColumnAction.DROPPED, table, command.get("name", ""))
    elif subtype in ("AT_EnableRowSecurity", "AT_ForceRowSecurity"):
        c.table(TableAction.ROW_SECURITY, table)
    elif subtype in ("AT_AttachPartition", "AT_DetachPartition"):
        partition = definition.get("PartitionCmd", {}).get("name")
        c.table(TableAction.ALTERED, c.scope.range_var(partition))


def _rename(body: Node, c: _Collector) -> None:
    kind = body.get("renameType", "")
    old = c.scope.range_var(body.get("relation"))
    if old is None:
        return  # renames of functions, types, schemas, ... are not followed
    new = QualifiedName(old.schema, body.get("newname", ""))
    if kind in _TABLE_TYPES:
        c.table(TableAction.RENAMED, old, new_name=new)
        c.object(ObjectAction.RENAMED, ObjectKind.TABLE, old, new_name=new)
    elif kind in _RELATION_KINDS:
        c.object(ObjectAction.RENAMED, _RELATION_KINDS[kind], old, new_name=new)
    elif kind in ("OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"):
        if body.get("relationType", "OBJECT_TABLE") in _TABLE_TYPES:
            c.table(TableAction.ALTERED, old)
    elif kind == "OBJECT_TRIGGER":
        c.table(TableAction.TRIGGER, old)
    elif kind == "OBJECT_POLICY":
        c.table(TableAction.POLICY, old)


def _set_schema(body: Node, c: _Collector) -> None:
    kind = body.get("objectType", "")
    old = c.scope.range_var(body.get("relation"))
    if old is None:
        return
    new = QualifiedName(body.get("newschema", ""), old.name)
    if kind in _TABLE_TYPES:
        c.table(TableAction.RENAMED, old, new_name=new)
        c.object(ObjectAction.RENAMED, ObjectKind.TABLE, old, new_name=new)
    elif kind in _RELATION_KINDS:
        c.object(ObjectAction.RENAMED, _RELATION_KINDS[kind], old, new_name=new)


def _drop(body: Node, c: _Collector) -> None:
    kind = _DROP_KINDS.get(body.get("removeType", ""))
    if kind is None:
        return
    cascade = body.get("behavior") == "DROP_CASCADE"
    for target in body.get("objects", ()):
        _drop_one(kind, name_parts(target), cascade, c)


def _drop_one(kind: ObjectKind, parts: list[str], cascade: bool, c: _Collector) -> None:
    if not parts:
        return
    if kind in _TABLE_ATTACHED:  # DROP TRIGGER name ON [schema.]table: parts end with name
        table = c.scope.relation(parts[:-1])
        if table is not None:
            c.table(_TABLE_ATTACHED[kind], table)
            name = QualifiedName(table.schema, parts[-1])
            c.object(ObjectAction.DROPPED, kind, name, on=(table,), cascade=cascade)
        return
    dropped: QualifiedName | None
    if kind in _DATABASE_WIDE:
        dropped = QualifiedName("", parts[-1])
    elif kind is ObjectKind.TABLE or kind in _RELATION_KINDS.values():
        dropped = c.scope.relation(parts)
    else:
        dropped = c.scope.qualify(parts)
    if kind is ObjectKind.TABLE:
        c.table(TableAction.DROPPED, dropped)
    c.object(ObjectAction.DROPPED, kind, dropped, cascade=cascade)


def _index(body: Node, c: _Collector) -> None:
    table = c.scope.range_var(body.get("relation"))
    if table is None:
        return
    name = body.get("idxname")
    index = QualifiedName(table.schema, name) if name else None  # indexes live with tables
    concurrently = bool(body.get("concurrent"))
    c.table(TableAction.INDEXED, table, index=index, concurrently=concurrently)
    c.object(ObjectAction.CREATED, ObjectKind.INDEX, index, on=(table,))


def _trigger(body: Node, c: _Collector) -> None:
    table = c.scope.range_var(body.get("relation"))
    if table is None:
        return
    c.table(TableAction.TRIGGER, table)
    name = QualifiedName(table.schema, body.get("trigname", ""))
    c.object(ObjectAction.CREATED, ObjectKind.TRIGGER, name, on=(table,))
    # CREATE CONSTRAINT TRIGGER ... FROM other_table
    c.table(TableAction.REFERENCED, c.scope.range_var(body.get("constrrel")))


def _create_policy(body: Node, c: _Collector) -> None:
    table = c.scope.range_var(body.get("table"))
    if table is None:
        return
    c.table(TableAction.POLICY, table)
    name = QualifiedName(table.schema, body.get("policy_name", ""))
    c.object(ObjectAction.CREATED, ObjectKind.POLICY, name, on=(table,))
    c.walk(body.get("qual"), body.get("with_check"), execute=False)


def _alter_policy(body: Node, c: _Collector) -> None:
    c.table(TableAction.POLICY, c.scope.range_var(body.get("table")))
    c.walk(body.get("qual"), body.get("with_check"), execute=False)


def _comment(body: Node, c: _Collector) -> None:
    kind = body.get("objtype")
    parts = name_parts(body.get("object"))
    if kind in _TABLE_TYPES:
        c.table(TableAction.COMMENT, c.scope.relation(parts))
    elif kind == "OBJECT_COLUMN":  # [schema.]table.column
        c.table(TableAction.COMMENT, c.scope.relation(parts[:-1]))


def _grant(body: Node, c: _Collector) -> None:
    # Privileges are part of the table's definition, which only its owner may change.
    if body.get("targtype") == "ACL_TARGET_OBJECT" and body.get("objtype") == "OBJECT_TABLE":
        for range_var in wrapped(body.get("objects"), "RangeVar"):
            c.table(TableAction.ALTERED, c.scope.range_var(range_var))


def _lock(body: Node, c: _Collector) -> None:
    c.walk(body.get("relations"), execute=False)


def _view(body: Node, c: _Collector) -> None:
    reads = c.walk(body.get("query"), execute=False)
    c.object(ObjectAction.CREATED, ObjectKind.VIEW, c.scope.range_var(body.get("view")), on=reads,
             replace=bool(body.get("replace")))


def _sequence(body: Node, c: _Collector) -> None:
    name = c.scope.range_var(body.get("sequence"))
    owner = _owned_by(body, c)
    if owner is None or owner[0] is None:
        c.object(ObjectAction.CREATED, ObjectKind.SEQUENCE, name)
    else:
        c.object(ObjectAction.CREATED, ObjectKind.SEQUENCE, name, on=(owner[0],),
                 owner_column=owner[1])


def _alter_sequence(body: Node, c: _Collector) -> None:
    owner = _owned_by(body, c)
    if owner is None:
        return  # RESTART, INCREMENT, ...: nothing down-mismatch follows
    table, column = owner
    c.object(ObjectAction.OWNED, ObjectKind.SEQUENCE, c.scope.range_var(body.get("sequence")),
             on=(table,) if table is not None else (), owner_column=column)


def _owned_by(body: Node, c: _Collector) -> tuple[QualifiedName | None, str] | None:
    """A sequence's `OWNED BY [schema.]table.column` option: (table, column); (None, "")
    for `OWNED BY NONE`; None without the option."""
    for option in wrapped(body.get("options"), "DefElem"):
        if option.get("defname") != "owned_by":
            continue
        parts = name_parts(option.get("arg"))
        if len(parts) < 2:  # OWNED BY NONE
            return None, ""
        return c.scope.relation(parts[:-1]), parts[-1]
    return None


def _schema(body: Node, c: _Collector) -> None:
    schema = body.get("schemaname")
    if not schema:
        return  # CREATE SCHEMA AUTHORIZATION role: named after a role we cannot see
    c.object(ObjectAction.CREATED, ObjectKind.SCHEMA, QualifiedName("", schema))
    inner = c.within(schema)
    for element in body.get("schemaElts", ()):
        ((node_type, element_body),) = element.items()
        _collect(node_type, element_body, inner)


def _extension(body: Node, c: _Collector) -> None:
    name = QualifiedName("", body.get("extname", ""))
    c.object(ObjectAction.CREATED, ObjectKind.EXTENSION, name)


def _function(body: Node, c: _Collector) -> None:
    # A BEGIN ATOMIC body is parsed and depends on the tables it uses; a string body is not.
    c.walk(body.get("sql_body"), execute=False)
    name = c.scope.qualify(name_parts(body.get("funcname")))
    c.object(ObjectAction.CREATED, ObjectKind.FUNCTION, name)


def _named_type(field: str, kind: ObjectKind) -> Callable[[Node, _Collector], None]:
    def handle(body: Node, c: _Collector) -> None:
        c.object(ObjectAction.CREATED, kind, c.scope.qualify(name_parts(body.get(field))))

    return handle


def _composite_type(body: Node, c: _Collector) -> None:
    parts = relation_parts(body.get("typevar", {}))
    c.object(ObjectAction.CREATED, ObjectKind.TYPE, c.scope.qualify(parts))


def _define(body: Node, c: _Collector) -> None:
    kind = {"OBJECT_TYPE": ObjectKind.TYPE, "OBJECT_AGGREGATE": ObjectKind.FUNCTION}.get(body.get("kind", ""))
    if kind is not None:
        c.object(ObjectAction.CREATED, kind, c.scope.qualify(name_parts(body.get("defnames"))))


def _opaque(body: Node, c: _Collector) -> None:
    c.opaque = True


_HANDLERS: dict[str, Callable[[Node, _Collector], None]] = {
    "CreateStmt": _create_table,
    "CreateTableAsStmt": _create_table_as,
    "SelectStmt": _select,
    "InsertStmt": _write,
    "UpdateStmt": _write,
    "DeleteStmt": _write,
    "MergeStmt": _write,
    "CopyStmt": _copy,
    "TruncateStmt": _truncate,
    "AlterTableStmt": _alter_table,
    "RenameStmt": _rename,
    "AlterObjectSchemaStmt": _set_schema,
    "DropStmt": _drop,
    "IndexStmt": _index,
    "CreateTrigStmt": _trigger,
    "CreatePolicyStmt": _create_policy,
    "AlterPolicyStmt": _alter_policy,
    "CommentStmt": _comment,
    "GrantStmt": _grant,
    "LockStmt": _lock,
    "ViewStmt": _view,
    "CreateSeqStmt": _sequence,
    "AlterSeqStmt": _alter_sequence,
    "CreateSchemaStmt": _schema,
    "CreateExtensionStmt": _extension,
    "CreateFunctionStmt": _function,
    "CreateEnumStmt": _named_type("typeName", ObjectKind.TYPE),
    "CreateRangeStmt": _named_type("typeName", ObjectKind.TYPE),
    "CreateDomainStmt": _named_type("domainname", ObjectKind.DOMAIN),
    "CompositeTypeStmt": _composite_type,
    "DefineStmt": _define,
    "DoStmt": _opaque,
    "CallStmt": _opaque,
    "ExecuteStmt": _opaque,
}


def _collect(node_type: str, body: Node, c: _Collector) -> None:
    handler = _HANDLERS.get(node_type)
    if handler is not None:
        handler(body, c)
