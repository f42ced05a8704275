"""What a migration file's transaction control means (migcoord.sql.transactions): the
whole-file `BEGIN; ... COMMIT;` wrapper, what is refused and why, and the body that runs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migcoord.sql.reader import statements, transaction_control
from migcoord.sql.transactions import explicit_transaction


def refused(sql: str, *, no_transaction: bool = False) -> list[tuple[str, int]]:
    return [(r.control.words, r.line)
            for r in explicit_transaction(sql, no_transaction=no_transaction).refused]


@pytest.mark.parametrize(
    "sql",
    ["BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n",
     "-- golang-migrate's README\n/* one transaction */\nBEGIN TRANSACTION;\nSELECT 1;\nEND;\n-- done\n",
     "start transaction isolation level serializable;\nSELECT 1;\ncommit work;",
     "BEGIN WORK;SELECT 1;COMMIT AND NO CHAIN",
     "BEGIN;\r\nSAVEPOINT s;\r\nSELECT 1;\r\nROLLBACK TO SAVEPOINT s;\r\nCOMMIT;\r\n",
     "BEGIN;\nDO $$ BEGIN PERFORM 1; END $$;\n"
     "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nCOMMIT;\n",
     ";;BEGIN;;\nSELECT 1;;\nCOMMIT;;\n",
     "BEGIN;\nCOMMIT;\n"],
)
def test_a_whole_file_wrapper_is_accepted(sql: str) -> None:
    """First statement BEGIN/START TRANSACTION, last COMMIT/END, nothing else controlling
    the transaction, comments and empty statements around: golang-migrate's README form."""
    found = explicit_transaction(sql)
    assert found.refused == ()
    assert found.wrapper is not None
    assert (found.wrapper.begin.index, found.wrapper.commit.index) == (0, len(statements(sql)) - 1)


@pytest.mark.parametrize(
    ("sql", "where"),
    [("BEGIN;\nSELECT 1;\n", [("BEGIN", 1)]),
     ("SELECT 1;\nCOMMIT;\n", [("COMMIT", 2)]),
     ("SELECT 0;\nBEGIN;\nSELECT 1;\nCOMMIT;\n", [("BEGIN", 2), ("COMMIT", 4)]),
     ("BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 2;\n", [("BEGIN", 1), ("COMMIT", 3)]),
     ("BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;\n",
      [("BEGIN", 1), ("COMMIT", 3), ("BEGIN", 4), ("COMMIT", 6)]),
     ("BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;\nCOMMIT;\n",
      [("BEGIN", 1), ("BEGIN", 2), ("COMMIT", 4), ("COMMIT", 5)]),
     ("BEGIN;\nSELECT 1;\nROLLBACK;\n", [("BEGIN", 1), ("ROLLBACK", 3)]),
     ("BEGIN;\nSELECT 1;\nABORT;\n", [("BEGIN", 1), ("ABORT", 3)]),
     ("BEGIN;\nSELECT 1;\nCOMMIT AND CHAIN;\n", [("BEGIN", 1), ("COMMIT", 3)]),
     ("BEGIN;\nSELECT 1;\nEND TRANSACTION AND CHAIN;\n", [("BEGIN", 1), ("END", 3)]),
     ("BEGIN;\nSELECT 1;\nPREPARE TRANSACTION 'x';\n", [("BEGIN", 1), ("PREPARE TRANSACTION", 3)]),
     ("BEGIN;\nSELECT 1;\nCOMMIT;\nCOMMIT PREPARED 'x';\n",
      [("BEGIN", 1), ("COMMIT", 3), ("COMMIT PREPARED", 4)]),
     ("COMMIT;\nSELECT 1;\nBEGIN;\n", [("COMMIT", 1), ("BEGIN", 3)]),
     ("BEGIN;\nSELECT 1;\nCOMMIT;\nSELECT 'unterminated\n",
      [("BEGIN", 1), ("COMMIT", 3)])],
)
def test_transaction_control_that_does_not_wrap_the_whole_file_is_refused(
        sql: str, where: list[tuple[str, int]]) -> None:
    """Every control statement of a file that is not exactly one wrapper is refused."""
    assert refused(sql) == where
    assert explicit_transaction(sql).wrapper is None


def test_each_kind_of_refusal_says_why_and_what_to_do() -> None:
    """The message names what the statement would do; the hint is the fix."""
    def said(sql: str) -> tuple[str, str]:
        [refusal] = explicit_transaction(sql).refused
        return refusal.message, refusal.hint

    message, hint = said("SELECT 1;\nCOMMIT;\n")
    assert message.startswith("COMMIT would commit part of this migration before its history row")
    assert hint.startswith("delete it") and "BEGIN; ... COMMIT;" in hint
    message, hint = said("SELECT 1;\nBEGIN;\n")
    assert "does not wrap the whole file" in message
    assert "BEGIN as the first statement, COMMIT as the last" in hint
    message, hint = said("SELECT 1;\nROLLBACK;\n")
    assert "SAVEPOINT" in hint
    message, hint = said("SELECT 1;\nPREPARE TRANSACTION 'x';\n")
    assert "prepared transaction while its history row records it applied" in message
    assert "two-phase commit" in hint
    message, hint = said("ROLLBACK PREPARED 'x';\n")
    assert "finishes a prepared transaction" in message


