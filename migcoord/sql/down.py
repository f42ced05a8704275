"""`down-mismatch`: does a down file undo what its up file does?

Both files are reduced to their net footprint (what exists after them that did not
before, what is gone, what was renamed, which columns were added or dropped), then
compared. The comparison is cheap and leans towards silence:

- an object counts as undone when the down drops it, re-creates it (`CREATE OR REPLACE`
  restoring an older body) or renames it, when the down drops the relation an index,
  trigger, policy, view or owned sequence hangs on (a table of any kind, a view, a
  materialized view), drops any column of an index's table or a sequence's owning
  column, or drops its schema; a view the up replaced counts as undone when the down
  alters it (`ALTER VIEW ... RESET (security_barrier)`), and the other way round; the
  indexes and triggers the down re-creates on a relation the up dropped are asked for;
- an object is followed through its renames in either file (`ALTER TABLE / TYPE /
  DOMAIN / FUNCTION / INDEX / VIEW / SEQUENCE ... RENAME TO` or `SET SCHEMA`, a
  trigger's or policy's `RENAME TO`, a column's `RENAME COLUMN`): each file is compared
  by the names PostgreSQL has between the up and the down, so an enum swapped under
  its old name, or a table renamed and given a column, is undone by a down that does
  the same backwards; an index created without a name goes by the name PostgreSQL gives
  it (migcoord/sql/index_names.py), or a numbered form of it when that name was taken,
  and, since which one cannot be known, is never reported itself; a rename the down
  does not take back is reported (a column's too), and one it renames to another name
  than the up began with (schema included);
- constraints that `ALTER TABLE` adds, drops or renames are followed by table; one
  goes with its table, any column of its table, or (a foreign key) the table it
  references; a constraint's index goes by its name and with it; an unnamed one is
  any of the names PostgreSQL may give it, and is reported only when the down drops
  none of them (an unnamed EXCLUDE constraint, whose name is not known, not at all);
- schemas and extensions are not followed: services often share them on purpose;
- temporary objects are not followed: temporary tables, sequences and views, and
  anything created in `pg_temp` (`CREATE FUNCTION pg_temp.f()`), are gone at the end of
  the session (or of the transaction, `ON COMMIT DROP`); a down that drops a temporary
  table of the up's name is cleaning up, not undoing;
- when a file runs code whose effects cannot be seen (`DO`, `CALL`), nothing is claimed
  about what that file does or does not do; when either file does not parse, nothing is
  reported (`sql-syntax` covers it).

Every finding is about the down file. What the down forgets has no line (the message
names the up's line); what the down does unasked has the line of its statement.
Messages name objects as the file wrote them at that line; hints, by the names they
have when the down begins.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator

import attrs

from migcoord.core.model import Finding
from migcoord.sql._tree import quote_ident
from migcoord.sql.analysis import Analysis
from migcoord.sql.effects import (
    ColumnAction,
    ColumnEffect,
    ObjectAction,
    ObjectEffect,
    ObjectKind,
    QualifiedName,
)
from migcoord.sql.lints import DOWN_MISMATCH

# Objects are matched by family: DROP VIEW and DROP MATERIALIZED VIEW, DROP TYPE and DROP
# DOMAIN are close enough that a mix-up is not what this check is for.
_FAMILY = {ObjectKind.MATERIALIZED_VIEW: ObjectKind.VIEW, ObjectKind.DOMAIN: ObjectKind.TYPE}
_NOT_FOLLOWED = frozenset({ObjectKind.SCHEMA, ObjectKind.EXTENSION})
_PER_TABLE = frozenset({ObjectKind.TRIGGER, ObjectKind.POLICY, ObjectKind.CONSTRAINT})
# What goes with any column of its table that is dropped (PostgreSQL drops an index or
# constraint with each column it uses; which columns it uses is not followed here).
_ON_COLUMNS = frozenset({ObjectKind.INDEX, ObjectKind.CONSTRAINT})

_Key = tuple[ObjectKind, QualifiedName, tuple[QualifiedName, ...]]
_Column = tuple[QualifiedName, str]


def _temporary(name: QualifiedName) -> bool:
    """Whether `name` is in the session's temporary schema (`pg_temp`, `pg_temp_3`)."""
    return name.schema == "pg_temp" or name.schema.startswith("pg_temp_")


