"""`migcoord init` and `migcoord makefile`: a repository that already uses golang-migrate
(or none yet) set up in one command, never overwriting a file."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from conftest import PgServer

from helpers import REPO, run
from migcoord.core.scaffold import FoundFolder, propose

MIGRATE_MAKEFILE = """\
DB_URL ?= postgres://localhost:5432/alerting?sslmode=disable
migrate-up:
\tmigrate -path migrations -database $(DB_URL) up
migrate-down:
\tmigrate -path migrations -database $(DB_URL) down 1
migrate-create:
\tmigrate create -ext sql -dir migrations -seq $(NAME)
"""

ORIGINAL = {
    "rule-service/migrations/000001_create_clients_table.up.sql":
        "CREATE TABLE IF NOT EXISTS clients (id bigint PRIMARY KEY);\n",
    "rule-service/migrations/000001_create_clients_table.down.sql": "DROP TABLE IF EXISTS clients;\n",
    "rule-service/migrations/000002_create_rules_table.up.sql":
        "CREATE TABLE IF NOT EXISTS rules (id bigint PRIMARY KEY,\n"
        "  client_id bigint REFERENCES clients (id));\n",
    "rule-service/migrations/000002_create_rules_table.down.sql": "DROP TABLE IF EXISTS rules;\n",
    "aggregator/migrations/000003_create_notifications_table.up.sql":
        "CREATE TABLE IF NOT EXISTS notifications (id bigint PRIMARY KEY,\n"
        "  rule_id bigint REFERENCES rules (id));\n",
    "aggregator/migrations/000003_create_notifications_table.down.sql":
        "DROP TABLE IF EXISTS notifications;\n",
    "sender/migrations/000004_create_deliveries.up.sql":
        "CREATE TABLE IF NOT EXISTS deliveries (id bigint PRIMARY KEY);\n",
    "sender/migrations/000004_create_deliveries.down.sql": "DROP TABLE IF EXISTS deliveries;\n",
    "rule-service/Makefile": MIGRATE_MAKEFILE,
    "aggregator/Makefile": MIGRATE_MAKEFILE,
    "sender/Makefile": MIGRATE_MAKEFILE,
    ".gitignore": "bin/",  # no newline at the end
    # golang-migrate's own test files, vendored: never a service.
    "vendor/github.com/golang-migrate/migrate/testdata/1_init.up.sql": "SELECT 1;\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_init_sets_up_the_original_workflow_and_check_then_runs(tmp_path: Path) -> None:
    """Three golang-migrate services with Makefiles calling `migrate`: init writes the
    config (services, width, owned tables), Makefile.inc, the .gitignore entry and the
    sum, keeps every Makefile and says what to add; the `check` it suggests runs the SQL
    analysis and finds the undeclared cross-service dependency."""
    repo = write_tree(tmp_path / "alerting", ORIGINAL)
    result = run(["init"], cwd=repo)
    assert result.code == 0, result.stderr

    config = tomllib.loads((repo / "migcoord.toml").read_text())
    assert config["version_width"] == 6
    assert list(config["services"]) == ["rule-service", "aggregator", "sender"]
    assert config["services"]["rule-service"] == {
        "migrations": "rule-service/migrations", "owns": ["clients", "rules"]}
    assert config["services"]["aggregator"]["owns"] == ["notifications"]
    assert (repo / "Makefile.inc").read_text() == (REPO / "Makefile.inc").read_text()
    for service in ("rule-service", "aggregator", "sender"):
        assert (repo / service / "Makefile").read_text() == MIGRATE_MAKEFILE
        assert (f"{service}/Makefile  (not overwritten: add `SERVICE := {service}` and "
                "`include ../Makefile.inc`, and remove its own migrate-create, migrate-up, "
                "migrate-down targets") in result.stdout
    assert (repo / ".gitignore").read_text().splitlines()[0] == "bin/"
    assert ".migcoord/" in (repo / ".gitignore").read_text().splitlines()
    assert "next:\n  migcoord check\n" in result.stdout

    checked = run(["check", "--format", "json"], cwd=repo)
    found = {(f["code"], f["service"]) for f in checked.json()["findings"]}
    assert found == {("undeclared-dependency", "aggregator")}, checked.stdout
    assert "sql-skipped" not in checked.stdout and "sum-mismatch" not in checked.stdout


def test_init_twice_changes_nothing_and_keeps_every_file(tmp_path: Path) -> None:
    """A second run finds everything in place: each file byte for byte as before."""
    repo = write_tree(tmp_path / "repo", ORIGINAL)
    assert run(["init"], cwd=repo).code == 0
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    again = run(["init"], cwd=repo)
    assert again.code == 0, again.stderr
    assert "wrote" not in again.stdout and "appended" not in again.stdout
    assert "kept         migcoord.toml" in again.stdout
    after = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before


def test_init_dry_run_writes_nothing(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", ORIGINAL)
    result = run(["init", "--dry-run", "--format", "json"], cwd=repo)
    assert result.code == 0, result.stderr
    document = result.json()
    assert [f["path"] for f in document["files"] if f["action"] == "would write"] == [
        "migcoord.toml", "Makefile.inc", "migcoord.sum"]
    assert not (repo / "migcoord.toml").exists() and not (repo / "Makefile.inc").exists()


def test_init_writes_two_line_makefiles_that_make_can_run(tmp_path: Path) -> None:
    """Service folders without a Makefile get the two lines, and `make check-migrations`
    works there with the installed Makefile.inc. Versions of 4 digits set the width,
    and `create` then keeps it."""
    repo = write_tree(tmp_path / "shop", {
        "orders/db/migrations/0001_orders.up.sql": "CREATE TABLE IF NOT EXISTS orders (id int);\n",
        "orders/db/migrations/0001_orders.down.sql": "DROP TABLE IF EXISTS orders;\n",
        "billing/db/migrations/0002_invoices.up.sql":
            "\ufeffCREATE TABLE IF NOT EXISTS invoices (id int);\r\n",
        "billing/db/migrations/0002_invoices.down.sql": "DROP TABLE IF EXISTS invoices;\r\n",
    })
    assert run(["init"], cwd=repo).code == 0
    assert (repo / "orders" / "Makefile").read_text() == "SERVICE := orders\ninclude ../Makefile.inc\n"
    config = tomllib.loads((repo / "migcoord.toml").read_text())
    assert config["version_width"] == 4
    assert config["services"]["billing"] == {"migrations": "billing/db/migrations",
                                             "owns": ["invoices"]}
    migcoord = str(Path(sys.executable).parent / "migcoord")
    done = subprocess.run(["make", "-s", "-C", str(repo / "billing"), "check-migrations",
                           f"MIGCOORD={migcoord}"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "check ok: 0 errors" in done.stderr
    created = run(["create", "add_total", "--service", "billing"], cwd=repo / "billing")
    assert created.code == 0, created.stderr
    assert (repo / "billing/db/migrations/0003_add_total.up.sql").is_file()


def test_init_in_an_empty_repository_writes_a_starting_config_whose_next_steps_work(
        tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "payments", {})
    result = run(["init"], cwd=repo)
    assert result.code == 0, result.stderr
    assert "no golang-migrate folder found" in result.stdout
    assert tomllib.loads((repo / "migcoord.toml").read_text())["services"] == {
        "payments": {"migrations": "migrations"}}
    assert (repo / "Makefile").read_text() == "SERVICE := payments\ninclude Makefile.inc\n"
    commands = result.stdout.split("next:\n")[1].splitlines()
    assert commands == ["  migcoord create create_first_table --service payments",
                        "  migcoord check"]
    for command in commands:
        done = run(command.split()[1:], cwd=repo)
        assert done.code == 0, (command, done.stderr)
    assert (repo / "migrations" / "000001_create_first_table.up.sql").is_file()


def test_init_inside_a_configured_repository_points_at_its_root(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "repo", ORIGINAL)
    assert run(["init"], cwd=repo).code == 0
    nested = run(["init"], cwd=repo / "aggregator")
    assert nested.code == 2
    assert f"{repo / 'migcoord.toml'} already configures the repository" in nested.stderr
    assert f"run `migcoord init` in {repo}" in nested.stderr
    assert not (repo / "aggregator" / "migcoord.toml").exists()


def test_makefile_prints_the_installed_file_and_writes_a_copy_without_overwriting(
        tmp_path: Path) -> None:
    """`migcoord makefile` names the packaged Makefile.inc, the same text as the
    repository's; `--write` writes it once, accepts an identical file and refuses to
    replace a different one."""
    printed = run(["makefile"], cwd=tmp_path)
    assert printed.code == 0
    packaged = Path(printed.stdout.strip())
    assert packaged == REPO / "migcoord" / "Makefile.inc"
    assert run(["makefile", "--write", "."], cwd=tmp_path).code == 0
    assert (tmp_path / "Makefile.inc").read_text() == packaged.read_text()
    assert run(["makefile", "--write", "Makefile.inc"], cwd=tmp_path).code == 0
    (tmp_path / "Makefile.inc").write_text("# my own\n")
    refused = run(["makefile", "--write", "Makefile.inc"], cwd=tmp_path)
    assert refused.code == 1
    assert "differs from the installed Makefile.inc; it was not overwritten" in refused.stderr
    assert (tmp_path / "Makefile.inc").read_text() == "# my own\n"


def test_the_repository_makefile_inc_is_the_packaged_one() -> None:
    """One source of truth: the root Makefile.inc (the examples include it) is a copy of
    migcoord/Makefile.inc, which the wheel ships; edit that one and copy it."""
    assert (REPO / "Makefile.inc").read_bytes() == (REPO / "migcoord" / "Makefile.inc").read_bytes()


@pytest.mark.parametrize(("paths", "names"), [
    (["rule-service/migrations", "aggregator/migrations"], ["rule-service", "aggregator"]),
    (["services/a/db/migrations", "services/b/db/migrations"], ["a", "b"]),
    (["x/api/migrations", "y/api/migrations"], ["x-api", "y-api"]),
    (["migrations"], ["repo"]),
    (["My Service/migrations"], ["My-Service"]),
])
def test_service_names_come_from_the_nearest_telling_folder(paths: list[str],
                                                           names: list[str]) -> None:
    folders = [FoundFolder(path=PurePosixPath(p), filenames=(f"{i + 1:06d}_x.up.sql",))
               for i, p in enumerate(paths)]
    assert [s.name for s in propose("repo", folders).services] == names


def test_owns_follows_renames_and_drops(tmp_path: Path) -> None:
    """A table renamed later is owned under its new name; a dropped one not at all; one
    created by two services is left for the owner to decide (check reports it)."""
    repo = write_tree(tmp_path / "repo", {
        "a/migrations/000001_t.up.sql":
            "CREATE TABLE old_name (id int);\nCREATE TABLE gone (id int);\n"
            "CREATE TABLE audit.events (id int);\nCREATE TABLE shared (id int);\n",
        "a/migrations/000001_t.down.sql": "SELECT 1;\n",
        "a/migrations/000002_r.up.sql": "ALTER TABLE old_name RENAME TO new_name;\nDROP TABLE gone;\n",
        "a/migrations/000002_r.down.sql": "SELECT 1;\n",
        "b/migrations/000003_s.up.sql": "CREATE TABLE IF NOT EXISTS shared (id int);\n",
        "b/migrations/000003_s.down.sql": "SELECT 1;\n",
    })
    assert run(["init"], cwd=repo).code == 0
    services = tomllib.loads((repo / "migcoord.toml").read_text())["services"]
    assert services["a"]["owns"] == ["audit.events", "new_name"]
    assert "owns" not in services["b"]


def test_a_history_that_skips_numbers_is_adopted_through_its_last_version(tmp_path: Path) -> None:
    """golang-migrate lets a project number by release (0005, 0010, 0030...): init writes
    adopted_through, so those gaps are history; a skip after it is still a gap."""
    repo = write_tree(tmp_path / "harbor", {
        "db/migrations/0001_initial.up.sql": "CREATE TABLE IF NOT EXISTS a (id int);\n",
        "db/migrations/0001_initial.down.sql": "DROP TABLE IF EXISTS a;\n",
        "db/migrations/0010_release_two.up.sql": "CREATE TABLE IF NOT EXISTS b (id int);\n",
        "db/migrations/0010_release_two.down.sql": "DROP TABLE IF EXISTS b;\n",
        "db/migrations/0030_release_four.up.sql": "CREATE TABLE IF NOT EXISTS c (id int);\n",
        "db/migrations/0030_release_four.down.sql": "DROP TABLE IF EXISTS c;\n",
    })
    assert run(["init"], cwd=repo).code == 0
    config = tomllib.loads((repo / "migcoord.toml").read_text())
    assert (config["version_width"], config["adopted_through"]) == (4, "0030")
    assert run(["check", "--strict"], cwd=repo).code == 0

    created = run(["create", "next_release", "--service", config_service(config)], cwd=repo)
    assert created.code == 0, created.stderr
    assert "0031_next_release.up.sql" in created.stdout
    (repo / "db/migrations/0031_next_release.up.sql").rename(
        repo / "db/migrations/0033_next_release.up.sql")
    (repo / "db/migrations/0031_next_release.down.sql").rename(
        repo / "db/migrations/0033_next_release.down.sql")
    assert run(["sum"], cwd=repo).code == 0
    gaps = [f for f in run(["check", "--format", "json"], cwd=repo).json()["findings"]
            if f["code"] == "gap"]
    assert [f["message"].split(":")[0] for f in gaps] == ["version 0031-0032 is missing"]


def config_service(config: dict[str, object]) -> str:
    services = config["services"]
    assert isinstance(services, dict)
    (name,) = services
    return str(name)


def test_adopted_through_must_be_a_version(tmp_path: Path) -> None:
    repo = write_tree(tmp_path / "r", {"m/0001_a.up.sql": "SELECT 1;\n",
                                       "m/0001_a.down.sql": "SELECT 1;\n"})
    (repo / "migcoord.toml").write_text('adopted_through = "r12"\n[services.m]\n'
                                         'migrations = "m"\n')
    result = run(["check"], cwd=repo)
    assert result.code == 2
    assert "[adopted_through] expected a version number such as \"0190\", got 'r12'" in result.stderr


def test_an_adopted_history_without_down_files_is_checked_and_verified_as_it_is(
        tmp_path: Path, pg_server: PgServer) -> None:
    """Up-only migrations up to adopted_through: no missing-down, verify applies them
    without a round trip and round-trips what comes after."""
    repo = write_tree(tmp_path / "r", {
        "db/0001_a.up.sql": "CREATE TABLE IF NOT EXISTS a (id int);\n",
        "db/0005_b.up.sql": "CREATE TABLE IF NOT EXISTS b (id int);\n",
        "db/0006_c.up.sql": "CREATE TABLE IF NOT EXISTS c (id int);\n",
        "db/0006_c.down.sql": "DROP TABLE IF EXISTS c;\n",
    })
    (repo / "migcoord.toml").write_text('version_width = 4\nadopted_through = "0005"\n'
                                         '[services.db]\nmigrations = "db"\n')
    assert run(["sum"], cwd=repo).code == 0
    assert run(["check", "--strict"], cwd=repo).code == 0
    result = run(["verify", "--dsn", pg_server.admin_dsn, "--format", "json"], cwd=repo)
    assert result.code == 0, result.stdout
    report = result.json()
    assert [(m["version"], m["status"]) for m in report["migrations"]] == [
        (1, "applied"), (5, "applied"), (6, "ok")]
    # After adopted_through, a missing down is an error again.
    (repo / "db/0006_c.down.sql").unlink()
    codes = [f["code"] for f in run(["check", "--format", "json"], cwd=repo).json()["findings"]]
    assert codes == ["missing-down"]
