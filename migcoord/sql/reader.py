"""The one reader of SQL text: `check`, `up`, `down` and directives all read files here.

    from migcoord.sql import reader

    reader.statements(text)           # what is sent, statement by statement, with positions
    reader.has_statements(text)       # False for a file of comments and `;` only
    reader.ends_cleanly(text)         # SQL appended after it is read as its own
    reader.transaction_control(text)  # BEGIN, COMMIT... that start or end a transaction
    reader.line_comments(text, mentioning="migcoord")  # the directive header
    reader.line_col(text, offset)

Tokens come from PostgreSQL's own scanner (see `_scanner`), so quotes of every kind
(`'...'`, `E'...'`, `U&'...'`, `"..."`, `$tag$...$tag$`), nested block comments and
psql's `COPY ... FROM STDIN` data are read exactly as the server and psql read them.
Statements are split where psql splits a script: at a `;` outside parentheses and
outside the `BEGIN ATOMIC ... END` body of `CREATE [OR REPLACE] {FUNCTION|PROCEDURE}`
(with `CASE ... END` counted inside it; `t.end` and `AS end` are labels). For text that
PostgreSQL's grammar accepts, these are the statements the grammar finds (the tests
compare them with `pglast.parser.split`, which asks the grammar).

Offsets count characters (code points), as PostgreSQL's error positions do. Lines are
counted by `\\n`, so a CRLF file has the same line numbers and columns as an LF one.

The header (what precedes the first token) of a file whose start is whitespace, `--`
comments and block comments without a nested `/*` is read without the scanner, by
scan.l's own rules for those three (see `_plain_header`): a service reads every file's
header at start-up, and loading pglast and scanning whole files cost a no-op `up` of
1,000 migrations 64 ms more (287 ms instead of 223 ms). Nested comments, and everything
after the first token, are read by PostgreSQL's scanner.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence

import attrs

from migcoord.sql import _scanner
from migcoord.sql._scanner import CLOSE_PAREN, COMMENTS, DOT, OPEN_PAREN, SEMICOLON

# PostgreSQL's whitespace (scan.l `space`); not U+00A0, which it reads as part of a name.
_SPACE = " \t\n\r\f\v"
_BOM = "\ufeff"
# A transaction control statement starts with one of these keywords (ASCII letters, in
# any case); a text without any of them as a whole word holds none, and is not scanned.
_TRANSACTION_WORDS = ("begin", "start", "commit", "end", "rollback", "abort", "prepare",
                      "discard")
_TRANSACTION_WORD = re.compile(rf"\b(?:{'|'.join(_TRANSACTION_WORDS)})\b", re.IGNORECASE)
# Whitespace, a `--` comment (group 1), or a block comment holding no `/*`; `_HEADER`
# is a run of them (without the group: re mis-tracks a group in a possessive repeat).
_BLOCK_COMMENT = r"/\*(?:[^*/]++|/(?!\*)|\*(?!/))*+\*/"
_HEADER_PART = re.compile(rf"[ \t\n\r\f\v]+|(--[^\n\r]*)|{_BLOCK_COMMENT}")
_HEADER = re.compile(rf"(?:[ \t\n\r\f\v]+|--[^\n\r]*|{_BLOCK_COMMENT})*+")
# What may start a token that runs on past the end of a text (or COPY data after it).
_MAY_SWALLOW = re.compile(r"['\"$\x00]|/\*|\bstdin\b", re.IGNORECASE)
_ROUTINE_HEADS = (("CREATE", "FUNCTION"), ("CREATE", "PROCEDURE"),
                  ("CREATE", "OR", "REPLACE", "FUNCTION"), ("CREATE", "OR", "REPLACE", "PROCEDURE"))


@attrs.frozen
class Statement:
    """One statement of a file, as it is sent to the server.

    `text` is `file_text[start:end]`: from the first token (comments before it skipped)
    to the last one before the `;` (comments inside and at the end kept, as psql keeps
    them). `line` and `column` (1-based) locate `start`; `index` counts from 0.
    """

    text: str
    start: int
    end: int
    line: int
    column: int
    index: int
    #: The names PostgreSQL's scanner gives the first tokens (up to four), comments
    #: skipped: `("ROLLBACK", "TO", "IDENT")`, `("CREATE", "OR", "REPLACE", "FUNCTION")`.
    head: tuple[str, ...] = ()
    #: For `COPY ... FROM STDIN`: the data lines psql sends after it (no `\\.` line).
    copy_data: str | None = None
    #: True when a quote, a comment, a parenthesis, a BEGIN ATOMIC block or COPY data
    #: never closes: the statement (or its data) runs to the end of the file.
    unterminated: bool = False


@attrs.frozen
class TransactionControl:
    """A statement that starts, ends or abandons a transaction (what it means in a
    migration is `migcoord.sql.transactions`' to decide)."""

    statement: Statement
    #: What it is, as SQL spells it: "BEGIN", "COMMIT", "ROLLBACK PREPARED"...
    words: str

    @property
    def line(self) -> int:
        return self.statement.line

    @property
    def column(self) -> int:
        return self.statement.column


@attrs.frozen
class LineComments:
    """The `--` comments of a file that directives are read from: (line, comment text
    from its `--`, without the line break)."""

    #: The comments before the first token.
    header: tuple[tuple[int, str], ...]
    #: The line of the first token (a `;` counts); None when the file has none.
    body_line: int | None
    #: Comments after the first token that begin their line and contain `mentioning`.
    later: tuple[tuple[int, str], ...] = ()


def statements(text: str) -> tuple[Statement, ...]:
    """The statements of `text`, in order; see the module docstring for the rules.

    Empty statements (`;;`) and a tail of comments are not statements. Where the scanner
    stops (an unterminated quote or comment, or junk it cannot read) the statement in
    progress, or a new one, runs to the end of the file: the server will reject it.
    """
    scanned = _scanner.scan(text)
    builder = _Builder(text, scanned.copy_data)
    for token in scanned.tokens:
        builder.take(token)
    builder.finish(scanned.stopped_at)
    return tuple(builder.statements)


def ends_cleanly(text: str) -> bool:
    """Whether SQL appended to `text` after a newline and a `;` is read as SQL of its own:
    the scanner reads `text` to its end (no unterminated quote or comment swallows what
    follows) and no COPY data follows a `COPY ... FROM STDIN`. A text without a quote,
    a `$`, a `/*`, a NUL or the word STDIN is not scanned to find out."""
    if _MAY_SWALLOW.search(text) is None:
        return True
    scanned = _scanner.scan(text)
    return scanned.stopped_at is None and not scanned.copy_data


def has_statements(text: str) -> bool:
    """False when `text` holds only whitespace, comments and empty statements (`;`)."""
    head = text[:1]
    if head.isascii() and head.isalpha():  # a keyword or a name first, as most files begin
        return True
    first = _plain_header(text)
    if first is not None and (first == len(text) or text[first] != ";"):
        return first < len(text)
    return bool(statements(text))


def transaction_control(text: str) -> tuple[TransactionControl, ...]:
    """The statements of `text` that start, end or abandon a transaction, in file order.

    Found: `BEGIN` (not `BEGIN ATOMIC`), `START TRANSACTION`, `COMMIT` (also `COMMIT AND
    CHAIN` and `COMMIT PREPARED`), `END`, `ROLLBACK` (also `ROLLBACK PREPARED`), `ABORT`
    and `PREPARE TRANSACTION`; and `DISCARD ALL`, which releases the session's advisory
    locks. Not found: `SAVEPOINT`, `RELEASE`, `ROLLBACK [WORK|
    TRANSACTION] TO [SAVEPOINT]`, `SET TRANSACTION`, which work inside a transaction, and
    any `BEGIN ... END` inside a quoted body or comment.
    """
    lowered = text.lower()  # substring tests first: three times faster than the regex
    if not any(word in lowered for word in _TRANSACTION_WORDS) or (
            _TRANSACTION_WORD.search(text) is None):
        return ()
    found = []
    for statement in statements(text):
        words = _control_words(statement.head)
        if words is not None:
            found.append(TransactionControl(statement, words))
    return tuple(found)


def line_comments(text: str, *, mentioning: str) -> LineComments:
    """The `--` comments before the first token, its line, and the later line comments
    that contain `mentioning` (only those begin a line; comments inside strings are not
    comments). The scanner runs only for a header with a block comment or for a text
    that contains `mentioning` after its header."""
    first = _plain_header(text)
    if first is not None and text.find(mentioning, first) < 0:
        # Lines are counted in the header only: a service reads every file's at start-up.
        header = () if text.find("--", 0, first) < 0 else tuple(
            (text.count("\n", 0, start) + 1, text[start:end])
            for start, end in _line_comments_before(text, first))
        return LineComments(header, _line_of_first(text, first))
    lines = LineIndex.of(text)
    scanned = _scanner.scan(text)
    header_list: list[tuple[int, str]] = []
    later: list[tuple[int, str]] = []
    body_line: int | None = None
    for token in scanned.tokens:
        if token.name not in COMMENTS:
            if body_line is None:
                body_line = lines.line_col(token.start)[0]
            continue
        if token.name != "SQL_COMMENT":
            continue
        line = lines.line_col(token.start)[0]
        comment = text[token.start:token.end]
        if body_line is None:
            header_list.append((line, comment))
        elif mentioning in comment and not text[lines.offset(line, 1):token.start].strip(_SPACE):
            later.append((line, comment))
    if body_line is None and scanned.stopped_at is not None and not text.startswith(
            "/*", scanned.stopped_at):
        body_line = lines.line_col(scanned.stopped_at)[0]
    return LineComments(tuple(header_list), body_line, tuple(later))


def body_line(text: str) -> int | None:
    """The line of the first token (a `;` counts), None when the text has none: the
    `body_line` of `line_comments`, without reading the comments."""
    first = _plain_header(text)
    if first is None:  # a nested block comment first: the scanner finds its end
        return line_comments(text, mentioning="--").body_line
    return _line_of_first(text, first)


def _line_of_first(text: str, first: int) -> int | None:
    return text.count("\n", 0, first) + 1 if first < len(text) else None


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in `text`; for many lookups use `LineIndex`."""
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} is outside the text (length {len(text)})")
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


class LineIndex:
    """Maps offsets to 1-based `(line, column)` in one text; build once, query many times."""

    __slots__ = ("_length", "_starts")

    def __init__(self, line_starts: list[int], length: int) -> None:
        self._starts = line_starts
        self._length = length

    @classmethod
    def of(cls, text: str) -> LineIndex:
        """Index the line starts of `text` (lines end at `\\n`)."""
        starts = [0]
        find = text.find
        newline = find("\n")
        while newline >= 0:
            starts.append(newline + 1)
            newline = find("\n", newline + 1)
        return cls(starts, len(text))

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based line and column of `offset` (0 <= offset <= len(text)), else ValueError."""
        if not 0 <= offset <= self._length:
            raise ValueError(f"offset {offset} is outside the text (length {self._length})")
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

    def offset(self, line: int, column: int) -> int:
        """The offset of 1-based `(line, column)`; the inverse of `line_col`."""
        if not 1 <= line <= len(self._starts) or column < 1:
            raise ValueError(f"{line}:{column} is outside the text")
        return self._starts[line - 1] + column - 1


# -- splitting ------------------------------------------------------------------------------


class _Builder:
    """Gathers tokens into statements, with psql's rules for `;` (see the module)."""

    def __init__(self, text: str, copy_data: Sequence[_scanner.CopyData]) -> None:
        self.text = text
        self.lines = LineIndex.of(text)
        self.copy_data = {block.semicolon: block for block in copy_data}
        self.statements: list[Statement] = []
        self.start: int | None = None  # first token of the statement in progress
        self.end = 0  # end of its last token so far, comments included
        self.head: list[str] = []
        self.routine = False  # it is CREATE [OR REPLACE] {FUNCTION|PROCEDURE}
        self.previous = ""  # name of the previous token that is not a comment
        self.parens = 0
        self.blocks = 0  # open BEGIN ATOMIC (and CASE inside it) of a routine's body

    def take(self, token: _scanner.Token) -> None:
        name = token.name
        if name in COMMENTS:
            if self.start is not None:
                # A line comment's token runs to the line break, trailing blanks included.
                self.end = token.start + len(self.text[token.start:token.end].rstrip(_SPACE))
            return
        if self.start is None:
            if name == SEMICOLON:
                return  # an empty statement
            self.start, self.head, self.routine = token.start, [], False
            self.previous, self.parens, self.blocks = "", 0, 0
        if name == SEMICOLON and not self.parens and not self.blocks:
            self.add(self.end, copy=self.copy_data.get(token.start))
            return
        if len(self.head) < 4:
            self.head.append(name)
            # BEGIN ATOMIC comes after the name at the earliest: the fourth token.
            self.routine = len(self.head) == 4 and (
                tuple(self.head[:2]) in _ROUTINE_HEADS or tuple(self.head) in _ROUTINE_HEADS)
        if name == OPEN_PAREN:
            self.parens += 1
        elif name == CLOSE_PAREN:
            self.parens = max(self.parens - 1, 0)  # psql ignores a `)` too many
        elif self.routine and not self.parens:
            self.count_blocks(name)
        self.previous = name
        self.end = token.end

    def count_blocks(self, name: str) -> None:
        # BEGIN ATOMIC opens the body; a CASE inside it also ends with END.
        if (name == "ATOMIC" and self.previous == "BEGIN_P") or (self.blocks and name == "CASE"):
            self.blocks += 1
        elif self.blocks and name == "END_P" and self.previous not in (DOT, "AS"):
            self.blocks -= 1  # `t.end` and `AS end` use the word as a label

    def finish(self, stopped_at: int | None) -> None:
        if stopped_at is not None:
            if self.start is None and not self.text.startswith("/*", stopped_at):
                self.start = stopped_at  # an unterminated string starts a statement
            if self.start is not None:
                self.add(max(len(self.text.rstrip(_SPACE)), self.start), unterminated=True)
        elif self.start is not None:
            # An open parenthesis or BEGIN ATOMIC block also waits for more text.
            self.add(self.end, unterminated=bool(self.parens or self.blocks))

    def add(self, end: int, *, copy: _scanner.CopyData | None = None,
            unterminated: bool = False) -> None:
        assert self.start is not None
        line, column = self.lines.line_col(self.start)
        self.statements.append(Statement(
            text=self.text[self.start:end], start=self.start, end=end, line=line,
            column=column, index=len(self.statements), head=tuple(self.head),
            copy_data=self.text[copy.start:copy.end] if copy is not None else None,
            unterminated=unterminated or (copy is not None and not copy.terminated)))
        self.start = None


def _control_words(head: tuple[str, ...]) -> str | None:
    """What a statement starting with the tokens `head` is, if it is transaction control
    (the grammar's TransactionStmt, less what works inside a transaction)."""
    first, second, third = (*head[:3], "", "", "")[:3]
    if first == "BEGIN_P":
        return None if second == "ATOMIC" else "BEGIN"
    if first in ("COMMIT", "ROLLBACK"):
        if second == "PREPARED":
            return f"{first} PREPARED"
        if first == "ROLLBACK" and "TO" in (second, third):
            return None  # ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] s
        return first
    if first in ("START", "PREPARE") and second == "TRANSACTION":
        return f"{first} TRANSACTION"
    if first == "DISCARD" and second == "ALL":
        return "DISCARD ALL"  # not transaction control, but it ends the session's locks
    return {"END_P": "END", "ABORT_P": "ABORT"}.get(first)


def _plain_header(text: str) -> int | None:
    """The offset of the first token (len(text) when none), found without the scanner,
    or None when that needs the scanner: a nested or unterminated block comment.

    `_HEADER` follows scan.l exactly for what it reads: whitespace, `--` comments (to the
    next `\\n` or `\\r`), and block comments in which no `/*` comes before the first `*/`
    (in `/*/` the `/*` comes first, and would nest).
    """
    start = 1 if text.startswith(_BOM) else 0
    header = _HEADER.match(text, start)
    assert header is not None  # the pattern matches the empty string
    return None if text.startswith("/*", header.end()) else header.end()


def _line_comments_before(text: str, first: int) -> list[tuple[int, int]]:
    """(start, end) of each `--` comment before `first`, found by `_plain_header`."""
    start = 1 if text.startswith(_BOM) else 0
    return [part.span(1) for part in _HEADER_PART.finditer(text, start, first) if part.group(1)]
