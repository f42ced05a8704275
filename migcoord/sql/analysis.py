"""Analyze one migration file: parse it once, read each statement's effects and hazards,
and turn the hazards into findings (`lint`).

`analyze` is pure (text in, values out). pglast is imported on its first call.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import attrs

from migcoord.core.model import Finding
from migcoord.sql import _parser
from migcoord.sql.columns import ColumnNote, column_notes
from migcoord.sql.effects import (
    ColumnEffect,
    ObjectEffect,
    QualifiedName,
    Scope,
    TableAction,
    TableEffect,
)
from migcoord.sql.emptied import emptied_for_a_moment
from migcoord.sql.extract import extract
from migcoord.sql.identifiers import long_identifiers, too_long
from migcoord.sql.lints import CONCURRENTLY_IN_TRANSACTION, SQL_SYNTAX, Hazard, hazards
from migcoord.sql.locking import FileState, lock_hazards


@attrs.frozen
class SqlSyntaxProblem:
    """PostgreSQL's grammar rejects the file: its message and 1-based line:column."""

    message: str
    line: int
    column: int


@attrs.frozen
class Statement:
    """One top-level statement of a file and what it does."""

    #: The parse tree node kind, as PostgreSQL names it: "CreateStmt", "IndexStmt", ...
    node_type: str
    #: 1-based position of the statement's first token (comments before it are skipped).
    line: int
    column: int
    #: Character offsets in the file text: the first token, and the end of the statement
    #: (its `;` excluded; the end of the text for a last statement without `;`).
    start: int
    end: int
    tables: tuple[TableEffect, ...] = ()
    objects: tuple[ObjectEffect, ...] = ()
    columns: tuple[ColumnEffect, ...] = ()
    hazards: tuple[Hazard, ...] = ()
    #: Column types it sets, renames or drops (for the history-wide rewrite decision).
    column_notes: tuple[ColumnNote, ...] = ()
    #: Runs code whose effects cannot be seen (`DO`, `CALL`, `EXECUTE`).
    opaque: bool = False
    #: A later `ROLLBACK TO SAVEPOINT` in the file undoes it: it runs, but leaves nothing.
    undone: bool = False


@attrs.frozen
class Analysis:
    """What one migration file does, statement by statement.

    A file that does not parse has a `syntax_error` and no statements (PostgreSQL's parser
    accepts a file whole or not at all). A file with only comments has neither.
    """

    statements: tuple[Statement, ...] = ()
    syntax_error: SqlSyntaxProblem | None = None
    default_schema: str = "public"
    #: The unqualified names of the temporary tables, sequences and views the file creates.
    temporary_relations: frozenset[str] = frozenset()

    @property
    def lasting(self) -> tuple[Statement, ...]:
        """The statements whose effects outlive the file: those no later `ROLLBACK TO
        SAVEPOINT` undoes."""
        return tuple(statement for statement in self.statements if not statement.undone)

    @property
    def table_effects(self) -> tuple[TableEffect, ...]:
        return tuple(effect for s in self.statements for effect in s.tables)

    @property
    def object_effects(self) -> tuple[ObjectEffect, ...]:
        return tuple(effect for s in self.statements for effect in s.objects)

    @property
    def column_effects(self) -> tuple[ColumnEffect, ...]:
        return tuple(effect for s in self.statements for effect in s.columns)

    @property
    def hazards(self) -> tuple[Hazard, ...]:
        return tuple(hazard for s in self.statements for hazard in s.hazards)

    @property
    def column_notes(self) -> tuple[ColumnNote, ...]:
        return tuple(note for s in self.statements for note in s.column_notes)

    @property
    def opaque(self) -> bool:
        """Whether some statement's effects cannot be seen (`DO`, `CALL`, `EXECUTE`)."""
        return any(s.opaque for s in self.statements)

    def tables(self, *actions: TableAction) -> frozenset[QualifiedName]:
        """The tables touched by any of `actions` (a rename counts for the old name)."""
        return frozenset(e.table for e in self.table_effects if e.action in actions)

    @property
    def tables_changed(self) -> frozenset[QualifiedName]:
        """Tables the file creates, alters, drops, renames (both names), truncates, writes,
        indexes, or gives triggers, policies, comments or row security."""
        changed = {e.table for e in self.table_effects if e.action is not TableAction.REFERENCED}
        changed.update(e.new_name for e in self.table_effects if e.new_name is not None)
        return frozenset(changed)

    @property
    def tables_referenced(self) -> frozenset[QualifiedName]:
        """Tables the file only reads (foreign keys, views, queries, LIKE, INHERITS,
        PARTITION OF), without changing them anywhere in the file."""
        return self.tables(TableAction.REFERENCED) - self.tables_changed


