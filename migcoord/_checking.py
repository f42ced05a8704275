"""What `check` reads and hands to the rules: the catalog (merged with a git ref for
`--against`), migcoord.sum, the SQL analyses, the folders no service configures; and
the docs file's staleness, which only the analyses can tell."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from migcoord import checks
from migcoord.core import merged
from migcoord.core.merged import Scoped
from migcoord.core.model import Catalog, Config, Finding
from migcoord.repo import docskeeper, merging, sumkeeper

if TYPE_CHECKING:
    from migcoord._analyses import SqlAnalyses
    from migcoord.core.resolution import BranchEdit
    from migcoord.core.scaffold import FoundFolder


def offline_findings(config: Config, catalog: Catalog, sql: SqlAnalyses | None, *,
                     against: str | None, parallel: bool) -> list[Finding]:
    """Every finding of `check` on `catalog`, sorted; `sql` None leaves out the SQL
    analysis (and with it docs-stale), `against` validates the merge with that git ref."""
    return _offline(config, catalog, sql, against=against, parallel=parallel)[0]


def scoped_findings(config: Config, catalog: Catalog, sql: SqlAnalyses | None, *,
                    against: str, parallel: bool) -> Scoped:
    """`offline_findings` with `against`, less the warnings that REF reports too in
    migrations it has unchanged (core/merged says which and why)."""
    findings, judged = _offline(config, catalog, sql, against=against, parallel=parallel)
    from migcoord.repo import reftree

    ref_config = reftree.config_at(config, against)
    ref_catalog = reftree.catalog_at(ref_config, against)
    unchanged = merged.unchanged_files(judged, ref_catalog)
    if not any(not f.is_error and f.path in unchanged for f in findings):
        return merged.Scoped(shown=tuple(findings), merged=())
    # REF's own check, as it would run on REF: its config, its files, no merge.
    theirs = checks.run_all(ref_catalog, ref_config, check_sum=False,
                            sql=sql.analyze(ref_catalog, parallel=parallel)
                            if sql is not None else None)
    return merged.leave_out_merged(findings, theirs, unchanged)


def _offline(config: Config, catalog: Catalog, sql: SqlAnalyses | None, *,
             against: str | None, parallel: bool) -> tuple[list[Finding], Catalog]:
    """`offline_findings`, and the catalog they judge (merged with `against`)."""
    check_sum = config.sum_path is not None
    edits: list[BranchEdit] = []
    own = catalog  # the branch's own tree, which its docs file describes
    if against is not None:
        from migcoord.repo import git as gitref

        edits = gitref.branch_edits(config, against)
        catalog = gitref.merged_catalog(config, catalog, against)
        # The merge's sum file does not exist yet; collisions show as duplicate-version.
        check_sum = False
    sum_text = sumkeeper.read(config) if check_sum else None
    analyses = sql.analyze(catalog, parallel=parallel) if sql is not None else None
    findings = checks.run_all(catalog, config, sum_text=sum_text, check_sum=check_sum,
                              sql=analyses, sides=merging.merge_sides(config, catalog, against),
                              edits=edits, unconfigured=_unconfigured_folders(config))
    if sql is not None and analyses is not None:
        # With --against, the docs file is judged against this branch's own tree, as
        # `migcoord docs --schema` writes it here: the merge's docs do not exist yet.
        own_analyses = analyses if own is catalog else sql.analyze(own, parallel=parallel)
        findings.extend(docskeeper.stale_findings(
            config, own, functools.partial(sql.owned_tables, own, own_analyses)))
    return checks.sort_findings(findings), catalog


def _unconfigured_folders(config: Config) -> tuple[FoundFolder, ...]:
    """Folders of migrations near the configured ones that no service configures;
    none for a config made in code (`for_service`), which names its one folder."""
    from migcoord.repo import unconfigured

    if config.path is None:
        return ()
    return unconfigured.near_configured(config)
