"""The schema registry as Markdown with Mermaid diagrams (pure).

The block sits between its own markers in the configured docs file, after the tables
`migcoord docs` writes (core/docsgen.py), and only `docs --schema` rewrites it: building
it needs a server. Its first line records the fingerprint of the migration set it was
built from, which `check` compares offline (`recorded_fingerprint`).

The diagrams stay readable on big schemas: the service diagram has one node per
service, with at most a few table names per edge; a service's ER diagram shows key
columns only (the tables below list every column), and above `ER_TABLE_LIMIT` tables it
draws only the tables that take part in a foreign key and says how many it left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from migcoord.core.docsgen import replace_marked
from migcoord.core.registry import Registry, SchemaItem, Service, Table
from migcoord.core.sumfile import is_conflict_marker

BEGIN = "<!-- migcoord:begin schema -->"
END = "<!-- migcoord:end schema -->"
_FINGERPRINT = re.compile(r"<!-- migcoord:schema fingerprint=([0-9a-f]{64}) ")
#: A service's ER diagram draws every table up to this many.
ER_TABLE_LIMIT = 40
#: Table names shown on one edge of the service diagram.
EDGE_LABEL_TABLES = 3


def render(registry: Registry) -> str:
    """The schema block, markers included, ending with a newline."""
    lines = [BEGIN,
             f"<!-- migcoord:schema fingerprint={registry.fingerprint} migrations="
             f"{registry.migrations} -->",
             "<!-- Written by `migcoord docs --schema`, which applies every migration on a "
             "throwaway database; edits between these markers are overwritten. -->",
             "", "## Schema", "",
             "The schema as the migrations build it, per owning service: tables with "
             "their columns, keys, indexes and constraints, the other services that use "
             "them, and the views, functions, types and sequences each service created.",
             "",
             "### Services and the tables they use of each other", ""]
    lines += _service_diagram(registry)
    for service in registry.services:
        lines += ["", f"### {service.name}", ""]
        if not service.tables and not service.items:
            lines.append("Owns no table.")
            continue
        if service.tables:
            lines += _er_diagram(service)
        for table in service.tables:
            lines += _table(table)
        if service.items:
            lines += _items(service.items)
    if registry.unowned:
        lines += ["", "### Unowned tables", "",
                  "No service lists these in `owns` (see the `unowned-table` warning)."]
        for table in registry.unowned:
            lines += _table(table)
    if registry.unattributed:
        lines += ["", "### Other objects", ""]
        lines += _items(registry.unattributed)[2:]
    lines.append(END)
    return "\n".join(lines) + "\n"


def recorded_fingerprint(text: str | None) -> str | None:
    """The fingerprint a docs file's schema block was built from; None without a block."""
    if text is None or BEGIN not in text:
        return None
    match = _FINGERPRINT.search(text)
    return match.group(1) if match else ""


#: What a schema block that git left conflicted becomes: nothing of either side (a merge
#: changed the migrations, so neither is the schema now), and a record that `check`
#: reports as stale until `docs --schema` writes it again.
STALE_BLOCK = (f"{BEGIN}\n<!-- migcoord:schema fingerprint=none -->\n\n## Schema\n\n"
               "The schema registry is out of date: a merge changed the migrations. Run "
               "`migcoord docs --schema` to write it again.\n" + END + "\n")


def without_conflicts(text: str) -> str:
    """`text` (a docs file) with its schema block replaced by STALE_BLOCK when git left
    conflict markers in it (every registry records its own fingerprint, so two branches
    that both add migrations always conflict there)."""
    start, stop = text.find(BEGIN), text.rfind(END)
    if start < 0 or stop < start:
        return text
    inside = text[start:stop]
    if not any(is_conflict_marker(line.removesuffix("\r")) for line in inside.split("\n")):
        return text
    # A conflict hunk that began or ended on a marker line leaves its other half outside.
    before = text[:start].rstrip("\n")
    before_lines = before.split("\n")
    if before_lines and is_conflict_marker(before_lines[-1]):
        before = "\n".join(before_lines[:-1])
    after = text[stop + len(END):].lstrip("\n")
    after_lines = after.split("\n")
    if after_lines and is_conflict_marker(after_lines[0]):
        after = "\n".join(after_lines[1:])
    return (before + "\n\n" if before else "") + STALE_BLOCK + after


def merge(existing: str, block: str) -> str:
    """`existing` (a docs file) with the schema block replaced, or added at the end."""
    return replace_marked(existing, block, BEGIN, END, "migcoord docs --schema")


def _service_diagram(registry: Registry) -> list[str]:
    names = {service.name: f"s{index}" for index, service in enumerate(registry.services)}
    lines = ["```mermaid", "flowchart LR"]
    lines += [f'  {node}["{_label(name)}"]' for name, node in names.items()]
    for edge in registry.edges:
        if edge.user not in names or edge.owner not in names:
            continue
        shown = list(edge.tables[:EDGE_LABEL_TABLES])
        if len(edge.tables) > EDGE_LABEL_TABLES:
            shown.append(f"+{len(edge.tables) - EDGE_LABEL_TABLES} more")
        label = ", ".join(shown) or "depends"
        lines.append(f'  {names[edge.user]} -->|"{_label(label)}"| {names[edge.owner]}')
    lines.append("```")
    if not registry.edges:
        lines += ["", "No service uses another service's tables."]
    return lines


