"""Tables a file has emptied earlier, for the lock hazards that depend on a table's rows.

`TRUNCATE t` takes an ACCESS EXCLUSIVE lock on t and, in a file that runs in a
transaction, holds it until COMMIT: no other session can write a row to t meanwhile, so
what the file does to t afterwards (a NOT NULL column without a default, SET NOT NULL, a
UNIQUE constraint, a type change) finds it empty and cannot fail or take long on its
rows. `Emptied` follows that through a file, statement by statement:

- `TRUNCATE t` (with its partitions and inheritance children) empties t; `TRUNCATE ONLY
  t` empties t alone, so a later statement on t that recurses to its children (one
  without `ONLY`) is not on an empty table; `TRUNCATE a, b` empties both; the tables
  `CASCADE` also empties are not known here, so they do not count;
- a statement that writes rows to t afterwards (INSERT, COPY, MERGE, or a data-modifying
  CTE) makes it non-empty again, and so does any statement whose effects cannot be seen
  (`DO`, `CALL`, `EXECUTE`), or that runs a query calling a function other than the
  built-ins known to write no rows (`SELECT fill_t()` may insert into t); a rename
  carries the state to the new name, a drop ends it;
- a change of `search_path` (`SET`, `RESET`, `set_config(...)`) ends it all too: which
  table a later unqualified name means is then not certain enough to stay silent;
- `COMMIT`, `ROLLBACK` and `ROLLBACK TO SAVEPOINT` end it all (the lock is released, or
  the TRUNCATE undone).

Whether the file runs in a transaction is not known here: each hazard on an emptied
table carries the TRUNCATE's line, and `lint` (or, for type changes, the history-wide
rule) reports it only in a file that runs outside one.

`DELETE FROM t` without WHERE does not keep t empty (it blocks no INSERT of another
session), so it silences nothing; its line is kept so that a hazard can say so.
"""

from __future__ import annotations

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import name_parts, nodes_of, wrapped
from migcoord.sql.effects import QualifiedName, Scope, TableAction, TableEffect

#: Transaction statements that keep the transaction (and TRUNCATE's lock) going.
_KEEPS_TRANSACTION = frozenset({"TRANS_STMT_BEGIN", "TRANS_STMT_START",
                                "TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE"})
#: Statements that evaluate the expressions they hold, so run the functions they call.
_RUNS_QUERIES = frozenset({"SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt",
                           "MergeStmt", "CopyStmt", "CreateTableAsStmt", "ExplainStmt",
                           "AlterDomainStmt"})
#: Statements that evaluate their expressions once per row of their table (a default
#: filled in, a USING, a CHECK validated, an index expression): on an emptied table, never.
_RUNS_PER_ROW = frozenset({"AlterTableStmt", "IndexStmt"})
#: Built-in functions (pg_catalog) that write no table rows and leave search_path alone.
#: Any other function a query calls may insert rows (a function of the project, an
#: extension's, `set_config`).
_WRITES_NO_ROWS = frozenset({
    "count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "array_agg",
    "string_agg", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg",
    "row_number", "rank", "dense_rank", "lag", "lead", "first_value", "last_value",
    "now", "statement_timestamp", "transaction_timestamp", "clock_timestamp", "timeofday",
    "date_trunc", "date_part", "extract", "age", "to_char", "to_date", "to_timestamp",
    "to_number", "make_date", "make_interval", "lower", "upper", "initcap", "length",
    "char_length", "octet_length", "substr", "substring", "position", "strpos", "replace",
    "translate", "trim", "btrim", "ltrim", "rtrim", "lpad", "rpad", "left", "right",
    "split_part", "concat", "concat_ws", "format", "repeat", "reverse", "md5", "sha256",
    "encode", "decode", "regexp_replace", "regexp_match", "regexp_matches",
    "regexp_split_to_array", "regexp_split_to_table", "string_to_array",
    "array_to_string", "array_length", "array_position", "array_append", "array_remove",
    "cardinality", "unnest", "generate_series", "abs", "round", "floor", "ceil",
    "ceiling", "trunc", "mod", "power", "sqrt", "random", "gen_random_uuid",
    "to_json", "to_jsonb", "row_to_json", "json_build_object", "jsonb_build_object",
    "json_build_array", "jsonb_build_array", "jsonb_set", "jsonb_insert",
    "jsonb_strip_nulls", "jsonb_typeof", "json_typeof", "jsonb_array_elements",
    "json_array_elements", "jsonb_array_elements_text", "json_array_elements_text",
    "jsonb_each", "json_each", "jsonb_each_text", "json_each_text", "jsonb_object_keys",
    "jsonb_array_length", "json_array_length", "jsonb_pretty", "pg_typeof",
    "current_setting", "current_schema", "current_database", "version",
    "nextval", "currval", "setval", "lastval", "pg_sleep",
    "pg_advisory_xact_lock", "pg_advisory_lock", "pg_advisory_unlock",
    "pg_try_advisory_lock", "pg_try_advisory_xact_lock",
})


