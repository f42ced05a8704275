"""`extract`: what one statement does to tables and schema objects, read from its parse
tree by one handler per statement kind (see migcoord/sql/effects.py for the values)."""

from __future__ import annotations

from collections.abc import Callable

from migcoord.sql._collector import (
    DATABASE_WIDE,
    DROP_KINDS,
    NAMED_KINDS,
    RELATION_KINDS,
    TABLE_ATTACHED,
    TABLE_TYPES,
    Collector,
)
from migcoord.sql._parser import Node
from migcoord.sql._tree import name_parts, relation_parts, wrapped
from migcoord.sql.effects import (
    ColumnAction,
    ObjectAction,
    ObjectKind,
    QualifiedName,
    Scope,
    StatementEffects,
    TableAction,
)
from migcoord.sql.index_names import added_constraint_name, index_statement_name


def extract(node_type: str, body: Node, scope: Scope, line: int) -> StatementEffects:
    """The effects of one top-level statement, each recorded at `line`."""
    collector = Collector(scope, line)
    _collect(node_type, body, collector)
    return collector.result()


# -- one handler per statement kind -------------------------------------------------------


def _create_table(body: Node, c: Collector) -> None:
    table = c.scope.range_var(body.get("relation"))
    c.table(TableAction.CREATED, table)
    # A partition goes with its parent: DROP TABLE of the parent drops it too.
    parents = tuple(c.scope.range_var(parent) for parent in
                    wrapped(body.get("inhRelations"), "RangeVar")) if body.get("partbound") else ()
    c.object(ObjectAction.CREATED, ObjectKind.TABLE, table,
             on=tuple(parent for parent in parents if parent is not None))
    # Foreign keys, LIKE sources, INHERITS parents and the PARTITION OF parent are read.
    c.walk(body.get("tableElts"), body.get("inhRelations"))


def _create_foreign_table(body: Node, c: Collector) -> None:
    # CREATE FOREIGN TABLE holds a CREATE TABLE (`base`); DROP FOREIGN TABLE is a table's.
    _create_table(body.get("base") or {}, c)


def _create_table_as(body: Node, c: Collector) -> None:
    name = c.scope.range_var(body.get("into", {}).get("rel"))
    reads = c.walk(body.get("query"))
    if body.get("objtype") == "OBJECT_MATVIEW":
        c.object(ObjectAction.CREATED, ObjectKind.MATERIALIZED_VIEW, name, on=reads)
    else:
        c.table(TableAction.CREATED, name)
        c.object(ObjectAction.CREATED, ObjectKind.TABLE, name)


def _select(body: Node, c: Collector) -> None:
    into = body.get("intoClause")
    if into:  # SELECT ... INTO new_table
        name = c.scope.range_var(into.get("rel"))
        c.table(TableAction.CREATED, name)
        c.object(ObjectAction.CREATED, ObjectKind.TABLE, name)
    c.walk(body)


def _write(body: Node, c: Collector) -> None:
    c.table(TableAction.WRITTEN, c.scope.range_var(body.get("relation")))
    c.walk(body)


def _copy(body: Node, c: Collector) -> None:
    relation = body.get("relation")
    if relation:
        action = TableAction.WRITTEN if body.get("is_from") else TableAction.REFERENCED
        c.table(action, c.scope.range_var(relation))
    c.walk(body.get("query"))


def _truncate(body: Node, c: Collector) -> None:
    for range_var in wrapped(body.get("relations"), "RangeVar"):
        c.table(TableAction.TRUNCATED, c.scope.range_var(range_var))


def _alter_table(body: Node, c: Collector) -> None:
    objtype = body.get("objtype")
    if objtype in ("OBJECT_VIEW", "OBJECT_MATVIEW"):  # options, column defaults, owner
        c.object(ObjectAction.ALTERED, RELATION_KINDS[objtype],
                 c.scope.range_var(body.get("relation")))
        return
    if objtype not in TABLE_TYPES:
        return  # ALTER INDEX / SEQUENCE ... share this node
    table = c.scope.range_var(body.get("relation"))
    c.table(TableAction.ALTERED, table)
    for command in wrapped(body.get("cmds"), "AlterTableCmd"):
        _alter_table_command(command, table, c)
    c.walk(body.get("cmds"))  # foreign keys added, INHERIT parents


