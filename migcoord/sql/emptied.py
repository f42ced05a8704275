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
  (`DO`, `CALL`, `EXECUTE`); a rename carries the state to the new name, a drop ends it;
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
from migcoord.sql._tree import wrapped
from migcoord.sql.effects import QualifiedName, Scope, TableAction, TableEffect

#: Transaction statements that keep the transaction (and TRUNCATE's lock) going.
_KEEPS_TRANSACTION = frozenset({"TRANS_STMT_BEGIN", "TRANS_STMT_START",
                                "TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE"})


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
                      and body.get("kind") not in _KEEPS_TRANSACTION):
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


def emptied_for_a_moment(line: int) -> str:
    """What a hazard on a table the TRUNCATE at `line` emptied adds, in a file that runs
    outside a transaction."""
    return (f" (the TRUNCATE at line {line} does not keep it empty: this file runs outside "
            "a transaction, so its lock ends with it)")
