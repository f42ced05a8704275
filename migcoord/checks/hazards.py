"""What each file's SQL does wrong, as PostgreSQL's parser sees it.

`sql-syntax`, `not-idempotent` and `concurrently-in-transaction` of the up and the down
file, and `down-mismatch` (the down does not undo the up). The lints themselves are
decided in migcoord/sql/lints.py and migcoord/sql/down.py, once per file by
checks/analysis.py; this rule places them in their files. (`explicit-transaction` is
checks/files.py's: the executor must decide it too, without a parse tree.)
"""

from __future__ import annotations

from collections.abc import Iterator

from migcoord.checks._located import placed_in
from migcoord.checks.analysis import Analyses
from migcoord.core.model import Catalog, Config, Finding


def lints(catalog: Catalog, config: Config, analyses: Analyses) -> Iterator[Finding]:
    """The lint findings of both files of every migration, then its `down-mismatch`."""
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None:
            continue
        if analysed.up is not None:
            for finding in analysed.up.findings:
                yield placed_in(finding, migration)
        if analysed.down is not None:
            for finding in analysed.down.findings:
                yield placed_in(finding, migration, down=True)
        for finding in analysed.mismatch:
            yield placed_in(finding, migration, down=True)
