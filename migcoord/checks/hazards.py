"""What each file's SQL does wrong, as PostgreSQL's parser sees it.

`sql-syntax`, `not-idempotent` and `concurrently-in-transaction` of the up and the down
file, and `down-mismatch` (the down does not undo the up). The lints themselves are
decided in migcoord/sql/lints.py and migcoord/sql/down.py, once per file by
checks/analysis.py; this rule places them in their files. (`explicit-transaction` is
checks/files.py's: the executor must decide it too, without a parse tree.)

Lock hazards (migcoord/sql/locking.py) come the same way: `blocking-index-build`,
`blocking-index-drop`, `validating-constraint`, `set-not-null-scan`,
`not-null-without-default`, `volatile-default`, `unique-without-index`,
`blocking-maintenance`, `identifier-too-long`. A lock hazard on a table another service
owns says whose table it is. `rewriting-type-change` needs the column's type before the
change, which an earlier migration set: this rule follows every column's type through
the history, in version order, and asks migcoord/sql/rewrites.py. Like the lock hazards,
it is not reported on a table a TRUNCATE earlier in the same file emptied, when that
file runs in a transaction (which keeps TRUNCATE's lock, and the table empty, until
COMMIT).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from migcoord.checks._located import finding_at, placed_in
from migcoord.checks.analysis import Analyses, FileSql, Table
from migcoord.checks.ownership import Owners
from migcoord.core.model import Catalog, Config, Finding, Migration
from migcoord.core.owners import display
from migcoord.sql.emptied import emptied_for_a_moment
from migcoord.sql.rewrites import TypeSpec, type_change_rewrites

REWRITING_TYPE_CHANGE = "rewriting-type-change"


def lints(catalog: Catalog, config: Config, analyses: Analyses,
          owners: Owners) -> Iterator[Finding]:
    """The lint findings of both files of every migration, then its `down-mismatch`."""
    columns = _ColumnTypes()
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None:
            continue
        if analysed.up is not None:
            for finding in analysed.up.findings:
                yield placed_in(_whose(finding, analysed.up, migration, config, owners),
                                migration)
            yield from _type_changes(migration, analysed.up, columns, config, owners)
        if analysed.down is not None:
            teardown = _tears_down(analysed.down)
            for finding in analysed.down.findings:
                if teardown and finding.code == BLOCKING_INDEX_DROP:
                    continue
                yield placed_in(_whose(finding, analysed.down, migration, config, owners),
                                migration, down=True)
            # The down runs on the schema its up left: judged on an overlay, not kept.
            yield from _type_changes(migration, analysed.down, columns.overlay(), config,
                                     owners, down=True)
        for finding in analysed.mismatch:
            yield placed_in(finding, migration, down=True)
        if analysed.up is not None:
            columns.follow_tables(analysed.up)


BLOCKING_INDEX_DROP = "blocking-index-drop"


def _tears_down(down: FileSql) -> bool:
    """Whether a down file drops tables: then it is taking apart what its up built (tools
    such as Atlas write each index's DROP INDEX before its table's DROP TABLE), and a
    plain DROP INDEX there locks nothing the DROP TABLE does not."""
    return any(effect.action == "dropped" for effect in down.effects)


def _whose(finding: Finding, file_sql: FileSql, migration: Migration, config: Config,
           owners: Owners) -> Finding:
    """`finding`, saying whose table it concerns when another service owns it."""
    for code, line, column, tables in file_sql.subjects:
        if (code, line, column) == (finding.code, finding.line, finding.column):
            return attrs.evolve(finding, message=finding.message + _owned_by_others(
                tables, migration, config, owners))
    return finding


def _owned_by_others(tables: tuple[Table, ...], migration: Migration, config: Config,
                     owners: Owners) -> str:
    others = []
    for table in tables:
        owner = owners.owners.get(table)
        if owner is not None and owner.service != migration.service:
            others.append(f"{display(table, config)} is {owner.service}'s table")
    return f" ({'; '.join(others)})" if others else ""


class _ColumnTypes:
    """Every column's type as the migrations so far left it, by table. An overlay (for a
    down file) reads through to its base and copies a table's columns before a change."""

    def __init__(self, base: _ColumnTypes | None = None) -> None:
        self.tables: dict[Table, dict[str, TypeSpec]] = {}
        self.base = base

    def overlay(self) -> _ColumnTypes:
        return _ColumnTypes(self)

    def get(self, table: Table, column: str) -> TypeSpec | None:
        columns = self.tables.get(table)
        if columns is None and self.base is not None:
            columns = self.base.tables.get(table)
        return (columns or {}).get(column)

    def own(self, table: Table) -> dict[str, TypeSpec]:
        """`table`'s columns, ready to change (copied from the base the first time)."""
        if table not in self.tables:
            base = self.base.tables.get(table, {}) if self.base is not None else {}
            self.tables[table] = dict(base)
        return self.tables[table]

    def follow_tables(self, file_sql: FileSql) -> None:
        """Columns go with their table when it is renamed, and away when it is dropped."""
        for effect in file_sql.effects:
            if effect.action == "dropped":
                self.tables.pop(effect.table, None)
            elif effect.new_name is not None:
                self.tables[effect.new_name] = self.tables.pop(effect.table, {})


def _type_changes(migration: Migration, file_sql: FileSql, columns: _ColumnTypes,
                  config: Config, owners: Owners, *, down: bool = False) -> Iterator[Finding]:
    """`rewriting-type-change` of one file, following its column notes in order."""
    for note in file_sql.column_notes:
        table: Table = (note.table.schema, note.table.name)
        if note.kind == "dropped":
            columns.own(table).pop(note.column, None)
        elif note.kind == "renamed":
            owned = columns.own(table)
            old_type = owned.pop(note.column, None)
            if old_type is not None:
                owned[note.new_name] = old_type
        elif note.kind == "typed" and note.type is not None:
            columns.own(table)[note.column] = note.type
        elif note.kind == "retyped" and note.type is not None:
            old = columns.get(table, note.column)
            columns.own(table)[note.column] = note.type
            if note.fresh:
                continue
            no_transaction = (migration.down_directives if down
                              else migration.directives).no_transaction
            if note.emptied and not no_transaction:
                continue
            reason = type_change_rewrites(old, note.type, plain_using=note.plain_using)
            if reason is None:
                continue
            shown = display(table, config)
            yield finding_at(
                migration, REWRITING_TYPE_CHANGE,
                f"ALTER COLUMN {note.column} TYPE {note.type} rewrites all of {shown} (and "
                f"its indexes) under an ACCESS EXCLUSIVE lock, so every read and write of it "
                f"waits: {reason}"
                + _owned_by_others((table,), migration, config, owners)
                + (emptied_for_a_moment(note.emptied) if note.emptied else ""),
                hint=f"add a new column of type {note.type}, fill it in batches, move readers "
                "and writers to it, then drop the old one (a migration each step); widening a "
                "varchar or numeric precision, or dropping a length limit, is free",
                line=note.line, column=note.at, down=down)
