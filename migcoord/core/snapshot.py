"""A comparable picture of a database schema, and a readable diff between two pictures.

A Snapshot is a set of SchemaObjects, each identified by its kind and qualified name
(`column public.rules.email`, `index public.rules_email_idx`) and described by named
attributes (a column's type, nullability, default...). It is read from `pg_catalog` by
`migcoord.db.snapshot_sql`; this module is pure: it only builds, compares and renders.

What counts as the same schema (see docs/verify.md):

- Objects are matched by name, never by OID, and never by position: a column dropped
  and added again moves to the end of its table, yet compares equal, because column
  order is not compared (queries should name their columns).
- Indexes that back a primary key, unique or exclusion constraint are reported as the
  constraint only; NOT NULL is a column attribute, not a constraint.
- Objects that belong to an extension are covered by the extension's own entry.
- Data is not compared, nor sequence positions, statistics or storage details.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import attrs

#: The order in which kinds are listed in a diff: containers before their contents.
KIND_ORDER = (
    "schema", "extension", "enum", "domain", "composite type", "range type", "sequence",
    "table", "partitioned table", "foreign table", "column", "constraint", "index",
    "view", "materialized view", "rule", "function", "procedure", "aggregate",
    "window function", "trigger", "policy", "comment",
)
#: Kinds whose removal or addition takes their columns, indexes, ... with them.
RELATION_KINDS = frozenset({"table", "partitioned table", "foreign table", "view",
                            "materialized view"})
#: Attributes holding a hash: a change is reported as "changed", never as two hashes.
HASHED = frozenset({"body"})
#: Longer values (or any with a line break) are shown on lines of their own.
INLINE_LIMIT = 72

Sign = Literal["+", "-", "~"]


@attrs.frozen
class SchemaObject:
    """One object of the schema: `kind` and `name` identify it, `attributes` describe it.

    `parent` is the qualified name of the table (or view) it belongs to, for columns,
    constraints, indexes, triggers, policies and comments; None otherwise. `summary`
    is what a diff prints after the name when the object appears or disappears.
    """

    kind: str
    name: str
    attributes: tuple[tuple[str, str | None], ...] = ()
    summary: str = ""
    parent: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    def attribute(self, name: str) -> str | None:
        for key, value in self.attributes:
            if key == name:
                return value
        raise KeyError(name)


def _sort_key(key: tuple[str, str]) -> tuple[int, str, str]:
    kind, name = key
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (rank, kind, name)


@attrs.frozen
class Snapshot:
    """Every object of a schema, sorted by kind and name (so equal schemas compare equal)."""

    objects: tuple[SchemaObject, ...] = ()

    @classmethod
    def of(cls, objects: Iterable[SchemaObject]) -> Snapshot:
        """A snapshot of these objects; a later object with the same key replaces an earlier."""
        unique = {obj.key: obj for obj in objects}
        return cls(tuple(unique[key] for key in sorted(unique, key=_sort_key)))

    def index(self) -> dict[tuple[str, str], SchemaObject]:
        return {obj.key: obj for obj in self.objects}

    def get(self, kind: str, name: str) -> SchemaObject | None:
        return self.index().get((kind, name))

    def __len__(self) -> int:
        return len(self.objects)

    def count(self) -> Mapping[str, int]:
        """How many objects of each kind (for messages)."""
        counts: dict[str, int] = {}
        for obj in self.objects:
            counts[obj.kind] = counts.get(obj.kind, 0) + 1
        return counts


@attrs.frozen
class Change:
    """One difference: an object added (+) or removed (-), or one attribute changed (~)."""

    sign: Sign
    kind: str
    name: str
    attribute: str | None = None
    old: str | None = None
    new: str | None = None
    summary: str = ""
    #: For + and -: how many objects of each kind went with it (a table's columns, ...).
    contents: tuple[tuple[str, int], ...] = ()

    def render(self) -> str:
        """The change as text: one line, or several when the values are long."""
        if self.sign != "~":
            text = f"{self.sign} {self.kind} {self.name}"
            if self.summary:
                text += f" {self.summary}"
            if self.contents:
                text += " (with " + ", ".join(_count(kind, n) for kind, n in self.contents) + ")"
            return text
        assert self.attribute is not None
        if self.attribute in HASHED:
            return f"~ {self.kind} {self.name} {self.attribute} changed"
        old, new = _show(self.old), _show(self.new)
        if _inline(old) and _inline(new):
            return f"~ {self.attribute} of {self.kind} {self.name}: {old} -> {new}"
        return "\n".join([f"~ {self.attribute} of {self.kind} {self.name} changed:",
                          *(f"    {line}" for line in _line_diff(old, new))])


def diff(before: Snapshot, after: Snapshot) -> list[Change]:
    """What changed from `before` to `after`, in KIND_ORDER then name order.

    An added or removed table (or view) is one change that counts its columns,
    constraints, indexes, ... instead of listing each of them.
    """
    old, new = before.index(), after.index()
    added = [new[key] for key in new if key not in old]
    removed = [old[key] for key in old if key not in new]
    changes: list[tuple[tuple[int, str, str], int, Change]] = []
    sides: tuple[tuple[Sign, list[SchemaObject]], ...] = (("+", added), ("-", removed))
    for sign, objects in sides:
        relations = {obj.name for obj in objects if obj.kind in RELATION_KINDS}
        contents: dict[str, dict[str, int]] = {}
        for obj in objects:
            if obj.parent is not None and obj.parent in relations:
                counts = contents.setdefault(obj.parent, {})
                counts[obj.kind] = counts.get(obj.kind, 0) + 1
        for obj in objects:
            if obj.parent is not None and obj.parent in relations:
                continue
            inside = contents.get(obj.name, {}) if obj.kind in RELATION_KINDS else {}
            change = Change(sign=sign, kind=obj.kind, name=obj.name, summary=obj.summary,
                            contents=tuple(sorted(inside.items(), key=lambda kv: _kind_rank(kv[0]))))
            changes.append((_sort_key(obj.key), 0 if sign == "-" else 1, change))
    for key in old.keys() & new.keys():
        a, b = old[key], new[key]
        if a == b:
            continue
        old_attrs, new_attrs = dict(a.attributes), dict(b.attributes)
        for position, name in enumerate(_names(a.attributes, b.attributes)):
            if old_attrs.get(name) != new_attrs.get(name):
                change = Change(sign="~", kind=a.kind, name=a.name, attribute=name,
                                old=old_attrs.get(name), new=new_attrs.get(name))
                changes.append((_sort_key(key), 2 + position, change))
    changes.sort(key=lambda item: (item[0], item[1]))
    return [change for _, _, change in changes]


def render(changes: Sequence[Change]) -> list[str]:
    """Each change as text (a long value makes one change several lines)."""
    return [change.render() for change in changes]


def _names(a: Sequence[tuple[str, str | None]], b: Sequence[tuple[str, str | None]]) -> list[str]:
    names = [name for name, _ in a]
    names += [name for name, _ in b if name not in names]
    return names


def _kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def _count(kind: str, n: int) -> str:
    if n == 1:
        return f"1 {kind}"
    plural = kind[:-1] + "ies" if kind.endswith("y") else kind + "es" if kind.endswith("x") else kind + "s"
    return f"{n} {plural}"


def _show(value: str | None) -> str:
    return "(none)" if value is None else value


def _inline(text: str) -> bool:
    return "\n" not in text and len(text) <= INLINE_LIMIT


def _line_diff(old: str, new: str) -> list[str]:
    """The lines that differ between two long values, with one line of context."""
    a, b = old.strip().splitlines(), new.strip().splitlines()
    lines = list(difflib.unified_diff(a, b, n=1, lineterm=""))[2:]
    return [f"{line[:1]} {line[1:]}" for line in lines if not line.startswith("@@")]
