"""Every finding code `check` can report, declared once: severity, family, summary.

This tuple is the one answer to "is this a known code, what is its severity, can it
be allowed". `Finding.of(code, ...)` takes the severity from here, and a `Finding`
whose code is not declared here (or whose severity disagrees) cannot be built, so a
rule that emits a new code without declaring it fails the first test that runs it.
`allow` accepts warnings only (`FindingCode.can_be_allowed`).

A new code: add a line below, a row and a `## code` section (with a BAD and a FIXED
example) to docs/findings.md, and the rule in the checks module its family names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import attrs

Severity = Literal["error", "warning"]

#: Where the rule that reports a code lives: `migcoord/checks/<family>.py`, except
#: `docs`, which `Coordinator.check` judges with migcoord/core/docsgen.py.
#:
#: - files: each migration's files (names, pairs, encoding, content, directive lines)
#: - numbering: the one version sequence and migcoord.sum
#: - dependencies: `-- migcoord:depends`, declared and inferred from the SQL
#: - ownership: which service may change which table
#: - hazards: what each file's SQL does wrong (PostgreSQL's parser)
#: - retired: codes no longer reported, still accepted in `allow` so that old configs load
#: - merging: `check --against REF`, this branch's changes to what REF already has
#: - compatibility: schema changes that break another service's running code
#: - database: `check --db`, the files against migcoord_history
#: - docs: the generated tables of the `docs` file
Family = Literal["files", "numbering", "dependencies", "ownership", "hazards", "merging",
                 "compatibility", "database", "docs", "retired"]


@attrs.frozen
class FindingCode:
    """One finding code as docs/findings.md documents it."""

    code: str
    severity: Severity
    family: Family
    #: What the finding means, in one line (docs/findings.md's table says the same).
    summary: str

    @property
    def can_be_allowed(self) -> bool:
        """Only warnings can be allowed: an error would break a deploy or let schemas drift."""
        return self.severity == "warning"


#: Every finding code, in the order of docs/findings.md.
CODES: tuple[FindingCode, ...] = (
    FindingCode("bad-filename", "error", "files",
                "a file in a migrations folder whose name is not "
                "`{version}_{name}.up|down.sql`, or one migcoord cannot run (empty name, "
                "version above bigint)"),
    FindingCode("unreadable-file", "error", "files",
                "an entry named like a migration that cannot be read: a folder, a broken "
                "symlink or one leading out of the repository, a file without read "
                "permission; or a migrations folder that cannot be listed"),
    FindingCode("missing-down", "error", "files", "an up file without its down file"),
    FindingCode("missing-up", "error", "files", "a down file without its up file"),
    FindingCode("name-mismatch", "warning", "files",
                "the up and down files of one version have different names (they are one "
                "migration, as in golang-migrate)"),
    FindingCode("unconfigured-folder", "warning", "files",
                "a folder near the configured ones holds golang-migrate files that no "
                "service configures (check, up and create do not see them)"),
    FindingCode("duplicate-version", "error", "numbering",
                "two migrations (in any services) with the same version number"),
    FindingCode("version-width", "warning", "numbering",
                "a version not written with `version_width` digits (it is still read "
                "correctly)"),
    FindingCode("gap", "error", "numbering", "a number skipped between existing migrations"),
    FindingCode("reserved-range", "error", "numbering",
                "a migration numbered inside another service's `reserved` range"),
    FindingCode("unknown-dependency", "error", "dependencies",
                "`depends` names a service or migration that does not exist, or the wrong "
                "owner"),
    FindingCode("forward-dependency", "error", "dependencies",
                "`depends` names a migration numbered at or after this one"),
    FindingCode("unknown-directive", "error", "files",
                "a `-- migcoord:` line that is misspelt, malformed, or below the first "
                "statement"),
    FindingCode("empty-migration", "warning", "files",
                "an up or down file with no SQL statement (a freshly created migration)"),
    FindingCode("explicit-transaction", "error", "files",
                "`COMMIT`, `ROLLBACK`, `PREPARE TRANSACTION`... in a migration, other than a "
                "whole-file `BEGIN; ... COMMIT;`, or `DISCARD ALL` / "
                "`pg_advisory_unlock_all()`, which release the migration lock (`up` and "
                "`down` refuse to run it)"),
    FindingCode("client-copy", "error", "files",
                "`COPY ... FROM STDIN` (rows inline, as psql reads them) or `COPY ... TO "
                "STDOUT`, which need a client taking part (`up` and `down` refuse to run it)"),
    FindingCode("concurrently-in-transaction", "error", "hazards",
                "`CREATE INDEX CONCURRENTLY` and friends among other statements, without "
                "`-- migcoord:no-transaction`"),
    FindingCode("sum-mismatch", "error", "numbering",
                "`migcoord.sum` is missing, conflicted, or does not match the files"),
    FindingCode("encoding", "error", "files",
                "a migration file that is not UTF-8 text (or holds a NUL byte)"),
    FindingCode("sql-syntax", "error", "hazards", "PostgreSQL's parser rejects the file"),
    FindingCode("sql-skipped", "warning", "retired",
                "no longer reported: the SQL analysis always runs; the code stays valid in "
                "`allow`"),
    FindingCode("ownership", "error", "ownership",
                "a migration changes a table another service owns; a table claimed by two "
                "services"),
    FindingCode("undeclared-dependency", "error", "dependencies",
                "a migration uses another service's table without `depends` on the "
                "migration that creates it"),
    FindingCode("unnecessary-dependency", "warning", "dependencies",
                "a `depends` entry that is provably not needed"),
    FindingCode("unowned-table", "warning", "ownership",
                "a service that declares `owns` creates a table no `owns` lists"),
    FindingCode("not-idempotent", "warning", "hazards",
                "DDL without `IF [NOT] EXISTS` where PostgreSQL offers it"),
    FindingCode("down-mismatch", "warning", "hazards",
                "the down file does not undo what the up file does"),
    FindingCode("blocking-index-build", "warning", "hazards",
                "`CREATE INDEX` without `CONCURRENTLY` on an existing table (blocks its writes)"),
    FindingCode("blocking-index-drop", "warning", "hazards",
                "`DROP INDEX` without `CONCURRENTLY` (locks its table against reads and writes)"),
    FindingCode("validating-constraint", "warning", "hazards",
                "a `FOREIGN KEY` or `CHECK` constraint added to an existing table without "
                "`NOT VALID` (checks every row under a lock)"),
    FindingCode("set-not-null-scan", "warning", "hazards",
                "`SET NOT NULL` without a validated `CHECK (column IS NOT NULL)` first (scans "
                "the table under an ACCESS EXCLUSIVE lock)"),
    FindingCode("not-null-without-default", "warning", "hazards",
                "`ADD COLUMN ... NOT NULL` without a default (fails on a table with rows)"),
    FindingCode("volatile-default", "warning", "hazards",
                "`ADD COLUMN` with a volatile default, serial, identity or stored generated "
                "column (rewrites the table)"),
    FindingCode("rewriting-type-change", "warning", "hazards",
                "`ALTER COLUMN ... TYPE` that rewrites the table (not a binary-coercible "
                "change)"),
    FindingCode("unique-without-index", "warning", "hazards",
                "a `UNIQUE`, `PRIMARY KEY` or `EXCLUDE` constraint added to an existing table "
                "without `USING INDEX` (builds its index under an ACCESS EXCLUSIVE lock)"),
    FindingCode("blocking-maintenance", "warning", "hazards",
                "`VACUUM FULL`, `CLUSTER`, `REFRESH MATERIALIZED VIEW` or `REINDEX` without "
                "`CONCURRENTLY`"),
    FindingCode("identifier-too-long", "warning", "hazards",
                "an identifier over 63 bytes, which PostgreSQL silently truncates"),
    FindingCode("breaking-rename", "warning", "compatibility",
                "renames a table or column that another service uses (its running code "
                "breaks)"),
    FindingCode("breaking-drop", "warning", "compatibility",
                "drops a table or column that another service uses (its running code "
                "breaks)"),
    FindingCode("docs-stale", "warning", "docs",
                "the generated tables in the configured `docs` file are out of date"),
    FindingCode("docs-conflict", "error", "docs",
                "the configured `docs` file holds git conflict markers"),
    FindingCode("edited-merged", "error", "merging",
                "with `--against REF`: an up file this branch changed (or removed) although "
                "REF already has that migration"),
    FindingCode("edited-merged-down", "warning", "merging",
                "with `--against REF`: a down file this branch changed although REF already "
                "has that migration"),
    FindingCode("missing-file", "error", "database",
                "applied in the database, but its file is gone from its service's folder"),
    FindingCode("modified", "error", "database",
                "applied in the database, and its up file has changed since"),
    FindingCode("dirty", "error", "database",
                "a migration failed half-way and is recorded as dirty"),
    FindingCode("out-of-order", "error", "database",
                "a pending migration numbered below one its service has already applied"),
)

#: CODES by code, read-only.
BY_CODE: Mapping[str, FindingCode] = MappingProxyType({entry.code: entry for entry in CODES})


#: What to do about an `allow` that names an error or an unknown code.
ALLOW_HINT = ("only warnings can be allowed (see docs/findings.md); fix what an error "
              "reports instead")


def allow_problem(code: str) -> str | None:
    """Why `code` cannot be allowed (by `-- migcoord:allow` or the config key), or None."""
    declared = BY_CODE.get(code)
    if declared is None:
        return "no finding has this code"
    if not declared.can_be_allowed:
        return "an error cannot be allowed: it would break a deploy or let schemas drift"
    return None


def registered(code: str) -> FindingCode:
    """The declaration of `code`; ValueError when it has none (a bug in the rule)."""
    entry = BY_CODE.get(code)
    if entry is None:
        raise ValueError(f"{code!r} is not a finding code: declare it in "
                         "migcoord/core/findings.py (and document it in docs/findings.md)")
    return entry
