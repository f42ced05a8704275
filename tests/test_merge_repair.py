"""After a merge moved SEVERAL of this branch's migrations that a local database had
applied: `resolve --dsn`, `up`, `status` and `check --db` recognise each one under its
old number (even where the new number is another moved migration's old one, and where
resolve rewrote a `depends` line), and the `mark` chain they name, run as printed,
leaves the history a fresh `up --all` of the merged tree would. A rebase that stops once
per commit keeps `depends` references on the migration they named. Real git, a real
server, no mocks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from gitflow import commit_all, create, example_repo, git, tree_files

from helpers import run
from test_engine_support import env, history, schema_snapshot

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

AGG = "aggregator/migrations"
CHANNEL_UP = "ALTER TABLE notifications ADD COLUMN IF NOT EXISTS channel text;\n"
CHANNEL_DOWN = "ALTER TABLE notifications DROP COLUMN IF EXISTS channel;\n"
MORE_UP = ("-- migcoord:depends 000007\n"
           "CREATE INDEX IF NOT EXISTS notifications_channel ON notifications (channel);\n")
MORE_DOWN = "DROP INDEX IF EXISTS notifications_channel;\n"
LABELS_UP = "ALTER TABLE rules ADD COLUMN IF NOT EXISTS labels text;\n"
LABELS_DOWN = "ALTER TABLE rules DROP COLUMN IF EXISTS labels;\n"
CHAIN = ["migcoord mark 000009 --applied --reason 'renumbered from 000008'",
         "migcoord mark 000008 --applied --reason 'renumbered from 000007'",
         "migcoord mark 000007 --pending --reason 'renumbered to 000008'"]


def two_moved(tmp_path: Path, dsn: str, to: str | None = None) -> Path:
    """`feature` added aggregator 000007 and 000008 (which depends on 000007) and applied
    both to `dsn`; main added rule-service 000007; `git merge main` stopped on the sum."""
    root = example_repo(tmp_path / "repo")
    git(root, "checkout", "-q", "-b", "feature")
    assert create(root, "aggregator", "add_notification_channel", CHANNEL_UP,
                  CHANNEL_DOWN) == "000007"
    assert create(root, "aggregator", "add_more", MORE_UP, MORE_DOWN) == "000008"
    commit_all(root, "aggregator: channel")
    upto = ["--to", to] if to else []
    assert run(["up", "--all", *upto], cwd=root, environ=env(dsn)).code == 0
    git(root, "checkout", "-q", "main")
    assert create(root, "rule-service", "add_labels", LABELS_UP, LABELS_DOWN) == "000007"
    commit_all(root, "rule-service: labels")
    git(root, "checkout", "-q", "feature")
    assert git(root, "merge", "main", check=False).returncode != 0
    return root


def marks(text: str) -> list[str]:
    return re.findall(r"`(migcoord mark [^`]+)`", text)


def run_hinted(root: Path, commands: list[str], dsn: str) -> None:
    """Run each hinted command exactly as printed (its quoted reason as one argument)."""
    for command in commands:
        args = [part.strip("'") for part in re.findall(r"'[^']*'|\S+", command)][1:]
        done = run(args, cwd=root, environ=env(dsn))
        assert done.code == 0, (command, done.stderr)


def same_history(dsn: str, other_dsn: str) -> None:
    keys = ("version", "service", "name", "checksum", "status", "depends")
    assert [tuple(r[k] for k in keys) for r in history(dsn)] == [
        tuple(r[k] for k in keys) for r in history(other_dsn)]
    assert schema_snapshot(dsn) == schema_snapshot(other_dsn)


def test_resolve_dsn_names_a_mark_chain_that_leaves_the_history_of_a_fresh_database(
    tmp_path: Path, dsn: str, other_dsn: str
) -> None:
    """Both moved migrations are applied: the chain records the highest new number first,
    so no step overwrites or deletes a row another step wrote; after it, `up --all`
    applies only rule-service's 000007 and the history equals a fresh database's."""
    root = two_moved(tmp_path, dsn)
    refused = run(["resolve", "--dsn", dsn], cwd=root)
    assert refused.code == 1
    assert marks(refused.stderr) == CHAIN
    assert run(["resolve"], cwd=root).code == 0
    commit_all(root, "merge main")
    run_hinted(root, marks(refused.stderr), dsn)
    applied = run(["up", "--all", "--format", "json"], cwd=root, environ=env(dsn))
    assert applied.code == 0, applied.stderr
    assert [(s["version"], s["service"]) for s in applied.json()["applied"]] == [
        (7, "rule-service")]
    assert run(["up", "--all"], cwd=root, environ=env(other_dsn)).code == 0
    same_history(dsn, other_dsn)


def test_up_status_and_check_recognise_both_old_numbers_and_name_the_same_chain(
    tmp_path: Path, dsn: str, other_dsn: str
) -> None:
    """Resolved and committed without --dsn: 000008's old row holds the number the
    channel migration now has, and add_more's checksum changed with its depends line;
    `up --all`, `up --service rule-service`, `status` and `check --db` still recognise
    both and name the one chain, which then works."""
    root = two_moved(tmp_path, dsn)
    assert run(["resolve"], cwd=root).code == 0
    assert (root / AGG / "000009_add_more.up.sql").read_text() == MORE_UP.replace(
        "000007", "000008")
    commit_all(root, "merge main")

    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert refused.stderr.count("applied in this database under its old number") == 2
    assert "was changed after it was applied" not in refused.stderr
    assert marks(refused.stderr) == CHAIN
    assert "record the new numbers without" in refused.stderr  # two migrations moved
    one = run(["up", "--service", "rule-service"], cwd=root, environ=env(dsn))
    assert one.code == 1
    assert marks(one.stderr) == CHAIN
    states = {(m["version"], m["name"], m["state"]) for m in run(
        ["status", "--format", "json"], cwd=root, environ=env(dsn)).json()["migrations"]}
    assert states >= {(7, "add_notification_channel", "missing"), (8, "add_more", "missing"),
                      (8, "add_notification_channel", "pending"), (9, "add_more", "pending")}
    db = run(["check", "--db", "--no-sql", "--format", "json"], cwd=root, environ=env(dsn))
    found = [f for f in db.json()["findings"] if f["severity"] == "error"]
    assert {f["code"] for f in found} == {"missing-file"}
    assert all(marks(str(f["hint"])) == CHAIN for f in found)

    run_hinted(root, CHAIN, dsn)
    assert run(["up", "--all"], cwd=root, environ=env(dsn)).code == 0
    assert run(["up", "--all"], cwd=root, environ=env(other_dsn)).code == 0
    same_history(dsn, other_dsn)
    status = run(["status", "--format", "json"], cwd=root, environ=env(dsn)).json()
    assert {m["state"] for m in status["migrations"]} == {"applied"}


def test_only_the_first_of_two_moved_migrations_applied_gets_a_short_chain(
    tmp_path: Path, dsn: str, other_dsn: str
) -> None:
    """The developer applied only 000007: the chain records 000008 and clears 000007;
    `up --all` then applies rule-service's 000007 and add_more as a fresh database would."""
    root = two_moved(tmp_path, dsn, to="000007")
    refused_resolve = run(["resolve", "--dsn", dsn], cwd=root)
    assert refused_resolve.code == 1
    short = ["migcoord mark 000008 --applied --reason 'renumbered from 000007'",
             "migcoord mark 000007 --pending --reason 'renumbered to 000008'"]
    assert marks(refused_resolve.stderr) == short
    assert run(["resolve"], cwd=root).code == 0
    commit_all(root, "merge main")
    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1, refused.stderr
    assert marks(refused.stderr) == short
    assert "record the new number without" in refused.stderr  # one migration moved
    run_hinted(root, short, dsn)
    applied = run(["up", "--all", "--format", "json"], cwd=root, environ=env(dsn))
    assert applied.code == 0, applied.stderr
    assert [s["version"] for s in applied.json()["applied"]] == [7, 9]
    assert run(["up", "--all"], cwd=root, environ=env(other_dsn)).code == 0
    same_history(dsn, other_dsn)