def _key(kind: ObjectKind, name: QualifiedName, on: tuple[QualifiedName, ...] = ()) -> _Key:
    # Trigger, policy and constraint names are unique per table only (a foreign key's
    # `on` also holds the table it references, which is not part of its name).
    return (_FAMILY.get(kind, kind), name, on[:1] if kind in _PER_TABLE else ())


def _table_key(table: QualifiedName) -> _Key:
    return _key(ObjectKind.TABLE, table)


class _Footprint:
    """The net schema change of one file, in statement order.

    Objects are known by the names PostgreSQL has for them at the file's edges: what the
    file creates or adds, by the name it ends with; what it drops or renames, by the
    name it had when the file began (a table renamed, then given a column, then renamed
    back is the same table). The effects kept keep the names the file wrote.
    """

    def __init__(self, analysis: Analysis) -> None:
        self.created: dict[_Key, ObjectEffect] = {}  # by the name it ends with
        self.dropped: dict[_Key, ObjectEffect] = {}  # by its first name
        self.renamed: dict[_Key, ObjectEffect] = {}  # by its first name: name -> new_name
        self.renamed_to: set[_Key] = set()
        self.altered: set[_Key] = set()
        self.added_columns: dict[_Column, ColumnEffect] = {}  # by the names they end with
        self.dropped_columns: dict[_Column, ColumnEffect] = {}  # by their first names
        self.changed_tables = analysis.tables_changed
        self.temporary = analysis.temporary_relations
        self.opaque = analysis.opaque
        # The first name of each object the file renamed, by the key of its name now.
        self._first: dict[_Key, QualifiedName] = {}
        # The first (table, column) of each column the file renamed, by its names now,
        # and the statement that first renamed it.
        self._first_column: dict[_Column, _Column] = {}
        self._column_renames: dict[_Column, ColumnEffect] = {}
        # What a ROLLBACK TO SAVEPOINT undid leaves nothing for the down to undo.
        for statement in analysis.lasting:
            for effect in statement.objects:
                self._object(effect)
            for column in statement.columns:
                self._column(column)

    def _first_table(self, table: QualifiedName) -> QualifiedName:
        return self._first.get(_table_key(table), table)

    def final_table(self, table: QualifiedName) -> QualifiedName:
        """The name the file leaves `table` (by its first name) with."""
        renamed = self.renamed.get(_table_key(table))
        return renamed.new_name if renamed is not None and renamed.new_name else table

    def _object(self, effect: ObjectEffect) -> None:
        if _temporary(effect.name):
            return
        key = _key(effect.kind, effect.name, effect.on)
        if effect.action is ObjectAction.CREATED:
            self.created[key] = effect
        elif effect.action is ObjectAction.ALTERED:
            self.altered.add(key)
        elif effect.action is ObjectAction.OWNED:
            made_here = self.created.get(key)
            if made_here is not None:  # CREATE SEQUENCE, then ALTER SEQUENCE ... OWNED BY
                self.created[key] = attrs.evolve(made_here, on=effect.on,
                                                 owner_column=effect.owner_column)
        elif effect.action is ObjectAction.DROPPED:
            if self.created.pop(key, None) is not None:  # made and removed here: no trace
                return
            first = self._first.pop(key, effect.name)
            first_key = _key(effect.kind, first, tuple(map(self._first_table, effect.on)))
            self.renamed.pop(first_key, None)  # renamed, then dropped: dropped
            self.renamed_to.discard(key)
            self.dropped[first_key] = effect
        elif effect.new_name is not None:
            self._rename(key, effect, effect.new_name)

    def _rename(self, key: _Key, effect: ObjectEffect, new_name: QualifiedName) -> None:
        new_key = _key(effect.kind, new_name, effect.on)
        made_here = self.created.pop(key, None)
        if made_here is not None:  # its name is now known: no longer PostgreSQL's choice
            self.created[new_key] = attrs.evolve(made_here, name=new_name, server_name=None)
        else:
            first = self._first.pop(key, effect.name)
            first_key = _key(effect.kind, first, effect.on)
            self.renamed_to.discard(key)
            earlier = self.renamed.pop(first_key, None)
            if first_key != new_key:  # `t -> t2 -> t` leaves no rename
                self._first[new_key] = first
                self.renamed[first_key] = attrs.evolve(earlier or effect, name=first,
                                                       new_name=new_name)
                self.renamed_to.add(new_key)
        if _FAMILY.get(effect.kind, effect.kind) is ObjectKind.TABLE:
            self._table_renamed(effect.name, new_name)

    def _table_renamed(self, old: QualifiedName, new: QualifiedName) -> None:
        """What hangs on table `old` (indexes and triggers made here, columns added or
        renamed here) now goes by `new`."""
        for key, made in list(self.created.items()):
            if old in made.on:
                del self.created[key]
                moved = attrs.evolve(made, on=tuple(new if t == old else t for t in made.on))
                self.created[_key(moved.kind, moved.name, moved.on)] = moved
        self.added_columns = {(new if t == old else t, c): e
                              for (t, c), e in self.added_columns.items()}
        self._first_column = {(new if t == old else t, c): first
                              for (t, c), first in self._first_column.items()}

    def _column(self, effect: ColumnEffect) -> None:
        column = (effect.table, effect.column)
        new_table = _table_key(effect.table) in self.created
        if effect.action is ColumnAction.ADDED:
            if not new_table:  # the columns of a new table go with it
                self.added_columns[column] = effect
            return
        if new_table:
            return
        added = self.added_columns.pop(column, None)
        first = self._first_column.pop(column, (self._first_table(effect.table), effect.column))
        if effect.action is ColumnAction.RENAMED:
            if added is not None:
                self.added_columns[(effect.table, effect.new_name)] = added
            else:
                self._first_column[(effect.table, effect.new_name)] = first
                self._column_renames.setdefault(first, effect)
        elif added is None:  # dropped; one added here and dropped again leaves no trace
            self.dropped_columns[first] = effect

    def renamed_columns(self) -> Iterator[tuple[_Column, _Column, ColumnEffect]]:
        """(first names, names it ends with, first rename) of each column the file leaves
        under another name (a table's rename alone does not count)."""
        for now, first in self._first_column.items():
            if now[1] != first[1]:
                yield first, now, self._column_renames[first]

    def column_ends_as(self, column: _Column) -> _Column | None:
        """The names the file leaves `column` (by its names when the file begins) with,
        when it renames it; None when it does not."""
        if column not in self._column_renames:
            return None
        return next((now for now, first in self._first_column.items() if first == column), None)

    def touches(self, key: _Key) -> bool:
        """Whether this file creates, drops or renames (from or to) the object `key`; an
        index or constraint made without a name may be any of the names PostgreSQL could
        give it, and a constraint's index goes by the constraint's name."""
        if key in self.created or key in self.dropped or key in self.renamed or key in self.renamed_to:
            return True
        kind, name, _ = key
        return key in self._server_names or (kind is ObjectKind.INDEX
                                             and name in self._constraint_names)

    def touches_any_name(self, effect: ObjectEffect) -> bool:
        """Whether this file creates, drops or renames the object `effect` made without a
        name, under any of the names PostgreSQL may have given it."""
        if effect.server_name is None:
            return self.touches(_key(effect.kind, effect.name, effect.on))
        return any(self.touches(_key(effect.kind, QualifiedName(effect.name.schema, name), effect.on))
                   for name in effect.server_name.candidates())

    @functools.cached_property
    def _server_names(self) -> frozenset[_Key]:
        """The keys of every name PostgreSQL may have given the indexes and constraints
        this file made without one (read once the file is reduced, so it never changes)."""
        return frozenset(_key(made.kind, QualifiedName(made.name.schema, name), made.on)
                         for made in self.created.values() if made.server_name is not None
                         for name in made.server_name.candidates())

    @functools.cached_property
    def _constraint_names(self) -> frozenset[QualifiedName]:
        """The names of the constraints this file adds, drops or renames: a PRIMARY KEY,
        UNIQUE or EXCLUDE constraint's index has its name and goes with it."""
        keys = [*self.created, *self.dropped, *self.renamed, *self.renamed_to]
        return frozenset(name for kind, name, _ in keys if kind is ObjectKind.CONSTRAINT)

    def adds_to_table(self, table: QualifiedName) -> bool:
        """Whether this file creates `table` or adds a column to it (which may bring the
        constraints written in its definition)."""
        return _table_key(table) in self.created or any(t == table for t, _ in self.added_columns)

    def drops_relation(self, name: QualifiedName) -> bool:
        """Whether this file drops the table (partitioned and foreign ones too), view or
        materialized view `name`: its indexes, triggers and policies go with it."""
        return _table_key(name) in self.dropped or _key(ObjectKind.VIEW, name) in self.dropped

    def removes_holder(self, effect: ObjectEffect) -> bool:
        """Whether this file drops what `effect`'s object hangs on, taking it along."""
        for holder in effect.on:
            if self.drops_relation(holder):
                return True
            if effect.kind in _ON_COLUMNS and any(t == holder for t, _ in self.dropped_columns):
                return True
            if effect.kind is ObjectKind.SEQUENCE and (holder, effect.owner_column) in self.dropped_columns:
                return True
        schema = _key(ObjectKind.SCHEMA, QualifiedName("", effect.name.schema))
        return schema in self.dropped


