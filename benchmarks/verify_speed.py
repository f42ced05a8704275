"""`migcoord verify` on the 1,000-migration trivial tree, beside its floor.

Starts its own PostgreSQL (the embedded server configured as verify's own temporary
server: no fsync), generates N trivial migrations (benchmarks/apply_speed.py's
`trivial_tree`: one table and one row each) and prints:

1. `migcoord verify` (the whole CLI process): total and per-migration time, with its
   snapshots read as what changed (migcoord.db.snapshot_scope, the default) and, in the
   same run, read in full each time as before (`--full-too`; a switch in code, not an
   option of the command);
2. the floor without snapshots: `up --all`, then `down` of everything, then `up --all`
   again, each a migcoord CLI process on a fresh database: the same migrations run the
   same number of times less one (verify runs each up twice and each down once per
   round trip, then the whole sequence down and up);
3. what one catalog snapshot costs with all N tables present (verify takes three per
   migration, on a schema that grows from 0 to N tables);
4. `migcoord verify` on the same tree with K broken downs, evenly spaced, each dropping
   the table of the migration before it as well as its own: each makes verify build the
   throwaway database again up to it (N/2 ups on average) and go on;
5. the pull request: the tree committed as branch `main` (with section 4's broken
   downs), a branch adding A more migrations, and `verify --against main`, beside one
   `up --all` of the N (section 2): the base is applied once, the A round-tripped.

    .venv/bin/python benchmarks/verify_speed.py [--migrations 1000] [--broken-downs 10]
        [--added 10] [--full-too]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from benchmarks.apply_speed import TRIVIAL_DOWN, TRIVIAL_UP, fresh_database, timed, trivial_tree
from benchmarks.trees import compile_installed, scratch_server
from migcoord.db import snapshot_sql
from migcoord.local.embedded import EmbeddedServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--migrations", type=int, default=1000)
    parser.add_argument("--broken-downs", type=int, default=10)
    parser.add_argument("--added", type=int, default=10,
                        help="migrations the branch adds in section 5 (0: skip it)")
    parser.add_argument("--full-too", action="store_true",
                        help="also time verify reading every snapshot in full (as before)")
    args = parser.parse_args()
    compile_installed()
    with scratch_server(fast=True) as (scratch, server, admin):
        run(args.migrations, args.broken_downs, scratch, server, admin, args.added,
            full_too=args.full_too)


#: `python -m migcoord` with every snapshot read in full (verify/servers.SCOPED_SNAPSHOTS).
FULL_SNAPSHOTS = [sys.executable, "-c", "import sys; from migcoord.verify import servers; "
                  "servers.SCOPED_SNAPSHOTS = False; from migcoord.cli import main; "
                  "sys.exit(main())"]


def run(n: int, broken: int, scratch: Path, server: EmbeddedServer, admin: str,
        added: int = 0, *, full_too: bool = False) -> None:
    root = trivial_tree(scratch / "repo", n)
    migcoord = [sys.executable, "-m", "migcoord"]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with psycopg.connect(admin) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        fsync = conn.execute("SHOW fsync").fetchone()[0]  # type: ignore[index]
    print(f"PostgreSQL {version}, fsync={fsync}; {n} trivial migrations; {os.cpu_count()} cores")

    print("\n1. verify")
    elapsed = timed([*migcoord, "verify", "-q", "--dsn", admin], cwd=root, env=env)
    print(f"  {'migcoord verify':<52} {elapsed:7.2f} s  ({elapsed / n * 1000:.1f} ms per migration)")
    full = 0.0
    if full_too:
        full = timed([*FULL_SNAPSHOTS, "verify", "-q", "--dsn", admin], cwd=root, env=env)
        print(f"  {'migcoord verify, every snapshot read in full':<52} {full:7.2f} s  "
              f"({full / n * 1000:.1f} ms per migration)")

    print("\n2. the floor: the same migrations without snapshots")
    dsn = fresh_database(admin, "bench_floor", server)
    steps = [("migcoord up --all", ["up", "--all", "-q"]),
             ("migcoord down --service service-00 --to 0", ["down", "--service", "service-00",
                                                            "--to", "0", "-q"]),
             ("migcoord up --all (again)", ["up", "--all", "-q"])]
    floor = 0.0
    up_all = 0.0
    for label, command in steps:
        step = timed([*migcoord, *command, "--dsn", dsn], cwd=root, env=env)
        up_all = up_all or step
        floor += step
        print(f"  {label:<52} {step:7.2f} s")
    print(f"  {'total (floor)':<52} {floor:7.2f} s  (verify is {elapsed / floor:.1f}x the floor"
          + (f"; read in full, {full / floor:.1f}x)" if full else ")"))

    print(f"\n3. one catalog snapshot with {n} tables (best / median of 20)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        times = []
        for _ in range(20):
            started = time.perf_counter()
            snap = snapshot_sql.take(conn, "public")
            times.append(time.perf_counter() - started)
    print(f"  {f'snapshot_sql.take ({len(snap)} objects)':<52} {min(times) * 1000:6.1f} ms "
          f"{statistics.median(times) * 1000:6.1f} ms")
    if broken:
        print(f"\n4. verify with {broken} broken downs")
        break_downs(root, n, broken)
        started = time.perf_counter()
        done = subprocess.run([*migcoord, "verify", "-q", "--format", "json", "--dsn", admin],
                              cwd=root, env=env, capture_output=True, text=True)
        spent = time.perf_counter() - started
        if done.returncode != 1:
            raise SystemExit(f"verify should have failed:\n{done.stdout}\n{done.stderr}")
        report = json.loads(done.stdout)
        rebuilt = [m["rebuild_ms"] for m in report["migrations"] if m["rebuilt"]]
        print(f"  {'migcoord verify':<52} {spent:7.2f} s  ({report['counts']['failed']} failed, "
              f"{report['counts']['skipped']} skipped)")
        print(f"  {f'of which {len(rebuilt)} rebuilds':<52} {sum(rebuilt) / 1000:7.2f} s  "
              f"({statistics.mean(rebuilt) if rebuilt else 0:.0f} ms each on average)")
    if added:
        print(f"\n5. the pull request: a branch adds {added} migrations to main's {n}")
        branch(root, n, added, env)
        spent = timed([*migcoord, "verify", "-q", "--against", "main", "--dsn", admin],
                      cwd=root, env=env)
        trips = elapsed / n * added
        print(f"  {'migcoord verify --against main':<52} {spent:7.2f} s")
        print(f"  {'one up --all of main (section 2)':<52} {up_all:7.2f} s")
        print(f"  {f'{added} round trips at section 1 rate':<52} {trips:7.2f} s")
        print(f"  {'(verify --against) / (up --all + round trips)':<52} "
              f"{spent / (up_all + trips):7.2f}x")


def branch(root: Path, n: int, added: int, env: dict[str, str]) -> None:
    """The tree as it is, committed as `main`; branch `feature` adds `added` migrations."""
    identity = {**env, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
                "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=identity, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "main")
    git("checkout", "-q", "-b", "feature")
    folder = root / "service-00" / "migrations"
    for version in range(n + 1, n + added + 1):
        text = f"{version:06d}"
        (folder / f"{text}_m{text}.up.sql").write_text(TRIVIAL_UP.format(v=text))
        (folder / f"{text}_m{text}.down.sql").write_text(TRIVIAL_DOWN.format(v=text))
    subprocess.run([sys.executable, "-m", "migcoord", "sum"], cwd=root, check=True,
                   capture_output=True)
    git("add", "-A")
    git("commit", "-q", "-m", "feature")


def break_downs(root: Path, n: int, broken: int) -> None:
    """Make `broken` evenly spaced downs drop the previous migration's table too."""
    folder = root / "service-00" / "migrations"
    for index in range(broken):
        version = (index + 1) * n // (broken + 1) + 1
        text, previous = f"{version:06d}", f"{version - 1:06d}"
        (folder / f"{text}_m{text}.down.sql").write_text(
            f"DROP TABLE IF EXISTS t_{text};\nDROP TABLE IF EXISTS t_{previous};\n")
    subprocess.run([sys.executable, "-m", "migcoord", "sum"], cwd=root, check=True,
                   capture_output=True)


if __name__ == "__main__":
    main()
