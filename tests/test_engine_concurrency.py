"""Many migcoord processes against one database, and the advisory lock between them.

Every replica of every service runs `up` at boot. These tests start real processes and
synchronise on what the server shows (pg_stat_activity, pg_locks), never on sleeps.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from helpers import make_tree, pair, run, run_process
from migcoord import Coordinator
from test_engine_support import (
    AB_CONFIG,
    QUICK,
    env,
    events,
    history,
    history_versions,
    holding_lock,
    lock_holders,
    query,
    scalar,
    spawn,
    wait_until,
)

SERVICES = ("a", "b", "c")
THREE_SERVICES = AB_CONFIG + '\n[services.c]\nmigrations = "c/migrations"\n'
MIGRATIONS = 50
PROCESSES = 20


def generated_tree(root: Path) -> Path:
    """50 migrations over three services; each creates a table and logs itself."""
    files: dict[str, str] = {}
    for version in range(1, MIGRATIONS + 1):
        service = SERVICES[version % len(SERVICES)]
        up = f"CREATE TABLE t_{version:03d} (id int);\n"
        if version == 1:
            up = "CREATE TABLE applied_log (version int NOT NULL, at timestamptz DEFAULT now());\n"
        up += f"INSERT INTO applied_log (version) VALUES ({version});\n"
        files.update(pair(service, f"{version:06d}", f"step_{version}", up,
                          f"DROP TABLE t_{version:03d};\n"))
    return make_tree(root, files, config=THREE_SERVICES)


def migcoord_backends(dsn: str, application_name: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND application_name = %s",
                      (application_name,)))


def test_twenty_processes_apply_fifty_migrations_exactly_once(tmp_path: Path, dsn: str) -> None:
    """20 simultaneous `up --all`: all exit 0, each migration runs once, no deadlock."""
    root = generated_tree(tmp_path)
    started = time.monotonic()
    # Hold the lock until all 20 are connected and waiting for it, so they really race.
    with holding_lock(dsn, application_name="test-starting-gate"):
        processes = [spawn(["up", "--all", "--format", "json", "--lock-timeout", "60"],
                           cwd=root, environ=env(dsn)) for _ in range(PROCESSES)]
        try:
            wait_until(lambda: migcoord_backends(dsn, "migcoord up --all") == PROCESSES,
                       what=f"{PROCESSES} migcoord backends", timeout=60)
        except BaseException:
            for process in processes:
                process.kill()
                process.communicate()
            raise
    outputs = [process.communicate(timeout=90) for process in processes]
    elapsed = time.monotonic() - started

    codes = [process.returncode for process in processes]
    assert codes == [0] * PROCESSES, [err for _, err in outputs]
    reported = [step["version"] for out, _ in outputs for step in json.loads(out)["applied"]]
    assert sorted(reported) == list(range(1, MIGRATIONS + 1))
    rows = history(dsn)
    assert [r["version"] for r in rows] == list(range(1, MIGRATIONS + 1))
    assert {r["status"] for r in rows} == {"applied"}
    assert query(dsn, "SELECT count(*), count(DISTINCT version) FROM applied_log") == [
        (MIGRATIONS, MIGRATIONS)]
    assert len([e for e in events(dsn) if e["action"] == "up"]) == MIGRATIONS
    assert lock_holders(dsn) == []
    assert elapsed < 60, f"20 processes took {elapsed:.0f} s"


@contextlib.contextmanager
def queued_up(root: Path, dsn: str, *, lock_timeout: int) -> Iterator[subprocess.Popen[str]]:
    """`migcoord up --service a --format json` in a process of its own, once it waits for
    the migration lock; killed afterwards if it is still running."""
    waiter = spawn(["up", "--service", "a", "--format", "json", "--lock-timeout",
                    str(lock_timeout)], cwd=root, environ=env(dsn))
    try:
        wait_until(lambda: migcoord_backends(dsn, "migcoord up a") == 1,
                   what="the waiting migcoord")
        yield waiter
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate()


def one_pending(root: Path, dsn: str) -> Path:
    """Version 1 applied, version 2 pending."""
    make_tree(root, {**pair("a", "000001", "one", "CREATE TABLE one (id int);\n"),
                     **pair("a", "000002", "two", "CREATE TABLE two (id int);\n")},
              config=AB_CONFIG)
    assert run(["up", "--service", "a", "--to", "1"], cwd=root, environ=env(dsn)).code == 0
    return root


def test_lock_timeout_names_the_holders_pid_and_application_name(
    tmp_path: Path, dsn: str
) -> None:
    """`up --lock-timeout 1` with pending work gives up after a second, naming the holder."""
    root = one_pending(tmp_path, dsn)
    with holding_lock(dsn, application_name="ops-reindex-window") as holder:
        holder_pid = holder.info.backend_pid
        started = time.monotonic()
        result = run_process(["up", "--service", "a", "--lock-timeout", "1"], cwd=root,
                             environ=env(dsn))
        elapsed = time.monotonic() - started

    assert result.code == 3, result
    assert f"pid {holder_pid}" in result.stderr
    assert "application_name 'ops-reindex-window'" in result.stderr
    assert f"pg_terminate_backend({holder_pid})" in result.stderr
    assert "Traceback" not in result.stderr
    assert 1.0 <= elapsed < 10, elapsed
    assert [r["version"] for r in history(dsn)] == [1]


def test_lock_timeout_in_json_says_exit_code_three(tmp_path: Path, dsn: str) -> None:
    """With --format json the error is one document on stdout with its exit code."""
    root = one_pending(tmp_path, dsn)
    with holding_lock(dsn, application_name="ops-reindex-window") as holder:
        holder_pid = holder.info.backend_pid
        result = run(["up", "--service", "a", "--lock-timeout", "0.3", "--format", "json"],
                     cwd=root, environ=env(dsn))

    assert result.code == 3
    error = result.json()["error"]
    assert error["type"] == "LockTimeout"
    assert error["exit_code"] == 3
    assert f"pid {holder_pid}" in error["message"]


def test_down_and_mark_also_wait_for_the_lock_and_name_the_holder(
    tmp_path: Path, dsn: str
) -> None:
    """Every command that writes history takes the same lock."""
    root = one_pending(tmp_path, dsn)
    with holding_lock(dsn, application_name="ops-reindex-window"):
        down = run(["down", "--service", "a", "--lock-timeout", "0.3"], cwd=root,
                   environ=env(dsn))
        mark = run(["mark", "2", "--applied", "--lock-timeout", "0.3"], cwd=root,
                   environ=env(dsn))

    for result in (down, mark):
        assert result.code == 3, result
        assert "ops-reindex-window" in result.stderr
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "applied")]


def test_replica_with_nothing_pending_does_not_wait_for_the_lock(
    tmp_path: Path, dsn: str
) -> None:
    """Up to date: `up` answers at once while another session holds the lock."""
    root = one_pending(tmp_path, dsn)
    assert run(["up", "--service", "a"], cwd=root, environ=env(dsn)).code == 0

    with holding_lock(dsn, application_name="a-long-migration"):
        started = time.monotonic()
        results = [run_process(["up", *target, "--lock-timeout", "10"], cwd=root,
                               environ=env(dsn))
                   for target in (["--service", "a"], ["--all"])]
        elapsed = time.monotonic() - started

    for result in results:
        assert result.code == 0, result
        assert "nothing to apply" in result.stdout
        assert "waiting for the migration lock" not in result.stderr
    assert elapsed < 8, f"took {elapsed:.1f} s: it waited for the lock"


def test_a_waiting_replica_leaves_as_soon_as_the_holder_has_done_its_work(
    tmp_path: Path, dsn: str
) -> None:
    """A process queued for the lock notices, while waiting, that the holder applied all
    it would have, and exits with nothing applied without ever taking the lock (a boot
    storm of replicas leaves together instead of taking the lock one by one)."""
    root = one_pending(tmp_path, dsn)
    with holding_lock(dsn, application_name="test-gate") as gate, \
            queued_up(root, dsn, lock_timeout=60) as waiter:
        done = Coordinator.load(root / "migcoord.toml").up("a", conn=gate)
        assert [step.version for step in done.applied] == [2]
        # The gate still holds the lock: the waiter must leave without it.
        out, err = waiter.communicate(timeout=QUICK)
        assert lock_holders(dsn) == [gate.info.backend_pid]

    assert waiter.returncode == 0, err
    assert json.loads(out)["applied"] == []
    assert history_versions(dsn) == [1, 2]


def test_a_waiting_replica_finds_the_work_done_and_applies_nothing(
    tmp_path: Path, dsn: str
) -> None:
    """A process that waited for the lock re-plans under it: no double application."""
    root = one_pending(tmp_path, dsn)
    with holding_lock(dsn, application_name="test-gate") as gate, \
            queued_up(root, dsn, lock_timeout=30) as waiter:
        try:
            # Meanwhile the lock holder applies version 2 (the lock is re-entrant).
            done = Coordinator.load(root / "migcoord.toml").up("a", conn=gate)
            assert [step.version for step in done.applied] == [2]
        finally:
            gate.execute("SELECT pg_advisory_unlock_all()")
            out, err = waiter.communicate(timeout=30)

    assert waiter.returncode == 0, err
    assert json.loads(out)["applied"] == []
    assert [(r["version"], r["status"]) for r in history(dsn)] == [(1, "applied"), (2, "applied")]
