"""Who owns a table by declaration: the `owns` lists of migcoord.toml (pure).

`check` also counts a table as owned by the service whose migration created it
(checks/ownership.py); this module reads only what the config declares.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from migcoord.core.model import Config, ServiceConfig

#: A table as (schema, name), each as PostgreSQL stores it (unquoted names lower-cased).
Table = tuple[str, str]

_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_$]*")
_OWNS_PART = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s*')


def owned_name(text: str, default_schema: str) -> Table | None:
    """An `owns` entry as PostgreSQL would read it: `rules` is `{default}.rules`,
    `app.rules` and `"Rules"` (quoted keeps its case) work too; None when unreadable."""
    parts: list[str] = []
    position = 0
    while True:
        match = _OWNS_PART.match(text, position)
        if match is None:
            return None
        quoted, plain = match.group(1), match.group(2)
        parts.append(quoted.replace('""', '"') if quoted is not None else plain.lower())
        position = match.end()
        if position == len(text):
            break
        if text[position] != ".":
            return None
        position += 1
    if len(parts) == 1:
        return (default_schema, parts[0])
    if len(parts) == 2:
        return (parts[0], parts[1])
    return None


def declared_owners(services: Iterable[ServiceConfig], default_schema: str) -> dict[Table, str]:
    """Each table some `owns` list names -> the first service that names it (a table
    claimed twice is an `ownership` finding of `check`)."""
    owners: dict[Table, str] = {}
    for service in services:
        for text in service.owns:
            name = owned_name(text, default_schema)
            if name is not None:
                owners.setdefault(name, service.name)
    return owners


def quote_ident(name: str) -> str:
    """`name` as it must be written in SQL: bare when lower-case and plain, else quoted."""
    if _PLAIN_IDENTIFIER.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def display(name: Table, config: Config) -> str:
    """A table name as a person writes it: without the default schema, quoted where
    SQL needs it."""
    schema, table = name
    if schema == config.default_schema:
        return quote_ident(table)
    return f"{quote_ident(schema)}.{quote_ident(table)}"
