"""The one reader of SQL text (migcoord.sql.reader): statements, positions, transaction
control, the directive header, all from PostgreSQL's own scanner."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pglast import parser as pglast_parser

from migcoord.sql import _parser, _scanner, reader
from migcoord.sql.reader import (
    LineIndex,
    Statement,
    has_statements,
    line_col,
    line_comments,
    statements,
    transaction_control,
)
from migcoord.sql.transactions import explicit_transaction


def texts(sql: str) -> list[str]:
    return [s.text for s in statements(sql)]


def controls(sql: str) -> list[tuple[str, int, int]]:
    return [(c.words, c.line, c.column) for c in transaction_control(sql)]


def grammar_texts(sql: str) -> list[str]:
    """The statements PostgreSQL's grammar finds (pglast.parser.split), leading comments
    left out (older grammars start a statement right after the previous `;`)."""
    pieces = [sql[piece] for piece in pglast_parser.split(sql, with_parser=True, only_slices=True)]
    return [piece[_scanner.first_token(piece):] for piece in pieces]


# --- splitting --------------------------------------------------------------------------


def test_splits_on_semicolons_and_strips_leading_trivia() -> None:
    """Statements lose their `;`, leading comments and surrounding whitespace."""
    sql = "-- intro\nCREATE TABLE a (id int) ;\n\n/* b */ CREATE TABLE b (id int);\n"
    assert texts(sql) == ["CREATE TABLE a (id int)", "CREATE TABLE b (id int)"]


def test_last_statement_needs_no_semicolon() -> None:
    """A final statement without `;` is still a statement, as psql sends it at EOF."""
    assert texts("SELECT 1;\nSELECT 2\n") == ["SELECT 1", "SELECT 2"]


def test_empty_statements_and_comment_tails_are_not_statements() -> None:
    """`;;` and a trailing comment produce no statement."""
    assert texts(";;SELECT 1;; ;\n-- done\n/* really */\n") == ["SELECT 1"]


def test_statement_indexes_count_from_zero() -> None:
    """`index` numbers real statements only."""
    assert [s.index for s in statements(";SELECT 1;;SELECT 2;")] == [0, 1]


def test_comment_inside_statement_is_kept() -> None:
    """Comments after the first token stay in the text sent to the server."""
    assert texts("SELECT 1 -- one\n, 2;") == ["SELECT 1 -- one\n, 2"]
    assert texts("SELECT 1 /* c */ ;") == ["SELECT 1 /* c */"]


def test_semicolon_in_comments_does_not_split() -> None:
    """`--` comments run to the end of the line; `/* ; */` hides its semicolon."""
    assert texts("SELECT 1 -- a; b\n+ 1;") == ["SELECT 1 -- a; b\n+ 1"]
    assert texts("SELECT /* ; */ 1; SELECT 2;") == ["SELECT /* ; */ 1", "SELECT 2"]


def test_block_comments_nest() -> None:
    """`/* /* */ ; */` is one comment, as in PostgreSQL."""
    assert texts("SELECT /* a /* b */ ; */ 1; SELECT 2") == [
        "SELECT /* a /* b */ ; */ 1", "SELECT 2"]


@pytest.mark.parametrize(
    ("sql", "first"),
    [
        ("SELECT 'a;b', 'it''s;'; SELECT 2", "SELECT 'a;b', 'it''s;'"),
        ("SELECT 'a\\'; SELECT 2", "SELECT 'a\\'"),  # standard_conforming_strings: `\` is plain
        ("SELECT E'it\\'s; fine'; SELECT 2", "SELECT E'it\\'s; fine'"),
        ("SELECT e'\\\\'; SELECT 2", "SELECT e'\\\\'"),
        ("SELECT typE'a\\'; SELECT 2", "SELECT typE'a\\'"),  # typE is a name, not an E prefix
        ("SELECT U&'d\\0061t;a'; SELECT 2", "SELECT U&'d\\0061t;a'"),
        ('SELECT 1 AS "a;""b;"; SELECT 2', 'SELECT 1 AS "a;""b;"'),
        ("SELECT $fn$ a; $$ b; $$ $fn$; SELECT 2", "SELECT $fn$ a; $$ b; $$ $fn$"),
        ("SELECT a$b$; SELECT 2", "SELECT a$b$"),  # an identifier may hold `$`
    ],
)
def test_quotes_of_every_kind_hide_semicolons(sql: str, first: str) -> None:
    """Strings ('', E'', U&''), quoted identifiers and dollar quotes keep their `;`."""
    assert texts(sql) == [first, "SELECT 2"]


def test_dollar_quoted_function_body_is_one_statement() -> None:
    """`$$ ... $$` bodies are one string."""
    sql = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT 2"
    assert texts(sql) == [sql.split("; SELECT 2")[0], "SELECT 2"]


def test_positional_parameter_is_not_a_dollar_quote() -> None:
    """`$1` is a parameter, so the `;` after it ends the statement."""
    assert texts("PREPARE p AS SELECT $1; SELECT $2") == ["PREPARE p AS SELECT $1", "SELECT $2"]


def test_semicolon_in_parentheses_does_not_split() -> None:
    """Like psql, multi-action rules `DO ALSO (a; b)` stay whole."""
    sql = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); NOTIFY t)"
    assert texts(sql + ";SELECT 2") == [sql, "SELECT 2"]


def test_begin_atomic_body_is_one_statement() -> None:
    """A SQL-standard function body keeps its inner semicolons."""
    body = ("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n"
            "  SELECT 2;\nEND")
    assert texts(body + ";\nSELECT 3;") == [body, "SELECT 3"]


def test_case_and_labels_inside_begin_atomic_do_not_close_the_block() -> None:
    """`CASE ... END` nests inside `BEGIN ATOMIC ... END`; `t.end`, `AS end` are labels."""
    body = ("CREATE OR REPLACE PROCEDURE p(x int) LANGUAGE sql BEGIN ATOMIC "
            "INSERT INTO t SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END; "
            "INSERT INTO t SELECT case x when 1 then 1 end; END")
    assert texts(body + "; SELECT 3") == [body, "SELECT 3"]
    body = ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC "
            "SELECT t.end AS end FROM t; SELECT 2; END")
    assert texts(body + "; SELECT 3") == [body, "SELECT 3"]


def test_begin_outside_a_routine_opens_nothing() -> None:
    """Only CREATE FUNCTION/PROCEDURE statements open BEGIN ATOMIC blocks."""
    assert texts("SELECT 1 AS begin; SELECT 2") == ["SELECT 1 AS begin", "SELECT 2"]


def test_plpgsql_do_block_is_one_statement() -> None:
    """`DO $$ BEGIN ... END $$` is a string, whatever it holds."""
    sql = "DO $$\nBEGIN\n  PERFORM 1;\n  COMMIT;\nEND\n$$"
    assert texts(sql + ";\nSELECT 2;") == [sql, "SELECT 2"]


def test_crlf_line_endings() -> None:
    """CRLF files split the same way and report the same line:col as LF files."""
    sql = "-- c\r\nSELECT 1;\r\n  SELECT 'a\r\n;';\r\n"
    first, second = statements(sql)
    assert (first.text, first.line, first.column) == ("SELECT 1", 2, 1)
    assert (second.text, second.line, second.column) == ("SELECT 'a\r\n;'", 3, 3)
    assert line_comments(sql, mentioning="migcoord").header == ((1, "-- c"),)


def test_byte_order_mark_is_skipped() -> None:
    """A UTF-8 BOM at the start is not part of the first statement."""
    [statement] = statements("\ufeffSELECT 1;")
    assert (statement.text, statement.start, statement.column) == ("SELECT 1", 1, 2)
    assert not has_statements("\ufeff")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 'abc; SELECT 2;",
        "SELECT E'abc\\'; SELECT 2;",
        'SELECT "abc; SELECT 2;',
        "SELECT $x$abc; SELECT 2;",
        "SELECT /* /* */ 1; SELECT 2;",
        "SELECT (1; SELECT 2;",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;",
    ],
)
def test_unterminated_construct_takes_the_rest_of_the_file(sql: str) -> None:
    """An unclosed quote, comment, parenthesis or block ends in one flagged statement."""
    [statement] = statements(sql)
    assert statement.text == sql
    assert statement.unterminated


def test_statements_before_an_unterminated_quote_are_kept() -> None:
    """The scanner stops at the open quote; what it read before still splits."""
    assert [(s.text, s.unterminated) for s in statements("SELECT 1;\nSELECT 'x;\n")] == [
        ("SELECT 1", False), ("SELECT 'x;", True)]


def test_junk_the_scanner_cannot_read_ends_the_reading() -> None:
    """`1abc` is rejected by PostgreSQL's scanner: from there on, one statement."""
    assert texts("SELECT 1;\nSELECT 1abc; BEGIN;") == ["SELECT 1", "SELECT 1abc; BEGIN;"]


