"""Lock hazards: statements that block other sessions on a table that is in use.

Each hazard here is a statement that, on a table other sessions use, holds a lock that
queues their reads or writes for as long as it scans, rewrites or builds something; or
that fails on a table with rows. `lock_hazards` finds them in one top-level statement,
given what the file did before it (`FileState`):

- a table created earlier in the same file is empty and nobody else holds it, so nothing
  here fires for it (nor for its indexes, or a materialized view the file created);
- `SET NOT NULL` is fine after a validated `CHECK (column IS NOT NULL)` earlier in the
  file (or a `VALIDATE CONSTRAINT` of a constraint added by an earlier migration);
- a table a `TRUNCATE` earlier in the file emptied (migcoord/sql/emptied.py) stays empty
  while the file's transaction holds TRUNCATE's lock: its hazards carry the TRUNCATE's
  line (`Hazard.emptied`), and `lint` reports them only in a file that runs outside a
  transaction.

`ALTER COLUMN ... TYPE` needs the column's old type, which an earlier migration holds:
migcoord/sql/columns.py notes each column's type, and migcoord/checks/hazards.py decides
with migcoord/sql/rewrites.py once the whole history is read. Identifiers longer than
PostgreSQL keeps are migcoord/sql/identifiers.py's (the scanner's: the parse tree holds
them already cut).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import name_parts, quote_ident, wrapped
from migcoord.sql.effects import QualifiedName, Scope, TableEffect
from migcoord.sql.emptied import Emptied
from migcoord.sql.index_names import constraint_name, index_statement_name
from migcoord.sql.lints import Hazard, Locate, option_is_true
from migcoord.sql.rewrites import SERIAL_TYPES, TypeSpec, volatile_calls

#: The codes of the lock hazards; migcoord/core/findings.py declares them.
BLOCKING_INDEX_BUILD = "blocking-index-build"
BLOCKING_INDEX_DROP = "blocking-index-drop"
VALIDATING_CONSTRAINT = "validating-constraint"
SET_NOT_NULL_SCAN = "set-not-null-scan"
NOT_NULL_WITHOUT_DEFAULT = "not-null-without-default"
VOLATILE_DEFAULT = "volatile-default"
UNIQUE_WITHOUT_INDEX = "unique-without-index"
BLOCKING_MAINTENANCE = "blocking-maintenance"

#: The safe way to run a statement that must not run in a transaction.
_OWN_FILE = ("in a migration file of its own (migcoord runs a one-statement file outside a "
             "transaction, as golang-migrate does)")


@attrs.frozen
class FileState:
    """What the statements of a file before this one did, as far as lock hazards care."""

    #: Tables (and materialized views) created earlier in the file: empty, held by no one.
    fresh: frozenset[QualifiedName] = frozenset()
    #: Indexes the file built on those tables.
    fresh_indexes: frozenset[QualifiedName] = frozenset()
    #: (table, constraint, column) of `CHECK (column IS NOT NULL) NOT VALID` in this file.
    not_null_checks: frozenset[tuple[QualifiedName, str, str]] = frozenset()
    #: (table, column) that a validated `CHECK (column IS NOT NULL)` covers.
    proven_not_null: frozenset[tuple[QualifiedName, str]] = frozenset()
    #: Tables with a `VALIDATE CONSTRAINT` of a constraint this file did not add.
    validated_elsewhere: frozenset[QualifiedName] = frozenset()
    #: Tables emptied by a TRUNCATE (or a DELETE without WHERE) earlier in the file.
    emptied: Emptied = attrs.field(factory=Emptied)

    def after(self, node_type: str, body: Node, scope: Scope,
              tables: tuple[TableEffect, ...] = (), *, opaque: bool = False,
              line: int = 0) -> FileState:
        """The state once this statement (whose table effects are `tables`, at `line`)
        has run."""
        emptied = self.emptied.after(node_type, body, scope, tables, opaque=opaque, line=line)
        state = self if emptied is self.emptied else attrs.evolve(self, emptied=emptied)
        return state._after_ddl(node_type, body, scope)

    def _after_ddl(self, node_type: str, body: Node, scope: Scope) -> FileState:
        if node_type == "CreateStmt":
            return self._with_fresh(scope.range_var(body.get("relation")))
        if node_type == "CreateTableAsStmt":
            return self._with_fresh(scope.range_var(body.get("into", {}).get("rel")))
        if node_type == "SelectStmt" and body.get("intoClause"):
            return self._with_fresh(scope.range_var(body["intoClause"].get("rel")))
        if node_type == "IndexStmt":
            table = scope.range_var(body.get("relation"))
            if table in self.fresh and body.get("idxname"):
                index = QualifiedName(table.schema, body["idxname"])
                return attrs.evolve(self, fresh_indexes=self.fresh_indexes | {index})
        if node_type == "RenameStmt" and body.get("renameType") == "OBJECT_TABLE":
            table = scope.range_var(body.get("relation"))
            if table in self.fresh:
                renamed = QualifiedName(table.schema, body.get("newname", ""))
                return attrs.evolve(self, fresh=(self.fresh - {table}) | {renamed})
        if node_type == "AlterTableStmt":
            table = scope.range_var(body.get("relation"))
            state = self
            for command in wrapped(body.get("cmds"), "AlterTableCmd"):
                state = state._after_command(table, command)
            return state
        return self

    def _with_fresh(self, table: QualifiedName | None) -> FileState:
        return self if table is None else attrs.evolve(self, fresh=self.fresh | {table})

    def _after_command(self, table: QualifiedName | None, command: Node) -> FileState:
        if table is None:
            return self
        subtype = command.get("subtype")
        constraint = (command.get("def") or {}).get("Constraint", {})
        if subtype == "AT_AddConstraint" and constraint.get("contype") == "CONSTR_CHECK":
            column = _not_null_column(constraint.get("raw_expr"))
            if column is None:
                return self
            if constraint.get("skip_validation"):
                entry = (table, constraint.get("conname", ""), column)
                return attrs.evolve(self, not_null_checks=self.not_null_checks | {entry})
            return attrs.evolve(self, proven_not_null=self.proven_not_null | {(table, column)})
        if subtype == "AT_ValidateConstraint":
            name = command.get("name", "")
            known = [c for t, n, c in self.not_null_checks if t == table and n == name]
            if known:
                return attrs.evolve(self, proven_not_null=self.proven_not_null
                                    | {(table, column) for column in known})
            if not any(t == table and n == name for t, n, _ in self.not_null_checks):
                return attrs.evolve(self, validated_elsewhere=self.validated_elsewhere | {table})
        return self


def _not_null_column(expression: Node | None) -> str | None:
    """The column of a `column IS NOT NULL` check expression, else None."""
    test = (expression or {}).get("NullTest")
    if not test or test.get("nulltesttype") != "IS_NOT_NULL":
        return None
    fields = name_parts(test.get("arg", {}).get("ColumnRef", {}).get("fields", []))
    return fields[-1] if fields else None


# -- hazards of one statement -------------------------------------------------------------


@attrs.frozen
class _Context:
    scope: Scope
    state: FileState
    locate: Locate
    #: The line of the TRUNCATE that emptied the table the statement is about, or 0.
    emptied: int = 0

    def hazard(self, code: str, message: str, hint: str, at: int | None = None,
               tables: tuple[QualifiedName, ...] = ()) -> Hazard:
        line, column = self.locate(at)
        return Hazard(code=code, message=message, hint=hint, line=line, column=column,
                      tables=tables, emptied=self.emptied)

    def on_table(self, table: QualifiedName, range_var: Node | None) -> _Context:
        """This context for a statement on `table` (written as `range_var`)."""
        return attrs.evolve(self, emptied=self.state.emptied.truncated_at(table, range_var))

    def show(self, name: QualifiedName) -> str:
        """`name` as a person writes it: without the file's default schema."""
        if name.schema == self.scope.base_schema:
            return str(QualifiedName("", name.name))
        return str(name)

    def existing(self, range_var: Node | None) -> QualifiedName | None:
        """The table a RangeVar names, when it is not temporary, nor created in this file."""
        table = self.scope.range_var(range_var)
        return None if table is None or table in self.state.fresh else table


