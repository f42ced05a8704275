"""Behaviour of the lexical SQL scanner: splitting, positions, transaction control."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcoord.sql.lexer import (
    LineIndex,
    Statement,
    find_transaction_control,
    first_keywords,
    has_statements,
    is_transaction_control,
    leading_comment_lines,
    line_col,
    split_statements,
    statement_position_to_file,
)


def texts(sql: str) -> list[str]:
    return [s.text for s in split_statements(sql)]


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
    assert [s.index for s in split_statements(";SELECT 1;;SELECT 2;")] == [0, 1]


def test_comment_inside_statement_is_kept() -> None:
    """Comments after the first token stay in the text sent to the server."""
    assert texts("SELECT 1 -- one\n, 2;") == ["SELECT 1 -- one\n, 2"]


def test_semicolon_in_line_comment_does_not_split() -> None:
    """`--` comments run to the end of the line."""
    assert texts("SELECT 1 -- a; b\n+ 1;") == ["SELECT 1 -- a; b\n+ 1"]


def test_semicolon_in_block_comment_does_not_split() -> None:
    """A `/* ; */` comment hides its semicolon."""
    assert texts("SELECT /* ; */ 1; SELECT 2;") == ["SELECT /* ; */ 1", "SELECT 2"]


def test_block_comments_nest() -> None:
    """`/* /* */ ; */` is one comment, as in PostgreSQL."""
    assert texts("SELECT /* a /* b */ ; */ 1; SELECT 2") == [
        "SELECT /* a /* b */ ; */ 1", "SELECT 2"]


def test_semicolon_in_string_does_not_split() -> None:
    """Single-quoted strings with `''` escapes hide semicolons."""
    assert texts("SELECT 'a;b', 'it''s;'; SELECT 2") == ["SELECT 'a;b', 'it''s;'", "SELECT 2"]


def test_backslash_is_literal_in_plain_strings() -> None:
    """standard_conforming_strings is on: `'a\\'` is a complete string."""
    assert texts("SELECT 'a\\'; SELECT 2") == ["SELECT 'a\\'", "SELECT 2"]


def test_e_string_backslash_escapes_quote() -> None:
    """In `E'...'`, `\\'` does not close the string."""
    assert texts("SELECT E'it\\'s; fine'; SELECT 2") == ["SELECT E'it\\'s; fine'", "SELECT 2"]


def test_e_string_escaped_backslash_before_closing_quote() -> None:
    """`E'\\\\'` ends at its second quote."""
    assert texts("SELECT e'\\\\'; SELECT 2") == ["SELECT e'\\\\'", "SELECT 2"]


def test_word_ending_in_e_is_not_an_e_string_prefix() -> None:
    """`somE'..'` is an identifier followed by a plain string, where `\\` is literal."""
    assert texts("SELECT typE'a\\'; SELECT 2") == ["SELECT typE'a\\'", "SELECT 2"]


def test_unicode_escape_string_quotes_like_plain_string() -> None:
    """`U&'...'` uses `''` escapes only."""
    assert texts("SELECT U&'d\\0061t;a'; SELECT 2") == ["SELECT U&'d\\0061t;a'", "SELECT 2"]


def test_semicolon_in_quoted_identifier_does_not_split() -> None:
    """Double-quoted identifiers with `""` escapes hide semicolons."""
    assert texts('SELECT 1 AS "a;""b;"; SELECT 2') == ['SELECT 1 AS "a;""b;"', "SELECT 2"]


def test_anonymous_dollar_quote_hides_semicolons() -> None:
    """`$$ ... $$` bodies are one string."""
    sql = "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql; SELECT 2"
    assert texts(sql) == [sql.split("; SELECT 2")[0], "SELECT 2"]


def test_tagged_dollar_quote_contains_other_dollar_quotes() -> None:
    """`$fn$ ... $$ ... $fn$` closes only at the same tag."""
    sql = "SELECT $fn$ a; $$ b; $$ $fn$; SELECT 2"
    assert texts(sql) == ["SELECT $fn$ a; $$ b; $$ $fn$", "SELECT 2"]


def test_positional_parameter_is_not_a_dollar_quote() -> None:
    """`$1` is a parameter, so the `;` after it ends the statement."""
    assert texts("PREPARE p AS SELECT $1; SELECT $2$a") == ["PREPARE p AS SELECT $1",
                                                          "SELECT $2$a"]


def test_dollar_inside_identifier_is_not_a_quote() -> None:
    """`a$b$` is an identifier: PostgreSQL lets identifiers contain `$`."""
    assert texts("SELECT a$b$; SELECT 2") == ["SELECT a$b$", "SELECT 2"]


def test_semicolon_in_parentheses_does_not_split() -> None:
    """Like psql, multi-action rules `DO ALSO (a; b)` stay whole."""
    sql = "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); NOTIFY t)"
    assert texts(sql + ";SELECT 2") == [sql, "SELECT 2"]


def test_begin_atomic_body_is_one_statement() -> None:
    """A SQL-standard function body keeps its inner semicolons."""
    body = ("CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n"
            "  SELECT 2;\nEND")
    assert texts(body + ";\nSELECT 3;") == [body, "SELECT 3"]


def test_case_inside_begin_atomic_does_not_close_the_block() -> None:
    """`CASE ... END` nests inside `BEGIN ATOMIC ... END`."""
    body = ("CREATE OR REPLACE PROCEDURE p(x int) LANGUAGE sql BEGIN ATOMIC "
            "INSERT INTO t SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END; "
            "INSERT INTO t SELECT case x when 1 then 1 end; END")
    assert texts(body + "; SELECT 3") == [body, "SELECT 3"]


def test_end_used_as_label_does_not_close_begin_atomic() -> None:
    """`t.end` and `AS end` are labels, not the block's END."""
    body = ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC "
            'SELECT t.end AS end FROM t; SELECT 2; END')
    assert texts(body + "; SELECT 3") == [body, "SELECT 3"]


