"""A fast, purely lexical scanner for PostgreSQL migration files.

It splits a file into statements the way `psql -f` does, maps server error positions back
to `line:col` in the file, and finds transaction-control statements and empty files, all
without PostgreSQL's real parser (pglast is heavier and lives in the SQL analysis package).
Only the standard library is imported, and nothing here does I/O.

What hides a `;` (none of these split a statement):

- `--` line comments, and `/* ... */` block comments, which nest as in PostgreSQL;
- `'...'` strings with `''` escapes (standard_conforming_strings is on, so a backslash is
  an ordinary character), `E'...'` strings where a backslash escapes (`\\'`), and the
  `U&'...'`, `B'...'`, `X'...'`, `N'...'` forms, which quote like plain strings;
- `"..."` quoted identifiers with `""` escapes (also `U&"..."`);
- dollar quotes `$$...$$` and `$tag$...$tag$` (tag: identifier characters, not starting with
  a digit). `$1` is a parameter and `a$b` an identifier, so neither opens a quote;
- parentheses: like psql, a `;` inside `(...)` does not end a statement, which keeps
  `CREATE RULE ... DO ALSO (INSERT ...; INSERT ...)` whole;
- SQL-standard routine bodies: in a statement that begins `CREATE [OR REPLACE]
  {FUNCTION|PROCEDURE}`, `BEGIN ATOMIC` opens a block that the matching `END` closes,
  with `CASE ... END` counted inside it (psql's heuristic, made a little stricter: a bare
  `BEGIN` must be followed by `ATOMIC`, and `x.end` or `AS end` are labels, not `END`);
- psql's `COPY ... FROM STDIN;`: the data lines after it, up to a line holding only `\\.`,
  belong to that statement (`Statement.copy_data`). They start on the line after the `;`;
  anything after the `;` on the COPY line itself is skipped, as part of the statement.

Positions are offsets into the `str` (code points), which is what PostgreSQL counts too.
Lines are counted by `\\n`, so CRLF files get the same line numbers and columns as LF ones
(the `\\r` is the last character of its line). A byte order mark at offset 0 is skipped.

Unterminated constructs never raise and never loop: the statement runs to the end of the
file and says so in `Statement.unclosed` (`"string"`, `"quoted identifier"`,
`"dollar-quoted string $tag$"`, `"block comment"`, `"parenthesis"`, `"BEGIN ATOMIC block"`,
`"COPY data"`), with the offset where the open construct began. A block comment left open
after the last statement is trailing trivia, not a statement.

Not handled: psql meta-commands (`\\i`, `\\gset`, ...), and standard_conforming_strings off.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

__all__ = [
    "LineIndex",
    "Statement",
    "find_transaction_control",
    "first_keywords",
    "has_statements",
    "is_transaction_control",
    "leading_comment_lines",
    "line_col",
    "split_statements",
    "statement_position_to_file",
]

# PostgreSQL's whitespace (scan.l `space`); notably not U+00A0, which it reads as part of an
# identifier, so str.strip()'s Unicode notion of whitespace would be wrong here.
_WS = " \t\n\r\f\v"
_BOM = "\ufeff"

_IDENT_START = r"A-Za-z_\x80-\U0010FFFF"
_IDENT_CONT = r"A-Za-z0-9_$\x80-\U0010FFFF"
_WORD = re.compile(rf"[{_IDENT_START}][{_IDENT_CONT}]*")
_IDENT_CHAR = re.compile(rf"[{_IDENT_CONT}]")
_DOLLAR_DELIMITER = re.compile(rf"\$(?:[{_IDENT_START}][A-Za-z0-9_\x80-\U0010FFFF]*)?\$")

# Whitespace and `--` comments; the newline ending a comment is whitespace.
_SPACE_AND_LINE_COMMENTS = re.compile(r"(?:[ \t\n\r\f\v]+|--[^\n]*)*")
_SPACE = re.compile(r"[ \t\n\r\f\v]*")
_BLOCK_COMMENT_EDGE = re.compile(r"/\*|\*/")
# The rest of an E'...' string after its opening quote, closing quote included.
_E_STRING_REST = re.compile(r"[^'\\]*(?:(?:\\.|'')[^'\\]*)*'", re.DOTALL)
# What can hide a `;` or end a statement. A plain character set searches about twice as
# fast as `--|/\*` alternatives, so a lone `-` or `/` is told apart afterwards.
_QUOTE_OR_END = re.compile(r"""[;'"$/-]""")
_PAREN = re.compile(r"[()]")
# The same, plus parentheses, words (group 1) and any other token, one character at a time:
# used only in the rare statements that need keywords.
_CODE_AND_WORDS = re.compile(rf"""[;'"$()]|--|/\*|({_WORD.pattern})|[^ \t\n\r\f\v]""")
# psql's end-of-data marker: a line holding only `\.`.
_COPY_END = re.compile(r"^\\\.\r?(?:\n|\Z)", re.MULTILINE)

_ROUTINES = frozenset({"FUNCTION", "PROCEDURE"})
_TRANSACTION_HEADS = frozenset({"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "PREPARE"})


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a file, as psql would send it.

    `text` is `file_text[start:end]`: it begins at the first real token (leading comments
    and whitespace skipped) and stops before the `;` (trailing whitespace dropped; comments
    inside or at the end are kept, as psql keeps them). `line` and `column` (1-based) locate
    `start`; `index` counts statements from 0.
    """

    text: str
    start: int
    end: int
    line: int
    column: int
    index: int
    unclosed: str | None = None
    """What was still open at the end of the file (see the module docstring), or None."""
    unclosed_at: int | None = None
    """Offset in the file where that unclosed construct began."""
    copy_data: str | None = None
    """For `COPY ... FROM STDIN;`: the data lines, without the `\\.` line; else None."""
    copy_data_start: int | None = None
    """Offset in the file where `copy_data` begins."""

    @property
    def unterminated(self) -> bool:
        """True when a quote, comment, block, parenthesis or COPY data ran to end of file."""
        return self.unclosed is not None


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
        line = bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

    def offset(self, line: int, column: int) -> int:
        """The offset of 1-based `(line, column)`; the inverse of `line_col`."""
        if not 1 <= line <= len(self._starts) or column < 1:
            raise ValueError(f"{line}:{column} is outside the text")
        return self._starts[line - 1] + column - 1


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset` in `text`; for many lookups use `LineIndex`."""
    if not 0 <= offset <= len(text):
        raise ValueError(f"offset {offset} is outside the text (length {len(text)})")
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def statement_position_to_file(
    statement: Statement, position: int, file_text: str | LineIndex
) -> tuple[int, int]:
    """Map PostgreSQL's error position to `(line, column)` in the file.

    `position` is the server's 1-based character position within `statement.text`, sent
    as is (psycopg's `diag.statement_position`). A position past the end (as in "syntax
    error at end of input") maps to the end of the statement; one below 1 to its start.
    When the whole file was sent as one string, use `line_col(text, position - 1)` instead.
    """
    offset = statement.start + min(max(position - 1, 0), len(statement.text))
    if isinstance(file_text, LineIndex):
        return file_text.line_col(offset)
    return line_col(file_text, offset)


def split_statements(text: str) -> list[Statement]:
    """Split a file into statements as psql would: see the module docstring for the rules.

    Empty statements (`;;`) and a tail of only comments and whitespace are not statements.
    """
    statements: list[Statement] = []
    length = len(text)
    pos = 1 if text.startswith(_BOM) else 0
    line = 1
    line_start = counted_to = 0
    while True:
        start = _skip_trivia(text, pos)
        if start >= length:
            return statements
        first = text[start]
        if first == ";":
            pos = start + 1
            continue
        scan = _scan(text, start)
        if first in "cC":
            scan = _rescan_with_words(text, start, scan)
        stop, pos, unclosed, unclosed_at, copy_stdin = scan
        body = text[start:stop].rstrip(_WS)
        newline = text.rfind("\n", counted_to, start)
        if newline >= 0:  # searching only since the last statement keeps long lines linear
            line += text.count("\n", counted_to, newline + 1)
            line_start = newline + 1
        counted_to = start
        column = start - line_start + 1
        copy_data = copy_data_start = None
        if copy_stdin and stop < length:
            copy_data_start, copy_end, pos = _copy_block(text, pos)
            copy_data = text[copy_data_start:copy_end]
            if pos < 0:
                pos = length
                unclosed, unclosed_at = "COPY data", copy_data_start
        statements.append(Statement(
            body, start, start + len(body), line, column, len(statements),
            unclosed, unclosed_at, copy_data, copy_data_start,
        ))


def has_statements(text: str) -> bool:
    """False when `text` holds only whitespace, comments and empty statements (`;`)."""
    length = len(text)
    pos = 1 if text.startswith(_BOM) else 0
    while True:
        pos = _skip_trivia(text, pos)
        if pos >= length:
            return False
        if text[pos] != ";":
            return True
        pos += 1


def first_keywords(statement: Statement | str, limit: int = 3) -> tuple[str, ...]:
    """The first `limit` bare words of a statement, upper-cased, comments skipped.

    Stops at the first token that is not a bare word (a number, a quote, a parenthesis, a
    qualified name such as `public.t`, or a string prefix such as `E'`):
    `first_keywords("create /* x */ index concurrently i on t (c)")` is
    `("CREATE", "INDEX", "CONCURRENTLY")`; `first_keywords("SELECT 1")` is `("SELECT",)`.
    """
    text = statement.text if isinstance(statement, Statement) else statement
    return tuple(_words_at(text, _skip_trivia(text, 0), limit))


def is_transaction_control(statement: Statement | str) -> bool:
    """True for a statement that starts, ends or abandons the transaction.

    Reported: `BEGIN` (not `BEGIN ATOMIC`), `START TRANSACTION`, `COMMIT` (also `COMMIT
    AND CHAIN`, `COMMIT PREPARED`), `END`, `ROLLBACK` (also `ROLLBACK PREPARED`), `ABORT`
    and `PREPARE TRANSACTION`: migcoord owns each migration's transaction, and these would
    end it early or cannot run inside it. Not reported: `SAVEPOINT`, `RELEASE`, `ROLLBACK
    [WORK|TRANSACTION] TO [SAVEPOINT]` and `SET TRANSACTION`, which are legal inside the
    transaction. PL/pgSQL `BEGIN ... END` sits inside a quoted body and is never seen.
    """
    text = statement.text if isinstance(statement, Statement) else statement
    first = _WORD.match(text, _skip_trivia(text, 0))
    if first is None or first.group().upper() not in _TRANSACTION_HEADS:
        return False  # the common case, decided without reading more words
    words = first_keywords(text, 3)
    if not words:
        return False  # `end'...'`: a string prefix, not a keyword
    head = words[0]
    if head == "BEGIN":
        return words[1:2] != ("ATOMIC",)
    if head in ("COMMIT", "END", "ABORT"):
        return True
    if head == "ROLLBACK":
        return "TO" not in words[1:3]
    if head == "START":
        return words[1:2] == ("TRANSACTION",)
    if head == "PREPARE":
        return words[1:2] == ("TRANSACTION",)
    return False


def find_transaction_control(text: str) -> list[Statement]:
    """The statements of `text` for which `is_transaction_control` holds, in file order."""
    return [s for s in split_statements(text) if is_transaction_control(s)]


def leading_comment_lines(text: str) -> list[tuple[int, str]]:
    """The `--` comments before the first statement, as `(line, content)`.

    `content` is the text after `--`, stripped of surrounding whitespace (and of a CRLF
    file's `\\r`). Blank lines, block comments and empty statements may come between them;
    a block comment's own lines are not returned, and neither is a `--` comment that ends
    a line holding the first statement.
    """
    found: list[tuple[int, str]] = []
    length = len(text)
    pos = 1 if text.startswith(_BOM) else 0
    line = 1
    counted_to = 0
    while True:
        space = _SPACE.match(text, pos)
        assert space is not None  # the pattern matches the empty string
        pos = space.end()
        if text.startswith("--", pos):
            end = text.find("\n", pos)
            if end < 0:
                end = length
            line += text.count("\n", counted_to, pos)
            counted_to = pos
            found.append((line, text[pos + 2:end].strip(_WS)))
            pos = end
        elif text.startswith("/*", pos):
            pos = _skip_block_comment(text, pos)
            if pos < 0:
                return found
        elif text.startswith(";", pos):
            pos += 1
        else:
            return found


# --- the scanner ------------------------------------------------------------------------

# (stop, resume, unclosed, unclosed_at, copy_stdin): `stop` is the offset of the ending `;`
# or the end of the text; scanning of the next statement resumes at `resume`.
_Scan = tuple[int, int, str | None, int | None, bool]


def _skip_trivia(text: str, pos: int) -> int:
    """The offset of the first character at or after `pos` that is not whitespace or comment.

    An unterminated block comment swallows the rest of the text.
    """
    while True:
        match = _SPACE_AND_LINE_COMMENTS.match(text, pos)
        assert match is not None  # the pattern matches the empty string
        pos = match.end()
        if not text.startswith("/*", pos):
            return pos
        pos = _skip_block_comment(text, pos)
        if pos < 0:
            return len(text)


def _skip_block_comment(text: str, pos: int) -> int:
    """The offset after the block comment opening at `pos`, or -1 if it never closes."""
    depth = 0
    search = _BLOCK_COMMENT_EDGE.search
    while True:
        match = search(text, pos)
        if match is None:
            return -1
        pos = match.end()
        if match.group() == "/*":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return pos


def _quote_end(text: str, pos: int, quote: str) -> int:
    """The offset after the closing `quote` (doubled quotes escape it), or -1."""
    find = text.find
    while True:
        close = find(quote, pos)
        if close < 0:
            return -1
        if text.startswith(quote, close + 1):
            pos = close + 2
        else:
            return close + 1


def _string_end(text: str, quote_at: int) -> int:
    """The offset after the string literal whose opening `'` is at `quote_at`, or -1."""
    if (quote_at >= 1 and text[quote_at - 1] in "Ee"
            and (quote_at < 2 or _IDENT_CHAR.match(text, quote_at - 2) is None)):
        rest = _E_STRING_REST.match(text, quote_at + 1)
        return -1 if rest is None else rest.end()
    return _quote_end(text, quote_at + 1, "'")


def _dollar_quote_end(text: str, dollar_at: int) -> tuple[int, str]:
    """For a `$` at `dollar_at`: (offset after the dollar-quoted string, its delimiter).

    `(dollar_at + 1, "")` when the `$` opens nothing (`$1`, or part of an identifier),
    and `(-1, delimiter)` when the string never closes.
    """
    if dollar_at and _IDENT_CHAR.match(text, dollar_at - 1) is not None:
        return dollar_at + 1, ""
    opening = _DOLLAR_DELIMITER.match(text, dollar_at)
    if opening is None:
        return dollar_at + 1, ""
    delimiter = opening.group()
    close = text.find(delimiter, opening.end())
    if close < 0:
        return -1, delimiter
    return close + len(delimiter), delimiter


def _scan(text: str, pos: int) -> _Scan:
    """Scan one statement starting at `pos`, watching quotes, comments and parentheses.

    Parentheses are counted between matches rather than matched one by one, which keeps
    the common statement to a handful of regex searches.
    """
    start = pos
    search = _QUOTE_OR_END.search
    depth = 0
    while True:
        match = search(text, pos)
        at = len(text) if match is None else match.start()
        depth = _paren_depth(text, pos, at, depth)
        if match is None:
            if depth:  # rare: find the unclosed parenthesis the slow, exact way
                return _scan_with_words(text, start, False)
            return at, at, None, None, False
        char = text[at]
        if char == ";":
            if depth == 0:
                return at, at + 1, None, None, False
            pos = at + 1
        elif char in "-/" and text[at + 1:at + 2] != ("-" if char == "-" else "*"):
            pos = at + 1  # an operator, not a comment
        else:
            pos, unclosed = _skip_quoted(text, at, char)
            if pos < 0:
                return len(text), len(text), unclosed, at, False


def _paren_depth(text: str, pos: int, end: int, depth: int) -> int:
    """The parenthesis depth after `text[pos:end]` (no quotes in it), starting from `depth`.

    Like psql, a `)` at depth 0 is ignored rather than going negative.
    """
    find = text.find
    first_close = find(")", pos, end)
    if first_close < 0:
        return depth + text.count("(", pos, end)
    count = text.count
    opens_before = count("(", pos, first_close)
    closes = count(")", first_close, end)
    if depth + opens_before >= closes:  # it can never drop below zero
        return depth + opens_before + count("(", first_close, end) - closes
    for paren in _PAREN.finditer(text, pos, end):
        if paren.group() == "(":
            depth += 1
        elif depth:
            depth -= 1
    return depth


def _skip_quoted(text: str, at: int, char: str) -> tuple[int, str]:
    """Skip the quote or comment starting at `at` (its first character is `char`).

    Returns (offset after it, what it is); the offset is -1 when it never closes.
    """
    if char == "'":
        return _string_end(text, at), "string"
    if char == '"':
        return _quote_end(text, at + 1, '"'), "quoted identifier"
    if char == "$":
        end, delimiter = _dollar_quote_end(text, at)
        return end, f"dollar-quoted string {delimiter}"
    if char == "-":
        end = text.find("\n", at)
        return (len(text) if end < 0 else end + 1), "line comment"
    return _skip_block_comment(text, at), "block comment"


def _rescan_with_words(text: str, start: int, scan: _Scan) -> _Scan:
    """Redo `scan` word by word if the statement is a routine with `BEGIN ATOMIC`, or COPY.

    Both need words, which `_scan` does not read. A `BEGIN ATOMIC` body's first `;` ends
    `_scan`'s statement after the ATOMIC, and COPY's STDIN comes before its `;`, so a
    statement without either word reads the same either way and is not scanned twice.
    """
    head = text[start:scan[0]].upper()
    if "ATOMIC" not in head and "STDIN" not in head:
        return scan
    words = _words_at(text, start, 4)
    if words[:1] == ["COPY"]:
        return _scan_with_words(text, start, False)
    if _is_routine(words):
        return _scan_with_words(text, start, True)
    return scan


def _scan_with_words(text: str, pos: int, track_routine: bool) -> _Scan:
    """Like `_scan`, also reading words: for routine bodies and `COPY ... FROM STDIN`.

    In a routine (`track_routine`), `BEGIN ATOMIC` opens a block and `CASE` nests inside it,
    each closed by `END`; a `;` ends the statement only outside blocks and parentheses.
    """
    search = _CODE_AND_WORDS.search
    depth = 0
    depth_at = -1
    blocks = 0
    blocks_at = -1
    previous = ""
    copy_stdin = False
    length = len(text)
    while True:
        match = search(text, pos)
        if match is None:
            if blocks:
                return length, length, "BEGIN ATOMIC block", blocks_at, copy_stdin
            if depth:
                return length, length, "parenthesis", depth_at, copy_stdin
            return length, length, None, None, copy_stdin
        at = match.start()
        pos = match.end()
        if match.lastindex:  # a word
            word = match.group().upper() if pos - at <= 6 else ""
            if depth == 0:
                if track_routine:
                    if word == "BEGIN":
                        if _words_at(text, _skip_trivia(text, pos), 1) == ["ATOMIC"]:
                            if blocks == 0:
                                blocks_at = at
                            blocks += 1
                    # `AS end` and `t.end` use the reserved word as a label.
                    elif (blocks and word in ("CASE", "END")
                          and previous != "AS" and text[at - 1] != "."):
                        blocks += 1 if word == "CASE" else -1
                elif previous == "FROM" and word == "STDIN":
                    copy_stdin = True
            previous = word
            continue
        char = text[at]
        if char == ";":
            if depth == 0 and blocks == 0:
                return at, pos, None, None, copy_stdin
        elif char == "(":
            if depth == 0:
                depth_at = at
            depth += 1
        elif char == ")":
            if depth:
                depth -= 1
        elif char in "'\"$" or pos - at == 2:
            pos, unclosed = _skip_quoted(text, at, char)
            if pos < 0:
                return length, length, unclosed, at, copy_stdin
            if char in "-/":
                continue  # comments do not separate words such as FROM /* */ STDIN
        previous = ""  # any other token, such as an operator or a number


def _copy_block(text: str, semicolon_end: int) -> tuple[int, int, int]:
    """Locate the COPY data after the `;` that ends at `semicolon_end`.

    Returns (data start, data end, resume offset); resume is -1 when no `\\.` line ends
    the data (psql would take the end of the file as the end of data).
    """
    newline = text.find("\n", semicolon_end)
    if newline < 0:
        return len(text), len(text), -1
    start = newline + 1
    end_marker = _COPY_END.search(text, start)
    if end_marker is None:
        return start, len(text), -1
    return start, end_marker.start(), end_marker.end()


def _words_at(text: str, pos: int, limit: int) -> list[str]:
    """Up to `limit` consecutive bare words from `pos`, upper-cased, comments skipped."""
    words: list[str] = []
    match_word = _WORD.match
    while len(words) < limit:
        match = match_word(text, pos)
        if match is None:
            break
        end = match.end()
        if text.startswith(("'", "&", "."), end):
            break  # a string prefix (E'', U&'') or a qualified name, not a keyword
        words.append(match.group().upper())
        pos = _skip_trivia(text, end)
    return words


def _is_routine(words: list[str]) -> bool:
    """Whether the statement's first words are CREATE [OR REPLACE] {FUNCTION|PROCEDURE}."""
    if len(words) < 2 or words[0] != "CREATE":
        return False
    if words[1] in _ROUTINES:
        return True
    return words[1:3] == ["OR", "REPLACE"] and len(words) > 3 and words[3] in _ROUTINES