def test_a_nul_character_ends_the_reading_where_libpg_query_would_ignore_the_rest() -> None:
    """The C library would silently stop at a NUL; the reader says the rest is unread."""
    sql = "SELECT 1;\nSELECT 2\x00; BEGIN;"
    assert [(s.text, s.unterminated) for s in statements(sql)] == [
        ("SELECT 1", False), ("SELECT 2\x00; BEGIN;", True)]
    with pytest.raises(_parser.Unparsable) as error:
        _parser.parse(sql)
    assert (error.value.line, error.value.column, "NUL" in error.value.message) == (2, 9, True)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true "
        "THEN 1 END; SELECT 2; END; SELECT 3;",
        "SELECT E'it\\'s;'; SELECT 'a\\'; select $$;$$, $t$;$$;$t$; select /* /* ; */ ; */ 1;",
        "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); NOTIFY t); SELECT 1",
        "DO $$ BEGIN PERFORM 1; END $$; select U&'d\\0061t;a', \"a;\"\"b\" from t;",
        "-- head\nSELECT 1; /* between */ SELECT 2 -- tail\n;\n",
    ],
)
def test_split_agrees_with_postgresql_grammar(sql: str) -> None:
    """For text the grammar accepts, the statements are exactly the grammar's."""
    assert texts(sql) == grammar_texts(sql)