def _alter_table_command(command: Node, table: QualifiedName | None, c: Collector) -> None:
    subtype = command.get("subtype")
    definition = command.get("def") or {}
    if subtype == "AT_AddColumn":
        column = definition.get("ColumnDef", {}).get("colname", "")
        c.column(ColumnAction.ADDED, table, column)
    elif subtype == "AT_DropColumn":
        c.column(ColumnAction.DROPPED, table, command.get("name", ""))
    elif subtype == "AT_AddConstraint" and table is not None:
        _add_constraint(definition.get("Constraint", {}), table, c)
    elif subtype == "AT_DropConstraint" and table is not None:
        c.object(ObjectAction.DROPPED, ObjectKind.CONSTRAINT,
                 QualifiedName(table.schema, command.get("name", "")), on=(table,),
                 cascade=command.get("behavior") == "DROP_CASCADE")
    elif subtype in ("AT_EnableRowSecurity", "AT_ForceRowSecurity"):
        c.table(TableAction.ROW_SECURITY, table)
    elif subtype in ("AT_AttachPartition", "AT_DetachPartition"):
        partition = c.scope.range_var(definition.get("PartitionCmd", {}).get("name"))
        c.table(TableAction.ALTERED, partition)
        if subtype == "AT_AttachPartition" and table is not None:
            c.object(ObjectAction.OWNED, ObjectKind.TABLE, partition, on=(table,))


def _add_constraint(constraint: Node, table: QualifiedName, c: Collector) -> None:
    """A constraint `ALTER TABLE ... ADD` makes, under its name or the one PostgreSQL
    gives it (not recorded when that name is not known here)."""
    on: tuple[QualifiedName, ...] = (table,)
    referenced = c.scope.range_var(constraint.get("pktable"))
    if referenced is not None and referenced != table:
        on = (table, referenced)  # DROP TABLE referenced CASCADE takes the foreign key along
    index = constraint.get("indexname")
    name = constraint.get("conname") or index
    if name:
        if index and index != name:
            # `ADD CONSTRAINT c UNIQUE USING INDEX i` renames the index to c.
            c.object(ObjectAction.RENAMED, ObjectKind.INDEX, QualifiedName(table.schema, index),
                     on=(table,), new_name=QualifiedName(table.schema, name))
        c.object(ObjectAction.CREATED, ObjectKind.CONSTRAINT, QualifiedName(table.schema, name),
                 on=on)
        return
    server_name = added_constraint_name(table.name, constraint)
    if server_name is not None:
        c.object(ObjectAction.CREATED, ObjectKind.CONSTRAINT,
                 QualifiedName(table.schema, server_name.first), on=on, server_name=server_name)


def _rename(body: Node, c: Collector) -> None:
    kind = body.get("renameType", "")
    if kind in NAMED_KINDS:  # ALTER TYPE / DOMAIN / FUNCTION ... RENAME TO
        named = c.scope.qualify(name_parts(body.get("object")))
        if named is not None:
            c.object(ObjectAction.RENAMED, NAMED_KINDS[kind], named,
                     new_name=QualifiedName(named.schema, body.get("newname", "")))
        return
    old = c.scope.range_var(body.get("relation"))
    if old is None:
        return  # renames of schemas, ... are not followed
    new = QualifiedName(old.schema, body.get("newname", ""))
    if kind in TABLE_TYPES:
        c.table(TableAction.RENAMED, old, new_name=new)
        c.object(ObjectAction.RENAMED, ObjectKind.TABLE, old, new_name=new)
    elif kind in RELATION_KINDS:
        c.object(ObjectAction.RENAMED, RELATION_KINDS[kind], old, new_name=new)
    elif kind == "OBJECT_COLUMN":
        if body.get("relationType") in TABLE_TYPES:
            c.table(TableAction.ALTERED, old)
            c.column(ColumnAction.RENAMED, old, body.get("subname", ""),
                     new_name=body.get("newname", ""))
    elif kind == "OBJECT_TABCONSTRAINT":
        # Only ALTER TABLE renames a table constraint; the parse tree leaves its
        # relationType unset.
        c.table(TableAction.ALTERED, old)
        c.object(ObjectAction.RENAMED, ObjectKind.CONSTRAINT,
                 QualifiedName(old.schema, body.get("subname", "")), on=(old,), new_name=new)
    elif kind in ("OBJECT_TRIGGER", "OBJECT_POLICY"):
        attached = ObjectKind.TRIGGER if kind == "OBJECT_TRIGGER" else ObjectKind.POLICY
        c.table(TABLE_ATTACHED[attached], old)
        c.object(ObjectAction.RENAMED, attached, QualifiedName(old.schema, body.get("subname", "")),
                 on=(old,), new_name=new)


