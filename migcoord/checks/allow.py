"""`allow`: silencing warnings, and the problems of `allow` itself.

`-- migcoord:allow CODE` at the top of an up file covers its migration (both files),
at the top of a down file that file only; `allow = [...]` in migcoord.toml covers the
project. Only warnings can be allowed (migcoord.core.findings says which codes are
warnings): `without_allowed` drops allowed warnings from the findings of every rule,
and `allow_problems` reports an `allow` in the config that names an error or an unknown
code as an `unknown-directive` error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from migcoord.core.findings import ALLOW_HINT, allow_problem, registered
from migcoord.core.model import Catalog, Config, Finding


def without_allowed(findings: Iterable[Finding], catalog: Catalog,
                    config: Config) -> list[Finding]:
    """`findings` minus the warnings that are allowed: by the config's `allow`, by the
    `-- migcoord:allow` lines of their migration's up file (the whole migration), or by
    those of the down file (findings in that file). Errors always stay."""
    per_migration: dict[tuple[str, int], frozenset[str]] = {}
    per_file: dict[Path, frozenset[str]] = {}
    for migration in catalog.migrations:
        if migration.directives.allow:
            key = (migration.service, migration.version)
            per_migration[key] = per_migration.get(key, frozenset()) | migration.directives.allow
        if migration.down is not None and migration.down_directives.allow:
            per_file[migration.down.path] = migration.down_directives.allow
    kept = []
    for finding in findings:
        if registered(finding.code).can_be_allowed and (
                finding.code in config.allow
                or finding.code in per_migration.get((finding.service or "", finding.version or 0), ())
                or (finding.path is not None and finding.code in per_file.get(finding.path, ()))):
            continue
        kept.append(finding)
    return kept


def allow_problems(catalog: Catalog, config: Config) -> Iterator[Finding]:
    """`allow` in migcoord.toml naming an error or an unknown code. (The same problem in a
    `-- migcoord:allow` line is reported with the file's other directive problems, by
    core/directives.)"""
    for code in sorted(config.allow):
        problem = allow_problem(code)
        if problem is not None:
            yield Finding.of("unknown-directive",
                             f"`allow` in migcoord.toml names {code}: {problem}",
                             path=config.path, hint=ALLOW_HINT)