def test_a_different_migration_under_the_same_name_is_never_taken_for_the_moved_one(
    tmp_path: Path, dsn: str
) -> None:
    """A file with the applied migration's service and name but other SQL is not the
    migration the database applied: `up` says the file is gone, not that it moved."""
    root = two_moved(tmp_path, dsn)
    assert run(["resolve"], cwd=root).code == 0
    channel = root / AGG / "000008_add_notification_channel.up.sql"
    channel.write_text(CHANNEL_UP.replace("channel text", "channel varchar(20)"))
    commit_all(root, "merge main")
    refused = run(["up", "--all"], cwd=root, environ=env(dsn))
    assert refused.code == 1
    assert "000007 aggregator add_notification_channel is applied in the database but its " \
        "file is gone" in refused.stderr
    assert "mark 000008 --applied --reason 'renumbered from 000007'" not in refused.stderr


CRLF_CHANNEL = b"\xef\xbb\xbf" + CHANNEL_UP.replace("\n", "\r\n").encode()
TWO_DEPS_UP = ("-- migcoord:depends rule-service:000002, 000007\n"
               "CREATE INDEX IF NOT EXISTS notifications_channel ON notifications (channel);\n")


def test_a_rebase_that_stops_per_commit_keeps_depends_on_the_migration_it_named(
    tmp_path: Path,
) -> None:
    """c1 adds aggregator 000007 (BOM, CRLF); c2 adds 000008 depending on
    `rule-service:000002, 000007`. `git rebase main` stops at each: the first resolve
    moves 7 to 8, the second moves c2's 8 to 9 and makes its bare `000007` (now
    rule-service's add_labels) `000008`, where the channel migration went."""
    root = example_repo(tmp_path / "repo")
    git(root, "checkout", "-q", "-b", "feature")
    assert create(root, "aggregator", "add_notification_channel", "", CHANNEL_DOWN) == "000007"
    (root / AGG / "000007_add_notification_channel.up.sql").write_bytes(CRLF_CHANNEL)
    commit_all(root, "c1")
    assert create(root, "aggregator", "add_more", TWO_DEPS_UP, MORE_DOWN) == "000008"
    commit_all(root, "c2")
    git(root, "checkout", "-q", "main")
    assert create(root, "rule-service", "add_labels", LABELS_UP, LABELS_DOWN) == "000007"
    commit_all(root, "m1")
    git(root, "checkout", "-q", "feature")

    assert git(root, "rebase", "main", check=False).returncode != 0
    first = run(["resolve"], cwd=root)
    assert first.code == 0, first.stderr
    assert "moved aggregator 000007_add_notification_channel -> 000008" in first.stdout
    git(root, "add", "-A")
    assert git(root, "rebase", "--continue", check=False).returncode != 0
    second = run(["resolve"], cwd=root)
    assert second.code == 0, second.stderr
    assert "moved aggregator 000008_add_more -> 000009_add_more" in second.stdout
    assert f"updated depends in {AGG}/000009_add_more.up.sql" in second.stdout
    assert (root / AGG / "000009_add_more.up.sql").read_text() == TWO_DEPS_UP.replace(
        "000007", "000008")
    assert (root / AGG / "000008_add_notification_channel.up.sql").read_bytes() == CRLF_CHANNEL
    after = tree_files(root)
    third = run(["resolve"], cwd=root)
    assert third.code == 0, third.stderr
    assert "updated" not in third.stdout
    assert tree_files(root) == after
    git(root, "add", "-A")
    git(root, "rebase", "--continue")
    clean = run(["check"], cwd=root)
    assert clean.code == 0, clean.stdout + clean.stderr
    assert git(root, "log", "--format=%s", "-3").stdout.split() == ["c2", "c1", "m1"]