def test_begin_atomic_outside_routine_is_not_tracked() -> None:
    """Only CREATE FUNCTION/PROCEDURE statements open BEGIN ATOMIC blocks."""
    assert texts("SELECT 1 AS begin; SELECT 2") == ["SELECT 1 AS begin", "SELECT 2"]


def test_plpgsql_do_block_is_one_statement() -> None:
    """`DO $$ BEGIN ... END $$` is a string, whatever it holds."""
    sql = "DO $$\nBEGIN\n  PERFORM 1;\n  COMMIT;\nEND\n$$"
    assert texts(sql + ";\nSELECT 2;") == [sql, "SELECT 2"]


def test_copy_from_stdin_data_belongs_to_the_statement() -> None:
    """Data lines up to `\\.` are the COPY statement's data, not statements."""
    sql = "COPY t (a, b) FROM stdin;\n1\tx; DROP TABLE t;\n2\t'y\n\\.\nSELECT 2;\n"
    copy, after = split_statements(sql)
    assert copy.text == "COPY t (a, b) FROM stdin"
    assert copy.copy_data == "1\tx; DROP TABLE t;\n2\t'y\n"
    assert copy.copy_data_start == sql.index("1\t")
    assert not copy.unterminated
    assert (after.text, after.line) == ("SELECT 2", 5)


def test_copy_from_stdin_with_comment_between_keywords() -> None:
    """`FROM /* c */ STDIN` is still COPY FROM STDIN."""
    sql = "copy t from /* c */ STDIN with (format csv);\na;b\n\\.\nSELECT 2"
    assert [(s.text, s.copy_data) for s in split_statements(sql)] == [
        ("copy t from /* c */ STDIN with (format csv)", "a;b\n"), ("SELECT 2", None)]


def test_copy_to_stdout_has_no_data_block() -> None:
    """Only FROM STDIN reads data lines."""
    assert texts("COPY t TO stdout;\nSELECT 2;") == ["COPY t TO stdout", "SELECT 2"]


def test_copy_data_without_end_marker_is_unterminated() -> None:
    """A missing `\\.` line takes the rest of the file and is flagged."""
    [copy] = split_statements("COPY t FROM stdin;\n1\n2\n")
    assert (copy.copy_data, copy.unclosed) == ("1\n2\n", "COPY data")


def test_crlf_line_endings() -> None:
    """CRLF files split the same way and report the same line:col as LF files."""
    sql = "-- c\r\nSELECT 1;\r\n  SELECT 'a\r\n;';\r\n"
    first, second = split_statements(sql)
    assert (first.text, first.line, first.column) == ("SELECT 1", 2, 1)
    assert (second.text, second.line, second.column) == ("SELECT 'a\r\n;'", 3, 3)
    assert leading_comment_lines(sql) == [(1, "c")]


def test_byte_order_mark_is_skipped() -> None:
    """A UTF-8 BOM at the start is not part of the first statement."""
    [statement] = split_statements("\ufeffSELECT 1;")
    assert (statement.text, statement.start, statement.column) == ("SELECT 1", 1, 2)