def _set_schema(body: Node, c: Collector) -> None:
    kind = body.get("objectType", "")
    if kind in NAMED_KINDS:  # ALTER TYPE / DOMAIN / FUNCTION ... SET SCHEMA
        named = c.scope.qualify(name_parts(body.get("object")))
        if named is not None:
            c.object(ObjectAction.RENAMED, NAMED_KINDS[kind], named,
                     new_name=QualifiedName(body.get("newschema", ""), named.name))
        return
    old = c.scope.range_var(body.get("relation"))
    if old is None:
        return
    new = QualifiedName(body.get("newschema", ""), old.name)
    if kind in TABLE_TYPES:
        c.table(TableAction.RENAMED, old, new_name=new)
        c.object(ObjectAction.RENAMED, ObjectKind.TABLE, old, new_name=new)
    elif kind in RELATION_KINDS:
        c.object(ObjectAction.RENAMED, RELATION_KINDS[kind], old, new_name=new)


def _drop(body: Node, c: Collector) -> None:
    kind = DROP_KINDS.get(body.get("removeType", ""))
    if kind is None:
        return
    cascade = body.get("behavior") == "DROP_CASCADE"
    for target in body.get("objects", ()):
        _drop_one(kind, name_parts(target), cascade, c)


def _drop_one(kind: ObjectKind, parts: list[str], cascade: bool, c: Collector) -> None:
    if not parts:
        return
    if kind in TABLE_ATTACHED:  # DROP TRIGGER name ON [schema.]table: parts end with name
        table = c.scope.relation(parts[:-1])
        if table is not None:
            c.table(TABLE_ATTACHED[kind], table)
            name = QualifiedName(table.schema, parts[-1])
            c.object(ObjectAction.DROPPED, kind, name, on=(table,), cascade=cascade)
        return
    dropped: QualifiedName | None
    if kind in DATABASE_WIDE:
        dropped = QualifiedName("", parts[-1])
    elif kind is ObjectKind.TABLE or kind in RELATION_KINDS.values():
        dropped = c.scope.relation(parts)
    else:
        dropped = c.scope.qualify(parts)
    if kind is ObjectKind.TABLE:
        c.table(TableAction.DROPPED, dropped)
    c.object(ObjectAction.DROPPED, kind, dropped, cascade=cascade)


def _index(body: Node, c: Collector) -> None:
    table = c.scope.range_var(body.get("relation"))
    if table is None:
        return
    name = body.get("idxname")
    index = QualifiedName(table.schema, name) if name else None  # indexes live with tables
    concurrently = bool(body.get("concurrent"))
    c.table(TableAction.INDEXED, table, index=index, concurrently=concurrently)
    if index is not None:
        c.object(ObjectAction.CREATED, ObjectKind.INDEX, index, on=(table,))
        return
    # Without a name, PostgreSQL names it after the table and its columns.
    server_name = index_statement_name(table.name, body)
    if server_name is not None:
        c.object(ObjectAction.CREATED, ObjectKind.INDEX,
                 QualifiedName(table.schema, server_name.first), on=(table,),
                 server_name=server_name)


def _trigger(body: Node, c: Collector) -> None:
    table = c.scope.range_var(body.get("relation"))
    if table is None:
        return
    c.table(TableAction.TRIGGER, table)
    name = QualifiedName(table.schema, body.get("trigname", ""))
    c.object(ObjectAction.CREATED, ObjectKind.TRIGGER, name, on=(table,))
    # CREATE CONSTRAINT TRIGGER ... FROM other_table
    c.table(TableAction.REFERENCED, c.scope.range_var(body.get("constrrel")))


def _create_policy(body: Node, c: Collector) -> None:
    table = c.scope.range_var(body.get("table"))
    if table is None:
        return
    c.table(TableAction.POLICY, table)
    name = QualifiedName(table.schema, body.get("policy_name", ""))
    c.object(ObjectAction.CREATED, ObjectKind.POLICY, name, on=(table,))
    c.walk(body.get("qual"), body.get("with_check"), execute=False)


def _alter_policy(body: Node, c: Collector) -> None:
    c.table(TableAction.POLICY, c.scope.range_var(body.get("table")))
    c.walk(body.get("qual"), body.get("with_check"), execute=False)