def down_mismatch(up: Analysis, down: Analysis, *, allow: Collection[str] = frozenset()) -> list[Finding]:
    """What the down file fails to undo, and what it does that the up did not do.

    Warnings with code `down-mismatch`, none when that code is in `allow` (the union of
    the up file's `-- migcoord:allow` lines and the config's `allow`). The caller fills in
    path (the down file's), service and version.
    """
    if DOWN_MISMATCH in allow or up.syntax_error or down.syntax_error:
        return []
    before, after = _Footprint(up), _Footprint(down)
    findings: list[Finding] = []
    if not after.opaque:
        findings.extend(_forgotten(before, after))
    if not before.opaque:
        findings.extend(_unasked(before, after))
    # What the down forgets (no line) first, then what it does unasked, in file order.
    findings.sort(key=lambda finding: finding.line or 0)
    return findings


def _finding(message: str, hint: str, line: int | None = None) -> Finding:
    return Finding.of(DOWN_MISMATCH, message, line=line, hint=hint)


def _named(effect: ObjectEffect, name: QualifiedName | None = None) -> str:
    """The object as a message names it: `constraint t_pos of t`, `index public.t_a`."""
    name = name or effect.name
    if effect.kind is ObjectKind.CONSTRAINT and effect.on:
        return f"constraint {quote_ident(name.name)} of {effect.on[0]}"
    return f"{effect.kind} {name}"