@pytest.mark.parametrize(
    ("sql", "unclosed"),
    [
        ("SELECT 'abc; SELECT 2;", "string"),
        ("SELECT E'abc\\'; SELECT 2;", "string"),
        ('SELECT "abc; SELECT 2;', "quoted identifier"),
        ("SELECT $x$abc; SELECT 2;", "dollar-quoted string $x$"),
        ("SELECT /* /* */ 1; SELECT 2;", "block comment"),
        ("SELECT (1; SELECT 2;", "parenthesis"),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;",
         "BEGIN ATOMIC block"),
    ],
)
def test_unterminated_construct_takes_the_rest_of_the_file(sql: str, unclosed: str) -> None:
    """An unclosed quote, comment or block ends in one flagged statement, never a crash."""
    [statement] = split_statements(sql)
    assert statement.text == sql
    assert statement.unterminated
    assert statement.unclosed == unclosed
    assert statement.unclosed_at is not None
    assert sql[statement.unclosed_at] in "'\"$/(B"


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true "
        "THEN 1 END; SELECT 2; END; SELECT 3;",
        "SELECT E'it\\'s;'; SELECT 'a\\'; select $$;$$, $t$;$$;$t$; select /* /* ; */ ; */ 1;",
        "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); NOTIFY t); SELECT 1",
        "DO $$ BEGIN PERFORM 1; END $$; select U&'d\\0061t;a', \"a;\"\"b\" from t;",
    ],
)
def test_split_agrees_with_postgresql_parser(sql: str) -> None:
    """Where pglast (PostgreSQL's own parser) is installed, both split alike."""
    pglast = pytest.importorskip("pglast")
    assert texts(sql) == [part.strip() for part in pglast.split(sql, with_parser=True)]


def test_ten_thousand_statements() -> None:
    """A large file splits into every statement, with the right last line."""
    sql = "".join(f"INSERT INTO t VALUES ({i}, 'v;{i}');\n" for i in range(10_000))
    statements = split_statements(sql)
    assert len(statements) == 10_000
    last = statements[-1]
    assert (last.index, last.line, last.text) == (
        9_999, 10_000, "INSERT INTO t VALUES (9999, 'v;9999')")


# --- has_statements and leading comments --------------------------------------------


@pytest.mark.parametrize("sql", ["", "  \n", "-- only\n", "/* a /* b */ */", ";\n;", "\ufeff"])
def test_comment_only_file_has_no_statements(sql: str) -> None:
    """Whitespace, comments and empty statements are not SQL."""
    assert not has_statements(sql)


def test_file_with_sql_has_statements() -> None:
    """A single real token is enough."""
    assert has_statements("-- x\n/* y */ ; SELECT")


def test_leading_comment_lines_stop_at_first_statement() -> None:
    """Only `--` lines before the first statement, with their line numbers."""
    sql = ("-- migcoord:no-transaction\n\n/* block\n  -- not a line comment */\n"
           "--migcoord:depends 000002  \nCREATE INDEX i ON t (c); -- after\n-- later\n")
    assert leading_comment_lines(sql) == [(1, "migcoord:no-transaction"),
                                          (5, "migcoord:depends 000002")]


def test_leading_comment_lines_of_comment_only_file() -> None:
    """A file without statements returns all its `--` lines."""
    assert leading_comment_lines("-- a\n   -- b") == [(1, "a"), (2, "b")]


# --- keywords and transaction control ------------------------------------------------


def test_first_keywords_skip_comments_and_stop_at_non_words() -> None:
    """Bare words only, upper-cased; names, numbers and string prefixes stop the list."""
    assert first_keywords("/* x */ create -- y\n index concurrently i") == (
        "CREATE", "INDEX", "CONCURRENTLY")
    assert first_keywords("SELECT 1") == ("SELECT",)
    assert first_keywords("SELECT E'x'") == ("SELECT",)
    assert first_keywords("ALTER TABLE public.t", limit=5) == ("ALTER", "TABLE")
    assert first_keywords("") == ()


def test_begin_and_commit_are_reported_with_line_and_column() -> None:
    """BEGIN;/COMMIT; are found where they stand."""
    sql = "BEGIN;\nCREATE TABLE t (id int);\n  COMMIT;\n"
    found = find_transaction_control(sql)
    assert [(s.text, s.line, s.column) for s in found] == [("BEGIN", 1, 1), ("COMMIT", 3, 3)]


def test_begin_with_isolation_level_is_reported() -> None:
    """Lower-case `begin transaction isolation level serializable` counts too."""
    sql = "-- x\n\nbegin transaction isolation level serializable;\nSELECT 1;"
    [found] = find_transaction_control(sql)
    assert (found.line, found.column) == (3, 1)
    assert first_keywords(found)[:2] == ("BEGIN", "TRANSACTION")


