"""`allow`: silencing warnings, and the problems of `allow` itself.

`-- migcoord:allow CODE` at the top of an up file covers its migration (both files),
at the top of a down file that file only; `allow = [...]` in migcoord.toml covers the
project. Only warnings can be allowed (migcoord.core.findings says which codes are
warnings): `without_allowed` drops allowed warnings from the findings of every rule,
and `allow_problems` reports an `allow` that names an error or an unknown code as an
`unknown-directive` error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from migcoord.checks._located import finding_at
from migcoord.core.findings import BY_CODE, registered
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
    """`allow` (a directive or the config key) naming an error or an unknown code."""
    for code in sorted(config.allow):
        problem = _allow_problem(code)
        if problem is not None:
            yield Finding.of("unknown-directive",
                             f"`allow` in migcoord.toml names {code}: {problem}",
                             path=config.path, hint=_ALLOW_HINT)
    for migration in catalog.migrations:
        for down, directives in ((False, migration.directives), (True, migration.down_directives)):
            for code in sorted(directives.allow):
                problem = _allow_problem(code)
                if problem is not None:
                    text = migration.down_sql if down else migration.up_sql
                    yield finding_at(migration, "unknown-directive",
                                     f"`-- migcoord:allow {code}`: {problem}", hint=_ALLOW_HINT,
                                     line=_allow_line(text, directives.body_line, code),
                                     down=down)


_ALLOW_HINT = ("only warnings can be allowed (see docs/findings.md); fix what an error "
               "reports instead")


def _allow_problem(code: str) -> str | None:
    """Why `code` cannot be allowed, or None when it can."""
    declared = BY_CODE.get(code)
    if declared is None:
        return "no finding has this code"
    if not declared.can_be_allowed:
        return "an error cannot be allowed: it would break a deploy or let schemas drift"
    return None


def _allow_line(text: str, body_line: int, code: str) -> int | None:
    for number, line in enumerate(text.split("\n")[:body_line], start=1):
        if re.match(r"\s*--\s*migcoord\s*:\s*allow\b", line) and re.search(
                rf"(?<![a-z0-9\-]){re.escape(code)}(?![a-z0-9\-])", line):
            return number
    return None
