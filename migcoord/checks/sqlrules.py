"""SQL-aware rules: table ownership, inferred cross-service dependencies, safety lints.

`analyse` reads every migration's SQL once with PostgreSQL's own grammar (`migcoord.sql`)
and keeps, per migration, what the rules need: the
lint findings of both files and the table effects. The rules are pure functions of the
catalog, the config and those analyses, one per finding code:

- `ownership` (error): a migration changes a table another service owns; a table claimed
  by two services' `owns`.
- `unowned-table` (warning): a service that declares `owns` creates a table it does not list.
- `undeclared-dependency` (error): a migration uses a table another service's migration
  created, without depending on that migration directly or transitively.
- `unnecessary-dependency` (warning): a `depends` entry that is provably not needed.
- `sql-syntax`, `not-idempotent`, `concurrently-in-transaction`, `down-mismatch`: the
  per-file lints of `migcoord.sql`.

`-- migcoord:allow CODE` (per migration) and `allow = [...]` (migcoord.toml) silence
warnings of any rule, offline or SQL-aware (`without_allowed`); an allowed error code is
itself reported (`allow_problems`), since errors cannot be silenced.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from migcoord.core.model import Catalog, Config, Finding, Migration, Severity, format_version

if TYPE_CHECKING:
    from migcoord.sql import Analysis

#: Every finding code and its severity. Only warnings can be allowed.
SEVERITIES: Mapping[str, Severity] = {
    "bad-filename": "error",
    "missing-down": "error",
    "missing-up": "error",
    "duplicate-version": "error",
    "version-width": "warning",
    "gap": "error",
    "reserved-range": "error",
    "unknown-dependency": "error",
    "forward-dependency": "error",
    "unknown-directive": "error",
    "empty-migration": "warning",
    "explicit-transaction": "error",
    "concurrently-in-transaction": "error",
    "sum-mismatch": "error",
    "encoding": "error",
    "sql-syntax": "error",
    "sql-skipped": "warning",
    "ownership": "error",
    "undeclared-dependency": "error",
    "unnecessary-dependency": "warning",
    "unowned-table": "warning",
    "not-idempotent": "warning",
    "down-mismatch": "warning",
    "docs-stale": "warning",
    "missing-file": "error",
    "modified": "error",
    "dirty": "error",
    "out-of-order": "error",
}

#: Above this many migrations to parse, `analyse` spreads the work over processes.
PARALLEL_THRESHOLD = 2000

_Key = tuple[str, int, str]  # (service, version, name) of one migration
#: What an analysis depends on: the up and down checksums, the default schema, and the
#: up and down files' no-transaction directives.
_CacheKey = tuple[str, str, str, bool, bool]


# -- analysis -------------------------------------------------------------------------------

#: A table as PostgreSQL stores its name: (schema, name); quoted names keep their case.
Table = tuple[str, str]


class Effect(NamedTuple):
    """One way a file touches one table (`sql.TableEffect`, reduced to what the rules
    need, in plain tuples that are cheap to send between processes)."""

    #: A `sql.TableAction` value: "created", "altered", ..., "referenced".
    action: str
    table: Table
    #: The first line of the statement.
    line: int
    #: "renamed": the new name.
    new_name: Table | None = None


@attrs.frozen
class FileSql:
    """What one file's SQL does, as far as the rules need it."""

    #: Lint findings with line and column but no path (see `sql.lint`).
    findings: tuple[Finding, ...] = ()
    effects: tuple[Effect, ...] = ()
    #: Runs code whose effects cannot be seen (`DO`, `CALL`, `EXECUTE`).
    opaque: bool = False
    #: PostgreSQL's grammar accepted the file (an empty file parses).
    parsed: bool = True
    #: The schema objects it creates, drops or renames are only tables and indexes (no
    #: function, type, view, sequence... that another migration could use by name).
    tables_only: bool = True

    @property
    def mentioned(self) -> frozenset[Table]:
        """Every table the file touches or reads (a rename counts with both names)."""
        names = {effect.table for effect in self.effects}
        names.update(e.new_name for e in self.effects if e.new_name is not None)
        return frozenset(names)

    @property
    def changed(self) -> frozenset[Table]:
        """Tables the file changes in any way (all actions but `referenced`)."""
        names = {e.table for e in self.effects if e.action != "referenced"}
        names.update(e.new_name for e in self.effects if e.new_name is not None)
        return frozenset(names)

    @property
    def created(self) -> tuple[Table, ...]:
        """Tables that exist after the file because of it: created, or renamed to."""
        names: dict[Table, None] = {}
        for effect in self.effects:
            if effect.action == "created":
                names[effect.table] = None
            elif effect.new_name is not None:
                names[effect.new_name] = None
        return tuple(names)


