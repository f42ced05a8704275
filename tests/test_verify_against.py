"""`verify --against REF`: the pull-request case. The migrations REF has are applied once,
only the ones this branch adds are round-tripped, and the whole-sequence check covers
only them (a real git repository, a real server)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import PgServer
from gitflow import commit_all, example_repo, git

from helpers import pair, run

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

#: A down the base has that fails: a plain `verify` reports it, `--against` never runs it.
BROKEN_BASE_DOWN = "SELECT 1/0;\n"


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def add(root: Path, service: str, version: str, name: str, up: str, down: str) -> None:
    """A finished migration, the sum refreshed, committed."""
    write(root, pair(service, version, name, up=up, down=down))
    assert run(["sum"], cwd=root).code == 0, "sum"
    commit_all(root, f"{service} {version}")


def branch(tmp_path: Path) -> Path:
    """main: the example, whose 000005 down fails; branch `feature` adds 000007."""
    root = example_repo(tmp_path / "repo")
    (root / "rule-service/migrations/000005_remove_email_from_clients.down.sql").write_text(
        BROKEN_BASE_DOWN)
    commit_all(root, "a base whose down fails")
    git(root, "checkout", "-q", "-b", "feature")
    add(root, "aggregator", "000007", "create_digests",
        "CREATE TABLE digests (id bigint PRIMARY KEY);\n", "DROP TABLE digests;\n")
    return root


def verify(root: Path, pg_server: PgServer, *args: str) -> tuple[int, Any, str]:
    result = run(["verify", "--dsn", pg_server.admin_dsn, "--format", "json", *args], cwd=root)
    assert result.code in (0, 1), result.stderr
    return result.code, result.json(), result.stderr


def test_only_the_branchs_migrations_are_round_tripped(tmp_path: Path,
                                                       pg_server: PgServer) -> None:
    root = branch(tmp_path)
    code, everything, _ = verify(root, pg_server)
    assert code == 1  # the base's broken down, when everything is round-tripped
    assert [m["version"] for m in everything["migrations"] if m["status"] == "failed"] == [5]
    code, report, stderr = verify(root, pg_server, "--against", "main")
    assert code == 0, report
    by_version = {m["version"]: m for m in report["migrations"]}
    assert sorted(by_version) == [1, 2, 3, 4, 5, 6, 7]
    for version in range(1, 7):
        base = by_version[version]
        assert (base["status"], base["base"], base["round_trip"]) == ("applied", True, False)
        assert base["down_ms"] is None and base["locks"] is None
    new = by_version[7]
    assert (new["status"], new["base"], new["round_trip"]) == ("ok", False, True)
    assert new["down_ms"] is not None and new["up_again_ms"] is not None
    assert new["locks"] is not None  # the branch's migration is measured
    # The whole sequence is the branch's part: 000005's failing down never runs.
    assert report["sequence"]["ran"] and report["sequence"]["ok"], report["sequence"]
    assert report["counts"]["round_tripped"] == 1 and report["counts"]["applied"] == 6
    assert "000005" not in stderr  # the base's migrations are not listed one by one


def test_a_broken_down_the_branch_adds_is_caught(tmp_path: Path, pg_server: PgServer) -> None:
    root = branch(tmp_path)
    add(root, "aggregator", "000008", "index_digests",
        "CREATE INDEX digests_id ON digests (id);\n", "SELECT 1;\n")
    code, report, _ = verify(root, pg_server, "--against", "main")
    assert code == 1
    (failed,) = [m for m in report["migrations"] if m["status"] == "failed"]
    assert failed["version"] == 8
    assert {p["stage"] for p in failed["problems"]} == {"down-restore", "up-again"}


def test_the_whole_sequence_of_the_branch_is_checked(tmp_path: Path, pg_server: PgServer) -> None:
    """The branch's two migrations are rolled back together and applied again, on top of
    the base's schema (whose own failing down is not run)."""
    root = branch(tmp_path)
    add(root, "aggregator", "000008", "digest_items",
        "CREATE TABLE digest_items (digest bigint REFERENCES digests);\n",
        "DROP TABLE digest_items;\n")
    code, report, _ = verify(root, pg_server, "--against", "main")
    assert code == 0, report
    assert report["counts"]["round_tripped"] == 2
    sequence = report["sequence"]
    assert sequence["ran"] and sequence["ok"] and sequence["down_ms"] is not None, sequence


