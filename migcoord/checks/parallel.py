"""The one place `check` fans out to worker processes.

Parsing SQL is CPU-bound and holds the GIL, hence processes. Only single-threaded
callers (the CLI) ask for it: forking a process that runs other threads can deadlock
the child.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")

MAX_WORKERS = 4


def map_batches(work: Callable[[list[Job]], list[Result]], jobs: Sequence[Job],
                ) -> list[Result] | None:
    """`work` over `jobs` in one large chunk per worker process, results in job order.

    None when it cannot run in processes here (one core, a sandbox without semaphores,
    a killed worker): the caller then does the work itself. `work` must be a module-level
    function and its results should be plain tuples, which pickle far faster than
    attrs objects.
    """
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if workers < 2:
        return None
    chunk = -(-len(jobs) // workers)
    batches = [list(jobs[i:i + chunk]) for i in range(0, len(jobs), chunk)]
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=len(batches)) as pool:
            return [item for batch in pool.map(work, batches) for item in batch]
    except (OSError, NotImplementedError, concurrent.futures.process.BrokenProcessPool):
        return None