@attrs.frozen
class MigrationSql:
    """The SQL analysis of one migration: its up and down files (None when absent or
    not UTF-8) and what the down fails to undo."""

    up: FileSql | None
    down: FileSql | None
    mismatch: tuple[Finding, ...] = ()


@attrs.frozen
class Analyses:
    """The SQL analysis of every migration of a catalog.

    pglast is a required dependency, so the analysis always runs: `available` is always
    True and `require` has nothing to check (both stay for their callers).
    """

    available: bool = True
    by_migration: Mapping[_Key, MigrationSql] = attrs.field(factory=dict)

    def of(self, migration: Migration) -> MigrationSql | None:
        return self.by_migration.get(_key(migration))

    def require(self) -> None:
        """Nothing to do: the SQL analysis is always available."""


#: Analyses by what they depend on, so a long-lived Coordinator re-parses only edited files.
Cache = MutableMapping[_CacheKey, MigrationSql]


def analyse(catalog: Catalog, config: Config, *, cache: Cache | None = None,
            parallel: bool = False) -> Analyses:
    """Parse every migration of `catalog` (both files) with PostgreSQL's grammar.

    Never raises for bad SQL (that is a `sql-syntax` finding). With `parallel`, many
    files are parsed in
    worker processes: only for single-threaded callers such as the CLI, since forking a
    process that runs other threads can deadlock the child.
    """
    cache = {} if cache is None else cache
    result: dict[_Key, MigrationSql] = {}
    todo: dict[_CacheKey, tuple[str | None, str | None]] = {}
    wanted: list[tuple[_Key, _CacheKey]] = []
    for migration in catalog.migrations:
        cache_key = (
            migration.up.checksum if migration.up else "",
            migration.down.checksum if migration.down else "",
            config.default_schema,
            migration.directives.no_transaction,
            migration.down_directives.no_transaction,
        )
        wanted.append((_key(migration), cache_key))
        if cache_key not in cache and cache_key not in todo:
            todo[cache_key] = (_text(migration, "up"), _text(migration, "down"))
    for cache_key, summary in _summarise_all(todo, parallel=parallel).items():
        cache[cache_key] = summary
    for key, cache_key in wanted:
        result[key] = cache[cache_key]
    return Analyses(by_migration=result)


def _text(migration: Migration, direction: str) -> str | None:
    sql_file = migration.up if direction == "up" else migration.down
    return sql_file.text if sql_file is not None else None


def _summarise_all(
    todo: Mapping[_CacheKey, tuple[str | None, str | None]], *, parallel: bool,
) -> dict[_CacheKey, MigrationSql]:
    jobs = [(up, down, *key[2:]) for key, (up, down) in todo.items()]
    encoded = None
    if parallel and len(jobs) >= PARALLEL_THRESHOLD:
        from migcoord.checks import parallel as workers

        encoded = workers.map_batches(_summarise_batch, jobs)
    if encoded is None:
        return {key: summarise(*job) for key, job in zip(todo, jobs, strict=True)}
    return {key: _decode(item) for key, item in zip(todo, encoded, strict=True)}


_Encoded = tuple[object, object, tuple[Finding, ...]]


def _summarise_batch(jobs: list[tuple[str | None, str | None, str, bool, bool]],
                     ) -> list[_Encoded]:
    return [_encode(summarise(*job)) for job in jobs]


def _encode(summary: MigrationSql) -> _Encoded:
    def plain(file_sql: FileSql | None) -> object:
        if file_sql is None:
            return None
        return (file_sql.findings, tuple(tuple(e) for e in file_sql.effects), file_sql.opaque,
                file_sql.parsed, file_sql.tables_only)

    return (plain(summary.up), plain(summary.down), summary.mismatch)


def _decode(item: _Encoded) -> MigrationSql:
    def rebuild(plain: Any) -> FileSql | None:
        if plain is None:
            return None
        findings, effects, opaque, parsed, tables_only = plain
        return FileSql(findings=findings, effects=tuple(Effect(*e) for e in effects),
                       opaque=opaque, parsed=parsed, tables_only=tables_only)

    up, down, mismatch = item
    return MigrationSql(up=rebuild(up), down=rebuild(down), mismatch=mismatch)