@attrs.frozen
class Emptied:
    """Which tables the statements so far emptied, and where."""

    #: (table, line of the TRUNCATE, with ONLY) of each table a TRUNCATE emptied and no
    #: statement since wrote to.
    truncated: tuple[tuple[QualifiedName, int, bool], ...] = ()
    #: (table, line of the DELETE) of each table a DELETE without WHERE emptied.
    deleted: tuple[tuple[QualifiedName, int], ...] = ()

    def truncated_at(self, table: QualifiedName, range_var: Node | None) -> int:
        """The line of the TRUNCATE that left `table` empty for a statement on it written
        as `range_var` (`ONLY t` reaches t alone); 0 when it may hold rows."""
        recurses = bool((range_var or {}).get("inh"))
        return next((line for name, line, only in self.truncated
                     if name == table and not (only and recurses)), 0)

    def deleted_at(self, table: QualifiedName) -> int:
        """The line of a DELETE without WHERE that emptied `table` (for a while); else 0."""
        return next((line for name, line in self.deleted if name == table), 0)

    def after(self, node_type: str, body: Node, scope: Scope, tables: tuple[TableEffect, ...],
              *, opaque: bool, line: int) -> Emptied:
        """The state once this statement (whose table effects are `tables`) has run."""
        if not self.truncated and not self.deleted and node_type not in ("TruncateStmt",
                                                                         "DeleteStmt"):
            return self
        if opaque or (node_type == "TransactionStmt"
                      and body.get("kind") not in _KEEPS_TRANSACTION) \
                or _moves_search_path(node_type, body) \
                or self._may_write_rows(node_type, body, scope):
            return Emptied()
        state = self._following(node_type, body, scope, tables)
        if node_type == "TruncateStmt":
            added = []
            for range_var in wrapped(body.get("relations"), "RangeVar"):
                table = scope.range_var(range_var)
                if table is not None:
                    added.append((table, line, not range_var.get("inh")))
            names = {table for table, _, _ in added}
            kept = [entry for entry in state.truncated if entry[0] not in names]
            return attrs.evolve(state, truncated=(*kept, *added))
        if node_type == "DeleteStmt" and not body.get("whereClause") \
                and not body.get("usingClause") and (body.get("relation") or {}).get("inh"):
            table = scope.range_var(body.get("relation"))
            if table is not None:
                kept_deleted = [entry for entry in state.deleted if entry[0] != table]
                return attrs.evolve(state, deleted=(*kept_deleted, (table, line)))
        return state

    def _may_write_rows(self, node_type: str, body: Node, scope: Scope) -> bool:
        """Whether the statement runs a function that may write rows (to a table this
        file emptied: which, cannot be seen)."""
        if node_type in _RUNS_PER_ROW:
            relation = body.get("relation")
            table = scope.range_var(relation)
            if table is not None and self.truncated_at(table, relation):
                return False  # run once per row of a table that has none
        elif node_type not in _RUNS_QUERIES:
            return False
        return _calls_unknown_function(body)

    def _following(self, node_type: str, body: Node, scope: Scope,
                   tables: tuple[TableEffect, ...]) -> Emptied:
        """Without the tables this statement writes rows to or drops, and with renamed
        tables under their new names."""
        gone: set[QualifiedName] = set()
        renamed: dict[QualifiedName, QualifiedName] = {}
        # DELETE and UPDATE add no row to their own table.
        target = (scope.range_var(body.get("relation"))
                  if node_type in ("DeleteStmt", "UpdateStmt") else None)
        for effect in tables:
            if effect.action is TableAction.DROPPED or (
                    effect.action is TableAction.WRITTEN and effect.table != target):
                gone.add(effect.table)
            elif effect.action is TableAction.RENAMED and effect.new_name is not None:
                renamed[effect.table] = effect.new_name
        if not gone and not renamed:
            return self
        return Emptied(
            truncated=tuple((renamed.get(table, table), line, only)
                            for table, line, only in self.truncated if table not in gone),
            deleted=tuple((renamed.get(table, table), line)
                          for table, line in self.deleted if table not in gone))


def _moves_search_path(node_type: str, body: Node) -> bool:
    """Whether the statement sets or resets search_path (`RESET ALL` too)."""
    return node_type == "VariableSetStmt" and (
        body.get("name") == "search_path" or body.get("kind") == "VAR_RESET_ALL")


def _calls_unknown_function(body: Node) -> bool:
    """Whether `body` calls a function not known to write no rows (or to leave
    search_path alone)."""
    for call in nodes_of(body, "FuncCall"):
        name = name_parts(call.get("funcname"))
        if not name or name[-1] not in _WRITES_NO_ROWS or (
                len(name) > 1 and name[0] != "pg_catalog"):
            return True
    return False


def emptied_for_a_moment(line: int) -> str:
    """What a hazard on a table the TRUNCATE at `line` emptied adds, in a file that runs
    outside a transaction."""
    return (f" (the TRUNCATE at line {line} does not keep it empty: this file runs outside "
            "a transaction, so its lock ends with it)")
