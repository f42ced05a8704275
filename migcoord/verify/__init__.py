"""`migcoord verify`: prove that every down undoes its up, on a throwaway database.

- plan.py: which migrations are applied and which round-tripped (pure);
- roundtrip.py: up, down, up again per migration, comparing catalog snapshots (through
  the real executor); after a broken down, the database is built again up to that
  migration and the run goes on;
- sequence.py: then the whole sequence down and up again;
- throwaway.py: the throwaway database's session, what a step on it can fail with, and
  how two of its schemas differ;
- schema.py: the schema the migrations build, for `docs --schema`;
- data.py: the data round trip of `-- migcoord:verify-data`;
- servers.py: where the throwaway database lives, building it again, and its clean-up;
- report.py: the verdicts and their counts.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable, Mapping

from migcoord.core.model import Catalog, Config, Migration
from migcoord.core.progress import OnStep, ignore
from migcoord.verify import servers
from migcoord.verify.plan import plan
from migcoord.verify.report import (
    MigrationVerdict,
    Problem,
    Progress,
    SequenceVerdict,
    VerifyReport,
)
from migcoord.verify.roundtrip import RoundTrips

__all__ = ["MigrationVerdict", "Problem", "Progress", "SequenceVerdict", "VerifyReport", "run"]

log = logging.getLogger("migcoord")


def run(catalog: Catalog, config: Config, *, service: str | None, dsn: str | None,
        environ: Mapping[str, str], keep: bool = False, on_progress: Progress | None = None,
        read_verify_file: Callable[[Migration], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_step: OnStep | None = None, against: str | None = None) -> VerifyReport:
    """Round-trip the migrations on a throwaway database; see the module docstring.
    `on_progress` gets each verdict when it is reached, `on_step` each step as it starts.

    `dsn`: a server to create the database on (its user needs CREATEDB); `embedded` for
    this repository's running dev server; None for the dev server when it runs, else a
    temporary server started for this run (with `keep`, the dev server is started and
    left running, so that the kept database can be reached).

    `against` (a git ref): `catalog` merged with that ref, as `check --against` reads it;
    the migrations the ref has are applied once, and only the others are round-tripped
    (nothing runs when none is left).
    """
    from migcoord.checks import runnable
    from migcoord.repo import discovery, merging

    base = None
    if against is not None:
        from migcoord.repo import git as gitref

        catalog = gitref.merged_catalog(config, catalog, against, "verify")
        base = gitref.migrations_on_ref(config, catalog, against)
    started = clock()
    steps = plan(catalog, service, adopted_through=config.adopted_through, base=base)
    # The files check reports as errors are refused before a database is made.
    # A collision's hint names the migration to move as `check` does: this branch's,
    # never one the ref (or the merge in progress) already has.
    runnable.refuse(catalog, config, [step.migration for step in steps], files="both",
                    services=None, command="verify",
                    sides=merging.merge_sides(config, catalog, against),
                    check="migcoord check" + (f" --against {shlex.quote(against)}"
                                              if against is not None else ""))
    if not steps:
        if base is not None:
            note = (f"nothing to verify: {service + ' has' if service else 'this branch adds'}"
                    f" no migration that {against} does not have")
        else:
            note = f"nothing to verify: {service or 'no service'} has no migrations here"
        log.warning("%s", note)
        return VerifyReport(migrations=(), sequence=SequenceVerdict("nothing", note=note))
    reader = read_verify_file or discovery.read_verify_file
    with servers.admin_server(config, environ, dsn, keep=keep) as (admin_dsn, kind):
        trip = RoundTrips(steps, config, reader, on_progress or (lambda _: None), clock,
                          on_step=on_step or ignore)
        database, kept, verdicts, sequence = servers.in_throwaway_database(admin_dsn, config, keep, trip)
    from migcoord.db.dsn import describe

    return VerifyReport(migrations=verdicts, sequence=sequence, database=database,
                        server=describe(admin_dsn), server_kind=kind, kept_dsn=kept,
                        elapsed_ms=round((clock() - started) * 1000))
