"""`renumber --dsn`: the database keeps a renumber from applying a migration twice."""

from __future__ import annotations

from pathlib import Path

from helpers import make_tree, pair, run
from test_engine_support import AB_CONFIG, env, query


def collided(root: Path) -> Path:
    """After a merge: a's 000001 and 000002, and b's 000002 (the later branch)."""
    files = {**pair("a", "000001", "t1", "CREATE TABLE t1 (id int);\n", "DROP TABLE t1;\n"),
             **pair("a", "000002", "t2", "CREATE TABLE t2 (id int);\n", "DROP TABLE t2;\n"),
             **pair("b", "000002", "u", "CREATE TABLE u (id int);\n", "DROP TABLE u;\n")}
    return make_tree(root, files, config=AB_CONFIG)


def test_renumber_refuses_a_migration_applied_in_the_given_database(tmp_path: Path,
                                                                     dsn: str) -> None:
    """Renumbering an applied migration would make it pending and apply it twice."""
    root = collided(tmp_path)
    assert run(["up", "--service", "b"], cwd=root, environ=env(dsn)).code == 0

    result = run(["renumber", "000002", "--service", "b", "--dsn", dsn], cwd=root)

    assert result.code == 1, result
    assert "is applied in this database" in result.stderr
    assert (root / "b/migrations/000002_u.up.sql").is_file()
    assert not (root / "b/migrations/000003_u.up.sql").exists()


def test_renumber_with_a_database_records_the_move_as_an_event(tmp_path: Path,
                                                                dsn: str) -> None:
    """The never-applied migration moves, and migcoord_events says from where to where."""
    root = collided(tmp_path)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    result = run(["renumber", "000002", "--service", "b", "--dsn", dsn], cwd=root)

    assert result.code == 0, result
    assert (root / "b/migrations/000003_u.up.sql").is_file()
    events = query(dsn, "SELECT action, version, service, detail FROM migcoord_events "
                        "WHERE action = 'renumber'")
    assert events == [("renumber", 3, "b", {"from": 2, "to": 3})]
    assert run(["up", "--service", "b"], cwd=root, environ=env(dsn)).code == 0


def test_renumber_without_a_database_touches_no_database(tmp_path: Path, dsn: str) -> None:
    """Without --dsn renumber is a file operation, even when DATABASE_URL is set."""
    root = collided(tmp_path)
    assert run(["up", "--service", "b"], cwd=root, environ=env(dsn)).code == 0

    result = run(["renumber", "000002", "--service", "b"], cwd=root, environ=env(dsn))

    assert result.code == 0, result
    assert query(dsn, "SELECT count(*) FROM migcoord_events WHERE action = 'renumber'") == [(0,)]
