"""Findings placed in a migration's file: the two ways every rule module reports one."""

from __future__ import annotations

import attrs

from migcoord.core.model import Finding, Migration


def finding_at(migration: Migration, code: str, message: str, *, down: bool = False,
               line: int | None = None, column: int | None = None,
               hint: str | None = None) -> Finding:
    """A finding of `code` in `migration`'s up file (its down file with `down`; the
    migration's path when that file is absent)."""
    return placed_in(Finding.of(code, message, line=line, column=column, hint=hint), migration,
                     down=down)


def placed_in(finding: Finding, migration: Migration, *, down: bool = False) -> Finding:
    """`finding` (which knows its line, not its file) placed like `finding_at` places one."""
    sql_file = migration.down if down else migration.up
    return attrs.evolve(finding, path=sql_file.path if sql_file is not None else migration.path,
                        service=migration.service, version=migration.version)