def summarise(up_text: str | None, down_text: str | None, default_schema: str,
              no_transaction: bool, down_no_transaction: bool = False) -> MigrationSql:
    """Analyse one migration's two files (pure; the unit of caching and of parallel work).

    Each file is linted as migcoord runs it: in a transaction unless that file has its
    own `-- migcoord:no-transaction`.
    """
    from migcoord import sql

    up = sql.analyze(up_text, default_schema=default_schema) if up_text is not None else None
    down = sql.analyze(down_text, default_schema=default_schema) if down_text is not None else None
    mismatch = sql.down_mismatch(up, down) if up is not None and down is not None else []
    return MigrationSql(
        up=_file_sql(up, sql.lint(up, no_transaction=no_transaction)) if up is not None else None,
        down=(_file_sql(down, sql.lint(down, no_transaction=down_no_transaction))
              if down is not None else None),
        mismatch=tuple(mismatch),
    )


def _file_sql(analysis: Analysis, findings: list[Finding]) -> FileSql:
    effects = tuple(
        Effect(e.action.value, (e.table.schema, e.table.name), e.line,
               (e.new_name.schema, e.new_name.name) if e.new_name is not None else None)
        for e in analysis.table_effects)
    return FileSql(findings=tuple(findings), effects=effects, opaque=analysis.opaque,
                   parsed=analysis.syntax_error is None,
                   tables_only=all(o.kind.value in ("table", "index")
                                   for o in analysis.object_effects))


def _key(migration: Migration) -> _Key:
    return (migration.service, migration.version, migration.name)


# -- the rules ------------------------------------------------------------------------------


def run_all(catalog: Catalog, config: Config, analyses: Analyses) -> list[Finding]:
    """Every SQL-aware finding."""
    owners = Owners.of(catalog, config, analyses)
    findings = list(lints(catalog, config, analyses))
    findings.extend(owners.problems)
    findings.extend(ownership(catalog, config, analyses, owners))
    findings.extend(unowned_table(catalog, config, analyses, owners))
    graph = Graph(catalog)
    findings.extend(undeclared_dependency(catalog, config, analyses, owners, graph))
    findings.extend(unnecessary_dependency(catalog, config, analyses, graph))
    return findings


def _at(migration: Migration, finding: Finding, *, down: bool = False) -> Finding:
    sql_file = migration.down if down else migration.up
    return attrs.evolve(finding, path=sql_file.path if sql_file else migration.path,
                        service=migration.service, version=migration.version)


def _finding(migration: Migration, code: str, message: str, hint: str, *,
             line: int | None = None, down: bool = False) -> Finding:
    return _at(migration, Finding(code=code, severity=SEVERITIES[code], message=message,
                                  line=line, hint=hint), down=down)


def lints(catalog: Catalog, config: Config, analyses: Analyses) -> Iterator[Finding]:
    """`sql-syntax`, `not-idempotent`, `concurrently-in-transaction` of both files, and
    `down-mismatch`."""
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None:
            continue
        if analysed.up is not None:
            for finding in analysed.up.findings:
                yield _at(migration, finding)
        if analysed.down is not None:
            for finding in analysed.down.findings:
                yield _at(migration, finding, down=True)
        for finding in analysed.mismatch:
            yield _at(migration, finding, down=True)


# -- ownership ------------------------------------------------------------------------------


@attrs.frozen
class Owner:
    """Who owns one table, and why: declared in `owns`, or created by `migration`."""

    service: str
    migration: Migration | None = None

    def why(self, width: int) -> str:
        if self.migration is None:
            return "declared in its `owns` in migcoord.toml"
        return f"created by {self.migration.service}:{format_version(self.migration.version, width)}"


