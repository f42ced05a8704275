"""The only module that imports pglast: file text in, JSON parse tree and positions out.

pglast is imported when a function here is first called, never at import time, so that
`import migcoord` stays light.

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
from types import ModuleType
from typing import Any

import attrs

#: One parse tree node as libpg_query's JSON renders it: `{"field": value, ...}`.
Node = dict[str, Any]

# Whitespace and comments that may precede a statement's first token: PostgreSQL 18
# points `stmt_location` at the first token, earlier versions just after the previous `;`.
_LEADING_NOISE = re.compile(rb"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
_STDIN = re.compile(r"\bstdin\b", re.IGNORECASE)
_END_OF_COPY_DATA = re.compile(r"^\\\.[ \t\r]*$", re.MULTILINE)
_NOT_NEWLINE = re.compile(r"[^\n]")
_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})


def load_pglast() -> ModuleType:
    """pglast's parser module (imported here on first use)."""
    from pglast import parser

    return parser


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

    def skip_noise(self, offset: int) -> int:
        """The byte offset of the first token at or after `offset` (skips blanks, comments)."""
        match = _LEADING_NOISE.match(self._encoded, offset)
        return match.end() if match else offset

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
    parser = load_pglast()
    parseable = blank_copy_data(text, parser)
    positions = Positions(parseable)
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
    return RawStatement(node_type=node_type, body=body, start=positions.skip_noise(location), end=end)


def blank_copy_data(text: str, parser: ModuleType) -> str:
    """`text` with the data lines of each `COPY ... FROM stdin;` turned into spaces.

    psql sends the lines after such a statement, up to a line `\\.`, as COPY data, which
    PostgreSQL's grammar cannot parse. Every character of the data except newlines becomes
    a space, so each remaining character keeps its line and column (and its character
    offset). A `stdin` inside a string or a comment is left alone: the lexer decides.
    """
    if _STDIN.search(text) is None:
        return text
    pieces: list[str] = []
    done = 0  # text[:done] is already in pieces; it ends at the top level of the grammar
    search_from = 0
    while (found := _STDIN.search(text, search_from)) is not None:
        search_from = found.end()
        statement_end = _copy_from_stdin_end(text, done, found, parser)
        if statement_end is None:
            continue
        data_start = text.find("\n", statement_end) + 1
        if data_start == 0:
            break
        terminator = _END_OF_COPY_DATA.search(text, data_start)
        data_end = terminator.end() if terminator else len(text)
        pieces.append(text[done:data_start])
        pieces.append(_NOT_NEWLINE.sub(" ", text[data_start:data_end]))
        done = search_from = data_end
    pieces.append(text[done:])
    return "".join(pieces)


def _copy_from_stdin_end(text: str, top: int, stdin: re.Match[str], parser: ModuleType) -> int | None:
    """Index of the `;` that ends the `COPY ... FROM stdin` whose `stdin` is `stdin`.

    None when that `stdin` is not such a statement's (inside a string, a comment, or
    another statement). `top` is an index known to be outside any string or comment.
    """
    try:
        tokens = parser.scan(text[top : stdin.end()])
    except parser.ParseError:
        return None  # the prefix ends inside an unterminated string or comment
    names = [token.name for token in tokens if token.name not in _COMMENT_TOKENS]
    last_semicolon = max((i for i, name in enumerate(names) if name == "ASCII_59"), default=-1)
    statement = names[last_semicolon + 1 :]
    if len(statement) < 3 or statement[0] != "COPY" or statement[-2:] != ["FROM", "STDIN"]:
        return None
    # The `;` that ends the statement is the first one the lexer sees as a token (a `;`
    # may sit inside the options, as in `WITH (DELIMITER ';')`).
    semicolon = text.find(";", stdin.end())
    while semicolon != -1:
        try:
            tail = parser.scan(text[stdin.start() : semicolon + 1])
        except parser.ParseError:
            tail = []
        if tail and tail[-1].name == "ASCII_59" and tail[-1].start == semicolon - stdin.start():
            return semicolon
        semicolon = text.find(";", semicolon + 1)
    return None
