"""Which errors of `check` stop `up`, `down` and `verify` before anything is sent.

There is one set of rules: those of files.py (and numbering's duplicate-version), run
here on exactly the migrations a command is about to run, plus the other migrations
that share their versions (so a duplicate is seen). A service with nothing to apply
pays nothing; a long history with one pending migration looks at that one. The
findings are `check`'s own, with its codes and messages:

    findings = runnable.refusals(catalog, config, migrations, files="up", services={"a"})
    runnable.refuse(catalog, config, migrations, files="up", services={"a"}, command="up")

What counts, for the files a run reads (the up files for `up`, the down files for
`down`, both for `verify`): names migcoord cannot run (`bad-filename`), files that
cannot be read (`unreadable-file`), `encoding` (not UTF-8, or a NUL byte), bad directive
lines (`unknown-directive`), transaction control (`explicit-transaction`), `COPY ...
FROM STDIN` or `TO STDOUT` (`client-copy`), and for the whole migration
`duplicate-version`; with `files="both"` also `missing-down` and
`missing-up`. Beyond the planned migrations, every entry of the services in scope that
cannot be read is an error too: it is never skipped without a word, whether or not it
would run.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal

import attrs

from migcoord.checks import files as file_rules
from migcoord.checks import numbering
from migcoord.checks.numbering import Ledger
from migcoord.core.model import Catalog, Config, Finding, Migration, ServiceFolder
from migcoord.core.resolution import MergeSides
from migcoord.errors import InvalidMigrationFiles

Files = Literal["up", "down", "both"]

#: The rules whose errors stop a run (the order is check's).
RULES = (
    file_rules.bad_filename,
    file_rules.unreadable_file,
    numbering.duplicate_version,
    file_rules.directive_problems,
    file_rules.encoding,
    file_rules.explicit_transaction,
    file_rules.client_copy,
)
#: Codes about a whole migration rather than one of its files: they stop either direction.
_WHOLE_MIGRATION = frozenset({"duplicate-version"})


def refusals(catalog: Catalog, config: Config, migrations: Iterable[Migration], *,
             files: Files, services: Collection[str] | None,
             sides: MergeSides | None = None) -> list[Finding]:
    """The errors `check` reports that stop running `migrations` (their `files`), and
    every entry of `services` (None: all) that cannot be read; sorted as check sorts.
    `sides` (what the other side of a merge has) lets a duplicate-version name the
    migration to move, as `check` does during a merge or with --against."""
    chosen = list(migrations)
    if not chosen and not catalog.has_unreadable(services):
        return []
    versions = {m.version for m in chosen}
    involved = {id(m) for m in catalog.migrations
                if m.version in versions or (_in(m.service, services) and _unread(m))}
    narrowed = Catalog.of(_narrowed(folder, involved, _in(folder.name, services))
                          for folder in catalog.folders)
    # A run that reads both files needs both: missing-down and missing-up.
    rules = (*RULES, file_rules.missing_pair) if files == "both" else RULES
    ledger = Ledger.of(narrowed, None, sides)
    keys = {(m.service, m.version) for m in chosen}
    read = _paths(chosen, files)
    found = [
        finding for rule in rules for finding in rule(narrowed, config, ledger)
        if finding.is_error and (
            (finding.code == "unreadable-file" and _in(finding.service, services))
            or ((finding.service, finding.version) in keys
                and (finding.code in _WHOLE_MIGRATION or finding.path in read)))
    ]
    return sorted(set(found), key=lambda f: (f.version if f.version is not None else -1,
                                             str(f.path or ""), f.line or 0, f.code))


def refuse(catalog: Catalog, config: Config, migrations: Iterable[Migration], *,
           files: Files, services: Collection[str] | None, command: str,
           sides: MergeSides | None = None, check: str = "migcoord check") -> None:
    """Raise InvalidMigrationFiles, listing `refusals` as `check` prints them, when there
    are any; `check` is the check command that reports them (`check --against REF`)."""
    found = refusals(catalog, config, migrations, files=files, services=services,
                     sides=sides)
    if found:
        raise refusal(found, config.root, command, check)


def refusal(found: list[Finding], root: Path, command: str,
            check: str = "migcoord check") -> InvalidMigrationFiles:
    """The error for `found` (not empty): each finding as `check` prints it."""
    lines = []
    for finding in found:
        where = _shown(finding.path, root)
        if finding.line is not None:
            where += f":{finding.line}"
            if finding.column is not None:
                where += f":{finding.column}"
        lines.append(f"{where}: {finding.severity}: {finding.code}: {finding.message}")
        if finding.hint:
            lines.append(f"  hint: {finding.hint}")
    count = f"{len(found)} error{'s' if len(found) != 1 else ''}"
    migrations = {(f.service, f.version) for f in found}
    one = found[0] if len(found) == 1 else None
    service, version = next(iter(migrations)) if len(migrations) == 1 else (None, None)
    return InvalidMigrationFiles(
        f"{command} refused before anything was sent: `{check}` reports {count} in "
        "the files it would read:\n  " + "\n  ".join(lines),
        hint=f"fix the files, then run {command} again (`{check}` lists every finding)",
        path=one.path if one else None, line=one.line if one else None,
        column=one.column if one else None,
        version=version, service=service,
        direction=command if command in ("up", "down") else None, findings=tuple(found))


def _shown(path: Path | None, root: Path) -> str:
    """A path relative to the repository, as `check --format json` shows it."""
    if path is None:
        return ""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _narrowed(folder: ServiceFolder, involved: set[int], scoped: bool) -> ServiceFolder:
    """`folder` with only the `involved` migrations, and its unreadable entries and
    listing problem only when it is in scope."""
    return attrs.evolve(
        folder,
        migrations=tuple(m for m in folder.migrations if id(m) in involved),
        strays=tuple(s for s in folder.strays if scoped and s.code == "unreadable-file"),
        problem=folder.problem if scoped else None)


def _paths(migrations: list[Migration], which: Files) -> set[Path]:
    paths = set()
    for migration in migrations:
        for direction, sql_file in (("up", migration.up), ("down", migration.down)):
            if sql_file is not None and which in (direction, "both"):
                paths.add(sql_file.path)
    return paths


def _in(service: str | None, services: Collection[str] | None) -> bool:
    return services is None or service in services


def _unread(migration: Migration) -> bool:
    return any(f is not None and f.read_error is not None for f in (migration.up, migration.down))