def test_what_ref_gained_since_the_split_is_applied_from_git(tmp_path: Path,
                                                              pg_server: PgServer) -> None:
    """main took 000008 after `feature` split off and `feature` took 000009: the merge
    holds main's 000008 (read from git, absent from this checkout), applied once."""
    root = branch(tmp_path)
    git(root, "checkout", "-q", "main")
    add(root, "rule-service", "000008", "add_rule_flags",
        "ALTER TABLE rules ADD flags int;\n", "ALTER TABLE rules DROP flags;\n")
    git(root, "checkout", "-q", "feature")
    add(root, "aggregator", "000009", "add_digest_flags",
        "ALTER TABLE rules ADD digest_flags int;\n", "ALTER TABLE rules DROP digest_flags;\n")
    assert not (root / "rule-service/migrations/000008_add_rule_flags.up.sql").exists()
    code, report, _ = verify(root, pg_server, "--against", "main")
    assert code == 0, report
    statuses = {m["version"]: (m["status"], m["base"]) for m in report["migrations"]}
    assert statuses[8] == ("applied", True)
    assert statuses[7] == ("ok", False) and statuses[9] == ("ok", False)


def test_a_collision_with_ref_is_refused_before_a_database_is_made(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = branch(tmp_path)
    git(root, "checkout", "-q", "main")
    add(root, "rule-service", "000007", "add_rule_flags",
        "ALTER TABLE rules ADD flags int;\n", "ALTER TABLE rules DROP flags;\n")
    git(root, "checkout", "-q", "feature")
    result = run(["verify", "--dsn", pg_server.admin_dsn, "--against", "main"], cwd=root)
    assert result.code == 1, result.stderr
    assert "000007" in result.stderr and "Traceback" not in result.stderr
    # The resolve command the hint names (if any) is a real command.
    assert run(["resolve", "--onto", "main"], cwd=root).code == 0
    code, report, _ = verify(root, pg_server, "--against", "main")
    assert code == 0, report
    assert {m["version"] for m in report["migrations"] if m["round_trip"]} == {8}


def test_nothing_added_means_nothing_to_verify(tmp_path: Path, pg_server: PgServer) -> None:
    root = branch(tmp_path)
    git(root, "checkout", "-q", "main")
    result = run(["verify", "--dsn", pg_server.admin_dsn, "--against", "feature~1"], cwd=root)
    assert result.code == 0, result.stderr
    assert "nothing to verify: this branch adds no migration that feature~1 does not have" \
        in result.stdout + result.stderr
    with pg_server.admin() as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE "
                            "'migcoord_verify%'").fetchone() == (0,)


def test_service_and_against_round_trip_that_services_new_migrations(
        tmp_path: Path, pg_server: PgServer) -> None:
    root = branch(tmp_path)
    add(root, "rule-service", "000008", "add_rule_flags",
        "ALTER TABLE rules ADD flags int;\n", "ALTER TABLE rules DROP flags;\n")
    code, report, _ = verify(root, pg_server, "--against", "main", "--service", "rule-service")
    assert code == 0, report
    tripped = {m["version"] for m in report["migrations"] if m["round_trip"]}
    assert tripped == {8}
    code, report, _ = verify(root, pg_server, "--against", "main", "--service", "sender")
    assert code == 0 and report["migrations"] == []


def test_an_unknown_ref_says_how_to_fetch_it(tmp_path: Path) -> None:
    """With a remote named origin, the hint fetches from it (and that command works)."""
    root = branch(tmp_path)
    git(root, "remote", "add", "origin", str(root))
    result = run(["verify", "--against", "origin/nope"], cwd=root)
    assert result.code == 2
    assert "git does not know the ref 'origin/nope'" in result.stderr
    assert "`git fetch origin`" in result.stderr and "Traceback" not in result.stderr
    git(root, "fetch", "-q", "origin")


def test_outside_git_the_error_says_so(tmp_path: Path) -> None:
    from helpers import copy_example

    root = copy_example(tmp_path / "plain")
    result = run(["verify", "--against", "main"], cwd=root)
    assert result.code == 2
    assert "is not inside a git repository" in result.stderr


def test_a_config_below_the_top_of_the_repository(tmp_path: Path, pg_server: PgServer) -> None:
    """Paths in git are relative to the top of the work tree, not to the config."""
    from helpers import copy_example

    repo = tmp_path / "repo"
    root = copy_example(repo / "db")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "base")
    git(repo, "checkout", "-q", "-b", "feature")
    add(root, "aggregator", "000007", "create_digests",
        "CREATE TABLE digests (id bigint PRIMARY KEY);\n", "DROP TABLE digests;\n")
    code, report, _ = verify(root, pg_server, "--against", "main")
    assert code == 0, report
    assert [m["version"] for m in report["migrations"] if m["round_trip"]] == [7]
    assert report["counts"]["applied"] == 6