def analyze(text: str, *, default_schema: str = "public") -> Analysis:
    """Parse `text` with PostgreSQL's grammar and describe each statement.

    Unqualified names resolve to `default_schema` (until a `SET search_path` in the
    file). The data lines after `COPY ... FROM stdin;` are skipped as psql would send
    them (the same rule as `reader`). Never raises for bad SQL, which becomes
    `Analysis.syntax_error`.
    """
    try:
        parsed = _parser.parse(text)
    except _parser.Unparsable as error:
        problem = SqlSyntaxProblem(error.message, error.line, error.column)
        return Analysis(syntax_error=problem, default_schema=default_schema)
    scope = Scope.start(default_schema)
    state = FileState()
    statements: list[Statement] = []
    for raw in parsed.statements:
        statement = _statement(raw, scope, state, parsed.positions)
        statements.append(statement)
        state = state.after(raw.node_type, raw.body, scope, statement.tables,
                            opaque=statement.opaque, line=statement.line)
        scope = scope.after(raw.node_type, raw.body)
    undone = _undone_by_savepoints(parsed.statements)
    if undone:
        statements = [attrs.evolve(statement, undone=True) if index in undone else statement
                      for index, statement in enumerate(statements)]
    return Analysis(statements=_with_long_identifiers(text, statements, parsed.positions),
                    default_schema=default_schema, temporary_relations=scope.temporary)


def _undone_by_savepoints(raws: Sequence[_parser.RawStatement]) -> set[int]:
    """The indexes of the statements that a later `ROLLBACK TO [SAVEPOINT] s` undoes: those
    after the newest `SAVEPOINT s` before it. `RELEASE s` keeps what ran since `s` (and
    forgets the savepoints after it); `ROLLBACK TO s` keeps `s` itself, as PostgreSQL does."""
    savepoints: list[tuple[str, int]] = []
    undone: set[int] = set()
    for index, raw in enumerate(raws):
        if raw.node_type != "TransactionStmt":
            continue
        kind, name = raw.body.get("kind"), raw.body.get("savepoint_name")
        if kind == "TRANS_STMT_SAVEPOINT" and name:
            savepoints.append((name, index))
            continue
        at = next((place for place in range(len(savepoints) - 1, -1, -1)
                   if savepoints[place][0] == name), None)
        if at is None or kind not in ("TRANS_STMT_ROLLBACK_TO", "TRANS_STMT_RELEASE"):
            continue
        if kind == "TRANS_STMT_ROLLBACK_TO":
            undone.update(range(savepoints[at][1] + 1, index + 1))
            del savepoints[at + 1:]
        else:
            del savepoints[at:]
    return undone


def _with_long_identifiers(text: str, statements: list[Statement],
                           positions: _parser.Positions) -> tuple[Statement, ...]:
    """`statements`, each with an `identifier-too-long` hazard per over-long identifier."""
    found = list(long_identifiers(text))
    if not found:
        return tuple(statements)
    result = []
    for statement in statements:
        extra = tuple(too_long(name, positions.of_char, offset) for offset, name in found
                      if statement.start <= offset <= statement.end)
        result.append(attrs.evolve(statement, hazards=statement.hazards + extra)
                      if extra else statement)
    return tuple(result)


def _statement(raw: _parser.RawStatement, scope: Scope, state: FileState,
               positions: _parser.Positions) -> Statement:
    line, column = positions.of_byte(raw.start)

    def locate(at: int | None) -> tuple[int, int]:
        # libpg_query writes -1 where a node has no location.
        return positions.of_byte(at) if at is not None and at >= 0 else (line, column)

    effects = extract(raw.node_type, raw.body, scope, line)
    return Statement(
        node_type=raw.node_type,
        line=line,
        column=column,
        start=positions.char_of_byte(raw.start),
        end=positions.char_of_byte(raw.end),
        tables=effects.tables,
        objects=effects.objects,
        columns=effects.columns,
        hazards=(hazards(raw.node_type, raw.body, locate)
                 + lock_hazards(raw.node_type, raw.body, scope, state, locate)),
        column_notes=column_notes(raw.node_type, raw.body, scope, state, locate),
        opaque=effects.opaque,
    )