def test_ten_thousand_statements() -> None:
    """A large file splits into every statement, with the right last line."""
    sql = "".join(f"INSERT INTO t VALUES ({i}, 'v;{i}');\n" for i in range(10_000))
    found = statements(sql)
    assert len(found) == 10_000
    assert (found[-1].index, found[-1].line, found[-1].text) == (
        9_999, 10_000, "INSERT INTO t VALUES (9999, 'v;9999')")


def test_non_ascii_text_is_read_in_linear_time() -> None:
    """pglast's own offset mapping is quadratic in non-ASCII text (16 s for this file)."""
    sql = "".join(f"INSERT INTO t VALUES ({i}, 'é€;{i}');\n" for i in range(10_000))
    started = time.perf_counter()
    found = statements(sql)
    assert time.perf_counter() - started < 5
    assert (len(found), found[-1].text) == (10_000, "INSERT INTO t VALUES (9999, 'é€;9999')")
    assert found[-1].start == sql.rindex("INSERT")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # Different non-ASCII dollar-quote tags do not close each other.
        ("SELECT $é$ a; $ü$ b; $é$; SELECT 2", ["SELECT $é$ a; $ü$ b; $é$", "SELECT 2"]),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS énd; END; "
         "SELECT 2", ["CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1 AS "
                      "énd; END", "SELECT 2"]),
        ("SELECT 'naïve;' AS «x»; SELECT 2", ["SELECT 'naïve;' AS «x»", "SELECT 2"]),
    ],
)
def test_non_ascii_names_quotes_and_tags_read_as_postgresql_reads_them(
    sql: str, expected: list[str]
) -> None:
    """The fast path's stand-in characters never change what is read."""
    assert texts(sql) == expected


def test_a_name_spelt_with_non_ascii_letters_is_no_keyword() -> None:
    """`€one` read with its stand-in would be ZONE: the scanner reads the original."""
    names = [token.name for token in _scanner.scan("SELECT now() AT TIME €one").tokens]
    assert names[-3:] == ["AT", "TIME", "IDENT"]