@attrs.frozen
class Owners:
    """The owner of every known table, the migrations that create each table (in version
    order), and the problems of the `owns` lists themselves."""

    owners: Mapping[Table, Owner]
    creators: Mapping[Table, tuple[Migration, ...]]
    declared: Mapping[Table, tuple[str, ...]]
    #: Tables that exist after every migration: created or renamed to, and not dropped.
    existing: frozenset[Table] = frozenset()
    problems: tuple[Finding, ...] = ()

    @classmethod
    def of(cls, catalog: Catalog, config: Config, analyses: Analyses) -> Owners:
        declared: dict[Table, tuple[str, ...]] = {}
        problems: list[Finding] = []
        for service in config.services:
            for text in service.owns:
                name = owned_name(text, config.default_schema)
                if name is None:
                    problems.append(Finding(
                        code="ownership", severity="error", path=config.path,
                        message=f"`owns` of {service.name} lists {text!r}, which is not a "
                        "table name",
                        hint='write a table name, optionally schema-qualified: "rules" or '
                        '"app.rules"'))
                    continue
                if service.name not in declared.get(name, ()):
                    declared[name] = (*declared.get(name, ()), service.name)
        for name, services in declared.items():
            if len(services) > 1:
                problems.append(Finding(
                    code="ownership", severity="error", path=config.path,
                    message=f"table {display(name, config)} is claimed in `owns` by "
                    f"{' and '.join(services)}; a table has one owning service",
                    hint="keep it in the `owns` of the service whose migrations change it, and "
                    "remove it from the others"))
        creators: dict[Table, list[Migration]] = defaultdict(list)
        existing: set[Table] = set()
        for migration in catalog.migrations:
            analysed = analyses.of(migration)
            if analysed is None or analysed.up is None:
                continue
            for name in analysed.up.created:
                creators[name].append(migration)
            for effect in analysed.up.effects:
                if effect.action == "created":
                    existing.add(effect.table)
                elif effect.action == "dropped":
                    existing.discard(effect.table)
                elif effect.new_name is not None:
                    existing.discard(effect.table)
                    existing.add(effect.new_name)
        owners = {name: Owner(services[0]) for name, services in declared.items()}
        for name, made_by in creators.items():
            if name not in owners:
                owners[name] = Owner(made_by[0].service, made_by[0])
        return cls(owners=owners, creators={k: tuple(v) for k, v in creators.items()},
                   declared=declared, existing=frozenset(existing), problems=tuple(problems))

    def owned_by(self, service: str) -> list[Table]:
        """Tables `service` owns: those it declares, and those its migrations created, that
        still exist and that nobody declares."""
        return sorted(
            name for name, owner in self.owners.items()
            if owner.service == service and (owner.migration is None or name in self.existing))


_OWNS_PART = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s*')


def owned_name(text: str, default_schema: str) -> Table | None:
    """An `owns` entry as PostgreSQL would read it: `rules` is `{default}.rules`,
    `app.rules` and `"Rules"` (quoted keeps its case) work too; None when unreadable."""
    parts: list[str] = []
    position = 0
    while True:
        match = _OWNS_PART.match(text, position)
        if match is None:
            return None
        quoted, plain = match.group(1), match.group(2)
        parts.append(quoted.replace('""', '"') if quoted is not None else plain.lower())
        position = match.end()
        if position == len(text):
            break
        if text[position] != ".":
            return None
        position += 1
    if len(parts) == 1:
        return (default_schema, parts[0])
    if len(parts) == 2:
        return (parts[0], parts[1])
    return None


def display(name: Table, config: Config) -> str:
    """A table name as a person writes it: without the default schema."""
    from migcoord.sql._tree import quote_ident

    schema, table = name
    if schema == config.default_schema:
        return quote_ident(table)
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def ownership(catalog: Catalog, config: Config, analyses: Analyses,
              owners: Owners) -> Iterator[Finding]:
    """A migration that changes a table another service owns (in its up file, or in its
    down file when the up does not already change that table)."""
    width = config.version_width
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None:
            continue
        reported: set[Table] = set()
        for down, file_sql in ((False, analysed.up), (True, analysed.down)):
            if file_sql is None:
                continue
            for name, (verbs, line) in _changes(file_sql.effects).items():
                owner = owners.owners.get(name)
                if owner is None or owner.service == migration.service or name in reported:
                    continue
                reported.add(name)
                table = display(name, config)
                yield _finding(
                    migration, "ownership",
                    f"{migration.service}:{migration.version_text} {_join(verbs)} {table}, "
                    f"which {owner.service} owns ({owner.why(width)})",
                    f"ask {owner.service} to make this change in one of its own migrations "
                    f"(and depend on it), or, if {table} really moves to {migration.service}, "
                    f"move it from {owner.service}'s `owns` to {migration.service}'s in "
                    "migcoord.toml",
                    line=line, down=down)


_VERBS = {
    "created": "creates", "altered": "alters", "dropped": "drops", "renamed": "renames",
    "truncated": "truncates", "written": "writes rows of", "indexed": "indexes",
    "trigger": "adds a trigger to", "policy": "sets a policy on", "comment": "comments on",
    "row-security": "sets row security on",
}


