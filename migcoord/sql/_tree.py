"""Small readers for libpg_query's JSON parse tree, shared by effects and lints.

In that JSON a field typed as one node kind holds the node's fields directly
(`"relation": {"relname": ...}`), while a field typed as "any node" and every list
element is wrapped in its kind (`{"RangeVar": {...}}`). False booleans, zeros and empty
lists are left out, so every read here has a default.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from migcoord.core.owners import quote_ident
from migcoord.sql._parser import Node

__all__ = ["quote_ident"]

def written(parts: list[str]) -> str:
    """A dotted name as it is written in SQL (`app."Rules"`)."""
    return ".".join(quote_ident(part) for part in parts)


def relation_parts(relation: Node) -> list[str]:
    """The name of a RangeVar as written: `[schema, name]` or `[name]`."""
    schema = relation.get("schemaname")
    name: str = relation.get("relname", "")
    return [schema, name] if schema else [name]


def nodes_of(tree: Any, kind: str) -> Iterator[Node]:
    """The body of every `kind` node anywhere in `tree` (nodes inside a found one too),
    in no particular order."""
    stack: list[Any] = [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            body = value.get(kind)
            if body is not None:
                yield body
            stack.extend(child for child in value.values() if isinstance(child, (dict, list)))


def name_parts(value: Any) -> list[str]:
    """The dotted name held by a DROP/COMMENT target: a String list, a `List`,
    an `ObjectWithArgs` (functions), a `TypeName` (types) or a single `String`."""
    if isinstance(value, list):
        return [part for item in value for part in name_parts(item)]
    if not isinstance(value, dict):
        return []
    if "String" in value:
        return [value["String"].get("sval", "")]
    if "List" in value:
        return name_parts(value["List"].get("items", []))
    if "ObjectWithArgs" in value:
        return name_parts(value["ObjectWithArgs"].get("objname", []))
    if "TypeName" in value:
        return name_parts(value["TypeName"].get("names", []))
    return []


def wrapped(items: Any, kind: str) -> Iterator[Node]:
    """The bodies of the elements of a node list that are of `kind`."""
    for item in items or ():
        if isinstance(item, dict) and kind in item:
            yield item[kind]
