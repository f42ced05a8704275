"""Column types as a file's statements set them, for the history-wide rewrite decision.

`column_notes` reads, from one statement, the type each column gets (`CREATE TABLE`,
`ADD COLUMN`), a type change (`ALTER COLUMN ... TYPE`, with whether its USING is plain
and whether the table is new in the file), a column rename and a column drop.
migcoord/checks/hazards.py follows them through the history, in version order, and asks
migcoord/sql/rewrites.py whether each type change rewrites the table.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import wrapped
from migcoord.sql.effects import QualifiedName, Scope
from migcoord.sql.lints import Locate
from migcoord.sql.locking import FileState
from migcoord.sql.rewrites import TypeSpec, plain_using


class ColumnNote(NamedTuple):
    """A column's type as a statement sets it, for the history-wide rewrite decision.

    `kind` "typed": CREATE TABLE / ADD COLUMN gives the column `type`; "retyped":
    `ALTER COLUMN ... TYPE` (with `plain_using`, `fresh`: the table was created earlier in
    the file, `emptied`: the line of a TRUNCATE earlier in the file that emptied it);
    "renamed": the column is now `new_name`; "dropped".
    """

    kind: str
    table: QualifiedName
    column: str
    #: 1-based line and column of the column's name (of the statement when unknown).
    line: int
    at: int
    type: TypeSpec | None = None
    new_name: str = ""
    plain_using: bool = True
    fresh: bool = False
    emptied: int = 0


def column_notes(node_type: str, body: Node, scope: Scope, state: FileState,
                 locate: Locate) -> tuple[ColumnNote, ...]:
    """The column types one statement sets, renames or drops (see `ColumnNote`)."""
    notes: list[ColumnNote] = []
    if node_type == "CreateStmt":
        table = scope.range_var(body.get("relation"))
        if table is not None:
            for column_def in wrapped(body.get("tableElts"), "ColumnDef"):
                notes.append(_typed(table, column_def, locate))
    elif node_type == "AlterTableStmt" and body.get("objtype") == "OBJECT_TABLE":
        table = scope.range_var(body.get("relation"))
        for command in wrapped(body.get("cmds"), "AlterTableCmd") if table else ():
            assert table is not None
            subtype = command.get("subtype")
            column_def = (command.get("def") or {}).get("ColumnDef", {})
            if subtype == "AT_AddColumn":
                notes.append(_typed(table, column_def, locate))
            elif subtype == "AT_AlterColumnType":
                column = command.get("name", "")
                spec = TypeSpec.of(column_def.get("typeName", {}))
                notes.append(ColumnNote(
                    "retyped", table, column, *locate(column_def.get("location")), spec,
                    plain_using=plain_using(column_def.get("raw_default"), column, spec),
                    fresh=table in state.fresh,
                    emptied=state.emptied.truncated_at(table, body.get("relation"))))
            elif subtype == "AT_DropColumn":
                notes.append(ColumnNote("dropped", table, command.get("name", ""), *locate(None)))
    elif node_type == "RenameStmt" and body.get("renameType") == "OBJECT_COLUMN":
        table = scope.range_var(body.get("relation"))
        if table is not None:
            notes.append(ColumnNote("renamed", table, body.get("subname", ""), *locate(None),
                                    new_name=body.get("newname", "")))
    return tuple(notes)


#: The column type a serial pseudo-type stands for.
_SERIAL_COLUMN = {"smallserial": "int2", "serial": "int4", "bigserial": "int8"}


def _typed(table: QualifiedName, column_def: Node, locate: Locate) -> ColumnNote:
    spec = TypeSpec.of(column_def.get("typeName", {}))
    if spec.name in _SERIAL_COLUMN and not spec.schema:
        spec = attrs.evolve(spec, name=_SERIAL_COLUMN[spec.name])
    return ColumnNote("typed", table, column_def.get("colname", ""),
                      *locate(column_def.get("location")), spec)