def lint(
    analysis: Analysis,
    *,
    no_transaction: bool = False,
    wrapper: bool = False,
    allow: Collection[str] = frozenset(),
) -> list[Finding]:
    """The findings of one analysed file, in file order (line, then column).

    A file that does not parse gives one `sql-syntax` finding. `no_transaction` is the
    file's `-- migcoord:no-transaction` directive, and `wrapper` says that the file is a
    whole-file `BEGIN; ... COMMIT;` (`transactions.explicit_transaction`): they decide where
    statements that cannot run in a transaction block are reported (`fit`). Codes in
    `allow` (the union of the file's `-- migcoord:allow` lines and the config's `allow`)
    are not reported. A lock hazard on a table a TRUNCATE earlier in the file emptied
    (`Hazard.emptied`) is reported only with `no_transaction`: in a transaction,
    TRUNCATE's lock keeps the table empty until COMMIT. Findings carry line and column;
    the caller fills in path, service and version (`attrs.evolve`).
    """
    findings: list[Finding] = []
    problem = analysis.syntax_error
    if problem is not None:
        findings.append(
            Finding.of(
                SQL_SYNTAX,
                f"PostgreSQL cannot parse this file: {problem.message}",
                line=problem.line,
                column=problem.column,
                hint="fix the SQL at that position; nothing else in the file was analysed",
            )
        )
    # `fit` refuses all the statements that cannot run in a transaction block, in order and
    # with its hint, or none of them (the directive, or the file is one such statement).
    refused = [] if no_transaction else list(fit(analysis, wrapper=wrapper).refused)
    for statement in analysis.statements:
        for hazard in statement.hazards:
            if hazard.code == CONCURRENTLY_IN_TRANSACTION:
                if not refused:
                    continue
                hazard = refused.pop(0)
            if hazard.emptied:
                if not no_transaction:
                    continue
                hazard = attrs.evolve(hazard, message=hazard.message + emptied_for_a_moment(
                    hazard.emptied))
            findings.append(
                Finding.of(
                    hazard.code,
                    hazard.message,
                    line=hazard.line,
                    column=hazard.column,
                    hint=hazard.hint,
                )
            )
    # Hazards of one statement come by kind; the reader wants them in file order.
    findings.sort(key=lambda finding: (finding.line or 0, finding.column or 0))
    return [finding for finding in findings if finding.code not in allow]


# -- statements that cannot run in a transaction block -------------------------------------


@attrs.frozen
class TransactionFit:
    """How a file (without `-- migcoord:no-transaction`) fits the migration's transaction."""

    #: The file is one statement that PostgreSQL refuses inside a transaction block: it
    #: runs outside one, recorded as a no-transaction migration is.
    alone: bool = False
    #: Statements that PostgreSQL would refuse inside the transaction the file runs in.
    refused: tuple[Hazard, ...] = ()


def fit(analysis: Analysis, *, wrapper: bool = False) -> TransactionFit:
    """Whether the analysed file runs alone outside a transaction, or which of its
    statements PostgreSQL would refuse inside the one it runs in (`wrapper`: the file
    is a whole-file `BEGIN; ... COMMIT;`, which golang-migrate runs in one too)."""
    found = [hazard for statement in analysis.statements for hazard in statement.hazards
             if hazard.code == CONCURRENTLY_IN_TRANSACTION]
    if not found:
        return TransactionFit()
    if len(analysis.statements) == 1:
        return TransactionFit(alone=True)
    if wrapper and len(analysis.statements) == 3:
        hint = ("delete the BEGIN and the COMMIT around it: alone in its file, it runs "
                "outside a transaction (a transaction block is what PostgreSQL refuses)")
    else:
        hint = (("delete the file's BEGIN and COMMIT, then " if wrapper else "")
                + "add the line `-- migcoord:no-transaction` at the top of this file (its "
                "statements then run one by one outside a transaction, and a failure part-way "
                "leaves the migration dirty, so keep each statement re-runnable), or move this "
                "statement into a migration of its own: alone in its file, it runs outside a "
                "transaction")
    return TransactionFit(refused=tuple(attrs.evolve(hazard, hint=hint) for hazard in found))
