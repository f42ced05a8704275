"""A migration in one transaction is one round trip: BEGIN, the lock check, the timeouts,
the file, the settings put back, the history row and COMMIT in one simple query. What
the server must check before COMMIT, it checks inside that query. Against the real
server; round trips are counted from libpq's protocol trace, never timed.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import pq

from helpers import make_tree, pair, run
from migcoord import Coordinator, MigrationFailed
from test_engine_support import AB_CONFIG, env, events, history, history_versions, query

TRIVIAL = "CREATE TABLE t_{v} (id int);\nINSERT INTO t_{v} VALUES (1);\n"


def trivial_tree(root: Path, count: int) -> Path:
    files: dict[str, str] = {}
    for version in range(1, count + 1):
        files.update(pair("a", f"{version:06d}", f"m{version}", TRIVIAL.format(v=version),
                          f"DROP TABLE t_{version};\n"))
    return make_tree(root, files, config=AB_CONFIG)


@contextlib.contextmanager
def tracing(conn: psycopg.Connection) -> Iterator[list[str]]:
    """libpq's protocol trace of `conn` inside the block: the list gets its messages (a
    query's text may span lines) when the block ends."""
    messages: list[str] = []
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield messages
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        messages.extend(re.split(r"\n(?=[FB]\t\d+\t)", trace.read()))


def up_round_trips(root: Path, dsn: str) -> int:
    """How many exchanges with the server `up` makes (each ends with ReadyForQuery)."""
    with psycopg.connect(dsn, autocommit=True) as conn, tracing(conn) as lines:
        Coordinator.load(root / "migcoord.toml", environ={}).up("a", conn=conn)
    return sum(1 for line in lines if "\tReadyForQuery\t" in line)


def test_each_further_migration_costs_one_round_trip(
        tmp_path: Path, dsn: str, other_dsn: str) -> None:
    """Five migrations take three more round trips than two: one per migration, each
    still committed with its own history row and event."""
    two = up_round_trips(trivial_tree(tmp_path / "two", 2), dsn)
    five = up_round_trips(trivial_tree(tmp_path / "five", 5), other_dsn)

    assert five - two == 3, (two, five)
    assert history_versions(other_dsn) == [1, 2, 3, 4, 5]
    assert [e["version"] for e in events(other_dsn) if e["action"] == "up"] == [1, 2, 3, 4, 5]
    assert all(row["duration_ms"] >= 0 for row in history(other_dsn))


def test_the_one_query_holds_begin_the_file_the_record_and_commit(
        tmp_path: Path, dsn: str) -> None:
    """The migration's query starts with BEGIN and ends with COMMIT, around its file, and
    then asks whether the file changed a setting of the session (db/settings)."""
    root = trivial_tree(tmp_path, 1)
    with psycopg.connect(dsn, autocommit=True) as conn, tracing(conn) as lines:
        Coordinator.load(root / "migcoord.toml", environ={}).up("a", conn=conn)

    sent = [line for line in lines if "\tQuery\t" in line and "CREATE TABLE t_1" in line]
    assert len(sent) == 1
    text = sent[0].split("\tQuery\t", 1)[1].strip(' "')
    assert text.startswith("BEGIN")
    assert text.endswith("AS migcoord_settings_changed")
    assert text.rsplit(";", 1)[0].endswith("COMMIT")
    assert "INSERT INTO" in text and "migcoord_history" in text


DEFERRED = """\
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
INSERT INTO child VALUES (42);
"""


def test_a_commit_the_server_refuses_fails_the_migration_and_records_nothing(
        tmp_path: Path, dsn: str) -> None:
    """A deferred foreign key checked at COMMIT: the migration fails with the server's
    reason, nothing of it stays, and the migrations before it stay applied."""
    root = make_tree(tmp_path, {
        **pair("a", "000001", "fine", "CREATE TABLE fine (id int);\n", "DROP TABLE fine;\n"),
        **pair("a", "000002", "deferred", DEFERRED, "DROP TABLE child, parent;\n"),
    }, config=AB_CONFIG)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result.stderr
    assert "the COMMIT failed, so the transaction was rolled back" in result.stderr
    assert "23503" in result.stderr or "foreign key" in result.stderr
    assert "Traceback" not in result.stderr
    assert history_versions(dsn) == [1]
    assert query(dsn, "SELECT to_regclass('child') IS NULL") == [(True,)]
    assert [e["action"] for e in events(dsn)][-1] == "up-failed"