def _changes(effects: Iterable[Effect]) -> dict[Table, tuple[list[str], int]]:
    """Table -> (what the file does to it, the first line doing it); reads left out."""
    found: dict[Table, tuple[list[str], int]] = {}
    for effect in effects:
        verb = _VERBS.get(effect.action)
        if verb is None:
            continue
        names = [effect.table] if effect.new_name is None else [effect.table, effect.new_name]
        for name in names:
            verbs = found.setdefault(name, ([], effect.line))[0]
            if verb not in verbs:
                verbs.append(verb)
    return found


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def unowned_table(catalog: Catalog, config: Config, analyses: Analyses,
                  owners: Owners) -> Iterator[Finding]:
    """A service that declares `owns` creates a table nobody declares."""
    for migration in catalog.migrations:
        service = config.service(migration.service)
        analysed = analyses.of(migration)
        if service is None or not service.owns or analysed is None or analysed.up is None:
            continue
        lines: dict[Table, int] = {}
        for effect in analysed.up.effects:
            lines.setdefault(effect.new_name or effect.table, effect.line)
        for name in analysed.up.created:
            if name in owners.declared:
                continue  # declared by this service: fine; by another: an ownership error
            table = display(name, config)
            yield _finding(
                migration, "unowned-table",
                f"{migration.service}:{migration.version_text} creates {table}, which is not "
                f"in {migration.service}'s `owns` in migcoord.toml",
                f'add "{table}" to `owns` of [services.{migration.service}]',
                line=lines.get(name))


# -- dependencies ---------------------------------------------------------------------------


class Graph:
    """The order `up` guarantees between migrations: declared `depends` edges, and each
    migration after its service's earlier ones.

    `reaches(start, service, version)` says whether the migration numbered `start` is
    applied only after `service`'s migration `version`: through edges it reaches a
    migration of `service` numbered `version` or above (whose own service's earlier
    migrations come before it).
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._by_version = catalog.by_version()
        #: version -> the previous version of the same service
        self._previous: dict[int, int] = {}
        last: dict[str, int] = {}
        for migration in catalog.migrations:
            if migration.service in last and last[migration.service] != migration.version:
                self._previous[migration.version] = last[migration.service]
            last[migration.service] = migration.version
        self._highest: dict[int, dict[str, int]] | None = None

    def _sources(self, migration: Migration, skip: int | None = None) -> list[int]:
        sources = [v for v in migration.depends_on if v != skip and v < migration.version]
        if migration.version in self._previous:
            sources.append(self._previous[migration.version])
        return sources

    def _table(self) -> dict[int, dict[str, int]]:
        """For each version: the highest version of each service it is applied after
        (itself included). Built once, in version order, since edges point downwards."""
        if self._highest is not None:
            return self._highest
        highest: dict[int, dict[str, int]] = {}
        for migration in self._catalog.migrations:
            if self._by_version[migration.version] is not migration:
                continue  # a duplicate version: duplicate-version says so
            reach: dict[str, int] = {}
            for source in self._sources(migration):
                for service, version in self._reach_of(source, highest).items():
                    if version > reach.get(service, 0):
                        reach[service] = version
            reach[migration.service] = migration.version
            highest[migration.version] = reach
        self._highest = highest
        return highest

    def _reach_of(self, version: int, highest: Mapping[int, dict[str, int]]) -> Mapping[str, int]:
        if version in highest:
            return highest[version]
        target = self._by_version.get(version)
        return {target.service: version} if target is not None else {}

    def reaches(self, start: int, service: str, version: int) -> bool:
        return self._table().get(start, {}).get(service, 0) >= version

    def reaches_through(self, migration: Migration, service: str, version: int,
                        skip: int | None = None) -> bool:
        """Whether `migration`'s edges (its service's previous migration and its
        depends, except the one on `skip`) already order it after `service`:`version`."""
        table = self._table()
        return any(self._reach_of(source, table).get(service, 0) >= version
                   for source in self._sources(migration, skip))


def undeclared_dependency(catalog: Catalog, config: Config, analyses: Analyses,
                          owners: Owners, graph: Graph) -> Iterator[Finding]:
    """A migration uses a table another service's migration created, without an order."""
    width = config.version_width
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None or analysed.up is None:
            continue
        own = set(analysed.up.created)
        needs: dict[int, tuple[Migration, list[str], int]] = {}
        for effect in analysed.up.effects:
            if effect.table in own:
                continue
            creator = _latest_creator(owners.creators.get(effect.table, ()), migration.version)
            if creator is None or creator.service == migration.service:
                continue
            if graph.reaches(migration.version, creator.service, creator.version):
                continue
            _, tables, _ = needs.setdefault(creator.version, (creator, [], effect.line))
            table = display(effect.table, config)
            if table not in tables:
                tables.append(table)
        for creator, tables, line in needs.values():
            target = f"{creator.service}:{format_version(creator.version, width)}"
            declared = migration.directives.depends
            how = (f"add {target} to its `-- migcoord:depends` line (line {declared[0].line})"
                   if declared else
                   f"add the line `-- migcoord:depends {target}` at the top of the up file, "
                   "before the first statement")
            yield _finding(
                migration, "undeclared-dependency",
                f"{migration.service}:{migration.version_text} uses {', '.join(tables)}, "
                f"created by {target} ({creator.name}), but does not depend on it: "
                f"`up --service {migration.service}` could run it before {creator.service} "
                "has migrated",
                how, line=line)


