"""Why `verify` applies a migration without a round trip, said as it is (real server):
a service's own migrations of an adopted history without a down file are `adopted`,
another service's below the one verified are `other-service`."""

from __future__ import annotations

from pathlib import Path

from conftest import PgServer
from test_verify import verify

from helpers import make_tree, run

CONFIG = """\
version_width = 4
adopted_through = 2

[services.app]
migrations = "app/migrations"

[services.billing]
migrations = "billing/migrations"
"""


def adopted_tree(root: Path) -> Path:
    """app's 0001 and 0002 have no down file (adopted history); billing's 0003 has one."""
    return make_tree(root, {
        "app/migrations/0001_t.up.sql":
            "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, a int, b text);\n"
            "CREATE TYPE mood AS ENUM ('x');\n",
        "app/migrations/0002_c.up.sql": "ALTER TABLE t ADD COLUMN c int;\n",
        "billing/migrations/0003_inv.up.sql": "CREATE TABLE inv (id int);\n",
        "billing/migrations/0003_inv.down.sql": "DROP TABLE inv;\n",
        "app/migrations/0004_d.up.sql": "ALTER TABLE t ADD COLUMN d int;\n",
        "app/migrations/0004_d.down.sql": "ALTER TABLE t DROP COLUMN d;\n",
    }, config=CONFIG)


def test_a_services_own_adopted_migrations_are_called_adopted(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = adopted_tree(tmp_path / "r")
    report = verify(root, pg_server)
    assert report["ok"] is True
    assert [(m["version"], m["status"], m["no_round_trip"]) for m in report["migrations"]] == [
        (1, "applied", "adopted"), (2, "applied", "adopted"), (3, "ok", None), (4, "ok", None)]

    text = run(["verify", "--dsn", pg_server.admin_dsn], cwd=root)
    assert text.code == 0, text.stdout + text.stderr
    assert "0001 app t: adopted: no down file, applied without a round trip" in text.stderr
    assert "not this service's" not in text.stderr


def test_with_service_another_services_migration_is_other_service(
        tmp_path: Path, pg_server: PgServer) -> None:
    """`--service app`: billing's 0003 is applied for app's 0004; app's 0001 and 0002 are
    still app's own, adopted."""
    root = adopted_tree(tmp_path / "r")
    report = verify(root, pg_server, "--service", "app")
    assert [(m["version"], m["status"], m["no_round_trip"]) for m in report["migrations"]] == [
        (1, "applied", "adopted"), (2, "applied", "adopted"),
        (3, "applied", "other-service"), (4, "ok", None)]

    text = run(["verify", "--dsn", pg_server.admin_dsn, "--service", "app"], cwd=root)
    assert text.code == 0, text.stdout + text.stderr
    assert "0002 app c: adopted: no down file, applied without a round trip" in text.stderr
    assert "0003 billing inv: applied (not this service's: no round trip)" in text.stderr