def _drop_sql(effect: ObjectEffect) -> str:
    what = effect.kind.value.upper()
    if effect.kind is ObjectKind.CONSTRAINT and effect.on:
        return (f"ALTER TABLE {effect.on[0]} DROP CONSTRAINT IF EXISTS "
                f"{quote_ident(effect.name.name)};")
    if effect.kind in _PER_TABLE and effect.on:
        return f"DROP {what} IF EXISTS {quote_ident(effect.name.name)} ON {effect.on[0]};"
    return f"DROP {what} IF EXISTS {effect.name};"


def _forgotten(up: _Footprint, down: _Footprint) -> Iterator[Finding]:
    """What the up does that the down does not undo."""
    for key, effect in up.created.items():
        if effect.kind in _NOT_FOLLOWED or down.touches(key) or down.removes_holder(effect):
            continue
        if effect.replace and key in down.altered:
            continue  # CREATE OR REPLACE VIEW v WITH (...), undone by ALTER VIEW v RESET (...)
        if effect.kind is ObjectKind.CONSTRAINT:
            yield from _forgotten_constraint(effect, down)
            continue
        if effect.server_name is not None:
            continue  # its name may be a numbered form: nothing is claimed about it
        yield _finding(
            f"the up creates {effect.kind} {effect.name} (line {effect.line}) but the down does not drop it",
            f"add `{_drop_sql(effect)}` to the down file",
        )
    for key, effect in up.dropped.items():
        if effect.kind in _NOT_FOLLOWED or down.touches(key):
            continue
        if effect.kind is ObjectKind.CONSTRAINT:
            # Re-created with its table or column, the constraint may be in the definition.
            if not any(down.adds_to_table(table) for table in effect.on[:1]):
                yield _finding(
                    f"the up drops {_named(effect)} (line {effect.line}) but the down does "
                    "not re-create it",
                    f"add `ALTER TABLE {up.final_table(effect.on[0])} ADD CONSTRAINT "
                    f"{quote_ident(effect.name.name)} ...;` to the down file, or allow "
                    "`down-mismatch` in the up file when the migration cannot be undone")
            continue
        if effect.name.name in up.temporary:
            # `DROP TABLE IF EXISTS x; CREATE TEMP TABLE x ...`: the drop clears a leftover
            # temporary table of that name, which the session searches first.
            continue
        yield _finding(
            f"the up drops {effect.kind} {effect.name} (line {effect.line}) "
            "but the down does not re-create it",
            "re-create it in the down file, or allow `down-mismatch` in the up file "
            "when the migration cannot be undone",
        )
    for key, effect in up.renamed.items():
        assert effect.new_name is not None
        back = down.renamed.get(_key(effect.kind, effect.new_name, effect.on))
        if back is not None:
            if back.new_name == effect.name:
                continue
            elsewhere = f" (it renames it to {back.new_name} instead)" if back.new_name else ""
        elif down.touches(_key(effect.kind, effect.new_name, effect.on)) or down.touches(key):
            continue  # dropped or re-created: not left under the new name
        else:
            elsewhere = ""
        if effect.kind is ObjectKind.CONSTRAINT and effect.on:
            hint = (f"add `ALTER TABLE {up.final_table(effect.on[0])} RENAME CONSTRAINT "
                    f"{quote_ident(effect.new_name.name)} TO {quote_ident(effect.name.name)};` "
                    "to the down file")
        else:
            hint = f"rename {effect.new_name} back to {effect.name} in the down file"
        new_name = effect.new_name.name if effect.kind is ObjectKind.CONSTRAINT else effect.new_name
        yield _finding(
            f"the up renames {_named(effect)} to {new_name} "
            f"(line {effect.line}) but the down does not rename it back{elsewhere}",
            hint,
        )
    # Messages name what the up file wrote; hints, the names when the down begins.
    for (table, column), change in up.added_columns.items():
        if (table, column) in down.dropped_columns or _table_key(table) in down.dropped:
            continue
        yield _finding(
            f"the up adds column {change.column} to {change.table} (line {change.line}) "
            "but the down does not drop it",
            f"add `ALTER TABLE {table} DROP COLUMN IF EXISTS {quote_ident(column)};` to the down file",
        )
    for first, (table, column), change in up.renamed_columns():
        ends = down.column_ends_as((table, column))
        if ends is not None and ends[1] == first[1]:
            continue
        if ends is None and ((table, column) in down.dropped_columns
                             or _table_key(table) in down.dropped):
            continue
        elsewhere = f" (it renames it to {ends[1]} instead)" if ends is not None else ""
        yield _finding(
            f"the up renames column {change.column} of {change.table} to {column} "
            f"(line {change.line}) but the down does not rename it back{elsewhere}",
            f"add `ALTER TABLE {table} RENAME COLUMN {quote_ident(column)} TO "
            f"{quote_ident(first[1])};` to the down file",
        )
    for (table, column), change in up.dropped_columns.items():
        if (table, column) in down.added_columns or _table_key(table) in down.created:
            continue
        yield _finding(
            f"the up drops column {change.column} of {change.table} (line {change.line}) "
            "but the down does not add it back",
            f"add `ALTER TABLE {up.final_table(table)} ADD COLUMN IF NOT EXISTS "
            f"{quote_ident(column)} ...;` to the down file",
        )


