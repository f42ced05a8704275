"""PostgreSQL's own scanner over a whole migration file: tokens with character offsets.

This is the one place that runs pglast's scanner (`pglast.parser.scan`, the lexer of
PostgreSQL's `scan.l` as libpg_query ships it); `reader` builds statements on it and
`_parser` blanks COPY data with it. pglast is imported on first use, never at import
time, so that a service that reads nothing does not pay for loading it.

What this adds to `pglast.parser.scan`:

- **Linear positions.** pglast maps each token's UTF-8 byte offset to a character index
  by walking a list of every multi-byte character of the text, so a large non-ASCII file
  scans in quadratic time (16 s for 10,000 one-line INSERTs that each hold a `€`). The
  scanner only ever treats a non-ASCII character as part of an identifier, a string, a
  quoted identifier or a comment, so the text is scanned with each of them replaced by
  `z`: one character for one, so offsets are unchanged, and no token boundary moves. The
  two things the replacement could change are checked on the result (a keyword spelt
  with non-ASCII letters, and two different dollar-quote tags made equal); if either
  shows up, the original text is scanned instead.
- **psql's COPY data.** After `COPY ... FROM STDIN;` psql sends the following lines, up
  to a line holding only `\\.`, as the data of the COPY, not as SQL. Those lines are
  blanked (every character but newlines becomes a space) before the text is scanned, so
  each token keeps its offset, line and column.
- **A byte order mark** at offset 0 is read as whitespace.
- **A readable prefix.** The scanner stops at an unterminated quote or comment, at junk
  it cannot read (`1abc`, `""`), or at a NUL character (where libpg_query, reading a C
  string, would silently stop); the tokens before that point are kept, and where and
  why it stopped is reported.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, NamedTuple

import attrs

#: Token names for `;`, `(`, `)`, `.` and the two kinds of comment.
SEMICOLON = "ASCII_59"
OPEN_PAREN = "ASCII_40"
CLOSE_PAREN = "ASCII_41"
DOT = "ASCII_46"
COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})

_BOM = "\ufeff"
NUL_PROBLEM = "a NUL character, which PostgreSQL does not accept in SQL text"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_STDIN = re.compile(r"\bstdin\b", re.IGNORECASE)
# psql ends COPY data at a line that is exactly `\.` (copy.c compares the line with
# "\\.\n" and "\\.\r\n"); at the end of the file the data ends anyway.
_END_OF_COPY_DATA = re.compile(r"^\\\.\r?$", re.MULTILINE)
_NOT_NEWLINE = re.compile(r"[^\n]")


class Token(NamedTuple):
    """One token: `text[start:end]` (end exclusive), named as PostgreSQL's grammar names
    it (`CREATE`, `BEGIN_P`, `IDENT`, `SCONST`, `ASCII_59` for `;`, `SQL_COMMENT`...)."""

    start: int
    end: int
    name: str
    #: "NO_KEYWORD", or the keyword's category ("RESERVED_KEYWORD", ...).
    kind: str


@attrs.frozen
class CopyData:
    """The data lines psql sends after one `COPY ... FROM STDIN;`."""

    #: Offset of the `;` that ends the COPY statement.
    semicolon: int
    #: `text[start:end]` is the data, without the `\\.` line.
    start: int
    end: int
    #: False when no `\\.` line ends it: the data runs to the end of the file.
    terminated: bool
    #: Where SQL resumes: after the `\\.` line (the end of the text when unterminated).
    resume: int


@attrs.frozen
class Scanned:
    """The tokens of a text, in order, comments included."""

    tokens: tuple[Token, ...]
    copy_data: tuple[CopyData, ...] = ()
    #: Where the scanner stopped reading (the start of an unterminated quote or comment,
    #: or of junk), or None when it read the whole text.
    stopped_at: int | None = None
    #: PostgreSQL's message for why it stopped.
    problem: str | None = None


def pglast_parser() -> ModuleType:
    """pglast's parser module (imported here on first use)."""
    from pglast import parser

    return parser


def scan(text: str) -> Scanned:
    """Every token of `text` as PostgreSQL's scanner reads it, COPY data left out."""
    copy_data = find_copy_data(text)
    tokens, stopped_at, problem = _tokens(_blanked(text, copy_data))
    return Scanned(tuple(tokens), copy_data, stopped_at, problem)


def without_copy_data(text: str) -> str:
    """`text` with its COPY data lines (and their `\\.` line) blanked: what PostgreSQL's
    grammar can read, each remaining character at its own offset, line and column."""
    copy_data = find_copy_data(text)
    return _blanked(text, copy_data) if copy_data else text


def first_token(text: str) -> int:
    """The offset of the first token of `text` that is not a comment (the end if none)."""
    tokens, stopped_at, _ = _tokens(text)
    for token in tokens:
        if token.name not in COMMENTS:
            return token.start
    return len(text) if stopped_at is None else stopped_at


