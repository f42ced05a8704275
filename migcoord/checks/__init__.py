"""`migcoord check`: every rule, one module per family, all pure.

    analyses = checks.analyze_catalog(catalog, config)    # the SQL, parsed once
    findings = checks.run_all(catalog, config, sum_text=..., sql=analyses)

`run_all` returns every problem, not the first; the caller decides what fails.

Where a rule goes (its code is declared first in migcoord/core/findings.py, whose
`family` names the module, and documented in docs/findings.md):

- files.py: one migration's files on their own: names, pairs, encoding, empty files,
  directive lines, and `explicit-transaction` (migcoord.sql.reader decides it, for
  `up` and `down` as well).
- runnable.py: which of these errors stop `up`, `down` and `verify` (the same rules,
  run on the migrations a command is about to run).
- numbering.py: the one version sequence across services and migcoord.sum (`Ledger`).
- dependencies.py: `-- migcoord:depends`, as written and as the SQL needs it (`Graph`).
- ownership.py: which service may change which table (`Owners`).
- compatibility.py: drops and renames that break another service's running code.
- hazards.py: what a file's SQL does wrong; the lint itself goes in migcoord/sql/lints.py
  (one statement) or migcoord/sql/down.py (up against down).
- merging.py: `check --against REF`, this branch's edits to migrations REF has.
- database.py: `check --db`, the files against the history table.
- allow.py: `allow`, which silences warnings of every family.

A rule that reads only the catalog takes `(catalog, config, ledger)` and goes in `RULES`;
one that needs the SQL takes the `Analyses` from analysis.py and is called in
`_sql_findings`. analysis.py runs the parser (through parallel.py, the one module here
that starts processes, for large trees).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from migcoord.checks import (
    compatibility,
    dependencies,
    files,
    hazards,
    merging,
    numbering,
    ownership,
)
from migcoord.checks.allow import allow_problems, without_allowed
from migcoord.checks.analysis import Analyses, Cache, analyze_catalog
from migcoord.checks.database import database_findings
from migcoord.checks.numbering import Ledger
from migcoord.checks.ownership import Owners
from migcoord.core.model import Catalog, Config, Finding
from migcoord.core.owners import display
from migcoord.core.resolution import BranchEdit, MergeSides
from migcoord.core.scaffold import FoundFolder

__all__ = [
    "Analyses",
    "Cache",
    "Ledger",
    "Owners",
    "analyze_catalog",
    "database_findings",
    "display",
    "run_all",
    "sort_findings",
]

Rule = Callable[[Catalog, Config, Ledger], Iterable[Finding]]

#: The rules that read only the files (and migcoord.sum, through the ledger).
RULES: tuple[Rule, ...] = (
    files.bad_filename,
    files.unreadable_file,
    files.missing_pair,
    files.name_mismatch,
    numbering.duplicate_version,
    numbering.version_width,
    numbering.gap,
    numbering.reserved_range,
    dependencies.declared_dependencies,
    files.directive_problems,
    files.encoding,
    files.empty_migration,
    files.explicit_transaction,
    files.client_copy,
)


def run_all(catalog: Catalog, config: Config, *, sum_text: str | None = None,
            check_sum: bool = True, sql: Analyses | None = None,
            sides: MergeSides | None = None,
            edits: Iterable[BranchEdit] = (),
            unconfigured: Iterable[FoundFolder] = ()) -> list[Finding]:
    """Every finding for the catalog but the database's and docs-stale, sorted by
    version then path.

    `sum_text` is the content of migcoord.sum (None when the file is absent); with
    `check_sum=False` the sum file is not judged (an implicit config has none). With
    `sql` (see `analyze_catalog`) the SQL-aware rules run too. `sides` (during a merge or
    rebase, or with --against) lets `duplicate-version` name the migration to move;
    `edits` (with --against) are this branch's changes to migrations the ref already has;
    `unconfigured`, folders of migrations that no service configures.
    Allowed warnings are left out.
    """
    findings: list[Finding] = []
    ledger = Ledger.of(catalog, sum_text, sides)
    for rule in RULES:
        findings.extend(rule(catalog, config, ledger))
    if sql is not None:
        findings.extend(_sql_findings(catalog, config, sql))
    findings.extend(merging.edited_merged(edits, config))
    findings.extend(files.unconfigured_folder(unconfigured, config))
    findings.extend(allow_problems(catalog, config))
    if check_sum:
        findings.extend(numbering.sum_mismatch(catalog, config, sum_text))
    return sort_findings(without_allowed(findings, catalog, config))


def _sql_findings(catalog: Catalog, config: Config, analyses: Analyses) -> list[Finding]:
    """Every SQL-aware finding."""
    owners = Owners.of(catalog, config, analyses)
    findings = list(hazards.lints(catalog, config, analyses, owners))
    findings.extend(owners.problems)
    findings.extend(ownership.ownership(catalog, config, analyses, owners))
    findings.extend(ownership.unowned_table(catalog, config, analyses, owners))
    findings.extend(compatibility.breaking_changes(catalog, config, analyses, owners))
    graph = dependencies.Graph(catalog)
    findings.extend(dependencies.undeclared_dependency(catalog, config, analyses, owners, graph))
    findings.extend(dependencies.unnecessary_dependency(catalog, config, analyses, graph))
    return findings


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """By version (findings of no version first), then path, line and code."""
    return sorted(
        findings,
        key=lambda f: (f.version if f.version is not None else -1, str(f.path or ""),
                       f.line or 0, f.code),
    )
