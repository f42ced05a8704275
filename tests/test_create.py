"""`migcoord create`: the next global number, both files, the sum, never an overwrite."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import filelock
import pytest

from helpers import REPO, codes, copy_example, make_tree, pair, run, run_process

RESERVING = """\
[services.rule-service]
migrations = "rule-service/migrations"
reserved = "000001-000005"

[services.aggregator]
migrations = "aggregator/migrations"

[services.sender]
migrations = "sender/migrations"
reserved = "000010-000019"
"""


def create(root: Path, name: str, service: str, *extra: str) -> dict[str, object]:
    result = run(["create", name, "--service", service, "--format", "json", *extra], cwd=root)
    assert result.code == 0, result.stderr
    document: dict[str, object] = result.json()
    return document


def migration_files(root: Path) -> set[str]:
    """Every migration-looking file under root, relative and POSIX."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*.sql")}


def all_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir()}


def test_create_writes_both_files_with_the_next_global_version(tmp_path: Path) -> None:
    """After rule-service's 1-5 and aggregator's 6, the next is 000007 whoever asks."""
    root = copy_example(tmp_path / "alerting")
    result = run(["create", "Add Email-Index", "--service", "rule-service"], cwd=root)
    assert result.code == 0, result.stderr
    up = root / "rule-service/migrations/000007_add_email_index.up.sql"
    down = root / "rule-service/migrations/000007_add_email_index.down.sql"
    assert up.is_file() and down.is_file()
    assert result.stdout.splitlines() == [
        "rule-service/migrations/000007_add_email_index.up.sql",
        "rule-service/migrations/000007_add_email_index.down.sql",
    ]
    assert create(root, "second", "aggregator")["version"] == 8


def test_create_json_has_version_service_up_and_down(tmp_path: Path) -> None:
    """The JSON document names the version, the service and both paths, relative to the
    config's folder as check's are, wherever it is run from."""
    root = copy_example(tmp_path / "alerting")
    document = create(root / "aggregator", "add_index", "aggregator")
    assert document["version"] == 7
    assert document["service"] == "aggregator"
    assert document["up"] == "aggregator/migrations/000007_add_index.up.sql"
    assert document["down"] == "aggregator/migrations/000007_add_index.down.sql"


def test_create_uses_the_configured_width(tmp_path: Path) -> None:
    """version_width = 4 gives `0003_x`; check then has no version-width warning."""
    config = "version_width = 4\n" + RESERVING.replace("000001-000005", "1-5").replace(
        "000010-000019", "10-19")
    make_tree(tmp_path, pair("rule-service", "0001", "a"), config=config)
    document = create(tmp_path, "x", "rule-service")
    assert document["version"] == 2
    assert (tmp_path / "rule-service/migrations/0002_x.up.sql").is_file()
    assert codes(run(["check", "--format", "json"], cwd=tmp_path)) == ["empty-migration"]


def test_create_makes_the_service_folder_when_it_is_missing(tmp_path: Path) -> None:
    """sender has no folder yet: create makes it and takes the next global number."""
    root = copy_example(tmp_path / "alerting")
    assert not (root / "sender/migrations").exists()
    document = create(root, "create_deliveries", "sender")
    assert document["version"] == 7
    assert (root / "sender/migrations/000007_create_deliveries.up.sql").is_file()


def test_create_skips_another_services_reserved_range(tmp_path: Path) -> None:
    """aggregator's first number is 6, past rule-service's 1-5; later 20, past sender's 10-19."""
    make_tree(tmp_path, {}, config=RESERVING, write_sum=False)
    assert create(tmp_path, "first", "aggregator")["version"] == 6
    for number in range(7, 10):
        assert create(tmp_path, f"m{number}", "aggregator")["version"] == number
    assert create(tmp_path, "after_sender", "aggregator")["version"] == 20


def test_create_fills_the_top_of_its_own_reserved_range_first(tmp_path: Path) -> None:
    """rule-service has 1-2 of its 1-5 and others are at 7: its next is 3, then 4, 5, then 8."""
    make_tree(tmp_path, {**pair("rule-service", "000001", "a"), **pair("rule-service", "000002", "b"),
                         **pair("aggregator", "000006", "f"), **pair("aggregator", "000007", "g")},
              config=RESERVING)
    assert [create(tmp_path, f"r{i}", "rule-service")["version"] for i in range(4)] == [3, 4, 5, 8]