# --- COPY ... FROM STDIN ------------------------------------------------------------------


def test_copy_from_stdin_data_belongs_to_the_statement() -> None:
    """Data lines up to `\\.` are the COPY statement's data, not statements."""
    sql = "COPY t (a, b) FROM stdin;\n1\tx; DROP TABLE t;\n2\t'y\n\\.\nSELECT 2;\n"
    copy, after = statements(sql)
    assert copy.text == "COPY t (a, b) FROM stdin"
    assert copy.copy_data == "1\tx; DROP TABLE t;\n2\t'y\n"
    assert not copy.unterminated
    assert (after.text, after.line) == ("SELECT 2", 5)


def test_copy_from_stdin_with_comment_between_keywords_and_a_semicolon_option() -> None:
    """`FROM /* c */ STDIN` is still COPY FROM STDIN; `DELIMITER ';'` does not end it."""
    sql = "copy t from /* c */ STDIN with (format csv, delimiter ';');\na;b\n\\.\nSELECT 2"
    assert [(s.text, s.copy_data) for s in statements(sql)] == [
        ("copy t from /* c */ STDIN with (format csv, delimiter ';')", "a;b\n"),
        ("SELECT 2", None)]


def test_copy_to_stdout_and_stdin_in_strings_have_no_data_block() -> None:
    """Only a COPY ... FROM STDIN statement reads data lines."""
    assert texts("COPY t TO stdout;\nSELECT 2;") == ["COPY t TO stdout", "SELECT 2"]
    assert texts("-- COPY t FROM stdin;\nSELECT 'COPY t FROM stdin;';\nSELECT 3;") == [
        "SELECT 'COPY t FROM stdin;'", "SELECT 3"]


def test_copy_data_without_end_marker_is_unterminated() -> None:
    """A missing `\\.` line takes the rest of the file and is flagged."""
    [copy] = statements("COPY t FROM stdin;\n1\n2\nBEGIN;\n")
    assert (copy.copy_data, copy.unterminated) == ("1\n2\nBEGIN;\n", True)


def test_copy_end_marker_is_a_line_of_exactly_backslash_dot() -> None:
    """psql ends the data only at a line `\\.` (CRLF allowed): `\\. ` is data, so the BEGIN
    after it is data too, for check and for up alike."""
    sql = "COPY t FROM stdin;\n1\n\\. \nBEGIN;\n"
    [copy] = statements(sql)
    assert copy.unterminated and "BEGIN;" in (copy.copy_data or "")
    assert transaction_control(sql) == ()
    assert controls("COPY t FROM stdin;\r\n1\r\n\\.\r\nBEGIN;\r\n") == [("BEGIN", 4, 1)]


def test_the_rest_of_the_copy_line_is_sql() -> None:
    """psql reads the data from the next line, and the rest of the COPY line as SQL."""
    sql = "COPY t FROM stdin; BEGIN;\n1\n\\.\nCOMMIT;\n"
    assert controls(sql) == [("BEGIN", 1, 20), ("COMMIT", 4, 1)]


def test_the_grammar_reads_the_same_copy_data_as_the_reader() -> None:
    """One COPY rule for both readers: check's parse tree sees what up sends."""
    for sql in ("COPY t FROM stdin;\n1\n\\. \nBEGIN;\n", "COPY t FROM stdin; BEGIN;\n1\n\\.\n"):
        parsed = _parser.parse(sql)
        assert len(parsed.statements) == len(statements(sql))


# --- has_statements and the directive header ----------------------------------------------


@pytest.mark.parametrize("sql", ["", "  \n", "-- only\n", "/* a /* b */ */", ";\n;", "\ufeff",
                                 "/* never closed", "-- x\r\n\f\v;"])
def test_comment_only_file_has_no_statements(sql: str) -> None:
    """Whitespace, comments and empty statements are not SQL."""
    assert not has_statements(sql)


