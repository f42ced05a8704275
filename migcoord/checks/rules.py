"""Offline rules: one small function per finding code, all pure.

`run_all` returns every problem, not the first; the caller decides what fails.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

import attrs

from migcoord.checks import sqlrules as sqlchecks
from migcoord.core import sumfile
from migcoord.core.model import Catalog, Config, Finding, HistoryRow, Migration, Status, format_version
from migcoord.core.reconcile import Reconciled
from migcoord.sql import reader as sqlreader

#: Versions this wide are timestamps (golang-migrate's -format): they never form a
#: dense sequence, so `gap` does not apply.
TIMESTAMP_WIDTH = 10



@attrs.frozen
class Ledger:
    """Which service owns each version, including services whose folder is not here.

    A deployed image holds one service's folder; migcoord.sum still lists every
    migration, so numbers of absent folders are known from it. `complete` is False when
    a folder is absent and no readable sum says what it holds.
    """

    #: version -> the services that have a migration with it (two during a collision)
    owners: Mapping[int, tuple[str, ...]]
    complete: bool

    @classmethod
    def of(cls, catalog: Catalog, sum_text: str | None) -> Ledger:
        owners: dict[int, tuple[str, ...]] = {}

        def add(version: int, service: str) -> None:
            if service not in owners.get(version, ()):
                owners[version] = (*owners.get(version, ()), service)

        for migration in catalog.migrations:
            add(migration.version, migration.service)
        absent = {f.name for f in catalog.folders if not f.present}
        if not absent:
            return cls(owners, True)
        recorded = sumfile.parse(sum_text) if sum_text is not None else None
        if recorded is None or recorded.problems:
            return cls(owners, False)
        for line in recorded.lines:
            if line.service in absent:
                add(line.version, line.service)
        return cls(owners, True)


Rule = Callable[[Catalog, Config, Ledger], Iterable[Finding]]


def run_all(catalog: Catalog, config: Config, *, sum_text: str | None = None,
            check_sum: bool = True, sql: sqlchecks.Analyses | None = None) -> list[Finding]:
    """Every offline finding for the catalog, sorted by version then path.

    `sum_text` is the content of migcoord.sum (None when the file is absent); with
    `check_sum=False` the sum file is not judged (an implicit config has none). With
    `sql` (see `sqlchecks.analyse`) the SQL-aware rules run too. Allowed warnings are
    left out.
    """
    findings: list[Finding] = []
    ledger = Ledger.of(catalog, sum_text)
    for rule in RULES:
        findings.extend(rule(catalog, config, ledger))
    if sql is not None:
        findings.extend(sqlchecks.run_all(catalog, config, sql))
    findings.extend(sqlchecks.allow_problems(catalog, config))
    if check_sum:
        findings.extend(sum_mismatch(catalog, config, sum_text))
    return sort_findings(sqlchecks.without_allowed(findings, catalog, config))


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(
        findings,
        key=lambda f: (f.version if f.version is not None else -1, str(f.path or ""),
                       f.line or 0, f.code),
    )


def _at(migration: Migration, code: str, severity: str, message: str, *,
        down: bool = False, line: int | None = None, column: int | None = None,
        hint: str | None = None) -> Finding:
    sql_file = migration.down if down else migration.up
    path = sql_file.path if sql_file is not None else migration.path
    return Finding(code=code, severity=severity,  # type: ignore[arg-type]
                   message=message, path=path, line=line, column=column,
                   service=migration.service, version=migration.version, hint=hint)


def bad_filename(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for folder in catalog.folders:
        for stray in folder.strays:
            yield Finding(
                code="bad-filename", severity="error",
                message=f"{stray.path.name} is not a migration file: {stray.reason}",
                path=stray.path, service=folder.name,
                hint="rename it to {version}_{name}.up.sql / .down.sql, or move it out of "
                "the migrations folder",
            )


def missing_pair(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        if migration.down is None:
            yield _at(migration, "missing-down", "error",
                      f"{migration.label}.up.sql has no {migration.label}.down.sql",
                      hint="every up needs its down; write the statements that undo the up")
        if migration.up is None:
            yield _at(migration, "missing-up", "error",
                      f"{migration.label}.down.sql has no {migration.label}.up.sql", down=True,
                      hint="restore the up file, or delete the down if the migration was "
                      "abandoned before it was ever applied")


def duplicate_version(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    by_version: dict[int, list[Migration]] = defaultdict(list)
    for migration in catalog.migrations:
        by_version[migration.version].append(migration)
    for version, group in by_version.items():
        if len(group) < 2:
            continue
        names = ", ".join(f"{m.service}/{m.label}" for m in group)
        for migration in group:
            yield _at(
                migration, "duplicate-version", "error",
                f"version {format_version(version, config.version_width)} is used "
                f"{len(group)} times: {names}",
                hint=f"keep the one already merged and move the other: `migcoord renumber "
                f"{migration.version_text} --service {migration.service}`",
            )


def version_width(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    width = config.version_width
    for migration in catalog.migrations:
        if len(migration.version_text) != width:
            expected = format_version(migration.version, width)
            yield _at(
                migration, "version-width", "warning",
                f"version {migration.version_text!r} is {len(migration.version_text)} digits "
                f"wide; this project writes {width} (read as {migration.version})",
                hint=f"rename the files to {expected}_{migration.name}.up.sql/.down.sql "
                "(the version number stays the same), or set version_width in migcoord.toml",
            )


def gap(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    if config.version_width >= TIMESTAMP_WIDTH or not ledger.complete:
        return
    by_version = catalog.by_version()
    versions = sorted(ledger.owners)
    reserved = [s.reserved for s in config.services if s.reserved is not None]
    if not versions:
        return
    holes = [
        number
        for number in range(versions[0], versions[-1])
        if number not in ledger.owners and not any(number in r for r in reserved)
    ]
    for first, last in _runs(holes):
        message = (f"version {_span(first, last, config.version_width)} is missing: the "
                   "numbers form one sequence across all services, with no skips")
        next_version = versions[bisect.bisect_right(versions, last)]
        after = by_version.get(next_version)
        if after is None:
            yield Finding(code="gap", severity="error", message=message, path=config.sum_path,
                          service=ledger.owners[next_version][0], version=next_version,
                          hint="restore the missing migration")
            continue
        yield _at(
            after, "gap", "error", message,
            hint=f"if {after.label} was never applied anywhere, move it into the gap with "
            f"`migcoord renumber {after.version_text} --service {after.service} --to "
            f"{format_version(first, config.version_width)}`; otherwise restore the missing "
            "migration",
        )


def _runs(numbers: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive runs in a sorted list: [2, 3, 7] -> (2, 3), (7, 7)."""
    start = previous = None
    for number in numbers:
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None and previous is not None:
            yield start, previous
        start = previous = number
    if start is not None and previous is not None:
        yield start, previous


