"""`COPY ... FROM STDIN` (rows inline, psql style) and `COPY ... TO STDOUT` need a client
taking part: `check` reports them (`client-copy`, file:line) and `up`/`down` refuse the
file before anything is sent, on the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_tree, pair, run
from test_engine_support import AB_CONFIG, env, history, table_exists

CREATE = "CREATE TABLE IF NOT EXISTS channels (id int, name text);\n"
INLINE = CREATE + "COPY channels (id, name) FROM stdin;\n1\temail\n2\tsms\n\\.\n"


def client_copies(root: Path) -> list[tuple[str, int | None]]:
    result = run(["check", "--format", "json"], cwd=root)
    assert "Traceback" not in result.stderr
    return [(Path(f["path"]).name, f["line"]) for f in result.json()["findings"]
            if f["code"] == "client-copy"]


@pytest.mark.parametrize("up", [
    INLINE,
    "\ufeff" + INLINE.replace("\n", "\r\n"),  # a BOM and CRLF, as an editor on Windows saves
    CREATE + "COPY channels FROM STDIN WITH (FORMAT csv);\n",  # no rows at all
    CREATE + "copy channels from stdin",  # no `;`, lower case
])
def test_check_reports_copy_from_stdin_at_its_line(tmp_path: Path, up: str) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "channels", up,
                                    "DROP TABLE IF EXISTS channels;\n"), config=AB_CONFIG)
    assert client_copies(root) == [("000001_channels.up.sql", 2)]
    result = run(["check"], cwd=root)
    assert result.code == 1
    assert "000001_channels.up.sql:2:1: error: client-copy:" in result.stdout
    assert "INSERT INTO" in result.stdout


@pytest.mark.parametrize("sql", [
    "COPY channels FROM '/var/lib/postgresql/channels.csv';\n",
    "COPY channels (stdin) TO '/tmp/x';\n",
    "COPY (SELECT stdin FROM x) TO '/tmp/out';\n",
    "SELECT 'COPY t FROM stdin';\n-- COPY t TO STDOUT;\n",
])
def test_copy_with_a_server_file_is_not_reported(tmp_path: Path, sql: str) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "load", sql), config=AB_CONFIG)
    assert client_copies(root) == []


def test_up_refuses_inline_copy_data_before_anything_runs(tmp_path: Path, dsn: str) -> None:
    """The CREATE TABLE before the COPY is not run either; the fix the hint gives works."""
    root = make_tree(tmp_path, pair("a", "000001", "channels", INLINE,
                                    "DROP TABLE IF EXISTS channels;\n"), config=AB_CONFIG)
    refused = run(["up", "--all", "--format", "json"], cwd=root, environ=env(dsn))
    assert refused.code == 1, refused.stderr
    assert "client-copy" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.json()["error"]["type"] == "InvalidMigrationFiles"
    assert not table_exists(dsn, "channels")
    assert history(dsn) == []

    up = root / "a/migrations/000001_channels.up.sql"
    up.write_text(CREATE + "INSERT INTO channels (id, name) VALUES (1, 'email'), (2, 'sms');\n")
    assert run(["check"], cwd=root).code == 0
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert [row["version"] for row in history(dsn)] == [1]


@pytest.mark.parametrize("copy", ["COPY channels FROM stdin;\n",
                                  "COPY (SELECT 1) TO STDOUT;\n"])
def test_a_copy_without_rows_is_refused_not_a_traceback(tmp_path: Path, dsn: str,
                                                       copy: str) -> None:
    """Sent to the server, these left the connection inside a copy (and a traceback)."""
    root = make_tree(tmp_path, pair("a", "000001", "channels", CREATE + copy),
                     config=AB_CONFIG)
    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "client-copy" in refused.stderr and "Traceback" not in refused.stderr
    assert not table_exists(dsn, "channels")


def test_down_refuses_copy_to_stdout_and_the_migration_stays_applied(
        tmp_path: Path, dsn: str) -> None:
    root = make_tree(tmp_path, pair("a", "000001", "channels", CREATE,
                                    "COPY channels TO STDOUT;\nDROP TABLE channels;\n"),
                     config=AB_CONFIG)
    # The down file's error does not stop up, which does not read it.
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    refused = run(["down", "--service", "a"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "000001_channels.down.sql:1:1: error: client-copy" in refused.stderr
    assert table_exists(dsn, "channels")
    assert [row["version"] for row in history(dsn)] == [1]


def test_the_script_runner_names_a_copy_the_server_started(dsn: str) -> None:
    """Behind the file check, the one-query runner still says what the server answered
    (a COPY reached through other means), not an AttributeError."""
    import psycopg

    from migcoord.db import script

    with psycopg.connect(dsn, autocommit=True) as conn:
        with pytest.raises(psycopg.ProgrammingError, match="COPY_OUT"):
            script.run(conn, "COPY (SELECT 1) TO STDOUT; SELECT 2")
        with pytest.raises(psycopg.ProgrammingError, match="COPY_IN"):
            script.run(conn, "CREATE TEMP TABLE x (id int); COPY x FROM STDIN")
        # The session is usable again.
        answer = script.run(conn, "SELECT 3 AS three")
        assert (answer.column, answer.value) == ("three", "3")
