"""An applied migration whose up file was deleted while its down file stayed, on a real
server, in a project of `version_width = 4`.

It is `missing` (the folder still holds its number), not `future` (newer than every
file), even when it is the service's newest; `down` says that the up file is gone
rather than the down file; and every message writes versions as the project does.
"""

from __future__ import annotations

from pathlib import Path

from helpers import make_tree, run
from test_engine_support import env, execute, history_versions, query

CONFIG = """\
version_width = 4

[services.app]
migrations = "app/migrations"
"""

BASE_UP = ("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, a int, b text);\n"
           "CREATE TYPE mood AS ENUM ('x');\n")
BASE_DOWN = "DROP TYPE IF EXISTS mood;\nDROP TABLE IF EXISTS t;\n"


def applied_then_up_deleted(root: Path, dsn: str) -> Path:
    """0001 and 0002_orphan applied; then 0002's up file is deleted, its down file kept."""
    root = make_tree(root, {
        "app/migrations/0001_base.up.sql": BASE_UP,
        "app/migrations/0001_base.down.sql": BASE_DOWN,
        "app/migrations/0002_orphan.up.sql": "ALTER TABLE t ADD COLUMN c int;\n",
        "app/migrations/0002_orphan.down.sql": "ALTER TABLE t DROP COLUMN IF EXISTS c;\n",
    }, config=CONFIG)
    assert run(["sum"], cwd=root).code == 0
    applied = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert applied.code == 0, applied
    (root / "app/migrations/0002_orphan.up.sql").unlink()
    return root


def column_exists(dsn: str) -> bool:
    return bool(query(dsn, "SELECT 1 FROM information_schema.columns "
                      "WHERE table_name = 't' AND column_name = 'c'"))


def test_status_calls_it_missing_and_says_the_up_file_is_gone(tmp_path: Path, dsn: str) -> None:
    root = applied_then_up_deleted(tmp_path, dsn)
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    [orphan] = [m for m in status.json()["migrations"] if m["version"] == 2]
    assert orphan["state"] == "missing"
    assert orphan["detail"] == "up file deleted; its down file is here"
    text = run(["status"], cwd=root, environ=env(dsn))
    assert "future" not in text.stdout
    assert "newer than every file" not in text.stdout

    check = run(["check", "--db", "--no-sql", "--format", "json"], cwd=root, environ=env(dsn))
    [gone] = [f for f in check.json()["findings"] if f["code"] == "missing-file"]
    assert "its up file (0002_orphan.up.sql) is gone" in gone["message"]
    assert gone["path"] == "app/migrations/0002_orphan.down.sql"


def test_down_says_the_up_file_is_gone_and_its_hints_work(tmp_path: Path, dsn: str) -> None:
    """The refusal names the missing up file (not the down file, which is here), writes
    0002 as the project does, and each way out it gives works when run."""
    root = applied_then_up_deleted(tmp_path, dsn)
    refused = run(["down", "--service", "app", "--steps", "1"], cwd=root, environ=env(dsn))
    assert refused.code == 1, refused
    assert "0002 app orphan is applied in the database but its up file " \
        "(0002_orphan.up.sql) is gone" in refused.stderr
    assert "down file is not in this checkout" not in refused.stderr
    assert "00000" not in refused.stderr
    assert "`migcoord mark 0002 --pending`" in refused.stderr
    assert history_versions(dsn) == [1, 2]

    # Abandoned: undo by hand as the down file says, record it, delete the down file.
    execute(dsn, "ALTER TABLE t DROP COLUMN IF EXISTS c")
    marked = run(["mark", "0002", "--pending"], cwd=root, environ=env(dsn))
    assert marked.code == 0, marked
    (root / "app/migrations/0002_orphan.down.sql").unlink()
    assert run(["sum"], cwd=root).code == 0
    assert history_versions(dsn) == [1]
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 0, status
    assert [(m["version"], m["state"]) for m in status.json()["migrations"]] == [(1, "applied")]


def test_restoring_the_up_file_lets_down_roll_it_back(tmp_path: Path, dsn: str) -> None:
    root = applied_then_up_deleted(tmp_path, dsn)
    (root / "app/migrations/0002_orphan.up.sql").write_text("ALTER TABLE t ADD COLUMN c int;\n")
    rolled = run(["down", "--service", "app", "--steps", "1"], cwd=root, environ=env(dsn))
    assert rolled.code == 0, rolled
    assert history_versions(dsn) == [1]
    assert not column_exists(dsn)


def test_planning_messages_write_versions_at_the_project_width(tmp_path: Path, dsn: str) -> None:
    """An out-of-order refusal and a dependent's refusal to roll back, in a 4-digit project."""
    config = CONFIG + '[services.billing]\nmigrations = "billing/migrations"\n'
    root = make_tree(tmp_path, {
        "app/migrations/0001_base.up.sql": BASE_UP,
        "app/migrations/0001_base.down.sql": BASE_DOWN,
        "billing/migrations/0002_c.up.sql": "-- migcoord:depends app:0001\n"
                                            "ALTER TABLE t ADD c int;\n",
        "billing/migrations/0002_c.down.sql": "ALTER TABLE t DROP COLUMN IF EXISTS c;\n",
        "app/migrations/0003_d.up.sql": "ALTER TABLE t ADD d int;\n",
        "app/migrations/0003_d.down.sql": "ALTER TABLE t DROP COLUMN IF EXISTS d;\n",
    }, config=config)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0

    refused = run(["down", "--service", "app", "--steps", "2"], cwd=root, environ=env(dsn))
    assert refused.code == 1, refused
    assert "0001 cannot be rolled back: billing's 0002 c depends on it" in refused.stderr
    assert "`migcoord down --service billing --to 0001`" in refused.stderr
    assert "00000" not in refused.stderr

    assert run(["down", "--service", "app", "--steps", "1"], cwd=root, environ=env(dsn)).code == 0
    assert run(["down", "--service", "billing"], cwd=root, environ=env(dsn)).code == 0
    assert history_versions(dsn) == [1]
    assert run(["up", "--service", "app"], cwd=root, environ=env(dsn)).code == 0
    late = run(["up", "--service", "billing"], cwd=root, environ=env(dsn))
    assert late.code == 0, late  # another service's number below app's: not out of order
    assert run(["down", "--service", "billing"], cwd=root, environ=env(dsn)).code == 0
    (root / "billing/migrations/0002_c.up.sql").rename(root / "app/migrations/0002_c.up.sql")
    (root / "billing/migrations/0002_c.down.sql").rename(root / "app/migrations/0002_c.down.sql")
    out_of_order = run(["up", "--service", "app"], cwd=root, environ=env(dsn))
    assert out_of_order.code == 1, out_of_order
    assert "numbered below its applied 0003" in out_of_order.stderr
    assert "00000" not in out_of_order.stderr