def find_copy_data(text: str) -> tuple[CopyData, ...]:
    """The data blocks of every `COPY ... FROM STDIN;` in `text`, in order.

    A block starts on the line after the statement's `;` (the rest of that line is SQL, as
    psql reads it after the COPY is done) and ends before a line that is exactly `\\.`.
    A `stdin` inside a string, a comment or a data block starts nothing.
    """
    if "stdin" not in text.lower():  # a substring test first: 20 times faster than the regex
        return ()
    blocks: list[CopyData] = []
    top = 0  # an offset outside any token, where scanning may start afresh
    for stdin in _STDIN.finditer(text):
        if stdin.start() < top:
            continue  # inside the previous block's data
        semicolon = _copy_from_stdin_end(text, top, stdin)
        if semicolon is None:
            continue
        newline = text.find("\n", semicolon)
        if newline < 0:
            break  # nothing follows the COPY line: no data
        start = newline + 1
        marker = _END_OF_COPY_DATA.search(text, start)
        if marker is None:
            blocks.append(CopyData(semicolon, start, len(text), False, len(text)))
            break
        blocks.append(CopyData(semicolon, start, marker.start(), True, marker.end()))
        top = marker.end()
    return tuple(blocks)


def _copy_from_stdin_end(text: str, top: int, stdin: re.Match[str]) -> int | None:
    """Offset of the `;` ending the `COPY ... FROM STDIN` whose STDIN is `stdin`, or None
    when that `stdin` is not such a statement's keyword (`top` is outside any token)."""
    tokens, stopped_at, _ = _tokens(_blanked(text[top:stdin.end()], ()))
    if stopped_at is not None:
        return None  # the `stdin` is inside an unterminated string or comment
    names = [token.name for token in tokens if token.name not in COMMENTS]
    after_last_semicolon = len(names) - names[::-1].index(SEMICOLON) if SEMICOLON in names else 0
    statement = names[after_last_semicolon:]
    if len(statement) < 3 or statement[0] != "COPY" or statement[-2:] != ["FROM", "STDIN"]:
        return None
    # The statement ends at the first `;` the scanner reads as a token: one may sit in
    # its options, as in `WITH (DELIMITER ';')`.
    semicolon = text.find(";", stdin.end())
    while semicolon >= 0:
        tail, stopped_at, _ = _tokens(text[stdin.start():semicolon + 1])
        if stopped_at is None and tail and tail[-1].name == SEMICOLON:
            return semicolon
        semicolon = text.find(";", semicolon + 1)
    return None


def _blanked(text: str, copy_data: tuple[CopyData, ...]) -> str:
    if not copy_data and not text.startswith(_BOM):
        return text
    pieces: list[str] = []
    done = 0
    if text.startswith(_BOM):
        pieces.append(" ")
        done = 1
    for block in copy_data:
        pieces.append(text[done:block.start])
        pieces.append(_NOT_NEWLINE.sub(" ", text[block.start:block.resume]))
        done = block.resume
    pieces.append(text[done:])
    return "".join(pieces)


def _tokens(text: str) -> tuple[list[Token], int | None, str | None]:
    """(tokens of the readable prefix, where the scanner stopped, why): see the module."""
    nul = text.find("\x00")
    if nul >= 0:
        # libpg_query reads a C string: it would silently stop at the NUL.
        tokens, stopped_at, problem = _tokens(text[:nul])
        return tokens, nul if stopped_at is None else stopped_at, problem or NUL_PROBLEM
    parser = pglast_parser()
    if text.isascii():
        return _scan_prefix(parser, text)
    stand_in = _NON_ASCII.sub("z", text)
    found = _scan_prefix(parser, stand_in)
    if _faithful(found[0], text):
        return found
    return _scan_prefix(parser, text)


def _scan_prefix(parser: ModuleType, text: str) -> tuple[list[Token], int | None, str | None]:
    end = len(text)
    stopped_at: int | None = None
    problem: str | None = None
    while True:
        try:
            raw: list[Any] = parser.scan(text[:end])
        except parser.ParseError as error:
            message, index = error.args[0], error.args[1]
            problem = problem or str(message)
            # The scanner names where the bad token starts; a position it cannot give
            # (an invalid escape in a string) leaves nothing known to be readable.
            end = index if index is not None and 0 <= index < end else 0
            stopped_at = end
            continue
        return [Token(t.start, t.end + 1, t.name, t.kind) for t in raw], stopped_at, problem


def _faithful(tokens: list[Token], text: str) -> bool:
    """Whether tokens read from the `z`-for-non-ASCII stand-in also hold for `text`."""
    for token in tokens:
        if token.kind != "NO_KEYWORD" and not text[token.start:token.end].isascii():
            return False  # `€nd` read as END: keywords are ASCII in PostgreSQL
        if token.name == "SCONST" and text.startswith("$", token.start):
            tag_end = text.find("$", token.start + 1) + 1
            tag = text[token.start:tag_end]
            if not text.endswith(tag, token.start, token.end) or token.end - token.start < 2 * len(tag):
                return False  # `$€$ ... $¥$` read as one dollar-quoted string
    return True