@pytest.mark.parametrize(
    "sql",
    ["START TRANSACTION", "commit", "END", "ROLLBACK", "abort", "COMMIT AND CHAIN",
     "COMMIT PREPARED 'x'", "ROLLBACK PREPARED 'x'", "PREPARE TRANSACTION 'x'", "BEGIN WORK"],
)
def test_transaction_control_statements(sql: str) -> None:
    """Everything that starts or ends the runner's transaction is reported."""
    assert is_transaction_control(sql)


@pytest.mark.parametrize(
    "sql",
    ["SAVEPOINT s", "RELEASE SAVEPOINT s", "ROLLBACK TO SAVEPOINT s", "ROLLBACK TO s",
     "ROLLBACK WORK TO s", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "PREPARE p AS SELECT 1",
     "BEGIN ATOMIC", "SELECT 'BEGIN'", "START_TIME"],
)
def test_statements_legal_inside_a_transaction(sql: str) -> None:
    """Savepoints, SET TRANSACTION and look-alikes are not transaction control."""
    assert not is_transaction_control(sql)


def test_do_block_and_begin_atomic_are_not_transaction_control() -> None:
    """BEGIN inside bodies (PL/pgSQL or SQL-standard) is never reported."""
    sql = ("DO $$ BEGIN PERFORM 1; END $$;\n"
           "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
           "CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $b$ BEGIN COMMIT; END $b$;\n")
    assert find_transaction_control(sql) == []


# --- positions ----------------------------------------------------------------------


def test_statement_position_maps_to_file_line_and_column() -> None:
    """A server position inside the second statement lands on its file line:col."""
    sql = "SELECT 1;\n-- c\n  SELECT\n    nosuch FROM t;\n"
    statement = split_statements(sql)[1]
    position = statement.text.index("nosuch") + 1
    assert statement_position_to_file(statement, position, sql) == (4, 5)
    assert statement_position_to_file(statement, position, LineIndex.of(sql)) == (4, 5)


def test_statement_position_past_end_maps_to_statement_end() -> None:
    """Positions past the end ("at end of input") are clamped to the statement."""
    sql = "SELECT (1\n;"
    [statement] = split_statements(sql)
    assert statement_position_to_file(statement, 999, sql) == line_col(sql, statement.end)
    assert statement_position_to_file(statement, 0, sql) == (1, 1)


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
    "/* ; */", "/* /* ; */ ; */", "-- ;\n", "\n", "\r\n", "\t", "a$b",
])
_BODIES = st.lists(st.lists(_ATOMS, max_size=8).map(" ".join).map(lambda b: "x " + b),
                   max_size=6)
_NOISE = st.text(alphabet="ab E$'\"-/*;()\\\n\r\t.", max_size=60)


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
    statements = split_statements(sql)
    assert [s.text for s in statements] == [b.strip(" \t\r\n") for b in bodies]
    assert _non_space("".join(s.text for s in statements)) == _non_space("".join(bodies))


@given(_NOISE)
def test_offsets_always_point_at_the_statement_text(sql: str) -> None:
    """For any input: text is file[start:end], starts are real tokens, spans never overlap."""
    previous_end = 0
    for index, statement in enumerate(split_statements(sql)):
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
    statements = split_statements(sql)
    if any(s.unterminated for s in statements):
        return
    again = split_statements("\n;\n".join(s.text for s in statements))
    assert [s.text for s in again] == [s.text for s in statements]


@given(_NOISE)
def test_non_space_outside_statements_is_only_trivia(sql: str) -> None:
    """Everything left between statements is whitespace, `;` or comment."""
    cursor = 0
    for statement in [*split_statements(sql), None]:
        gap = sql[cursor:statement.start if statement else len(sql)]
        assert not has_statements(gap)
        if statement:
            cursor = statement.end


@given(_NOISE)
def test_keyword_tracking_changes_nothing_without_its_keywords(sql: str) -> None:
    """COPY and CREATE FUNCTION split like any statement unless FROM STDIN or BEGIN ATOMIC."""
    def shape(prefix: str) -> list[tuple[str, int, int, str | None, int | None]]:
        return [(s.text[len(prefix):] if s.index == 0 else s.text, s.start, s.end,
                 s.unclosed, s.unclosed_at)
                for s in split_statements(prefix + sql)]

    assert shape("copy /* stdin */ ") == shape("xopy /* stdin */ ")
    assert shape("create function /* atomic */ ") == shape("create functiom /* atomic */ ")


@given(st.text(alphabet="a\n\r\t€", max_size=40), st.data())
def test_line_col_agrees_with_naive_count(text: str, data: st.DataObject) -> None:
    """`line_col` and `LineIndex` match counting newlines by hand."""
    offset = data.draw(st.integers(min_value=0, max_value=len(text)))
    expected = _naive_line_col(text, offset)
    assert line_col(text, offset) == expected
    assert LineIndex.of(text).line_col(offset) == expected
