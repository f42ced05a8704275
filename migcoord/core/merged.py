"""Which warnings of `check --against REF` are about what REF already has.

A history adopted into migcoord carries the warnings of every migration already merged
(hazards, not-idempotent DDL, ...). None of them can be fixed on a branch: editing a
migration REF has is `edited-merged`, and an `-- migcoord:allow` line is an edit too.
So `check --against REF` leaves out a warning when both are true:

- it is in a file of a migration REF has unchanged: the same up and down files (paths
  and content, line endings aside, as the checksum reads them), nothing added or taken
  away;
- REF's own check reports it too (the same code, file, line, column and message), with
  REF's config. A branch that changes the config (`owns`, `version_width`, `allow`)
  and so gives an old migration a new warning sees that warning.

Everything else is shown: every error, and every warning about what the branch adds or
changes, about a migration whose up or down it changed (the pair is judged together:
`down-mismatch` reads both), and about no single migration (migcoord.sum, the config,
a folder), which the branch can still fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from migcoord.core.model import Catalog, Finding


@attrs.frozen
class Scoped:
    """`check --against`'s findings split in two."""

    #: What is reported.
    shown: tuple[Finding, ...]
    #: Warnings left out: REF reports them too, in migrations it has unchanged.
    merged: tuple[Finding, ...]


def unchanged_files(here: Catalog, there: Catalog) -> frozenset[Path]:
    """The paths of the up and down files of each migration that `there` (REF) has with
    the same files as `here`: same paths, same checksums, one migration of that version
    and service on each side (an adopted one with no down file on either side too)."""
    def by_key(catalog: Catalog) -> dict[tuple[str, int], list[tuple[tuple[Path, str], ...]]]:
        found: dict[tuple[str, int], list[tuple[tuple[Path, str], ...]]] = {}
        for migration in catalog.migrations:
            files = tuple((f.path, f.checksum) for f in (migration.up, migration.down)
                          if f is not None)
            found.setdefault((migration.service, migration.version), []).append(files)
        return found

    theirs = by_key(there)
    paths: set[Path] = set()
    for key, ours in by_key(here).items():
        if len(ours) == 1 and theirs.get(key) == ours:
            paths.update(path for path, _ in ours[0])
    return frozenset(paths)


def leave_out_merged(findings: Iterable[Finding], theirs: Iterable[Finding],
                     unchanged: frozenset[Path]) -> Scoped:
    """`findings` split into what is shown and the warnings left out (see the module's
    docstring); `theirs` is what REF's check reports, `unchanged` `unchanged_files`."""
    reported = {_identity(f) for f in theirs if not f.is_error}
    shown: list[Finding] = []
    merged: list[Finding] = []
    for finding in findings:
        if (not finding.is_error and finding.path in unchanged
                and _identity(finding) in reported):
            merged.append(finding)
        else:
            shown.append(finding)
    return Scoped(shown=tuple(shown), merged=tuple(merged))


def _identity(finding: Finding) -> tuple[object, ...]:
    return (finding.code, finding.path, finding.line, finding.column, finding.message)
