"""`migcoord check` on a generated tree of 10,000 migrations across 20 services.

Prints the whole CLI process time, the in-process `Coordinator.check()` time, and the
floor: reading and hashing every file in plain Python. Goals: `check --no-sql` at most
1.3x the floor, `check` with the SQL analysis at most 2.5x. `check` with the analysis
is timed cold (no `.migcoord/analysis-cache`: every file parsed) and warm (the cache of
the run before: nothing parsed). `--sql` adds the SQL analysis's parts: parsing every
file serially and in processes. Last, `check --no-sql` on the tree after a merge gone
wrong: `--duplicates` numbers (40) each used by two services, each finding's hint
planning the move that parts its group.

    .venv/bin/python benchmarks/check_speed.py [--migrations 10000] [--services 20] [--sql]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.trees import (
    compile_installed,
    generate,
    installed_wheel,
)


def best_of(runs: int, action) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--migrations", type=int, default=10_000)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duplicates", type=int, default=40,
                        help="numbers given to a second service for the last line (0: none)")
    parser.add_argument("--sql", action="store_true",
                        help="also time the SQL analysis alone, serial and in processes")
    args = parser.parse_args()
    compile_installed()
    with tempfile.TemporaryDirectory() as scratch:
        root = generate(Path(scratch) / "repo", migrations=args.migrations,
                        services=args.services, depends_every=10)
        # The whole-process lines run this checkout as a user installs it (a wheel), not
        # whatever migcoord `python -m` would find first.
        installed = str(installed_wheel(Path(scratch)))

        def floor() -> None:
            for folder, dirs, files in os.walk(root):
                dirs[:] = [d for d in dirs if d != ".migcoord"]  # migcoord's state, not the tree
                for name in files:
                    hashlib.sha256(Path(folder, name).read_bytes()).hexdigest()

        def cli(*flags: str) -> Callable[[], None]:
            def run() -> None:
                done = subprocess.run([installed, "-m", "migcoord", "check", "-q", *flags],
                                      cwd=root, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"check failed:\n{done.stdout}\n{done.stderr}")
            return run

        def python_start() -> None:
            subprocess.run([installed, "-c", "pass"], check=True)

        from migcoord import Coordinator, checks

        cache = root / ".migcoord" / "analysis-cache"

        def without_cache(action: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                cache.unlink(missing_ok=True)
                action()
            return run

        def cold(sql: bool, parallel: bool = False) -> Callable[[], None]:
            def run() -> None:
                coordinator = Coordinator.load(root / "migcoord.toml")
                findings = coordinator.check(sql=sql, parallel=parallel)
                assert not [f for f in findings if f.is_error], findings[:3]
            return run

        coordinator = Coordinator.load(root / "migcoord.toml")
        catalog = coordinator.catalog()

        def parse(parallel: bool) -> Callable[[], None]:
            return lambda: checks.analyze_catalog(catalog, coordinator.config, parallel=parallel)

        details = [
            ("SQL parse of every file, serial", parse(False)),
            ("SQL parse of every file, processes", parse(True)),
        ] if args.sql else []
        print(f"tree: {args.migrations} migrations, {args.services} services, "
              f"{2 * args.migrations} files; best / median of {args.runs} runs")
        floor_median = 0.0
        for label, action in (
            ("floor: read + sha256 every file", floor),
            ("python -c pass (interpreter start)", python_start),
            ("Coordinator.check(sql=False), new", cold(sql=False)),
            ("migcoord check --no-sql (whole process)", cli("--no-sql")),
            *details,
            ("Coordinator.check(), new, no cache", without_cache(cold(sql=True))),
            ("Coordinator.check(), new, cache", cold(sql=True)),
            ("migcoord check, no cache (whole process)", without_cache(cli())),
            ("migcoord check, cache (whole process)", cli()),
        ):
            best, median = best_of(args.runs, action)
            floor_median = floor_median or median
            print(f"  {label:<42} {best * 1000:8.0f} ms  {median * 1000:8.0f} ms"
                  f"  {median / floor_median:5.1f}x")

        # A merge gone wrong: `groups` numbers each used by two services. Every
        # duplicate-version finding plans the move its hint names.
        duplicated = add_duplicates(root, groups=args.duplicates, services=args.services)

        def broken() -> None:
            done = subprocess.run([installed, "-m", "migcoord", "--format", "json", "check",
                                   "--no-sql"], cwd=root, capture_output=True, text=True)
            codes = [f["code"] for f in json.loads(done.stdout)["findings"]]
            assert codes.count("duplicate-version") == 2 * len(duplicated), done.stdout[:500]

        best, median = best_of(args.runs, broken)
        label = f"migcoord check --no-sql, {len(duplicated)} numbers used twice"
        print(f"  {label:<42} {best * 1000:8.0f} ms  {median * 1000:8.0f} ms"
              f"  {median / floor_median:5.1f}x")


def add_duplicates(root: Path, *, groups: int, services: int) -> list[int]:
    """A migration of the next service under each of `groups` numbers spread over the
    tree (generate() gives number v to service (v - 1) % services)."""
    if groups == 0:
        return []
    migrations = sorted(root.glob("service-*/migrations/*.up.sql"))
    step = max(1, len(migrations) // groups)
    numbers = [int(path.name.split("_")[0]) for path in migrations[::step][:groups]]
    for number in numbers:
        service = f"service-{number % services:02d}"
        folder = root / service / "migrations"
        text = f"{number:06d}"
        (folder / f"{text}_dup_{text}.up.sql").write_text(f"CREATE TABLE d_{text} (id int);\n")
        (folder / f"{text}_dup_{text}.down.sql").write_text(f"DROP TABLE d_{text};\n")
    return numbers

if __name__ == "__main__":
    main()