def _latest_creator(creators: Iterable[Migration], before: int) -> Migration | None:
    found = None
    for creator in creators:
        if creator.version < before:
            found = creator
    return found


def unnecessary_dependency(catalog: Catalog, config: Config, analyses: Analyses,
                           graph: Graph) -> Iterator[Finding]:
    """A `depends` entry that is provably not needed: on an earlier migration of the same
    service, or on one that only changes tables (and indexes), none of which this migration
    mentions, and that another of its dependencies (or its service's previous migration)
    already orders it after."""
    by_version = catalog.by_version()
    width = config.version_width
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        seen: set[int] = set()
        for ref in migration.directives.depends:
            target = by_version.get(ref.version)
            if (target is None or ref.version >= migration.version or ref.version in seen
                    or (ref.service is not None and ref.service != target.service)):
                continue
            seen.add(ref.version)
            shown = f"{target.service}:{format_version(target.version, width)}"
            if target.service == migration.service:
                yield _finding(
                    migration, "unnecessary-dependency",
                    f"depends on {shown}, an earlier migration of {migration.service}: "
                    "a service's migrations are always applied in version order",
                    f"remove {ref.text} from the depends line", line=ref.line)
                continue
            needed = analyses.of(target)
            if (analysed is None or analysed.up is None or needed is None or needed.up is None
                    or not analysed.up.parsed or not needed.up.parsed
                    or analysed.up.opaque or needed.up.opaque):
                continue  # cannot prove anything about SQL we cannot see
            if (not needed.up.changed or not needed.up.tables_only
                    or needed.up.changed & analysed.up.mentioned):
                # It changes no table (what it does is not seen here), makes objects this
                # migration may use by name, or changes a table this migration uses.
                continue
            if graph.reaches_through(migration, target.service, target.version, skip=ref.version):
                yield _finding(
                    migration, "unnecessary-dependency",
                    f"depends on {shown}, whose tables this migration never mentions, and "
                    "which its other dependencies (or its service's earlier migrations) "
                    "already order it after",
                    f"remove {ref.text} from the depends line", line=ref.line)


# -- allow ----------------------------------------------------------------------------------


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
        if finding.severity == "warning" and (
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
            yield Finding(code="unknown-directive", severity="error", path=config.path,
                          message=f"`allow` in migcoord.toml names {code}: {problem}",
                          hint=_ALLOW_HINT)
    for migration in catalog.migrations:
        for down, directives in ((False, migration.directives), (True, migration.down_directives)):
            for code in sorted(directives.allow):
                problem = _allow_problem(code)
                if problem is not None:
                    text = migration.down_sql if down else migration.up_sql
                    yield _finding(migration, "unknown-directive",
                                   f"`-- migcoord:allow {code}`: {problem}", _ALLOW_HINT,
                                   line=_allow_line(text, directives.body_line, code), down=down)


_ALLOW_HINT = ("only warnings can be allowed (see docs/findings.md); fix what an error "
               "reports instead")


def _allow_problem(code: str) -> str | None:
    severity = SEVERITIES.get(code)
    if severity is None:
        return "no finding has this code"
    if severity == "error":
        return "an error cannot be allowed: it would break a deploy or let schemas drift"
    return None


def _allow_line(text: str, body_line: int, code: str) -> int | None:
    for number, line in enumerate(text.split("\n")[:body_line], start=1):
        if re.match(r"\s*--\s*migcoord\s*:\s*allow\b", line) and re.search(
                rf"(?<![a-z0-9\-]){re.escape(code)}(?![a-z0-9\-])", line):
            return number
    return None
