"""Gathers the effects of one statement (`Collector`), and the relations a subtree reads
and writes; the statement handlers in migcoord/sql/extract.py fill it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from migcoord.sql._parser import Node
from migcoord.sql.effects import (
    ColumnAction,
    ColumnEffect,
    ObjectAction,
    ObjectEffect,
    ObjectKind,
    QualifiedName,
    Scope,
    StatementEffects,
    TableAction,
    TableEffect,
)

DML = frozenset({"InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"})
# Frequent subtrees that never hold a relation; skipping them saves ~40% of the walk.
NO_RELATIONS = frozenset({"TypeName", "typeName", "ColumnRef", "A_Const", "String"})
TABLE_TYPES = frozenset({"OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"})
RELATION_KINDS = {
    "OBJECT_INDEX": ObjectKind.INDEX,
    "OBJECT_VIEW": ObjectKind.VIEW,
    "OBJECT_MATVIEW": ObjectKind.MATERIALIZED_VIEW,
    "OBJECT_SEQUENCE": ObjectKind.SEQUENCE,
}
DROP_KINDS = {
    "OBJECT_TABLE": ObjectKind.TABLE,
    "OBJECT_FOREIGN_TABLE": ObjectKind.TABLE,
    **RELATION_KINDS,
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
#: Objects named by a (schema-qualified) name of their own, not by a relation.
NAMED_KINDS = {
    "OBJECT_TYPE": ObjectKind.TYPE,
    "OBJECT_DOMAIN": ObjectKind.DOMAIN,
    "OBJECT_FUNCTION": ObjectKind.FUNCTION,
    "OBJECT_PROCEDURE": ObjectKind.FUNCTION,
    "OBJECT_ROUTINE": ObjectKind.FUNCTION,
    "OBJECT_AGGREGATE": ObjectKind.FUNCTION,
}
DATABASE_WIDE = frozenset({ObjectKind.SCHEMA, ObjectKind.EXTENSION})
TABLE_ATTACHED = {ObjectKind.TRIGGER: TableAction.TRIGGER, ObjectKind.POLICY: TableAction.POLICY}


class Collector:
    """Gathers the effects of one statement, in order and without repeats."""

    def __init__(self, scope: Scope, line: int) -> None:
        self.scope = scope
        self.line = line
        # dicts used as ordered sets; shared with `within` collectors
        self.tables: dict[TableEffect, None] = {}
        self.objects: dict[ObjectEffect, None] = {}
        self.columns: dict[ColumnEffect, None] = {}
        self.opaque = False

    def within(self, schema: str) -> Collector:
        """A collector into the same effects whose unqualified names go to `schema`."""
        inner = Collector(attrs.evolve(self.scope, schema=schema), self.line)
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

    def column(self, action: ColumnAction, table: QualifiedName | None, column: str,
               new_name: str = "") -> None:
        if table is not None and column:
            self.columns[ColumnEffect(action, table, column, self.line, new_name)] = None

    def walk(self, *trees: Any, execute: bool = True) -> tuple[QualifiedName, ...]:
        """Record the tables read and written under `trees`; return those read.

        With `execute` False (view, policy and function bodies, which are stored, not
        run) the targets of INSERT/UPDATE/DELETE/MERGE count as read.
        """
        reads, writes, ctes = relations_in(trees)
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


def relations_in(trees: Iterable[Any]) -> tuple[list[Node], list[Node], set[str]]:
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
            elif key in DML:
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
            elif key not in NO_RELATIONS and isinstance(child, (dict, list)):
                stack.append(child)
    return reads, writes, ctes
