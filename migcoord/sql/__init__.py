"""PostgreSQL-grammar analysis of migration files: text in, values out.

    from migcoord import sql

    up = sql.analyze(up_text, default_schema="public")
    up.tables_changed            # frozenset of QualifiedName
    findings = sql.lint(up, no_transaction=False, allow=frozenset())
    findings += sql.down_mismatch(up, sql.analyze(down_text))

The analysis uses pglast (PostgreSQL's own parser), a required dependency. Importing
this package does not import pglast; the first call to `analyze` does.
"""

from __future__ import annotations

from migcoord.sql.analysis import Analysis, SqlSyntaxProblem, Statement, analyze
from migcoord.sql.down import down_mismatch
from migcoord.sql.effects import (
    ColumnAction,
    ColumnEffect,
    ObjectAction,
    ObjectEffect,
    ObjectKind,
    QualifiedName,
    TableAction,
    TableEffect,
)
from migcoord.sql.lints import (
    CONCURRENTLY_IN_TRANSACTION,
    DOWN_MISMATCH,
    EXPLICIT_TRANSACTION,
    NOT_IDEMPOTENT,
    SQL_SYNTAX,
    Hazard,
    lint,
)

__all__ = [
    "CONCURRENTLY_IN_TRANSACTION",
    "DOWN_MISMATCH",
    "EXPLICIT_TRANSACTION",
    "NOT_IDEMPOTENT",
    "SQL_SYNTAX",
    "Analysis",
    "ColumnAction",
    "ColumnEffect",
    "Hazard",
    "ObjectAction",
    "ObjectEffect",
    "ObjectKind",
    "QualifiedName",
    "SqlSyntaxProblem",
    "Statement",
    "TableAction",
    "TableEffect",
    "analyze",
    "down_mismatch",
    "lint",
]