def _comment(body: Node, c: Collector) -> None:
    kind = body.get("objtype")
    parts = name_parts(body.get("object"))
    if kind in TABLE_TYPES:
        c.table(TableAction.COMMENT, c.scope.relation(parts))
    elif kind == "OBJECT_COLUMN":  # [schema.]table.column
        c.table(TableAction.COMMENT, c.scope.relation(parts[:-1]))


def _grant(body: Node, c: Collector) -> None:
    # Privileges are part of the table's definition, which only its owner may change.
    if body.get("targtype") == "ACL_TARGET_OBJECT" and body.get("objtype") == "OBJECT_TABLE":
        for range_var in wrapped(body.get("objects"), "RangeVar"):
            c.table(TableAction.ALTERED, c.scope.range_var(range_var))


def _lock(body: Node, c: Collector) -> None:
    c.walk(body.get("relations"), execute=False)


def _view(body: Node, c: Collector) -> None:
    reads = c.walk(body.get("query"), execute=False)
    c.object(ObjectAction.CREATED, ObjectKind.VIEW, c.scope.range_var(body.get("view")), on=reads,
             replace=bool(body.get("replace")))


def _sequence(body: Node, c: Collector) -> None:
    name = c.scope.range_var(body.get("sequence"))
    owner = _owned_by(body, c)
    if owner is None or owner[0] is None:
        c.object(ObjectAction.CREATED, ObjectKind.SEQUENCE, name)
    else:
        c.object(ObjectAction.CREATED, ObjectKind.SEQUENCE, name, on=(owner[0],),
                 owner_column=owner[1])


def _alter_sequence(body: Node, c: Collector) -> None:
    owner = _owned_by(body, c)
    if owner is None:
        return  # RESTART, INCREMENT, ...: nothing down-mismatch follows
    table, column = owner
    c.object(ObjectAction.OWNED, ObjectKind.SEQUENCE, c.scope.range_var(body.get("sequence")),
             on=(table,) if table is not None else (), owner_column=column)


def _owned_by(body: Node, c: Collector) -> tuple[QualifiedName | None, str] | None:
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


def _schema(body: Node, c: Collector) -> None:
    schema = body.get("schemaname")
    if not schema:
        return  # CREATE SCHEMA AUTHORIZATION role: named after a role we cannot see
    c.object(ObjectAction.CREATED, ObjectKind.SCHEMA, QualifiedName("", schema))
    inner = c.within(schema)
    for element in body.get("schemaElts", ()):
        ((node_type, element_body),) = element.items()
        _collect(node_type, element_body, inner)


def _extension(body: Node, c: Collector) -> None:
    name = QualifiedName("", body.get("extname", ""))
    c.object(ObjectAction.CREATED, ObjectKind.EXTENSION, name)


def _function(body: Node, c: Collector) -> None:
    # A BEGIN ATOMIC body is parsed and depends on the tables it uses; a string body is not.
    c.walk(body.get("sql_body"), execute=False)
    name = c.scope.qualify(name_parts(body.get("funcname")))
    c.object(ObjectAction.CREATED, ObjectKind.FUNCTION, name)


def _named_type(field: str, kind: ObjectKind) -> Callable[[Node, Collector], None]:
    def handle(body: Node, c: Collector) -> None:
        c.object(ObjectAction.CREATED, kind, c.scope.qualify(name_parts(body.get(field))))

    return handle


def _composite_type(body: Node, c: Collector) -> None:
    parts = relation_parts(body.get("typevar", {}))
    c.object(ObjectAction.CREATED, ObjectKind.TYPE, c.scope.qualify(parts))


def _define(body: Node, c: Collector) -> None:
    kind = {"OBJECT_TYPE": ObjectKind.TYPE, "OBJECT_AGGREGATE": ObjectKind.FUNCTION}.get(body.get("kind", ""))
    if kind is not None:
        c.object(ObjectAction.CREATED, kind, c.scope.qualify(name_parts(body.get("defnames"))))


def _opaque(body: Node, c: Collector) -> None:
    c.opaque = True


_HANDLERS: dict[str, Callable[[Node, Collector], None]] = {
    "CreateStmt": _create_table,
    "CreateForeignTableStmt": _create_foreign_table,
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


def _collect(node_type: str, body: Node, c: Collector) -> None:
    handler = _HANDLERS.get(node_type)
    if handler is not None:
        handler(body, c)
