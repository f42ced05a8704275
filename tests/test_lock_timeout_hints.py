"""The hints of a lock timeout work when followed, in the order they are given: a
concurrent index build left dirty leads with its repair, and a file that already sets
its lock_timeout is told to change that line (a second one is an error)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from helpers import make_tree, pair, run
from test_engine_support import AB_CONFIG, env, execute, history, query, with_params

RETRY_ONCE = """\
[ddl]
retries = 0

""" + AB_CONFIG


@pytest.fixture
def writer(dsn: str) -> Iterator[psycopg.Connection]:
    """An application session that wrote to `t` and keeps its transaction open (a
    concurrent index build waits for it to end)."""
    execute(dsn, "CREATE TABLE t (id int, c int)")
    conn = psycopg.connect(with_params(dsn, application_name="orders-app"))
    try:
        conn.execute("INSERT INTO t VALUES (1, 1)")
        yield conn
    finally:
        with contextlib.suppress(psycopg.OperationalError):
            conn.rollback()
        conn.close()


def commands_in(hint: str) -> list[str]:
    """The backquoted commands and SQL of a hint, in order."""
    return re.findall(r"`([^`]+)`", hint)


def test_a_timed_out_lone_concurrent_build_leads_with_the_repair_that_works(
        tmp_path: Path, dsn: str, writer: psycopg.Connection) -> None:
    """A lone CREATE INDEX CONCURRENTLY (no directive) times out behind an open writer
    and is left dirty with an INVALID index. The hint's first steps are the DROP and
    `mark --pending`; `up` comes after them; run in that order, the index is built."""
    root = make_tree(tmp_path, pair("a", "000001", "c_index",
                                    "-- migcoord:lock-timeout 300ms\n"
                                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_c_idx ON t (c);\n",
                                    "DROP INDEX CONCURRENTLY IF EXISTS t_c_idx;\n"),
                     config=RETRY_ONCE)

    failed = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))
    assert failed.code == 1, failed.stderr
    error = failed.json()["error"]
    assert error["type"] == "MigrationLeftDirty"
    hint = error["hint"]
    assert hint.startswith("it is recorded as dirty, so first drop the INVALID index "
                           "public.t_c_idx"), hint
    drop, mark, terminate, up, *_ = commands_in(hint)
    assert (drop, mark, up) == ("DROP INDEX CONCURRENTLY public.t_c_idx;",
                                "migcoord mark 000001 --pending", "migcoord up --service a")
    assert terminate == f"SELECT pg_terminate_backend({writer.info.backend_pid});"

    # Running up first, as the old hint led with, is refused: it is dirty; and that
    # refusal names the INVALID index the run recorded.
    refused = run(up.split()[1:], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "INVALID index public.t_c_idx" in refused.stderr

    writer.commit()
    execute(dsn, drop)
    assert run(mark.split()[1:], cwd=root, environ=env(dsn)).code == 0
    done = run(up.split()[1:], cwd=root, environ=env(dsn))
    assert done.code == 0, done.stderr
    assert query(dsn, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                      "'t_c_idx'::regclass") == [(True,)]
    assert [row["status"] for row in history(dsn)] == ["applied"]


def test_a_file_that_sets_its_lock_timeout_is_told_to_change_that_line(
        tmp_path: Path, dsn: str, writer: psycopg.Connection) -> None:
    """The file has `-- migcoord:lock-timeout 300ms` (CRLF, with a BOM): the hint names
    that line and the value to put there; done so, `check` is clean and `up` applies."""
    up_file = "\ufeff-- migcoord:lock-timeout 300ms \r\nALTER TABLE t ADD COLUMN x int;\r\n"
    root = make_tree(tmp_path, pair("a", "000001", "add_x", up_file,
                                    "ALTER TABLE t DROP COLUMN x;\n"), config=RETRY_ONCE)
    path = root / "a/migrations/000001_add_x.up.sql"

    failed = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))
    assert failed.code == 1, failed.stderr
    hint = failed.json()["error"]["hint"]
    wanted = (f"change the existing `-- migcoord:lock-timeout 300ms` line (line 1 of {path}) "
              "to `-- migcoord:lock-timeout 30s`")
    assert wanted in hint, hint

    text = path.read_bytes().decode("utf-8")
    path.write_bytes(text.replace("-- migcoord:lock-timeout 300ms",
                                  "-- migcoord:lock-timeout 30s").encode("utf-8"))
    checked = run(["check"], cwd=root)
    assert checked.code == 0, checked.stdout + checked.stderr
    assert "unknown-directive" not in checked.stdout

    writer.commit()
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert [row["status"] for row in history(dsn)] == ["applied"]


def test_a_file_without_the_directive_is_told_to_add_it_at_the_top(
        tmp_path: Path, dsn: str, writer: psycopg.Connection) -> None:
    """No directive yet: put one at the top; done so, `check` is clean."""
    root = make_tree(tmp_path, pair("a", "000001", "add_x", "ALTER TABLE t ADD COLUMN x int;\n",
                                    "ALTER TABLE t DROP COLUMN x;\n"),
                     config=RETRY_ONCE.replace("[ddl]\n", "[ddl]\nlock_timeout = \"300ms\"\n"))
    path = root / "a/migrations/000001_add_x.up.sql"
    failed = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))
    hint = failed.json()["error"]["hint"]
    assert f"put `-- migcoord:lock-timeout 30s` at the top of {path}" in hint, hint
    path.write_text("-- migcoord:lock-timeout 30s\n" + path.read_text())
    assert run(["check"], cwd=root).code == 0