def _span(first: int, last: int, width: int) -> str:
    if first == last:
        return format_version(first, width)
    return f"{format_version(first, width)}-{format_version(last, width)}"


def reserved_range(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for service in config.services:
            if service.reserved is None or service.name == migration.service:
                continue
            if migration.version in service.reserved:
                yield _at(
                    migration, "reserved-range", "error",
                    f"version {migration.version_text} of {migration.service} lies in "
                    f"{service.reserved.first}-{service.reserved.last}, reserved for "
                    f"{service.name}",
                    hint=f"`migcoord renumber {migration.version_text} --service "
                    f"{migration.service}` moves it to the next free number",
                )


def dependencies(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    """`unknown-dependency` and `forward-dependency`; a dependency on a folder that is not
    here is judged from migcoord.sum (see Ledger), or not at all without it."""
    by_version = catalog.by_version()
    present = {f.name for f in catalog.folders if f.present}
    known = set(config.service_names)
    for migration in catalog.migrations:
        for ref in migration.directives.depends:
            shown = ref.render(config.version_width)
            if ref.service is not None and ref.service not in known:
                yield _at(migration, "unknown-dependency", "error",
                          f"depends on {shown}, but there is no service {ref.service!r}",
                          line=ref.line,
                          hint="services: " + ", ".join(config.service_names))
                continue
            if ref.version >= migration.version:
                yield _at(
                    migration, "forward-dependency", "error",
                    f"depends on {shown}, which is not older than {migration.version_text}: "
                    "a migration can only need migrations numbered before it",
                    line=ref.line,
                    hint="if the order is really the other way, renumber this migration "
                    f"(`migcoord renumber {migration.version_text} --service "
                    f"{migration.service}`) so it comes after {shown}",
                )
                continue
            owners = ledger.owners.get(ref.version)
            if owners is None:
                judged = ledger.complete or (ref.service is not None and ref.service in present)
                if judged:
                    yield _at(migration, "unknown-dependency", "error",
                              f"depends on {shown}, which does not exist", line=ref.line,
                              hint="check the number; `migcoord status` lists every migration")
                continue
            if ref.service is not None and ref.service not in owners:
                target = by_version.get(ref.version)
                label = f" ({target.label})" if target is not None else ""
                number = format_version(ref.version, config.version_width)
                yield _at(
                    migration, "unknown-dependency", "error",
                    f"depends on {shown}, but {number} belongs to {owners[0]}{label}",
                    line=ref.line,
                    hint=f"write `{owners[0]}:{number}` or fix the number",
                )


def directive_problems(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for sql_file, problems in ((migration.up, migration.directive_findings),
                                   (migration.down, migration.down_directive_findings)):
            for problem in problems:
                yield attrs.evolve(problem, path=sql_file.path if sql_file else None,
                                   service=migration.service, version=migration.version)


def encoding(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for down, sql_file in ((False, migration.up), (True, migration.down)):
            if sql_file is not None and sql_file.encoding_error is not None:
                yield _at(migration, "encoding", "error",
                          f"{sql_file.path.name} is not UTF-8 text: {sql_file.encoding_error}",
                          down=down,
                          hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")


def empty_migration(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        up, down = migration.up, migration.down
        up_empty = up is not None and up.text is not None and not sqlreader.has_statements(up.text)
        if up_empty:
            yield _at(migration, "empty-migration", "warning",
                      f"{migration.label}.up.sql has no SQL statement yet",
                      hint="write the migration, or delete both files if it is not needed")
        elif (down is not None and down.text is not None
              and not sqlreader.has_statements(down.text)):
            yield _at(migration, "empty-migration", "warning",
                      f"{migration.label}.down.sql has no SQL statement: rolling back "
                      "would record the migration as undone while changing nothing",
                      down=True, hint="write the statements that undo the up file")


def explicit_transaction(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for down, sql_file in ((False, migration.up), (True, migration.down)):
            if sql_file is None or sql_file.text is None:
                continue
            # The executor refuses to run the same statements, with the same words.
            for control in sqlreader.transaction_control(sql_file.text):
                yield _at(migration, "explicit-transaction", "error", control.message,
                          down=down, line=control.line, column=control.column,
                          hint=control.hint)


def sum_mismatch(catalog: Catalog, config: Config, sum_text: str | None) -> Iterator[Finding]:
    path = config.sum_path
    migrations = [m for m in catalog.migrations]
    if sum_text is None:
        if migrations:
            yield Finding(code="sum-mismatch", severity="error",
                          message="migcoord.sum does not exist", path=path,
                          hint="run `migcoord sum` to write it, and commit it")
        return
    recorded = sumfile.parse(sum_text)
    for line, problem in recorded.problems:
        yield Finding(code="sum-mismatch", severity="error", message=problem, path=path,
                      line=line, hint=_SUM_HINT)
    absent = {f.name for f in catalog.folders if not f.present}
    judged = attrs.evolve(recorded, lines=tuple(
        line for line in recorded.lines if line.service not in absent))
    for difference in sumfile.compare(judged, migrations):
        yield Finding(code="sum-mismatch", severity="error", message=difference.what,
                      path=path, service=difference.service,
                      version=int(difference.version_text), hint=_SUM_HINT)
    if (not recorded.problems and recorded.claimed_hash is not None
            and recorded.claimed_hash != recorded.body_hash):
        yield Finding(code="sum-mismatch", severity="error",
                      message="the first line's hash does not match the lines below it "
                      "(the file was edited by hand)", path=path, line=1, hint=_SUM_HINT)


_SUM_HINT = ("if the change is deliberate (a merge, an edit of an unapplied migration), "
             "run `migcoord sum` and commit migcoord.sum; after a merge conflict in it, "
             "`migcoord renumber` the migration your branch added")


RULES: tuple[Rule, ...] = (
    bad_filename,
    missing_pair,
    duplicate_version,
    version_width,
    gap,
    reserved_range,
    dependencies,
    directive_problems,
    encoding,
    empty_migration,
    explicit_transaction,
)


def database_findings(states: Iterable[Reconciled], rows: Iterable[HistoryRow],
                      config: Config) -> list[Finding]:
    """`check --db`: missing-file, modified, dirty and out-of-order, from reconciled states."""
    highest: dict[str, int] = {}
    for row in rows:
        highest[row.service] = max(highest.get(row.service, 0), row.version)
    findings: list[Finding] = []
    for state in states:
        shown = f"{format_version(state.version, config.version_width)} {state.service} {state.name}"
        path = state.migration.path if state.migration is not None else None
        common = {"path": path, "service": state.service, "version": state.version}
        if not state.judged:
            continue
        if state.state == Status.MISSING:
            findings.append(Finding(
                code="missing-file", severity="error",
                message=f"{shown} is applied in the database but its file is gone (deleted "
                "or renamed)", hint="restore the file from git history; renaming applied "
                "migrations is not allowed", **common))  # type: ignore[arg-type]
        elif state.state == Status.MODIFIED:
            findings.append(Finding(
                code="modified", severity="error",
                message=f"{shown} was edited after it was applied to this database",
                hint="revert the edit and write a new migration instead; if the database "
                "already matches, `migcoord mark VERSION --applied --reason ...`",
                **common))  # type: ignore[arg-type]
        elif state.state == Status.DIRTY:
            findings.append(Finding(
                code="dirty", severity="error",
                message=f"{shown} is dirty ({state.detail})",
                hint="repair by hand, then `migcoord mark VERSION --applied` or `--pending`",
                **common))  # type: ignore[arg-type]
        elif state.state == Status.PENDING and state.version < highest.get(state.service, 0):
            findings.append(Finding(
                code="out-of-order", severity="error",
                message=f"{shown} is pending but {state.service} already applied "
                f"{format_version(highest[state.service], config.version_width)}",
                hint="`migcoord up --service S --allow-out-of-order` after checking it, or "
                "renumber it after the applied ones", **common))  # type: ignore[arg-type]
    return findings