_Rule = Callable[[Node, _Context], Iterator[Hazard]]


def lock_hazards(node_type: str, body: Node, scope: Scope, state: FileState,
                 locate: Locate) -> tuple[Hazard, ...]:
    """The lock hazards of one top-level statement, given the file's state before it."""
    rule = _RULES.get(node_type)
    if rule is None:
        return ()
    return tuple(rule(body, _Context(scope, state, locate)))


def _index(body: Node, c: _Context) -> Iterator[Hazard]:
    relation = body.get("relation") or {}
    table = c.existing(relation)
    # `ON ONLY` (no `inh`) is the form for a partitioned parent: it builds nothing, and
    # CONCURRENTLY is refused there; each partition's index is built and attached apart.
    if body.get("concurrent") or table is None or not relation.get("inh", False):
        return
    c = c.on_table(table, relation)
    unique = "UNIQUE " if body.get("unique") else ""
    # Unnamed, the name PostgreSQL gives it: IF NOT EXISTS then finds it where it ran.
    server_name = index_statement_name(table.name, body)
    known = body.get("idxname") or (server_name.first if server_name is not None else None)
    name = quote_ident(known) if known else "<name>"
    shown = c.show(table)
    yield c.hazard(
        BLOCKING_INDEX_BUILD,
        f"CREATE {unique}INDEX on {shown} without CONCURRENTLY blocks every write to "
        f"{shown} (SHARE lock) until the index is built",
        f"write `CREATE {unique}INDEX CONCURRENTLY IF NOT EXISTS {name} ON {shown} (...);` "
        f"{_OWN_FILE}; a build that fails leaves an INVALID index: drop it and run again",
        tables=(table,))


