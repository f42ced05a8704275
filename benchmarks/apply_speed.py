"""Apply, no-op and concurrent `up`, each beside its floor, on one durable server.

Starts its own PostgreSQL (the embedded server, fsync ON: commits wait for the WAL
flush as in production), generates trivial migrations and prints:

1. apply N migrations from empty: psql running the same files one transaction each in
   one session (the floor), `migcoord up --all` (default: every commit but the last
   with synchronous_commit=off) and `migcoord up --all --sync-each`;
2. no-op `up` and `status` with N applied (the boot of every replica), and with N/10
   applied: the whole CLI process beside a bare Python process that imports psycopg,
   connects and runs one query, interleaved round by round; `up` again with no
   `.migcoord/file-facts` (a first boot: every file read); and the in-process
   `Coordinator.up` no-op;
3. P processes running `up --all` at once on N pending migrations: wall time, and how
   long the processes that found nothing left to do waited.

Every CLI process, and the floors' Python, run migcoord installed from a wheel built
from this checkout (benchmarks/trees.installed_wheel), as a user installs it.

    .venv/bin/python benchmarks/apply_speed.py [--migrations 1000] [--processes 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from benchmarks.trees import generate, installed_wheel, scratch_server
from migcoord.local.embedded import EmbeddedServer
from migcoord.repo import filefacts

TRIVIAL_UP = "CREATE TABLE IF NOT EXISTS t_{v} (id int);\nINSERT INTO t_{v} VALUES (1);\n"
TRIVIAL_DOWN = "DROP TABLE IF EXISTS t_{v};\n"


def trivial_tree(root: Path, migrations: int) -> Path:
    """One service, N migrations of two cheap statements each."""
    generate(root, migrations=0, services=1)
    folder = root / "service-00" / "migrations"
    for version in range(1, migrations + 1):
        text = f"{version:06d}"
        (folder / f"{text}_m{text}.up.sql").write_text(TRIVIAL_UP.format(v=text))
        (folder / f"{text}_m{text}.down.sql").write_text(TRIVIAL_DOWN.format(v=text))
    subprocess.run([sys.executable, "-m", "migcoord", "sum"], cwd=root, check=True,
                   capture_output=True)
    return root


def timed(command: list[str], *, cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return elapsed


def fresh_database(admin: str, name: str, server: EmbeddedServer) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.dsn(name)


def median_of(runs: int, action) -> tuple[float, float]:
    times = [action() for _ in range(runs)]
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--migrations", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10, help="repetitions of the no-op timings")
    parser.add_argument("--apply-runs", type=int, default=3,
                        help="interleaved rounds of the apply-from-empty timings")
    args = parser.parse_args()
    with scratch_server(fast=False) as (scratch, server, admin):
        run(args, scratch, server, admin)


def run(args: argparse.Namespace, scratch: Path, server: EmbeddedServer, admin: str) -> None:
    n = args.migrations
    root = trivial_tree(scratch / "repo", n)
    small = trivial_tree(scratch / "small", max(1, n // 10))
    psql = str(server.bin_dir / "psql")
    python = str(installed_wheel(scratch))
    migcoord = [python, "-m", "migcoord"]
    base_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with psycopg.connect(admin) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        fsync = conn.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
    print(f"PostgreSQL {version}, fsync={fsync}; {n} trivial migrations; {os.cpu_count()} cores")

    print(f"\n1. apply from empty (best / median of {args.apply_runs} interleaved rounds)")
    script = scratch / "all.sql"
    files = sorted((root / "service-00" / "migrations").glob("*.up.sql"))
    script.write_text("".join(f"BEGIN;\n\\i {f}\nCOMMIT;\n" for f in files))
    variants = {
        "psql, one transaction per file, one session": lambda dsn: [
            psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), dsn],
        "migcoord up --all": lambda dsn: [*migcoord, "up", "--all", "-q", "--dsn", dsn],
        "migcoord up --all --sync-each": lambda dsn: [
            *migcoord, "up", "--all", "-q", "--dsn", dsn, "--sync-each"],
    }
    times: dict[str, list[float]] = {label: [] for label in variants}
    applied_dsn = ""
    for round_number in range(args.apply_runs):
        # Interleaved, so a slow moment of the disk or the machine hits every variant.
        for index, (label, command) in enumerate(variants.items()):
            dsn = fresh_database(admin, f"bench_{round_number}_{index}", server)
            times[label].append(timed(command(dsn), cwd=root, env=base_env))
            if label == "migcoord up --all":
                applied_dsn = dsn
    floor_median = statistics.median(times["psql, one transaction per file, one session"])
    for label, values in times.items():
        median = statistics.median(values)
        ratio = "(floor)" if median == floor_median else f"({median / floor_median:.2f}x floor)"
        print(f"  {label:<52} {min(values):6.2f} s {median:6.2f} s  {ratio}")

    print(f"\n2. no-op up and status (best / median of {args.runs} interleaved rounds)")
    small_dsn = fresh_database(admin, "bench_small", server)
    timed([*migcoord, "up", "--all", "-q", "--dsn", small_dsn], cwd=small, env=base_env)
    bare = [python, "-c",
            "import sys, psycopg; c = psycopg.connect(sys.argv[1]); "
            "c.execute('SELECT 1').fetchone(); c.close()", applied_dsn]
    # The files were written just now: past file-facts' racy window, a boot knows them
    # by their stat (repo/filefacts.py), as every boot after the first does.
    time.sleep(filefacts.RACY_SECONDS)
    facts = root / ".migcoord" / filefacts.FILE_NAME
    noop = {
        "python: import psycopg, connect, one query": (bare, root),
        f"migcoord up --all, {n} applied": (
            [*migcoord, "up", "--all", "-q", "--dsn", applied_dsn], root),
        f"migcoord up --all, {max(1, n // 10)} applied": (
            [*migcoord, "up", "--all", "-q", "--dsn", small_dsn], small),
        f"migcoord status, {n} applied": (
            [*migcoord, "status", "-q", "--dsn", applied_dsn], root),
        f"migcoord up --all, {n} applied, first boot": (
            [*migcoord, "up", "--all", "-q", "--dsn", applied_dsn], root),
    }
    noop_times: dict[str, list[float]] = {label: [] for label in noop}
    for _ in range(args.runs):
        for label, (command, cwd) in noop.items():
            if label.endswith("first boot"):  # no file facts: every file read, then kept
                facts.unlink(missing_ok=True)
            noop_times[label].append(timed(command, cwd=cwd, env=base_env))
    floor_median = statistics.median(noop_times["python: import psycopg, connect, one query"])
    for label, values in noop_times.items():
        median = statistics.median(values)
        ratio = "(floor)" if median == floor_median else f"({median / floor_median:.2f}x floor)"
        print(f"  {label:<52} {min(values) * 1000:6.0f} ms {median * 1000:6.0f} ms  {ratio}")

    from migcoord import Coordinator

    coordinator = Coordinator.load(root / "migcoord.toml")
    with psycopg.connect(applied_dsn, autocommit=True) as conn:
        coordinator.up(all_services=True, conn=conn)

        def in_process() -> float:
            started = time.perf_counter()
            result = coordinator.up(all_services=True, conn=conn)
            assert not result.applied
            return time.perf_counter() - started

        best, median = median_of(args.runs, in_process)
    print(f"  {'Coordinator.up no-op, in process, open connection':<52} {best * 1000:6.1f} ms "
          f"{median * 1000:6.1f} ms")

    print(f"\n3. {args.processes} processes run `up --all` at once on {n} pending migrations")
    one_dsn = fresh_database(admin, "bench_one", server)
    alone = timed([*migcoord, "up", "--all", "-q", "--dsn", one_dsn, "--lock-timeout", "600"],
                  cwd=root, env=base_env)
    dsn = fresh_database(admin, "bench_concurrent", server)
    started = time.perf_counter()
    procs = [subprocess.Popen(
        [*migcoord, "--format", "json", "up", "--all", "--dsn", dsn, "--lock-timeout", "600"],
        cwd=root, env=base_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(args.processes)]
    outputs: dict[int, str] = {}
    finished: dict[int, float] = {}

    def wait(index: int, proc: subprocess.Popen[str]) -> None:
        outputs[index] = proc.communicate()[0]
        finished[index] = time.perf_counter()

    import json
    import threading

    waiters = [threading.Thread(target=wait, args=(i, p)) for i, p in enumerate(procs)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()
    wall = time.perf_counter() - started
    if any(proc.returncode != 0 for proc in procs):
        raise SystemExit("a concurrent up failed")
    applied = {i: [m["version"] for m in json.loads(out)["applied"]] for i, out in outputs.items()}
    versions = [v for each in applied.values() for v in each]
    workers = [i for i, each in applied.items() if each]
    last_worker = max(finished[i] for i in workers)
    idle_after = [finished[i] - last_worker for i, each in applied.items() if not each]
    print(f"  one process alone: {alone:.2f} s; {args.processes} at once: wall {wall:.2f} s "
          f"({wall / alone:.2f}x one process)")
    print(f"  migrations applied: {len(versions)} (expected {n}), distinct: {len(set(versions))}, "
          f"by {len(workers)} process(es)")
    if idle_after:
        print(f"  {len(idle_after)} found nothing left to do; they exited "
              f"{min(idle_after):+.2f} to {max(idle_after):+.2f} s after the last applying "
              f"process (median {statistics.median(idle_after):+.2f} s)")


if __name__ == "__main__":
    main()
