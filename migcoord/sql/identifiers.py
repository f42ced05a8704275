"""`identifier-too-long`: names PostgreSQL silently cuts to 63 bytes.

The parse tree already holds the cut name, so the identifiers are read from PostgreSQL's
scanner, and only in a file that has a word long enough to be one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from migcoord.sql import _scanner
from migcoord.sql.lints import Hazard

IDENTIFIER_TOO_LONG = "identifier-too-long"

#: PostgreSQL keeps the first NAMEDATALEN - 1 bytes of an identifier.
MAX_IDENTIFIER_BYTES = 63


# A quoted identifier of 16 characters or more (16 of four bytes pass the limit), without a
# line break.
_LONG_QUOTED = re.compile(r'"(?:[^"\n]|""){16,}"')


def _may_hold_long_identifier(text: str) -> bool:
    """Whether `text` has a word (or a quoted name) long enough to pass the limit: only
    such a file is scanned. `str.split` keeps this linear and cheap."""
    shortest = MAX_IDENTIFIER_BYTES + 1 if text.isascii() else 16
    if any(len(word) >= shortest and len(word.encode("utf-8")) > MAX_IDENTIFIER_BYTES
           for word in text.split()):
        return True
    return '"' in text and any(len(m.group().encode("utf-8")) > MAX_IDENTIFIER_BYTES + 2
                               for m in _LONG_QUOTED.finditer(text))


def long_identifiers(text: str) -> Iterator[tuple[int, str]]:
    """(character offset, name) of each identifier in `text` longer than PostgreSQL keeps
    (63 bytes in UTF-8): it is silently cut, so two long names can become one."""
    if not _may_hold_long_identifier(text):
        return
    for token in _scanner.scan(text).tokens:
        if token.name != "IDENT":
            continue
        written = text[token.start:token.end]
        if written.startswith('"'):
            name = written[1:-1].replace('""', '"')
        else:
            name = written.lower() if written.isascii() else "".join(
                ch.lower() if ch.isascii() else ch for ch in written)
        if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
            yield token.start, name


def too_long(name: str, locate_char: Callable[[int], tuple[int, int]], offset: int) -> Hazard:
    """The `identifier-too-long` hazard of `name` at character `offset`."""
    kept = name.encode("utf-8")[:MAX_IDENTIFIER_BYTES].decode("utf-8", errors="ignore")
    line, column = locate_char(offset)
    return Hazard(
        code=IDENTIFIER_TOO_LONG,
        message=f"identifier {name[:20]}... is {len(name.encode('utf-8'))} bytes long; "
        f"PostgreSQL keeps only the first {MAX_IDENTIFIER_BYTES} bytes ({kept}), silently, "
        "so the object gets another name than the one written (and two long names can "
        "collide)",
        hint=f"use a name of at most {MAX_IDENTIFIER_BYTES} bytes",
        line=line, column=column)
