"""Which column changes make PostgreSQL rewrite a table: pure rules, read from its source.

`type_change_rewrites` follows `ATColumnChangeRequiresRewrite` (tablecmds.c): after
`ALTER COLUMN ... TYPE`, the table keeps its storage only when the new value is the old
one relabelled, a binary-coercible cast (`pg_cast.castmethod = 'b'`), possibly followed by
a length coercion that the type's planner support function removes (`varchar_support`,
`numeric_support`, `timestamp_support`, `time_support`, `varbit_support`: a limit that
grows or goes away). Anything else evaluates a function for every row and writes a new
copy of the table (and of its indexes) under an ACCESS EXCLUSIVE lock.

`volatile_default` follows PostgreSQL 11's "fast default": `ADD COLUMN ... DEFAULT expr`
stores a non-volatile default once in the catalog; only a VOLATILE default (one value per
row) rewrites the table. `now()` and `CURRENT_TIMESTAMP` are STABLE: they do not.

Both lean towards silence: a type or function this module does not know is not claimed
to rewrite (a type of your own, an unknown function's volatility).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import name_parts, quote_ident

#: Spellings of one built-in type, as the grammar leaves them (`int` is already
#: `pg_catalog.int4`; a type written as an identifier keeps its spelling).
_ALIASES = {
    "integer": "int4", "int": "int4", "smallint": "int2", "bigint": "int8",
    "serial4": "serial", "serial8": "bigserial", "serial2": "smallserial",
    "real": "float4", "double precision": "float8", "boolean": "bool", "decimal": "numeric",
    "character varying": "varchar", "character": "bpchar", "char": "bpchar",
    "bit varying": "varbit",
}
#: Built-in types the rules below know. A type outside this set is never claimed to rewrite
#: by its name alone (a domain over the old type, an enum, an extension's type).
_KNOWN = frozenset({
    "int2", "int4", "int8", "float4", "float8", "numeric", "bool", "text", "varchar",
    "bpchar", "bytea", "uuid", "json", "jsonb", "xml", "date", "time", "timetz",
    "timestamp", "timestamptz", "interval", "inet", "cidr", "macaddr", "bit", "varbit",
    "money", "oid", "tsvector",
})
#: Casts PostgreSQL performs without touching the value (castmethod 'b', pg_cast).
_BINARY_COERCIBLE = frozenset({
    ("varchar", "text"), ("text", "varchar"), ("varchar", "bpchar"), ("text", "bpchar"),
    ("xml", "text"), ("xml", "varchar"), ("xml", "bpchar"), ("cidr", "inet"),
    ("bit", "varbit"), ("varbit", "bit"), ("int4", "oid"), ("oid", "int4"),
})
#: Types whose length coercion has a support function that drops it when the limit grows
#: (or goes away); `bpchar` and `bit` have none, so any new length rewrites.
_WIDENS_FREELY = frozenset({"varchar", "varbit", "timestamp", "timestamptz", "time", "timetz"})
#: Types no other type reaches without a conversion function: changing a column to one of
#: them rewrites the table, whatever the column was (unless it already had this type).
_REACHED_ONLY_BY_CONVERSION = frozenset({
    "int2", "int8", "float4", "float8", "bool", "bytea", "uuid", "json", "jsonb", "date",
    "macaddr", "money", "tsvector",
})

#: Built-in VOLATILE functions seen in column defaults (pg_proc.provolatile = 'v').
VOLATILE_FUNCTIONS = frozenset({
    "random", "random_normal", "gen_random_uuid", "uuidv4", "uuidv7", "uuid_generate_v1",
    "uuid_generate_v1mc", "uuid_generate_v4", "clock_timestamp", "timeofday", "nextval",
    "txid_current", "pg_current_xact_id", "setseed", "gen_random_bytes",
})
#: Serial pseudo-types: a sequence and a `nextval` default, one value per row.
SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial"})


@attrs.frozen
class TypeSpec:
    """A column type as written: its name (built-ins by their internal name: `int4`,
    `varchar`), its modifiers (`varchar(20)` -> (20,)), whether it is an array."""

    name: str
    modifiers: tuple[int, ...] = ()
    array: bool = False
    schema: str = ""

    @classmethod
    def of(cls, type_name: Node) -> TypeSpec:
        """The spec of a parse tree TypeName (`pg_catalog.` dropped)."""
        parts = name_parts(type_name.get("names", []))
        schema = parts[-2] if len(parts) > 1 and parts[-2] != "pg_catalog" else ""
        name = parts[-1] if parts else ""
        name = _ALIASES.get(name, name)
        modifiers: list[int] = []
        for item in type_name.get("typmods") or ():
            value = _integer(item)
            if value is None:  # interval's field list, a parameter...: keep it unequal
                modifiers.append(-1)
            else:
                modifiers.append(value)
        return cls(name=name, modifiers=tuple(modifiers),
                   array=bool(type_name.get("arrayBounds")), schema=schema)

    @property
    def builtin(self) -> bool:
        return not self.schema and self.name in _KNOWN

    def __str__(self) -> str:
        shown = {"int4": "integer", "int8": "bigint", "int2": "smallint", "bpchar": "char",
                 "float8": "double precision", "float4": "real", "bool": "boolean"}
        name = shown.get(self.name, self.name)
        text = (f"{quote_ident(self.schema)}." if self.schema else "") + name
        if self.modifiers:
            text += "(" + ", ".join(str(m) for m in self.modifiers) + ")"
        return text + ("[]" if self.array else "")


def _integer(item: Any) -> int | None:
    constant = item.get("A_Const") if isinstance(item, dict) else None
    if not constant or "ival" not in constant:
        return None
    value = constant["ival"].get("ival", 0)
    return value if isinstance(value, int) else None


def type_change_rewrites(old: TypeSpec | None, new: TypeSpec, *, plain_using: bool) -> str | None:
    """Why `ALTER COLUMN ... TYPE new` rewrites the table, or None when it does not (or
    when that cannot be known). `old` is the column's type before (None: not known);
    `plain_using` says the statement has no USING, or one that only names the column
    (possibly cast to `new`)."""
    if not plain_using:
        return "its USING expression is computed for every row"
    if old is None:
        if new.builtin and not new.array and new.name in _REACHED_ONLY_BY_CONVERSION:
            return (f"no other type becomes {new} without a conversion of every row, so "
                    "unless the column already is one, every row is rewritten")
        return None
    if old == new:
        return None
    if not (old.builtin and new.builtin) or old.array or new.array:
        return None  # a domain, an enum, an array: not claimed either way
    if old.name == new.name:
        if _limit_grows(old, new):
            return None
        return f"{old} -> {new} converts every row (only a limit that grows or goes is free)"
    if old.name in ("timestamp", "timestamptz") and new.name in ("timestamp", "timestamptz"):
        return f"{old} -> {new} converts every row unless the session's TimeZone is UTC"
    if (old.name, new.name) in _BINARY_COERCIBLE:
        # The relabelled value then goes through new's length coercion, free only when
        # new has no limit, or (varchar -> varchar) a limit no smaller.
        if not new.modifiers:
            return None
        if old.modifiers and new.name in _WIDENS_FREELY and _limit_grows(old, new):
            return None
        return f"{old} -> {new} applies the new length limit to every row"
    return f"{old} -> {new} converts every row with a function"


def _limit_grows(old: TypeSpec, new: TypeSpec) -> bool:
    """Whether `new`'s modifiers only relax `old`'s, as the support functions decide."""
    if not new.modifiers:
        return True  # no length coercion at all
    if not old.modifiers or -1 in old.modifiers or -1 in new.modifiers:
        return False
    if old.name == "numeric":
        # numeric(p, s): same scale, precision no smaller.
        old_scale = old.modifiers[1] if len(old.modifiers) > 1 else 0
        new_scale = new.modifiers[1] if len(new.modifiers) > 1 else 0
        return old_scale == new_scale and new.modifiers[0] >= old.modifiers[0]
    return old.name in _WIDENS_FREELY and new.modifiers[0] >= old.modifiers[0]


def volatile_calls(expression: Any) -> Iterator[str]:
    """The known VOLATILE functions an expression calls, outermost first."""
    if isinstance(expression, list):
        for item in expression:
            yield from volatile_calls(item)
    elif isinstance(expression, dict):
        call = expression.get("FuncCall")
        if call is not None:
            name = name_parts(call.get("funcname", []))
            if name and name[-1] in VOLATILE_FUNCTIONS and (len(name) == 1 or name[0] in (
                    "pg_catalog", "public", "extensions")):
                yield name[-1]
        for value in expression.values():
            if isinstance(value, (dict, list)):
                yield from volatile_calls(value)


def plain_using(using: Node | None, column: str, new: TypeSpec) -> bool:
    """Whether a USING expression only names `column` (possibly cast to `new`): what
    PostgreSQL would do without it."""
    if using is None:
        return True
    if "TypeCast" in using:
        cast = using["TypeCast"]
        if TypeSpec.of(cast.get("typeName", {})) != new:
            return False
        using = cast.get("arg") or {}
    fields = using.get("ColumnRef", {}).get("fields", [])
    return name_parts(fields)[-1:] == [column] if fields else False