def _drop(body: Node, c: _Context) -> Iterator[Hazard]:
    if body.get("removeType") != "OBJECT_INDEX" or body.get("concurrent"):
        return
    for target in body.get("objects", ()):
        index = c.scope.relation(name_parts(target))
        if index is None or index in c.state.fresh_indexes:
            continue
        index_name = c.show(index)
        yield c.hazard(
            BLOCKING_INDEX_DROP,
            f"DROP INDEX {index_name} without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its "
            "table: every read and write of it waits, and the drop itself waits behind "
            "every open transaction that used the table",
            f"write `DROP INDEX CONCURRENTLY IF EXISTS {index_name};` {_OWN_FILE}")


def _alter_table(body: Node, c: _Context) -> Iterator[Hazard]:
    if body.get("objtype") != "OBJECT_TABLE":
        return
    table = c.existing(body.get("relation"))
    if table is None:
        return
    c = c.on_table(table, body.get("relation"))
    state = c.state
    for command in wrapped(body.get("cmds"), "AlterTableCmd"):
        yield from _alter_command(table, command, attrs.evolve(c, state=state))
        state = state._after_command(table, command)


def _alter_command(table: QualifiedName, command: Node, c: _Context) -> Iterator[Hazard]:
    t = c.show(table)
    subtype = command.get("subtype")
    definition = command.get("def") or {}
    if subtype == "AT_AddConstraint":
        yield from _constraint(table, definition.get("Constraint", {}), c, column="")
    elif subtype == "AT_AddColumn":
        yield from _add_column(table, definition.get("ColumnDef", {}), c)
    elif subtype == "AT_SetNotNull":
        column = command.get("name", "")
        if (table, column) in c.state.proven_not_null or table in c.state.validated_elsewhere:
            return
        yield c.hazard(
            SET_NOT_NULL_SCAN,
            f"ALTER COLUMN {column} SET NOT NULL scans all of {t} for NULLs while it "
            "holds an ACCESS EXCLUSIVE lock: every read and write of it waits",
            f"first `ALTER TABLE {t} ADD CONSTRAINT {table.name}_{column}_not_null CHECK "
            f"({column} IS NOT NULL) NOT VALID;`, then (in a later migration) `VALIDATE "
            "CONSTRAINT` it (no lock on reads or writes): SET NOT NULL after it skips the "
            "scan (PostgreSQL 12+), and the CHECK can be dropped",
            tables=(table,))