def _unasked(up: _Footprint, down: _Footprint) -> Iterator[Finding]:
    """What the down creates or destroys that the up did not touch."""
    hint = "a down file should only undo its up file; put other changes in a migration"
    for key, effect in down.created.items():
        if effect.kind in _NOT_FOLLOWED or up.touches(key) or effect.server_name is not None:
            continue
        if any(holder in up.changed_tables or up.drops_relation(holder) for holder in effect.on):
            # e.g. re-creating an index, a view or an owned sequence of a table the up
            # changed, or the index or trigger of a (materialized) view the up dropped
            continue
        if effect.replace and key in up.altered:
            continue  # ALTER VIEW v SET (...), undone by CREATE OR REPLACE VIEW v AS ...
        yield _finding(
            f"the down {'adds' if effect.kind is ObjectKind.CONSTRAINT else 'creates'} "
            f"{_named(effect)}, which the up does not drop",
            hint,
            effect.line,
        )
    for (table, column), change in down.added_columns.items():
        if (table, column) in up.dropped_columns or _table_key(table) in up.dropped:
            continue
        yield _finding(f"the down adds column {change.column} to {change.table}, which the up "
                       "does not drop", hint, change.line)
    for key, effect in down.dropped.items():
        if effect.kind is ObjectKind.TABLE and not up.touches(key) and not _up_temporary(up, effect):
            yield _finding(
                f"the down drops table {effect.name}, which the up does not create",
                hint,
                effect.line,
            )
    for (table, column), change in down.dropped_columns.items():
        if (table, column) in up.added_columns or _table_key(table) in up.created:
            continue
        yield _finding(f"the down drops column {change.column} of {change.table}, which the up "
                       "does not add", hint, change.line)


def _forgotten_constraint(effect: ObjectEffect, down: _Footprint) -> Iterator[Finding]:
    """A constraint the up adds (by its name, or by every name PostgreSQL may have given
    it) that the down neither drops nor takes along with its table or a column."""
    if down.touches_any_name(effect):
        return
    table = effect.on[0]
    if effect.server_name is None:
        shown = f"constraint {quote_ident(effect.name.name)}"
    else:
        shown = (f"a constraint that PostgreSQL names {quote_ident(effect.name.name)} (or a "
                 "numbered form of it, when that name is taken)")
    yield _finding(
        f"the up adds {shown} to {table} (line {effect.line}) but the down does not drop it",
        f"add `{_drop_sql(effect)}` to the down file",
    )


def _up_temporary(up: _Footprint, dropped: ObjectEffect) -> bool:
    """Whether the down drops, by its unqualified name, a temporary table the up made
    (`DROP TABLE IF EXISTS tmp_ids;`): a clean-up, since the down cannot see it anyway."""
    return dropped.name.name in up.temporary
