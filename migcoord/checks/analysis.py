"""Running the SQL analysis over a catalog: what each migration's SQL does, once.

`analyze_catalog` reads every migration's SQL with PostgreSQL's own grammar (`migcoord.sql`)
and keeps, per migration, what the rules need: the lint findings of
both files, what the down fails to undo, and the table effects. A `Cache` keyed by the
files' checksums lets a long-lived Coordinator re-parse only edited files; above
`PARALLEL_THRESHOLD` migrations the parsing fans out through checks/parallel.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from migcoord.core.model import Catalog, Config, Finding, Migration, SqlFile

if TYPE_CHECKING:
    from migcoord.sql import Analysis
    from migcoord.sql.columns import ColumnNote

#: Above this many migrations to parse, `analyze_catalog` spreads the work over processes.
PARALLEL_THRESHOLD = 2000

_Key = tuple[str, int, str]  # (service, version, name) of one migration
#: What an analysis depends on: the up and down files' texts (`text_key`), the default
#: schema, and the up and down files' no-transaction directives.
CacheKey = tuple[str, str, str, bool, bool]


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
    #: The schema objects it creates, drops or renames are only tables, indexes and
    #: constraints (no function, type, view, sequence... that another migration could
    #: use by name).
    tables_only: bool = True
    #: (code, line, column, tables) of each lint finding that concerns tables, so that the
    #: rules can say whose they are.
    subjects: tuple[tuple[str, int, int, tuple[Table, ...]], ...] = ()
    #: Column types the file sets, changes, renames or drops, in file order.
    column_notes: tuple[ColumnNote, ...] = ()

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
        """Tables that exist after the file because of it: created, or renamed to (a
        table renamed and then renamed back, `t -> t2 -> t`, is not new)."""
        # Each name the file made, with the existing table it came from (None: created).
        origins: dict[Table, Table | None] = {}
        for effect in self.effects:
            if effect.action == "created":
                origins[effect.table] = None
            elif effect.new_name is not None:
                origin = origins.pop(effect.table, effect.table)
                origins[effect.new_name] = origin
        return tuple(name for name, origin in origins.items() if origin != name)


@attrs.frozen
class MigrationSql:
    """The SQL analysis of one migration: its up and down files (None when absent or
    not UTF-8) and what the down fails to undo."""

    up: FileSql | None
    down: FileSql | None
    mismatch: tuple[Finding, ...] = ()


@attrs.frozen
class Analyses:
    """The SQL analysis of every migration of a catalog."""

    by_migration: Mapping[_Key, MigrationSql] = attrs.field(factory=dict)
    #: The cache key of each migration analysed.
    cache_keys: frozenset[CacheKey] = frozenset()
    #: How many migrations were parsed (the others came from the cache).
    parsed: int = 0

    def of(self, migration: Migration) -> MigrationSql | None:
        return self.by_migration.get(_key(migration))


#: Analyses by what they depend on, so a long-lived Coordinator re-parses only edited files.
Cache = MutableMapping[CacheKey, MigrationSql]


def analyze_catalog(catalog: Catalog, config: Config, *, cache: Cache | None = None,
            parallel: bool = False) -> Analyses:
    """Parse every migration of `catalog` (both files) with PostgreSQL's grammar.

    Never raises for bad SQL (that is a `sql-syntax` finding). With `parallel`, many
    files are parsed in worker processes: only for single-threaded callers such as the CLI, since forking a
    process that runs other threads can deadlock the child.
    """
    cache = {} if cache is None else cache
    result: dict[_Key, MigrationSql] = {}
    todo: dict[CacheKey, tuple[str | None, str | None]] = {}
    wanted: list[tuple[_Key, CacheKey]] = []
    for migration in catalog.migrations:
        cache_key = (
            text_key(migration.up),
            text_key(migration.down),
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
    return Analyses(by_migration=result, cache_keys=frozenset(k for _, k in wanted),
                    parsed=len(todo))


def text_key(sql_file: SqlFile | None) -> str:
    """What names a file's text exactly, for the cache: its checksum, which is of the
    content with the BOM removed and line ends made `\n`, so it names the text only
    when the text holds no `\r` (else the text's own sha256, marked); `!` and the
    checksum when the file has no text (not UTF-8, unreadable); "" when there is no file.
    """
    if sql_file is None:
        return ""
    if sql_file.text is None:
        return "!" + sql_file.checksum
    if "\r" in sql_file.text:
        return "r" + hashlib.sha256(sql_file.text.encode()).hexdigest()
    return sql_file.checksum


def _text(migration: Migration, direction: str) -> str | None:
    sql_file = migration.up if direction == "up" else migration.down
    return sql_file.text if sql_file is not None else None


def _summarise_all(
    todo: Mapping[CacheKey, tuple[str | None, str | None]], *, parallel: bool,
) -> dict[CacheKey, MigrationSql]:
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
                file_sql.parsed, file_sql.tables_only, file_sql.subjects, file_sql.column_notes)

    return (plain(summary.up), plain(summary.down), summary.mismatch)


def _decode(item: _Encoded) -> MigrationSql:
    def rebuild(plain: Any) -> FileSql | None:
        if plain is None:
            return None
        findings, effects, opaque, parsed, tables_only, subjects, notes = plain
        return FileSql(findings=findings, effects=tuple(Effect(*e) for e in effects),
                       opaque=opaque, parsed=parsed, tables_only=tables_only,
                       subjects=subjects, column_notes=notes)

    up, down, mismatch = item
    return MigrationSql(up=rebuild(up), down=rebuild(down), mismatch=mismatch)


def summarise(up_text: str | None, down_text: str | None, default_schema: str,
              no_transaction: bool, down_no_transaction: bool = False) -> MigrationSql:
    """Analyse one migration's two files (pure; the unit of caching and of parallel work).

    Each file is linted as migcoord runs it: in a transaction unless that file has its
    own `-- migcoord:no-transaction` or is one statement that cannot run in one.
    """
    from migcoord import sql

    up = sql.analyze(up_text, default_schema=default_schema) if up_text is not None else None
    down = sql.analyze(down_text, default_schema=default_schema) if down_text is not None else None
    mismatch = sql.down_mismatch(up, down) if up is not None and down is not None else []
    return MigrationSql(
        up=_file_sql(up, _lint(up, up_text, no_transaction)) if up is not None else None,
        down=(_file_sql(down, _lint(down, down_text, down_no_transaction))
              if down is not None else None),
        mismatch=tuple(mismatch),
    )


def _lint(analysis: Analysis, text: str | None, no_transaction: bool) -> list[Finding]:
    from migcoord import sql
    from migcoord.sql import transactions

    # Whether the file is a whole-file BEGIN; ... COMMIT; only changes the hint of a
    # statement that cannot run in a transaction: the file is scanned for it only then.
    wrapper = (text is not None and not no_transaction
               and any(h.code == sql.CONCURRENTLY_IN_TRANSACTION for h in analysis.hazards)
               and transactions.explicit_transaction(text).wrapper is not None)
    return sql.lint(analysis, no_transaction=no_transaction, wrapper=wrapper)


def _file_sql(analysis: Analysis, findings: list[Finding]) -> FileSql:
    effects = tuple(
        Effect(e.action.value, (e.table.schema, e.table.name), e.line,
               (e.new_name.schema, e.new_name.name) if e.new_name is not None else None)
        for e in analysis.table_effects)
    subjects = tuple((h.code, h.line, h.column, tuple((t.schema, t.name) for t in h.tables))
                     for h in analysis.hazards if h.tables)
    return FileSql(findings=tuple(findings), effects=effects, opaque=analysis.opaque,
                   parsed=analysis.syntax_error is None,
                   tables_only=all(o.kind.value in ("table", "index", "constraint")
                                   for o in analysis.object_effects),
                   subjects=subjects, column_notes=analysis.column_notes)


def _key(migration: Migration) -> _Key:
    return (migration.service, migration.version, migration.name)
