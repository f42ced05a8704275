"""The name PostgreSQL gives an index or constraint created without one.

`CREATE INDEX ON proxies (name)` makes `proxies_name_idx`; `ALTER TABLE t ADD UNIQUE (a,
b)` makes the index and constraint `t_a_b_key`, `ADD PRIMARY KEY` makes `t_pkey`. The
rules are PostgreSQL's (`ChooseIndexName`, `ChooseIndexColumnNames`, `makeObjectName`
in src/backend/commands/indexcmds.c and catalog/namespace.c):

- each key column (and `INCLUDE` column) gives its name; an expression gives the name
  PostgreSQL would give it as a result column (`lower(name)` gives `lower`, `(a::text)`
  gives `a`), or `expr`; a name used twice gets a number (`a`, `a1`);
- the names are joined with `_` and cut once past 63 bytes; then the table's name and
  those names are cut, the longer first and never inside a UTF-8 character, until
  `table_columns_label` fits in 63 bytes (`label` is `idx`, `key`, `pkey` or `excl`);
- when that name is taken in the schema, PostgreSQL tries `label1`, `label2`, ... in
  turn, which cannot be known from the files: `candidates` lists those forms.

`ServerName` holds what the name is built from; an expression whose name is not known
here gives no `ServerName` at all, so that nothing is claimed about it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import name_parts, nodes_of, wrapped

#: PostgreSQL's NAMEDATALEN - 1: the longest identifier, in bytes.
MAX_IDENTIFIER = 63
#: How many numbered forms (`label1` ...) `candidates` lists.
_NUMBERED = 99


@attrs.frozen
class ServerName:
    """What PostgreSQL builds the name of an unnamed index from."""

    table: str
    #: The column names joined with `_` ("" for a primary key, whose name has none).
    columns: str
    label: str

    @property
    def first(self) -> str:
        """The name it gets when that name is free in the schema."""
        return object_name(self.table, self.columns, self.label)

    def candidates(self) -> Iterator[str]:
        """The names it can get: `first`, then the numbered forms PostgreSQL tries when
        a name is taken."""
        yield self.first
        for number in range(1, _NUMBERED + 1):
            yield object_name(self.table, self.columns, f"{self.label}{number}")


def _clip(name: str, size: int) -> str:
    """`name` cut to at most `size` UTF-8 bytes, never inside a character (pg_mbcliplen)."""
    return name.encode()[:size].decode(errors="ignore")


def object_name(table: str, columns: str, label: str) -> str:
    """PostgreSQL's makeObjectName: `table_columns_label` within 63 bytes, cutting the
    longer of table and columns first."""
    table_size, columns_size = len(table.encode()), len(columns.encode())
    overhead = len(label.encode()) + 1 + (1 if columns else 0)
    available = MAX_IDENTIFIER - overhead
    while table_size + columns_size > available:
        if table_size > columns_size:
            table_size -= 1
        else:
            columns_size -= 1
    parts = [_clip(table, table_size)]
    if columns:
        parts.append(_clip(columns, columns_size))
    return "_".join([*parts, label])


def _joined(names: list[str]) -> str:
    """ChooseIndexNameAddition: the names joined with `_`, stopping once past 63 bytes."""
    joined = ""
    for name in names:
        joined = f"{joined}_{name}" if joined else name
        if len(joined.encode()) > MAX_IDENTIFIER:
            break
    return joined


def _unique_names(names: list[str]) -> list[str]:
    """ChooseIndexColumnNames: a name already used gets the first free number."""
    chosen: list[str] = []
    for name in names:
        attempt, number = name, 0
        while attempt in chosen:
            number += 1
            suffix = str(number)
            attempt = _clip(name, MAX_IDENTIFIER - len(suffix)) + suffix
        chosen.append(attempt)
    return chosen


def index_name(table: str, elements: list[Any], label: str) -> ServerName | None:
    """The name of an index on `table` over `elements` (IndexElem nodes, the key columns
    then the INCLUDE ones); None when an expression's name is not known here."""
    names = []
    for element in elements:
        name = element.get("indexcolname") or element.get("name")
        if not name:
            name = expression_name(element.get("expr"))
            if name is None:
                return None
        names.append(name)
    return ServerName(table, _joined(_unique_names(names)), label)


def index_statement_name(table: str, body: Node) -> ServerName | None:
    """The name `CREATE INDEX` without one gives (`idx`)."""
    elements = [*wrapped(body.get("indexParams"), "IndexElem"),
                *wrapped(body.get("indexIncludingParams"), "IndexElem")]
    return index_name(table, elements, "idx")