def test_create_keeps_the_sum_consistent(tmp_path: Path) -> None:
    """After create, check reports only the new migration's empty-migration warning."""
    root = copy_example(tmp_path / "alerting")
    before = (root / "migcoord.sum").read_text().splitlines()
    create(root, "add_index", "aggregator")
    after = (root / "migcoord.sum").read_text().splitlines()
    assert after[1:-1] == before[1:]
    assert after[-1] == "000007 aggregator add_index"
    result = run(["check", "--format", "json"], cwd=root)
    assert result.code == 0
    assert [(f["code"], f["severity"]) for f in result.json()["findings"]] == [
        ("empty-migration", "warning")]


def test_create_does_not_bless_an_unrelated_rename(tmp_path: Path) -> None:
    """A migration renamed by hand before create still shows as sum-mismatch afterwards
    (migcoord.sum records names; create adds its own line only)."""
    root = copy_example(tmp_path / "alerting")
    folder = root / "aggregator/migrations"
    for direction in ("up", "down"):
        (folder / f"000006_create_notifications_table.{direction}.sql").rename(
            folder / f"000006_notifications.{direction}.sql")
    create(root, "add_index", "aggregator")
    assert "sum-mismatch" in codes(run(["check", "--format", "json"], cwd=root))


def test_writing_the_sql_of_a_new_migration_keeps_check_clean(tmp_path: Path) -> None:
    """migcoord.sum is a ledger of numbers, not of content: writing the SQL of a created
    migration (or editing any file) never makes `check` report sum-mismatch."""
    root = copy_example(tmp_path / "alerting")
    created = create(root, "add_digest", "aggregator")
    up = root / str(created["up"])
    up.write_text("ALTER TABLE notifications ADD COLUMN IF NOT EXISTS digest text;\n")
    down = up.with_name(up.name.replace(".up.sql", ".down.sql"))
    down.write_text("ALTER TABLE notifications DROP COLUMN IF EXISTS digest;\n")
    edited = root / "aggregator/migrations/000006_create_notifications_table.down.sql"
    edited.write_text(edited.read_text() + "-- edited\n")
    result = run(["check", "--strict", "--format", "json"], cwd=root)
    assert result.code == 0, result.stdout
    assert codes(result) == []


def test_create_refuses_while_the_sum_has_conflict_markers(tmp_path: Path) -> None:
    """After a conflicted merge, create says to resolve the sum first and writes nothing."""
    root = copy_example(tmp_path / "alerting")
    sum_path = root / "migcoord.sum"
    sum_path.write_text(sum_path.read_text() + "<<<<<<< HEAD\n=======\n>>>>>>> other\n")
    before = all_files(root)
    result = run(["create", "x", "--service", "aggregator"], cwd=root)
    assert result.code == 1
    assert "merge conflict" in result.stderr and "migcoord resolve" in result.stderr
    assert migration_files(root) == {f for f in before if f.endswith(".sql")}


@pytest.mark.parametrize("name", ["", "../../etc/x", "a/b", "Ünïcode", "x" * 300])
def test_create_refuses_a_bad_name_with_exit_2_and_writes_nothing(tmp_path: Path, name: str) -> None:
    """A name that is not a file-name-safe word is a usage error, not a traceback."""
    root = copy_example(tmp_path / "alerting")
    before = all_files(root)
    result = run(["create", name, "--service", "aggregator"], cwd=root)
    assert result.code == 2
    assert result.stderr.startswith("migcoord: error: ")
    assert all_files(root) == before


def test_create_for_an_unknown_service_is_a_usage_error(tmp_path: Path) -> None:
    """The message lists the configured services."""
    root = copy_example(tmp_path / "alerting")
    result = run(["create", "x", "--service", "billing"], cwd=root)
    assert result.code == 2
    assert "'billing'" in result.stderr and "rule-service" in result.stderr


def _sum_and_sql(root: Path) -> tuple[str, set[str]]:
    return (root / "migcoord.sum").read_text(), migration_files(root)


@pytest.mark.parametrize("blocker", ["directory", "dangling-symlink"])
@pytest.mark.parametrize("half", ["up", "down"])
def test_an_entry_named_like_the_next_migration_takes_its_number(
    tmp_path: Path, blocker: str, half: str
) -> None:
    """A folder or broken symlink named like a migration file is a migration golang-migrate
    would try to read: `create` steps past its number, and `check` names it."""
    root = copy_example(tmp_path / "alerting")
    target = root / f"aggregator/migrations/000007_add_index.{half}.sql"
    if blocker == "directory":
        target.mkdir()
    else:
        target.symlink_to(root / "nowhere.sql")
    result = run(["create", "add_index", "--service", "aggregator", "--format", "json"], cwd=root)
    assert result.code == 0, result
    assert result.json()["version"] == 8
    assert target.is_symlink() or target.is_dir()
    assert "unreadable-file" in codes(run(["check", "--format", "json"], cwd=root))