def _er_diagram(service: Service) -> list[str]:
    tables = list(service.tables)
    own = {t.name for t in service.tables}
    if len(tables) > ER_TABLE_LIMIT:
        # The most connected tables tell the most: keep those, by foreign keys in and out.
        degree = {t.name: len(t.foreign_keys) for t in tables}
        for table in service.tables:
            for key in table.foreign_keys:
                if key.target in degree:
                    degree[key.target] += 1
        kept = set(sorted((t.name for t in tables if degree[t.name]),
                          key=lambda name: (-degree[name], name))[:ER_TABLE_LIMIT])
        tables = [t for t in tables if t.name in kept]
    left_out = len(service.tables) - len(tables)
    drawn = {t.name for t in tables}
    ids = _Ids()
    lines = ["```mermaid", "erDiagram"]
    for table in tables:
        # Key columns only (every column is in the table below); a table without keys
        # shows its first column, so that no entity is empty.
        keys = [c for c in table.columns if c.primary or _is_foreign(table, c.name)]
        keys = keys or list(table.columns[:1])
        lines.append(f"  {ids.of(table.name)} {{")
        for column in keys:
            marks = ", ".join(m for m, on in (("PK", column.primary),
                                              ("FK", _is_foreign(table, column.name))) if on)
            lines.append(f"    {_word(column.type)} {_word(column.name)} {marks}")
        lines.append("  }")
    for table in tables:
        for key in table.foreign_keys:
            if key.target in own and key.target not in drawn:
                continue
            target = ids.of(key.target)
            note = "" if key.target in own else f" ({key.target_owner or 'unowned'})"
            lines.append(f'  {ids.of(table.name)} }}o--|| {target} : '
                         f'"{_label(key.columns + note)}"')
    lines.append("```")
    if left_out:
        lines += ["", f"The diagram draws the {len(tables)} tables with the most foreign keys; "
                  f"the other {left_out} are listed below."]
    return lines


def _is_foreign(table: Table, column: str) -> bool:
    return any(column in [c.strip().strip('"') for c in key.columns.split(",")]
               for key in table.foreign_keys)


def _table(table: Table) -> list[str]:
    kind = f" ({table.kind})" if table.kind != "table" else ""
    lines = ["", f"#### `{table.name}`{kind}", ""]
    facts = []
    if table.declared:
        facts.append("declared in `owns`")
    if table.created_by:
        facts.append(f"created by {table.created_by}")
    if table.primary_key:
        facts.append(f"primary key {table.primary_key}")
    if facts:
        lines += [_sentence("; ".join(facts)), ""]
    lines += ["| Column | Type | Null | Default |", "| --- | --- | --- | --- |"]
    lines += [f"| {_cell(c.name)} | {_cell(c.type)} | {'yes' if c.nullable else 'no'} | "
              f"{_cell(c.default or '')} |" for c in table.columns]
    lines += _bullets("Indexes", table.indexes)
    lines += _bullets("Constraints", table.constraints)
    lines += _bullets("Foreign keys", [
        f"{key.name}: ({key.columns}) → {key.target}"
        + (f" (owned by {key.target_owner})" if key.target_owner else " (unowned)")
        for key in table.foreign_keys])
    lines += _bullets("Used by other services", [
        f"{use.migration} ({use.how})" for use in table.used_by])
    return lines


def _items(items: Iterable[SchemaItem]) -> list[str]:
    lines = ["", "#### Other objects", "", "| Kind | Name | |", "| --- | --- | --- |"]
    lines += [f"| {item.kind} | {_cell(item.name)} | {_cell(item.summary)} |" for item in items]
    return lines


def _bullets(title: str, entries: Iterable[str]) -> list[str]:
    listed = [f"- {_inline(entry)}" for entry in entries]
    return ["", f"{title}:", "", *listed] if listed else []


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


class _Ids:
    """Mermaid entity names for table names: letters, digits and `_`, distinct."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def of(self, name: str) -> str:
        if name not in self.ids:
            base = re.sub(r"[^A-Za-z0-9_]", "_", name.replace('"', "")) or "t"
            base = base if base[0].isalpha() else f"t_{base}"
            candidate, n = base, 2
            while candidate in self.ids.values():
                candidate, n = f"{base}_{n}", n + 1
            self.ids[name] = candidate
        return self.ids[name]


def _word(text: str) -> str:
    """An ER attribute's type or name in the characters Mermaid accepts there."""
    word = re.sub(r"[^A-Za-z0-9_()\[\]-]", "_", text) or "_"
    return word if re.match(r"[A-Za-z_*]", word) else f"_{word}"


def _label(text: str) -> str:
    """Text inside a Mermaid quoted label, shown as written: a double quote (which would
    end the label) and `#` (which starts one) as Mermaid's entity codes; no line break."""
    return text.replace("#", "#35;").replace('"', "#quot;").replace("\n", " ")


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`" if text else ""