def test_a_wrapper_in_a_no_transaction_file_is_refused_asking_to_choose() -> None:
    """The directive asks for statement by statement, the wrapper for one transaction."""
    sql = "BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (a);\nCOMMIT;\n"
    assert refused(sql, no_transaction=True) == [("BEGIN", 1), ("COMMIT", 3)]
    refusal = explicit_transaction(sql, no_transaction=True).refused[0]
    assert "`-- migcoord:no-transaction`" in refusal.message
    assert refusal.hint.startswith("choose one: delete the `-- migcoord:no-transaction` line")
    # Other transaction control in such a file is refused for what it is.
    assert refused("SELECT 1;\nCOMMIT;\n", no_transaction=True) == [("COMMIT", 2)]


def test_the_wrapper_body_keeps_every_position_of_the_file() -> None:
    """The body is the file with BEGIN and COMMIT blanked: same length, same lines and
    columns, so the server's error positions still point into the file as written."""
    sql = "-- intro\nBEGIN /* go */;\r\n  CREATE TABLE t (id int);\nSELECT 'x';\nCOMMIT -- end\n;\n"
    found = explicit_transaction(sql)
    body = found.body(sql)
    assert len(body) == len(sql)
    assert [line.strip(" ") for line in body.split("\n")] == [
        "-- intro", ";\r", "CREATE TABLE t (id int);", "SELECT 'x';", "", ";", ""]
    assert [(s.text, s.line, s.column) for s in statements(body)] == [
        ("CREATE TABLE t (id int)", 3, 3), ("SELECT 'x'", 4, 1)]
    assert transaction_control(body) == ()
    assert explicit_transaction("SELECT 1;\n").body("SELECT 1;\n") == "SELECT 1;\n"


@pytest.mark.parametrize(
    ("begin", "modes"),
    [("BEGIN", ""), ("begin work", ""), ("START TRANSACTION", ""),
     ("BEGIN ISOLATION LEVEL SERIALIZABLE", "ISOLATION LEVEL SERIALIZABLE"),
     ("BEGIN TRANSACTION /* strict */ ISOLATION LEVEL REPEATABLE READ, READ ONLY -- x\n",
      "ISOLATION LEVEL REPEATABLE READ , READ ONLY"),
     ("start transaction read write, not deferrable", "read write , not deferrable")],
)
def test_the_wrapper_keeps_the_transaction_modes_of_its_begin(begin: str, modes: str) -> None:
    """The body runs with the isolation level and access mode its BEGIN asked for."""
    wrapper = explicit_transaction(f"{begin};\nSELECT 1;\nCOMMIT;\n").wrapper
    assert wrapper is not None
    assert wrapper.modes == modes


_BODY_STATEMENTS = st.lists(st.sampled_from([
    "CREATE TABLE IF NOT EXISTS t (id int)", "SAVEPOINT s", "ROLLBACK TO SAVEPOINT s",
    "RELEASE s", "DO $$ BEGIN PERFORM 1; END $$", "SELECT 'COMMIT;'", "-- COMMIT;\nSELECT 1",
    "SET LOCAL lock_timeout = '1s'", "COMMENT ON TABLE t IS 'end'"]), max_size=5)
_AROUND = st.sampled_from(["", "\n", "-- c\n", "/* c */ ", "/* a /* nested */ b */\n", ";\n"])


@given(_AROUND, st.sampled_from(["BEGIN", "BEGIN WORK", "START TRANSACTION", "begin transaction"]),
       _BODY_STATEMENTS, st.sampled_from(["COMMIT", "END", "commit work", "COMMIT AND NO CHAIN"]),
       _AROUND)
def test_any_whole_file_wrapper_is_accepted_and_its_body_is_the_rest(
        before: str, begin: str, body: list[str], commit: str, after: str) -> None:
    """Whatever the body (savepoints, DO blocks, strings and comments that mention
    COMMIT), the wrapper is accepted and its body holds exactly the body's statements."""
    sql = before + begin + ";\n" + "".join(f"{statement};\n" for statement in body) + commit + ";" + after
    found = explicit_transaction(sql)
    assert found.refused == ()
    assert [s.text for s in statements(found.body(sql))] == [s.text for s in statements(sql)][1:-1]


def test_what_releases_the_migration_lock_is_refused_even_inside_a_wrapper() -> None:
    """DISCARD ALL and pg_advisory_unlock_all() end every advisory lock of the session;
    DISCARD TEMP and a mere mention in a comment do not."""
    sql = ("BEGIN;\nDISCARD TEMP;\n-- pg_advisory_unlock_all is not called here\n"
           "SELECT 1;\nDO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$;\nCOMMIT;\n")
    found = explicit_transaction(sql)
    assert found.wrapper is not None
    assert [(r.control.words, r.line) for r in found.refused] == [
        ("pg_advisory_unlock_all()", 5)]
    assert "migration lock" in found.refused[0].message
    assert refused("SELECT 1;\ndiscard   all;\n", no_transaction=True) == [("DISCARD ALL", 2)]
    assert refused("DISCARD PLANS;\nDISCARD SEQUENCES;\n") == []