@pytest.mark.parametrize("sql", ["-- x\n/* y */ ; SELECT", "SELECT", "-- x\n'open", "; x"])
def test_file_with_sql_has_statements(sql: str) -> None:
    """A single real token is enough."""
    assert has_statements(sql)


def test_header_comments_stop_at_the_first_token() -> None:
    """The `--` comments before the first token, with their lines; later ones are only
    returned when they begin a line and mention the given word."""
    sql = ("-- migcoord:no-transaction\n\n/* block\n  -- not a line comment */\n"
           "--migcoord:depends 000002  \nCREATE INDEX i ON t (c); -- migcoord:after\n"
           "-- migcoord:later\nSELECT '\n-- migcoord:in a string';\n")
    comments = line_comments(sql, mentioning="migcoord")
    assert comments.header == ((1, "-- migcoord:no-transaction"),
                               (5, "--migcoord:depends 000002  "))
    assert comments.body_line == 6
    assert comments.later == ((7, "-- migcoord:later"),)


def test_nested_block_comment_before_the_header_lines() -> None:
    """A nested comment ends where PostgreSQL ends it: what follows is still header."""
    sql = ("/* a\n   /* b */\n   c */\n-- migcoord:no-transaction\n/* x /* y */ z */\n"
           "CREATE INDEX CONCURRENTLY i ON t (c);\n")
    comments = line_comments(sql, mentioning="migcoord")
    assert comments.header == ((4, "-- migcoord:no-transaction"),)
    assert comments.body_line == 6


def test_a_directive_inside_a_nested_comment_is_no_header_line() -> None:
    """Inside a still-open outer comment, a `--` line is comment text, not a directive."""
    sql = "/* a\n/* b */\n-- migcoord:no-transaction\n*/\nSELECT 1;\n"
    assert line_comments(sql, mentioning="migcoord") == line_comments(
        sql.replace("-- migcoord:no-transaction", "x"), mentioning="migcoord")


@pytest.mark.parametrize(
    ("sql", "header", "body_line"),
    [
        ("-- a\n   -- b", ((1, "-- a"), (2, "-- b")), None),
        ("", (), None),
        ("-- a\r\nSELECT 1", ((1, "-- a"),), 2),
        ("-- a -- b\n;", ((1, "-- a -- b"),), 2),
        ("/* c */ -- a\nSELECT 1", ((1, "-- a"),), 2),
        ("-- a\n/* open", ((1, "-- a"),), None),
        ("-- a\n'open", ((1, "-- a"),), 2),
    ],
)
def test_header_of_edge_cases(sql: str, header: tuple[tuple[int, str], ...],
                              body_line: int | None) -> None:
    """Comment-only files, CRLF, a `;` as first token, unterminated quotes and comments."""
    comments = line_comments(sql, mentioning="migcoord")
    assert (comments.header, comments.body_line) == (header, body_line)