def test_a_commit_failure_leaves_the_callers_connection_usable(
        tmp_path: Path, dsn: str) -> None:
    """After the refused COMMIT the caller's connection is idle, outside a transaction."""
    root = make_tree(tmp_path, pair("a", "000001", "deferred", DEFERRED, "SELECT 1;\n"),
                     config=AB_CONFIG)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(MigrationFailed, match="COMMIT failed"):
            Coordinator.load(root / "migcoord.toml", environ={}).up("a", conn=conn)
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        assert conn.execute("SELECT 1").fetchone() == (1,)


CALLER_LOCK_TIMEOUT = "SET lock_timeout = '7s'"


@pytest.mark.parametrize("change", [
    "SET lock_timeout = '1min';\n",
    "SET statement_timeout = '1min';\n",
    "SELECT set_config('search_path', 'pg_catalog', false);\n",
    "SELECT set_config('work_mem', '77MB', false);\n",
])
def test_a_single_session_change_is_put_back_for_the_caller(
        tmp_path: Path, dsn: str, change: str) -> None:
    """Whether a migration changes one of the timeouts migcoord itself sets for it, or
    another parameter through a function call rather than SET, the caller's session
    comes back as it was."""
    root = make_tree(tmp_path, pair("a", "000001", "changes",
                                    "CREATE TABLE changed (id int);\n" + change,
                                    "SELECT 1;\n"), config=AB_CONFIG)
    shown = ("SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), "
             "current_setting('search_path'), current_setting('work_mem')")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(CALLER_LOCK_TIMEOUT)
        before = conn.execute(shown).fetchone()

        Coordinator.load(root / "migcoord.toml", environ={}).up("a", conn=conn)

        assert conn.execute(shown).fetchone() == before
        assert before is not None and before[0] == "7s"


def test_a_change_made_by_a_trigger_does_not_reach_the_next_migration(
        tmp_path: Path, dsn: str) -> None:
    """A parameter set by a function a trigger calls (nothing in the file says SET) is
    put back before the next migration runs."""
    first = """\
CREATE TABLE audit (id int);
CREATE FUNCTION audit_sets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('search_path', 'pg_catalog', false);
  RETURN NEW;
END $$;
CREATE TRIGGER audit_sets AFTER INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_sets();
INSERT INTO audit VALUES (1);
"""
    second = "CREATE TABLE seen AS SELECT current_setting('search_path') AS search_path;\n"
    root = make_tree(tmp_path, {
        **pair("a", "000001", "trigger", first, "SELECT 1;\n"),
        **pair("a", "000002", "sees", second, "SELECT 1;\n"),
    }, config=AB_CONFIG)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert query(dsn, "SELECT search_path FROM public.seen") == [('"$user", public',)]


@pytest.mark.parametrize("conforming", ["on", "off"])
def test_a_name_with_quotes_and_backslashes_is_recorded_as_it_is(
        tmp_path: Path, dsn: str, conforming: str) -> None:
    """The history row's literals hold a name's quote and backslash exactly, whatever the
    session's standard_conforming_strings."""
    name = "o'brien\\n_x"
    root = make_tree(tmp_path, pair("a", "000001", name, "CREATE TABLE quoted (id int);\n",
                                    "DROP TABLE quoted;\n"), config=AB_CONFIG)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SET standard_conforming_strings = {conforming}")
        Coordinator.load(root / "migcoord.toml", environ={}).up("a", conn=conn)

    assert [row["name"] for row in history(dsn)] == [name]
    assert [e["name"] for e in events(dsn) if e["action"] == "up"] == [name]
