"""A version with only a down file, on a real server: never pending anywhere.

There is nothing of it to apply, so `check --db`, `status` and `up` agree: `check`
reports it once (missing-up), `up` applies the others and names it, `status` lists no
state for it and names it, and nothing calls it out of order. A history row of its
version is judged as if no file were here (missing), whether or not down files are read.
"""

from __future__ import annotations

from pathlib import Path

from helpers import make_tree, run
from test_engine_support import env, history_versions, table_exists

CONFIG = """\
version_width = 4

[services.app]
migrations = "m"
"""


def tree(root: Path) -> Path:
    """0001 and 0003 pairs, and 0002 with only its down file (as a real history had it)."""
    return make_tree(root, {
        "m/0001_t.up.sql": "CREATE TABLE t (id int);\n",
        "m/0001_t.down.sql": "DROP TABLE t;\n",
        "m/0002_tags.down.sql": "ALTER TABLE t DROP COLUMN IF EXISTS tags;\n",
        "m/0003_note.up.sql": "ALTER TABLE t ADD COLUMN note text;\n",
        "m/0003_note.down.sql": "ALTER TABLE t DROP COLUMN note;\n",
    }, config=CONFIG)


def db_codes(root: Path, dsn: str) -> list[str]:
    result = run(["check", "--db", "--no-sql", "--format", "json"], cwd=root, environ=env(dsn))
    return [f["code"] for f in result.json()["findings"]]


def test_a_down_only_version_is_named_by_up_and_status_and_never_out_of_order(
    tmp_path: Path, dsn: str
) -> None:
    root = tree(tmp_path)

    applied = run(["up", "--all", "--format", "json"], cwd=root, environ=env(dsn))
    assert applied.code == 0, applied
    assert [s["version"] for s in applied.json()["applied"]] == [1, 3]
    # Not in silence: the run says what it did not apply and why (check's code).
    [warning] = applied.json()["warnings"]
    assert "app 0002_tags has a down file and no up file" in warning
    assert "missing-up" in warning
    assert warning in applied.stderr
    assert applied.stderr.count(warning) == 1  # said once, not again by the CLI

    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 0, status
    assert [(m["version"], m["state"]) for m in status.json()["migrations"]] == [
        (1, "applied"), (3, "applied")]
    assert status.json()["warnings"] == [warning]

    # check --db used to add "out-of-order: 0002 app tags is pending", whose hint
    # (up --allow-out-of-order) then found nothing to apply.
    assert db_codes(root, dsn) == ["missing-up"]
    again = run(["up", "--service", "app", "--allow-out-of-order"], cwd=root, environ=env(dsn))
    assert again.code == 0, again
    assert "nothing to apply" in again.stdout
    assert history_versions(dsn) == [1, 3]


def test_a_recorded_version_whose_up_file_is_gone_is_missing_for_check_as_for_status(
    tmp_path: Path, dsn: str
) -> None:
    """`status` and `up` read no down files; `check --db` reads them. It used to call the
    row applied (matched to the down file) while status called it missing."""
    root = tree(tmp_path)
    (root / "m/0002_tags.up.sql").write_text("ALTER TABLE t ADD COLUMN tags text;\n")
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    (root / "m/0002_tags.up.sql").unlink()

    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn))
    assert status.code == 1
    assert [(m["version"], m["state"]) for m in status.json()["migrations"]] == [
        (1, "applied"), (2, "missing"), (3, "applied")]
    assert status.json()["warnings"] == []
    assert sorted(db_codes(root, dsn)) == ["missing-file", "missing-up"]
    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "0002 app tags is applied in the database but its up file (0002_tags.up.sql) is gone" \
        in refused.stderr


def test_the_out_of_order_hint_names_the_service_and_works(tmp_path: Path, dsn: str) -> None:
    root = tree(tmp_path)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    (root / "m/0002_tags.up.sql").write_text("ALTER TABLE t ADD COLUMN tags text;\n")

    result = run(["check", "--db", "--no-sql", "--format", "json"], cwd=root, environ=env(dsn))
    [finding] = [f for f in result.json()["findings"] if f["code"] == "out-of-order"]
    command = finding["hint"].split("`")[1]
    assert command == "migcoord up --service app --allow-out-of-order"

    applied = run(command.split()[1:], cwd=root, environ=env(dsn))
    assert applied.code == 0, applied
    assert table_exists(dsn, "public.t")
    assert history_versions(dsn) == [1, 2, 3]
    assert "out-of-order" not in db_codes(root, dsn)