def test_a_plain_header_is_read_without_loading_pglast() -> None:
    """A service start-up reads headers of `--` lines and plain block comments without
    loading pglast."""
    code = ("import sys; from migcoord.sql import reader; "
            "c = reader.line_comments('/* c -- */ -- migcoord:no-transaction\\nSELECT 1; BEGIN;',"
            " mentioning='migcoord'); "
            "assert c.header == ((1, '-- migcoord:no-transaction'),) and c.body_line == 2; "
            "assert reader.has_statements('-- x\\nSELECT 1'); "
            "assert reader.transaction_control('CREATE TABLE t (id int)') == (); "
            "assert 'pglast' not in sys.modules, 'loaded'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- transaction control ------------------------------------------------------------------


def test_begin_and_commit_are_reported_with_line_and_column() -> None:
    """BEGIN;/COMMIT; are found where they stand."""
    assert controls("BEGIN;\nCREATE TABLE t (id int);\n  COMMIT;\n") == [
        ("BEGIN", 1, 1), ("COMMIT", 3, 3)]
    assert controls("-- x\n\nbegin transaction isolation level serializable;\nSELECT 1;") == [
        ("BEGIN", 3, 1)]


@pytest.mark.parametrize(
    ("sql", "words"),
    [("START TRANSACTION", "START TRANSACTION"), ("commit", "COMMIT"), ("END", "END"),
     ("ROLLBACK", "ROLLBACK"), ("abort", "ABORT"), ("COMMIT AND CHAIN", "COMMIT"),
     ("COMMIT PREPARED 'x'", "COMMIT PREPARED"), ("ROLLBACK PREPARED 'x'", "ROLLBACK PREPARED"),
     ("PREPARE TRANSACTION 'x'", "PREPARE TRANSACTION"), ("BEGIN WORK", "BEGIN"),
     ("/* c */ END TRANSACTION", "END"), ("ROLLBACK WORK", "ROLLBACK")],
)
def test_transaction_control_statements(sql: str, words: str) -> None:
    """Everything that starts or ends the runner's transaction is found, by name, and
    refused when it is not a whole-file wrapper."""
    [control] = transaction_control(sql)
    assert control.words == words
    [refusal] = explicit_transaction(sql).refused
    assert refusal.control == control
    assert refusal.message.startswith(f"{words} ")


@pytest.mark.parametrize(
    "sql",
    ["SAVEPOINT s", "RELEASE SAVEPOINT s", "ROLLBACK TO SAVEPOINT s", "ROLLBACK TO s",
     "ROLLBACK WORK TO s", "ROLLBACK TRANSACTION TO SAVEPOINT s",
     "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "PREPARE p AS SELECT 1",
     "SELECT 'BEGIN'", "START_TIME", "SELECT begin FROM t", '"begin"', "end$x",
     "-- BEGIN;\n/* COMMIT; */\nSELECT 'BEGIN; COMMIT;';\n"],
)
def test_statements_legal_inside_a_transaction(sql: str) -> None:
    """Savepoints, SET TRANSACTION, names, strings and comments are not transaction control."""
    assert transaction_control(sql) == ()


def test_do_block_and_begin_atomic_are_not_transaction_control() -> None:
    """BEGIN inside bodies (PL/pgSQL or SQL-standard) is never reported."""
    sql = ("DO $$ BEGIN PERFORM 1; END $$;\n"
           "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
           "CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $b$ BEGIN COMMIT; END $b$;\n")
    assert transaction_control(sql) == ()


# --- positions ----------------------------------------------------------------------


def test_line_col_of_an_offset_inside_a_statement() -> None:
    """A server position inside the second statement lands on its file line:col."""
    sql = "SELECT 1;\n-- c\n  SELECT\n    nosuch FROM t;\n"
    statement = statements(sql)[1]
    position = statement.text.index("nosuch") + 1  # 1-based, as the server counts
    assert line_col(sql, statement.start + position - 1) == (4, 5)
    assert (statement.line, statement.column) == (3, 3)


def test_line_index_round_trips_and_rejects_out_of_range() -> None:
    """`offset` inverts `line_col`, and bad offsets raise ValueError."""
    index = LineIndex.of("ab\ncd\n")
    assert index.line_col(4) == (2, 2)
    assert index.offset(2, 2) == 4
    assert index.line_col(6) == (3, 1)
    with pytest.raises(ValueError):
        index.line_col(7)
    with pytest.raises(ValueError):
        line_col("ab", -1)


# --- properties ---------------------------------------------------------------------

_ATOMS = st.sampled_from([
    "select", "x", "t1", "1", ",", "+", "*", "=", ".", "(a)", "(a; b)", "'a;b'", "'it''s;'",
    "E'x\\';'", "U&'q;'", '"i;d"', '"a""b;"', "$$ ; $$", "$t$ ; $$ ; $t$", "$1",
    "/* ; */", "/* /* ; */ ; */", "-- ;\n", "\n", "\r\n", "\t", "a$b", "'é;'", "«é»",
])
_BODIES = st.lists(st.lists(_ATOMS, max_size=8).map(" ".join).map(lambda b: "x " + b),
                   max_size=6)
_NOISE = st.text(alphabet="ab E$'\"-/*;()\\\n\r\t.é", max_size=60)


def _naive_line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, len(before.split("\n")[-1]) + 1


def _non_space(text: str) -> str:
    return "".join(text.split())


@given(_BODIES, st.sampled_from([";", ";\n", " ;\r\n", ";\n-- c\n", "; /* ; */ ;"]))
def test_joined_statements_split_back_without_losing_text(
    bodies: list[str], separator: str
) -> None:
    """Statements joined with `;` split back to the same texts, no character lost."""
    sql = separator.join(bodies)
    found = statements(sql)
    assert [s.text for s in found] == [b.strip(" \t\r\n") for b in bodies]
    assert _non_space("".join(s.text for s in found)) == _non_space("".join(bodies))


_VALUES = st.lists(st.sampled_from([
    "1", "'a;b'", "'it''s;'", "E'x\\';'", "U&'q;'", '"i;d"', "$$ ; $$", "$t$ ; $$ ; $t$",
    "(1)", "1 /* ; */", "1 /* /* ; */ ; */", "1 -- ;\n", "'é;'", "x.end", "1 AS end",
    "CASE WHEN true THEN 1 END",
]), min_size=1, max_size=4).map(", ".join)
_STATEMENTS = st.one_of(
    _VALUES.map(lambda v: f"SELECT {v}"),
    _VALUES.map(lambda v: "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC "
                f"SELECT {v}; SELECT CASE WHEN true THEN 1 END; END"),
    _VALUES.map(lambda v: "CREATE RULE r AS ON INSERT TO t DO ALSO "
                f"(INSERT INTO u SELECT {v}; NOTIFY t)"),
    _VALUES.map(lambda v: f"DO $body$ BEGIN PERFORM {v}; END $body$"),
)


@given(st.lists(_STATEMENTS, max_size=5),
       st.sampled_from([";\n", "; -- c\n", ";/* x */", " ;\r\n", ";;"]))
def test_split_agrees_with_the_grammar(found: list[str], separator: str) -> None:
    """Generated scripts the grammar accepts split exactly as the grammar splits them."""
    sql = separator.join(found)
    assert texts(sql) == grammar_texts(sql)


def test_a_statement_ends_before_the_blanks_after_its_last_comment() -> None:
    """`A-- ` with no line break: the comment is part of the statement, its blanks are not
    (found by the property below)."""
    (found,) = statements("SELECT 1 -- one  \t")
    assert found.text == "SELECT 1 -- one"


@given(_NOISE)
def test_offsets_always_point_at_the_statement_text(sql: str) -> None:
    """For any input: text is file[start:end], starts are real tokens, spans never overlap."""
    previous_end = 0
    for index, statement in enumerate(statements(sql)):
        assert isinstance(statement, Statement)
        assert statement.index == index
        assert sql[statement.start:statement.end] == statement.text
        assert statement.text and statement.text[0] not in " \t\r\n;"
        assert statement.text[-1] not in " \t\r\n"
        assert statement.start >= previous_end
        assert (statement.line, statement.column) == _naive_line_col(sql, statement.start)
        previous_end = statement.end


@given(_NOISE)
def test_resplitting_terminated_statements_is_stable(sql: str) -> None:
    """Re-joining the texts of fully closed statements and splitting again changes nothing."""
    found = statements(sql)
    if any(s.unterminated for s in found):
        return
    again = statements("\n;\n".join(s.text for s in found))
    assert [s.text for s in again] == [s.text for s in found]


@given(_NOISE)
def test_non_space_outside_statements_is_only_trivia(sql: str) -> None:
    """Everything left between statements is whitespace, `;` or comment."""
    cursor = 0
    for statement in [*statements(sql), None]:
        gap = sql[cursor:statement.start if statement else len(sql)]
        assert not has_statements(gap)
        if statement:
            cursor = statement.end


@given(_NOISE)
@example(";\nE")  # the empty statement is the header's end, not the first statement
def test_has_statements_fast_path_agrees_with_the_scanner(sql: str) -> None:
    """has_statements (often decided without the scanner) matches the split, and the
    header (read without the scanner) ends at the scanner's first token, a `;` included."""
    assert has_statements(sql) == bool(statements(sql))
    comments = line_comments(sql, mentioning="zzz")
    found = statements(sql)
    if found and not found[0].unterminated:
        assert comments.body_line == line_col(sql, _scanner.first_token(sql))[0]


@example("/* a /*/ b */ */ c")  # `/*/` opens a nested comment
@example("/*/ a */ b")
@example("/**/ -- x\n/* **/ c")
@example("/* a */*/ c")
@example("-- a\r-- b\n c")
@given(st.text(alphabet="/*-\n\r\t ;a'", max_size=40))
def test_header_read_without_the_scanner_is_what_the_scanner_reads(sql: str) -> None:
    """Where the header is read without the scanner (no nested or open block comment),
    its first token and `--` comments are exactly the scanner's."""
    plain_first = reader._plain_header(sql)
    if plain_first is None:
        return
    plain = (plain_first, reader._line_comments_before(sql, plain_first))
    scanned = _scanner.scan(sql)
    tokens = [t for t in scanned.tokens if t.name not in ("SQL_COMMENT", "C_COMMENT")]
    first = tokens[0].start if tokens else (
        len(sql) if scanned.stopped_at is None else scanned.stopped_at)
    comments = [(t.start, t.end) for t in scanned.tokens
                if t.name == "SQL_COMMENT" and t.start < first]
    assert plain == (first, comments)


@given(_NOISE)
def test_copy_and_routine_words_change_nothing_without_their_keywords(sql: str) -> None:
    """COPY and CREATE FUNCTION split like any statement unless FROM STDIN or BEGIN ATOMIC."""
    def shape(prefix: str) -> list[tuple[str, int, int, bool]]:
        return [(s.text[len(prefix):] if s.index == 0 else s.text, s.start, s.end, s.unterminated)
                for s in statements(prefix + sql)]

    assert shape("copy /* stdin */ ") == shape("xopy /* stdin */ ")
    assert shape("create function /* atomic */ ") == shape("create functiom /* atomic */ ")


@given(st.text(alphabet="a\n\r\t€", max_size=40), st.data())
def test_line_col_agrees_with_naive_count(text: str, data: st.DataObject) -> None:
    """`line_col` and `LineIndex` match counting newlines by hand."""
    offset = data.draw(st.integers(min_value=0, max_value=len(text)))
    expected = _naive_line_col(text, offset)
    assert line_col(text, offset) == expected
    assert LineIndex.of(text).line_col(offset) == expected


_HEADER_PIECES = st.sampled_from([
    "", " ", "\n", "\r\n", "\r", "\t", "-- c\n", "-- c\r\n", "-- c", "/* b */", "/* a /* n */ b */",
    "/*/ x */", "/* unterminated", ";", "\ufeff", "SELECT 1;", "x", "'--'", "-- migrate:up\n"])


@given(st.lists(_HEADER_PIECES, max_size=8).map("".join))
@example("\ufeff-- c\r\n\r\nSELECT 1;")
@example("/* a /* n */ b */\n\n  SELECT 1;")
def test_body_line_is_the_line_comments_say_the_first_token_is_on(text: str) -> None:
    """`reader.body_line` (a boot's and `check`'s shortcut for a file with no directive)
    agrees with the full reading of the header."""
    assert reader.body_line(text) == line_comments(text, mentioning="migcoord").body_line


@given(st.lists(_HEADER_PIECES, max_size=8).map("".join))
def test_a_text_without_directives_reads_as_the_full_reading_of_its_header(text: str) -> None:
    from migcoord.core import directives
    from migcoord.repo.discovery import parse_directives

    comments = line_comments(text, mentioning="migcoord")
    read, problems = directives.parse(comments.header, body_line=comments.body_line,
                                      later=comments.later)
    assert parse_directives(text) == (read, tuple(problems))


@given(st.lists(_HEADER_PIECES, max_size=8).map("".join))
@example("SELECT 1;")
@example(";")
def test_has_statements_agrees_with_the_statements_read(text: str) -> None:
    """`has_statements` (with its shortcut for a text that begins with a letter) says
    what reading the statements says."""
    assert reader.has_statements(text) == bool(reader.statements(text))