def _constraint(table: QualifiedName, constraint: Node, c: _Context, *,
                column: str) -> Iterator[Hazard]:
    t = c.show(table)
    kind = constraint.get("contype")
    name = constraint.get("conname") or "<name>"
    at = constraint.get("location")
    if kind in ("CONSTR_FOREIGN", "CONSTR_CHECK"):
        # `NOT ENFORCED` (PostgreSQL 18) checks nothing; the parse tree leaves a false out.
        if constraint.get("skip_validation") or not constraint.get("is_enforced"):
            return
        referenced = c.scope.range_var(constraint.get("pktable"))
        what = "FOREIGN KEY" if kind == "CONSTR_FOREIGN" else "CHECK"
        tables: tuple[QualifiedName, ...] = (table,)
        if column or kind == "CONSTR_CHECK":
            # ADD COLUMN takes ACCESS EXCLUSIVE; so does adding a CHECK.
            held = f"an ACCESS EXCLUSIVE lock on {t}: every read and write of {t} waits"
        else:
            held = f"a SHARE ROW EXCLUSIVE lock on {t}: every write to {t} waits"
        if referenced is not None and referenced != table:
            tables = (table, referenced)
            held += f", and so does every write to {c.show(referenced)}, which it locks alike"
        if column:
            hint = (f"add the column without it, then `ALTER TABLE {t} ADD CONSTRAINT "
                    f"{name} {what} (...) NOT VALID;`, then in a later migration `ALTER "
                    f"TABLE {t} VALIDATE CONSTRAINT {name};`")
        else:
            hint = (f"write `ALTER TABLE {t} ADD CONSTRAINT {name} {what} (...) NOT "
                    f"VALID;`, then in a later migration `ALTER TABLE {t} VALIDATE "
                    f"CONSTRAINT {name};` (it checks the rows under a lock that lets reads "
                    "and writes go on)")
        yield c.hazard(
            VALIDATING_CONSTRAINT,
            f"adding a {what} constraint to {t} without NOT VALID checks every row while "
            f"it holds {held}",
            hint, at, tables)
    elif kind in ("CONSTR_PRIMARY", "CONSTR_UNIQUE") and not constraint.get("indexname"):
        what = "PRIMARY KEY" if kind == "CONSTR_PRIMARY" else "UNIQUE"
        # Unnamed, it gets PostgreSQL's name: t_pkey, t_a_b_key.
        chosen = constraint_name(table.name, constraint, column)
        index = name if name != "<name>" or chosen is None else chosen.first
        yield c.hazard(
            UNIQUE_WITHOUT_INDEX,
            f"adding a {what} constraint to {t} builds its index while it holds an "
            f"ACCESS EXCLUSIVE lock: every read and write of {t} waits",
            f"build the index first, `CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {index} "
            f"ON {t} (...);` {_OWN_FILE}, then `ALTER TABLE {t} ADD CONSTRAINT "
            f"{index} {what} USING INDEX {index};`",
            at, (table,))
    elif kind == "CONSTR_EXCLUSION":
        yield c.hazard(
            UNIQUE_WITHOUT_INDEX,
            f"adding an EXCLUDE constraint to {t} builds its index while it holds an "
            f"ACCESS EXCLUSIVE lock: every read and write of {t} waits",
            "PostgreSQL has no online way to add one: run it when the table is quiet (and "
            "allow the code for this migration), or enforce the rule another way",
            at, (table,))


def _add_column(table: QualifiedName, column_def: Node, c: _Context) -> Iterator[Hazard]:
    t = c.show(table)
    column = column_def.get("colname", "")
    at = column_def.get("location")
    spec = TypeSpec.of(column_def.get("typeName", {}))
    constraints = list(wrapped(column_def.get("constraints"), "Constraint"))
    kinds = {constraint.get("contype") for constraint in constraints}
    default = next((k.get("raw_expr") for k in constraints if k.get("contype") == "CONSTR_DEFAULT"),
                   None)
    fills = _fills_every_row(spec, constraints, default)
    if fills:
        plain = "bigint" if spec.name in SERIAL_TYPES else spec
        yield c.hazard(
            VOLATILE_DEFAULT,
            f"ADD COLUMN {column} {fills}, so PostgreSQL rewrites all of {t} while it "
            "holds an ACCESS EXCLUSIVE lock: every read and write of it waits",
            f"add the column without it (`ADD COLUMN {column} {plain}`"
            " and, if needed, a constant or STABLE default such as now(): no rewrite), fill the "
            "existing rows in batches, then set the default for new rows with `ALTER COLUMN "
            f"{column} SET DEFAULT ...`",
            at, (table,))
    elif "CONSTR_NOTNULL" in kinds and default is None and "CONSTR_PRIMARY" not in kinds:
        deleted = c.state.emptied.deleted_at(table)
        yield c.hazard(
            NOT_NULL_WITHOUT_DEFAULT,
            f"ADD COLUMN {column} ... NOT NULL without a DEFAULT fails on {t} as soon as "
            "it holds a row (the new column is NULL in every existing row)"
            + (f"; the DELETE at line {deleted} does not keep it empty: other sessions "
               f"may insert rows after it (in a transaction, `TRUNCATE {t}` would hold "
               "them off until COMMIT)" if deleted else ""),
            f"give it a constant default (`ADD COLUMN {column} {spec} NOT NULL DEFAULT ...`: "
            "no rewrite since PostgreSQL 11), or add it nullable, fill it, and set NOT NULL "
            "after a validated CHECK",
            at, (table,))
    for constraint in constraints:
        yield from _constraint(table, constraint, c, column=column)