def test_a_qualified_depends_on_a_number_another_service_has_is_an_error(
    tmp_path: Path,
) -> None:
    """`depends rule-service:000007` where 000007 is aggregator's: check reports
    unknown-dependency naming the owner, and the hinted spelling is clean. (A bare number
    cannot say whose it was; resolve keeps it on its migration instead.)"""
    root = example_repo(tmp_path / "repo")
    assert create(root, "aggregator", "add_notification_channel", CHANNEL_UP,
                  CHANNEL_DOWN) == "000007"
    view = "CREATE OR REPLACE VIEW channels AS SELECT channel FROM notifications;\n"
    assert create(root, "sender", "channels", "-- migcoord:depends rule-service:000007\n"
                  + view, "DROP VIEW IF EXISTS channels;\n") == "000008"
    result = run(["check", "--format", "json"], cwd=root)
    [found] = [f for f in result.json()["findings"] if f["severity"] == "error"]
    assert found["code"] == "unknown-dependency"
    assert "000007 belongs to aggregator" in str(found["message"])
    assert "`aggregator:000007`" in str(found["hint"])
    (root / "sender/migrations/000008_channels.up.sql").write_text(
        "-- migcoord:depends aggregator:000007\n" + view)
    assert run(["check", "--strict"], cwd=root).code == 0
