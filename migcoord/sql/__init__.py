"""SQL text read with PostgreSQL's own scanner and parser (pglast): text in, values out.

    from migcoord.sql import reader

    reader.statements(text)           # what psql would send, statement by statement
    reader.transaction_control(text)  # BEGIN/COMMIT... (transactions.py decides what they mean)

    from migcoord import sql

    up = sql.analyze(up_text, default_schema="public")
    up.tables_changed            # frozenset of QualifiedName
    findings = sql.lint(up, no_transaction=False, allow=frozenset())
    findings += sql.down_mismatch(up, sql.analyze(down_text))

`reader` is the one reader of SQL text (statements, positions, transaction control, the
comment header that directives come from); `analysis`, `effects`, `lints` and `down`
read the parse tree; `transactions` decides what a file's transaction control means and
whether its statements fit in a transaction, for `check` and the executor alike. pglast
is a required dependency, imported on first use: importing this package loads neither
pglast nor the analysis modules, so that a service reading a file header at start-up
pays for neither.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migcoord.sql.analysis import Analysis, SqlSyntaxProblem, Statement, analyze, lint
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
    from migcoord.sql.index_names import ServerName
    from migcoord.sql.lints import (
        CONCURRENTLY_IN_TRANSACTION,
        DOWN_MISMATCH,
        NOT_IDEMPOTENT,
        SQL_SYNTAX,
        Hazard,
    )
    from migcoord.sql.transactions import EXPLICIT_TRANSACTION

#: Each public name -> the module that defines it.
_HOMES = {
    **dict.fromkeys(("Analysis", "SqlSyntaxProblem", "Statement", "analyze", "lint"), "analysis"),
    "down_mismatch": "down",
    **dict.fromkeys(("ColumnAction", "ColumnEffect", "ObjectAction", "ObjectEffect",
                     "ObjectKind", "QualifiedName", "TableAction", "TableEffect"), "effects"),
    **dict.fromkeys(("CONCURRENTLY_IN_TRANSACTION", "DOWN_MISMATCH", "NOT_IDEMPOTENT",
                     "SQL_SYNTAX", "Hazard"), "lints"),
    "EXPLICIT_TRANSACTION": "transactions",
    "ServerName": "index_names",
}

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
    "ServerName",
    "SqlSyntaxProblem",
    "Statement",
    "TableAction",
    "TableEffect",
    "analyze",
    "down_mismatch",
    "lint",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'migcoord.sql' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"migcoord.sql.{home}"), name)
    globals()[name] = value  # later lookups (`sql.analyze` once per file) skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