def _fills_every_row(spec: TypeSpec, constraints: list[Node], default: Node | None) -> str:
    """How an added column gets a value per row (which rewrites the table), or ""."""
    if spec.name in SERIAL_TYPES and not spec.schema:
        return f"is a {spec.name}, whose nextval() default gives each row its own value"
    for constraint in constraints:
        if constraint.get("contype") == "CONSTR_IDENTITY":
            return "is an identity column, which gives each existing row its own value"
        if constraint.get("contype") == "CONSTR_GENERATED" and constraint.get(
                "generated_kind", "s") == "s":
            return "is a STORED generated column, computed and written for every row"
    volatile = next(volatile_calls(default), None) if default is not None else None
    if volatile is not None:
        return (f"has a VOLATILE default ({volatile}()), evaluated for every existing row "
                "(a constant or STABLE default such as now() would not be)")
    return ""


def _maintenance(what: str, safe: str, table: str, c: _Context,
                 tables: tuple[QualifiedName, ...] = ()) -> Hazard:
    on = f" {table}" if table else ""
    return c.hazard(
        BLOCKING_MAINTENANCE,
        f"{what}{on} holds an ACCESS EXCLUSIVE lock for as long as it runs: every read and "
        "write of it waits",
        safe, tables=tables)


def _vacuum(body: Node, c: _Context) -> Iterator[Hazard]:
    full = any(option.get("defname") == "full" for option in wrapped(body.get("options"), "DefElem"))
    if not body.get("is_vacuumcmd") or not full:
        return
    relations = [r.get("relation") for r in wrapped(body.get("rels"), "VacuumRelation")]
    tables = tuple(t for t in (c.existing(r) for r in relations) if t is not None)
    if relations and not tables:
        return
    yield _maintenance("VACUUM FULL", "plain `VACUUM` (it blocks no reads or writes) is "
                       "almost always enough; to shrink a bloated table online use "
                       "pg_repack or pg_squeeze, outside migrations",
                       ", ".join(c.show(t) for t in tables) or "of every table", c, tables)


def _cluster(body: Node, c: _Context) -> Iterator[Hazard]:
    table = c.existing(body.get("relation"))
    if body.get("relation") and table is None:
        return
    yield _maintenance("CLUSTER", "rewrite the table's order online with pg_repack, "
                       "outside migrations, or leave it: the planner does not need it",
                       c.show(table) if table else "of every clustered table", c,
                       (table,) if table else ())


def _refresh(body: Node, c: _Context) -> Iterator[Hazard]:
    view = c.existing(body.get("relation"))
    if body.get("concurrent") or body.get("skipData") or view is None:
        return
    yield _maintenance(
        "REFRESH MATERIALIZED VIEW",
        f"write `REFRESH MATERIALIZED VIEW CONCURRENTLY {c.show(view)};` (it needs a UNIQUE "
        "index on the view; reads go on meanwhile)", c.show(view), c)


def _reindex(body: Node, c: _Context) -> Iterator[Hazard]:
    if any(option.get("defname") == "concurrently" and option_is_true(option)
           for option in wrapped(body.get("params"), "DefElem")):
        return
    kind = body.get("kind", "").removeprefix("REINDEX_OBJECT_")
    relation = body.get("relation")
    named = c.scope.range_var(relation)
    if relation is not None and (named is None or named in c.state.fresh
                                 or named in c.state.fresh_indexes):
        return
    target = c.show(named) if named is not None else body.get("name") or ""
    yield c.hazard(
        BLOCKING_MAINTENANCE,
        f"REINDEX {kind} {target} without CONCURRENTLY blocks writes to the table, and "
        "reads that use the index, until it is rebuilt",
        f"write `REINDEX {kind} CONCURRENTLY {target};` {_OWN_FILE}")


_RULES: dict[str, _Rule] = {
    "IndexStmt": _index,
    "DropStmt": _drop,
    "AlterTableStmt": _alter_table,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "RefreshMatViewStmt": _refresh,
    "ReindexStmt": _reindex,
}
