"""A failed concurrent index build leaves an INVALID index: named, never recorded as applied.

`CREATE UNIQUE INDEX CONCURRENTLY` that fails (duplicates, a lock timeout while it waits
for older transactions) leaves its index behind with `indisvalid = false`. It enforces
nothing, and `IF NOT EXISTS` skips it on the next run, which would record the migration
as applied over a unique index that lets duplicates in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from helpers import make_tree, pair, run
from test_engine_support import (
    AB_CONFIG,
    env,
    events,
    execute,
    history,
    lock_holders,
    query,
    table_exists,
)

UNIQUE_EMAIL = ("-- migcoord:no-transaction\n"
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key "
                "ON users (email);\n")
DROP_IT = "DROP INDEX CONCURRENTLY public.users_email_key;"


def indexes(dsn: str, table: str = "users") -> list[tuple[str, bool]]:
    return [(str(name), bool(valid)) for name, valid in query(
        dsn, "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
             "WHERE indrelid = %s::regclass ORDER BY 1", (table,))]


def users_with_duplicates(dsn: str) -> None:
    execute(dsn, "CREATE TABLE users (id int, email text); "
                 "INSERT INTO users VALUES (1, 'a@example.com'), (2, 'a@example.com')")


def status_of(root: Path, dsn: str) -> dict[int, str]:
    result = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    return {m["version"]: m["state"] for m in result.json()["migrations"]}


def test_a_failed_unique_build_names_the_invalid_index_and_the_drop_that_removes_it(
    tmp_path: Path, dsn: str
) -> None:
    users_with_duplicates(dsn)
    root = make_tree(tmp_path, pair("a", "000001", "unique_email", UNIQUE_EMAIL),
                     config=AB_CONFIG)

    result = run(["up", "--service", "a", "--format", "json"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "(SQLSTATE 23505)" in result.stderr
    assert "INVALID index public.users_email_key (on public.users)" in result.stderr
    assert f"`{DROP_IT}`" in result.stderr
    assert result.json()["error"]["type"] == "MigrationLeftDirty"
    assert indexes(dsn) == [("users_email_key", False)]
    [row] = history(dsn)
    assert row["status"] == "dirty"
    assert "INVALID index public.users_email_key" in row["error"]

    execute(dsn, DROP_IT)  # the command, as printed, works
    assert indexes(dsn) == []


def test_mark_pending_and_up_never_record_an_invalid_unique_index_as_applied(
    tmp_path: Path, dsn: str
) -> None:
    """The duplicates are fixed and the migration marked pending: `IF NOT EXISTS` would skip
    the invalid index, so up refuses to record it; following the hint builds it for real."""
    users_with_duplicates(dsn)
    root = make_tree(tmp_path, pair("a", "000001", "unique_email", UNIQUE_EMAIL),
                     config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 1
    execute(dsn, "DELETE FROM users WHERE id = 2")
    assert run(["mark", "1", "--pending"], cwd=root, environ=env(dsn)).code == 0

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "INVALID index public.users_email_key (on public.users) is left" in result.stderr
    assert "stays recorded as dirty, not applied" in result.stderr
    hint = result.stderr.split("hint: ", 1)[1]
    assert hint.startswith(f"drop it with `{DROP_IT}`, then `migcoord mark 000001 --pending` "
                           "and `migcoord up --service a`")
    assert status_of(root, dsn) == {1: "dirty"}
    assert [e["detail"]["invalid_indexes"] for e in events(dsn)
            if e["action"] == "up-failed" and "invalid_indexes" in e["detail"]] == [
        ["public.users_email_key"]]
    assert lock_holders(dsn) == []

    execute(dsn, DROP_IT)
    assert run(["mark", "1", "--pending"], cwd=root, environ=env(dsn)).code == 0
    again = run(["up", "--service", "a"], cwd=root, environ=env(dsn))
    assert again.code == 0, again.stderr
    assert status_of(root, dsn) == {1: "applied"}
    assert indexes(dsn) == [("users_email_key", True)]
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute(dsn, "INSERT INTO users VALUES (3, 'a@example.com')")


def test_a_transactional_create_index_if_not_exists_over_an_invalid_one_is_rolled_back(
    tmp_path: Path, dsn: str
) -> None:
    """The same skip inside a transaction: nothing of the migration is kept."""
    users_with_duplicates(dsn)
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute(dsn, "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
    execute(dsn, "DELETE FROM users WHERE id = 2")
    root = make_tree(tmp_path, pair(
        "a", "000001", "unique_email",
        "CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);\n"
        "CREATE TABLE signups (email text);\n"), config=AB_CONFIG)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "INVALID index public.users_email_key (on public.users) already exists" in result.stderr
    assert "nothing of this migration was applied" in result.stderr
    assert f"drop it with `{DROP_IT}`, then run `migcoord up --service a` again" in result.stderr
    assert not table_exists(dsn, "signups")
    assert history(dsn) == []

    execute(dsn, DROP_IT)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0
    assert indexes(dsn) == [("users_email_key", True)]


@contextmanager
def an_older_snapshot(dsn: str) -> Iterator[None]:
    """A transaction whose snapshot a concurrent index build must wait for at its end."""
    with psycopg.connect(dsn, autocommit=True) as reader:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM users")
        yield
        reader.execute("ROLLBACK")


def test_a_concurrent_build_stopped_by_lock_timeout_names_its_invalid_index(
    tmp_path: Path, dsn: str
) -> None:
    """CREATE INDEX CONCURRENTLY waits for older snapshots after creating the index; a lock
    timeout there leaves it invalid."""
    execute(dsn, "CREATE TABLE users (id int, email text)")
    root = make_tree(tmp_path, pair("a", "000001", "email_index",
                                    "-- migcoord:no-transaction\n"
                                    "-- migcoord:retries 0\n"
                                    "SET lock_timeout = '300ms';\n"
                                    "CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n"),
                     config=AB_CONFIG)

    with an_older_snapshot(dsn):
        result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "(SQLSTATE 55P03)" in result.stderr
    assert "INVALID index public.users_email_idx (on public.users)" in result.stderr
    assert "`DROP INDEX CONCURRENTLY public.users_email_idx;`" in result.stderr
    assert indexes(dsn) == [("users_email_idx", False)]


def test_a_failed_reindex_concurrently_names_the_copy_it_left(tmp_path: Path, dsn: str) -> None:
    """REINDEX ... CONCURRENTLY builds `<name>_ccnew` first; stopped, that copy stays."""
    execute(dsn, "CREATE TABLE users (id int, email text); "
                 "CREATE INDEX users_email_idx ON users (email)")
    root = make_tree(tmp_path, pair("a", "000001", "reindex",
                                    "-- migcoord:no-transaction\n"
                                    "-- migcoord:retries 0\n"
                                    "SET lock_timeout = '300ms';\n"
                                    "REINDEX INDEX CONCURRENTLY users_email_idx;\n"),
                     config=AB_CONFIG)

    with an_older_snapshot(dsn):
        result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 1, result
    assert "INVALID index public.users_email_idx_ccnew (on public.users)" in result.stderr
    assert "`DROP INDEX CONCURRENTLY public.users_email_idx_ccnew;`" in result.stderr


def test_an_invalid_index_elsewhere_does_not_block_a_migration(tmp_path: Path, dsn: str) -> None:
    """An old invalid index on another table is not this migration's: it is applied."""
    users_with_duplicates(dsn)
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute(dsn, "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)")
    execute(dsn, "CREATE TABLE orders (id int)")
    root = make_tree(tmp_path, pair("a", "000001", "orders_index",
                                    "-- migcoord:no-transaction\n"
                                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_id_idx "
                                    "ON orders (id);\n"), config=AB_CONFIG)

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert status_of(root, dsn) == {1: "applied"}
    assert indexes(dsn, "orders") == [("orders_id_idx", True)]


def test_an_unnamed_build_run_again_warns_about_the_invalid_index_of_its_first_attempt(
    tmp_path: Path, dsn: str
) -> None:
    """Without a name, a second build makes `users_email_idx1`; the first attempt's invalid
    `users_email_idx` is not this run's failure, but is named with its DROP."""
    users_with_duplicates(dsn)
    root = make_tree(tmp_path, pair("a", "000001", "email_index",
                                    "-- migcoord:no-transaction\n"
                                    "CREATE UNIQUE INDEX CONCURRENTLY ON users (email);\n"),
                     config=AB_CONFIG)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 1
    execute(dsn, "DELETE FROM users WHERE id = 2")
    assert run(["mark", "1", "--pending"], cwd=root, environ=env(dsn)).code == 0

    result = run(["up", "--service", "a"], cwd=root, environ=env(dsn))

    assert result.code == 0, result.stderr
    assert ("INVALID index public.users_email_idx (on public.users) is still there, left by "
            "an earlier failed build") in result.stderr
    assert "`DROP INDEX CONCURRENTLY public.users_email_idx;`" in result.stderr
    assert indexes(dsn) == [("users_email_idx", False), ("users_email_idx1", True)]