def constraint_name(table: str, constraint: Node, column: str = "") -> ServerName | None:
    """The name of a PRIMARY KEY (`pkey`) or UNIQUE (`key`) constraint without one, and of
    its index: over its keys, or over `column` for a column constraint."""
    if constraint.get("contype") == "CONSTR_PRIMARY":
        return ServerName(table, "", "pkey")
    keys = name_parts(constraint.get("keys")) or ([column] if column else [])
    if not keys:
        return None
    columns = [*keys, *name_parts(constraint.get("including"))]
    return ServerName(table, _joined(_unique_names(columns)), "key")


def added_constraint_name(table: str, constraint: Node) -> ServerName | None:
    """The name `ALTER TABLE table ADD <constraint>` without one gives: `t_pkey`,
    `t_a_b_key` (UNIQUE), `t_a_b_fkey` (over the referencing columns), `t_a_check` (a
    CHECK over one column; `t_check` over none or several, as AddRelationNewConstraints
    decides); None for an EXCLUDE constraint or a CHECK whose columns are not known here."""
    kind = constraint.get("contype")
    if kind in ("CONSTR_PRIMARY", "CONSTR_UNIQUE"):
        return constraint_name(table, constraint)
    if kind == "CONSTR_FOREIGN":
        columns = name_parts(constraint.get("fk_attrs"))
        return ServerName(table, _joined(columns), "fkey") if columns else None
    if kind == "CONSTR_CHECK":
        read = _column_names(constraint.get("raw_expr"))
        if read is None:
            return None
        return ServerName(table, read.pop() if len(read) == 1 else "", "check")
    return None


def _column_names(expression: Any) -> set[str] | None:
    """The distinct column names an expression reads; None when one is `*`."""
    names: set[str] = set()
    for reference in nodes_of(expression, "ColumnRef"):
        fields = reference.get("fields") or []
        parts = name_parts(fields)
        if len(parts) != len(fields) or not parts:  # `t.*`
            return None
        names.add(parts[-1])
    return names


# What FigureColnameInternal (parser/parse_target.c) calls an expression of each kind.
_FIXED_NAMES = {"CoalesceExpr": "coalesce", "A_ArrayExpr": "array", "RowExpr": "row",
                "GroupingFunc": "grouping", "XmlSerialize": "xmlserialize"}
# Kinds it gives no name (then the index column is "expr").
_UNNAMED = frozenset({"A_Const", "A_Expr", "BoolExpr", "NullTest", "BooleanTest",
                      "ParamRef"})
#: An expression kind not read here: its name is not known.
_UNKNOWN = -1


def expression_name(expression: Node | None) -> str | None:
    """The name PostgreSQL gives an index expression's column; None when not known here."""
    name, strength = _figure(expression)
    if strength == _UNKNOWN:
        return None
    return name or "expr"


def _figure(expression: Node | None) -> tuple[str | None, int]:
    """FigureColnameInternal: the name and how strongly it is meant (2: a column or
    function name, 1: a fallback such as a type's, 0: none; `_UNKNOWN`)."""
    if not expression:
        return None, 0
    ((kind, body),) = expression.items()
    if kind == "ColumnRef":
        fields = name_parts(body.get("fields"))
        return (fields[-1], 2) if fields else (None, 0)  # `t.*` has no String last
    if kind == "FuncCall":
        parts = name_parts(body.get("funcname"))
        return (parts[-1], 2) if parts else (None, _UNKNOWN)
    if kind == "CollateClause":
        return _figure(body.get("arg"))
    if kind == "TypeCast":
        name, strength = _figure(body.get("arg"))
        if strength == _UNKNOWN or strength > 1:
            return name, strength
        type_parts = name_parts(body.get("typeName", {}).get("names"))
        return (type_parts[-1], 1) if type_parts else (name, strength)
    if kind == "CaseExpr":
        name, strength = _figure(body.get("defresult"))
        if strength == _UNKNOWN or strength > 1:
            return name, strength
        return "case", 1
    if kind == "A_Expr" and body.get("kind") == "AEXPR_NULLIF":
        return "nullif", 2
    if kind == "MinMaxExpr":
        return ("greatest" if body.get("op") == "IS_GREATEST" else "least"), 2
    if kind in _FIXED_NAMES:
        return _FIXED_NAMES[kind], 2
    return (None, 0) if kind in _UNNAMED else (None, _UNKNOWN)