@pytest.mark.parametrize("blocker", ["directory", "dangling-symlink"])
@pytest.mark.parametrize("half", [0, 1])
def test_create_exclusive_all_never_overwrites_an_existing_entry(
    tmp_path: Path, blocker: str, half: int
) -> None:
    """Something already at one of the names: FileExists naming it, and neither file written."""
    from migcoord.errors import FileExists
    from migcoord.repo.workspace import create_exclusive_all

    paths = [tmp_path / "000007_x.up.sql", tmp_path / "000007_x.down.sql"]
    target = paths[half]
    if blocker == "directory":
        target.mkdir()
    else:
        target.symlink_to(tmp_path / "nowhere.sql")
    with pytest.raises(FileExists, match="already exists") as error:
        create_exclusive_all([(path, "SELECT 1;\n") for path in paths])
    assert str(target) in str(error.value)
    other = paths[1 - half]
    assert not other.exists() and not other.is_symlink()
    assert not (tmp_path / "nowhere.sql").exists()


def _nobody() -> str:
    """The uid of `nobody`, as a number: not every system has a group called nobody."""
    return str(pwd.getpwnam("nobody").pw_uid)


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A root-owned temporary folder that another user may enter but not write."""
    folder = Path(tempfile.mkdtemp(prefix="migcoord-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run the CLI as another user")
@pytest.mark.parametrize("locked_before", [False, True], ids=["fresh", "lock-file-exists"])
def test_create_in_a_read_only_repository_fails_cleanly(
    world_readable_tmp: Path, locked_before: bool
) -> None:
    """As `nobody` in a root-owned 755 tree: clear error, no traceback, nothing written."""
    root = copy_example(world_readable_tmp / "alerting")
    if locked_before:
        assert run(["create", "first", "--service", "aggregator"], cwd=root).code == 0
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = run_process(["create", "add_index", "--service", "aggregator"], cwd=root,
                         user=_nobody(), timeout=60)
    assert result.code not in (0, 2), result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("migcoord: error: ")
    assert "Permission denied" in result.stderr or "not writable" in result.stderr
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


# -- concurrency --------------------------------------------------------------------------


def _spawn_create(root: Path, name: str, service: str, *extra: str) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "migcoord", "create", name, "--service", service,
         "--format", "json", *extra],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_twenty_concurrent_creates_get_distinct_consecutive_versions(tmp_path: Path) -> None:
    """20 processes at once over 3 services: 20 numbers 7..26, 40 files, a consistent sum."""
    root = copy_example(tmp_path / "alerting")
    services = ["rule-service", "aggregator", "sender"]
    processes = [_spawn_create(root, f"change_{i:02d}", services[i % 3]) for i in range(20)]
    outputs = [(p, *p.communicate(timeout=120)) for p in processes]
    for process, _out, err in outputs:
        assert process.returncode == 0, err
        assert "Traceback" not in err
    versions = sorted(json.loads(out)["version"] for _, out, _ in outputs)
    assert versions == list(range(7, 27))
    pristine = all_files(copy_example(tmp_path / "pristine"))
    new = all_files(root) - pristine
    # migcoord's own state: the file lock, and the SQL analysis cache the docs refresh fills.
    lock_files = {".migcoord/.gitignore", ".migcoord/repo.lock", ".migcoord/analysis-cache"}
    assert len(new - lock_files) == 40
    assert all(f.endswith((".up.sql", ".down.sql")) for f in new - lock_files), new
    assert not any(Path(f).name.startswith(".") for f in new - lock_files)
    check = run(["check", "--format", "json"], cwd=root)
    assert check.code == 0, check.stdout
    assert {f["code"] for f in check.json()["findings"]} == {"empty-migration"}
    assert len(check.json()["findings"]) == 20

def test_create_gives_up_with_exit_3_while_another_holds_the_repo_lock(tmp_path: Path) -> None:
    """With the lock held elsewhere, `create --lock-timeout 1` exits 3 naming the lock."""
    root = copy_example(tmp_path / "alerting")
    lock_path = root / ".migcoord" / "repo.lock"
    lock_path.parent.mkdir()
    before = _sum_and_sql(root)
    with filelock.FileLock(str(lock_path), timeout=0):
        result = run_process(["create", "x", "--service", "aggregator", "--lock-timeout", "1"],
                             cwd=root, timeout=60)
    assert result.code == 3, result
    assert str(lock_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert _sum_and_sql(root) == before
