"""PostgreSQL's grammar through pglast: file text in, JSON parse tree and positions out.

pglast is imported when a function here is first called, never at import time, so that
`import migcoord` stays light. psql's COPY data is blanked by the same scanner pass that
`reader` uses (`_scanner.without_copy_data`), so both see the same statements.

We ask libpg_query for its JSON parse tree (`parse_sql_json`) rather than pglast's Python
AST (`parse_sql`): building the AST objects costs ten times more than parsing, and the
JSON carries the same nodes. JSON node locations are offsets in the UTF-8 bytes of the
text; pglast reports a syntax error's position as a character index. `Positions` maps
both to 1-based line:column in the file.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

import attrs

from migcoord.sql import _scanner

#: One parse tree node as libpg_query's JSON renders it: `{"field": value, ...}`.
Node = dict[str, Any]



class Positions:
    """Maps offsets in one text (characters or UTF-8 bytes) to 1-based (line, column).

    Columns count characters, so a column is the same whatever the encoding.
    """

    def __init__(self, text: str) -> None:
        self._ascii = text.isascii()
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._encoded = text.encode("utf-8")
        self._byte_line_starts = (
            self._line_starts if self._ascii else [0] + [m.end() for m in re.finditer(b"\n", self._encoded)]
        )

    def of_char(self, index: int) -> tuple[int, int]:
        """(line, column) of the character at `index` (may be len(text): the end)."""
        line = bisect.bisect_right(self._line_starts, index)
        return line, index - self._line_starts[line - 1] + 1

    def of_byte(self, offset: int) -> tuple[int, int]:
        """(line, column) of the character that starts at UTF-8 byte `offset`."""
        if self._ascii:
            return self.of_char(offset)
        line = bisect.bisect_right(self._byte_line_starts, offset)
        start = self._byte_line_starts[line - 1]
        prefix = self._encoded[start:offset].decode("utf-8", errors="replace")
        return line, len(prefix) + 1

    def char_of_byte(self, offset: int) -> int:
        """Character index of the character that starts at UTF-8 byte `offset`."""
        line, column = self.of_byte(offset)
        return self._line_starts[line - 1] + column - 1

    def first_token(self, offset: int, end: int) -> int:
        """The byte offset of the first token in bytes `offset:end` (comments skipped).

        PostgreSQL 18 points `stmt_location` at a statement's first token; earlier
        versions point just after the previous `;`, before whitespace and comments.
        """
        gap = self._encoded[offset:end]
        if not gap[:1].isspace() and not gap.startswith((b"--", b"/*")):
            return offset
        source = gap.decode("utf-8")
        return offset + len(source[:_scanner.first_token(source)].encode("utf-8"))

    @property
    def byte_length(self) -> int:
        return len(self._encoded)


@attrs.frozen
class RawStatement:
    """One top-level statement: its node type, its JSON body and where it is (bytes)."""

    node_type: str
    body: Node = attrs.field(eq=False)
    #: UTF-8 byte offsets of the first token and just past the last one (before any `;`).
    start: int
    end: int


@attrs.frozen
class ParsedText:
    """The statements of a text that parsed, with the positions to locate them."""

    statements: tuple[RawStatement, ...]
    positions: Positions = attrs.field(eq=False)


class Unparsable(Exception):
    """PostgreSQL's grammar rejects the text; carries pglast's message and 1-based place."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def parse(text: str) -> ParsedText:
    """Parse `text` with PostgreSQL's own grammar; raise Unparsable with line:column."""
    parser = _scanner.pglast_parser()
    parseable = _scanner.without_copy_data(text)
    positions = Positions(parseable)
    if "\x00" in parseable:  # libpg_query would read up to it only
        raise Unparsable(_scanner.NUL_PROBLEM, *positions.of_char(parseable.index("\x00")))
    try:
        tree = json.loads(parser.parse_sql_json(parseable))
    except parser.ParseError as error:
        message, index = error.args[0], error.args[1]
        if index is None:
            # "at end of input": point just after the last token, where one is missing.
            index = len(parseable.rstrip())
        line, column = positions.of_char(index)
        raise Unparsable(str(message), line, column) from None
    statements = tuple(_raw_statement(entry, positions) for entry in tree.get("stmts", ()))
    return ParsedText(statements=statements, positions=positions)


def _raw_statement(entry: Node, positions: Positions) -> RawStatement:
    ((node_type, body),) = entry["stmt"].items()
    location = entry.get("stmt_location", 0)
    length = entry.get("stmt_len", 0)
    # stmt_len 0 means "up to the end of the text".
    end = location + length if length else positions.byte_length
    return RawStatement(node_type=node_type, body=body, start=positions.first_token(location, end), end=end)
