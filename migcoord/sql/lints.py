"""Lints on single migration files: what to report about each statement, and when.

`hazards` notes, for one statement, each thing a lint may report: a statement that fails
when run twice (`not-idempotent`), a statement PostgreSQL refuses inside a transaction
block (`concurrently-in-transaction`). Transaction control (`explicit-transaction`) is
not a lint: `transactions.explicit_transaction` decides it, for `check` and the executor.
`lint` turns the hazards of an analysed file into findings, given what the file's
directives say (`no-transaction`, `allow`).

`fit` decides, for `check` and (through `transactions.transaction_fit`) the executor,
whether a file can run inside the migration's transaction: a file whose ONLY statement
PostgreSQL refuses in a transaction block runs outside one, as golang-migrate runs it (it
sends a file as one query, and PostgreSQL runs a one-statement query outside any
transaction block); such a statement among others is `concurrently-in-transaction`.

`CREATE TYPE` and `CREATE DOMAIN` have no `IF NOT EXISTS` in PostgreSQL; they are
reported anyway, with a `DO` block guard as the fix, since a file or the config can
allow `not-idempotent` where that is not wanted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs

from migcoord.sql._parser import Node
from migcoord.sql._tree import name_parts, relation_parts, wrapped, written
from migcoord.sql.effects import QualifiedName
from migcoord.sql.index_names import index_statement_name

#: The codes these lints report; migcoord/core/findings.py declares their severities.
SQL_SYNTAX = "sql-syntax"
NOT_IDEMPOTENT = "not-idempotent"
CONCURRENTLY_IN_TRANSACTION = "concurrently-in-transaction"
DOWN_MISMATCH = "down-mismatch"

#: Maps a parse tree location (UTF-8 byte offset, or None for "the statement") to
#: 1-based (line, column) in the file.
Locate = Callable[[int | None], tuple[int, int]]


@attrs.frozen
class Hazard:
    """Something about one statement that a lint may report; `lint` decides if it does."""

    code: str
    message: str
    hint: str
    line: int
    column: int
    #: The tables it concerns, for rules that say whose they are (lock hazards).
    tables: tuple[QualifiedName, ...] = ()
    #: The line of a TRUNCATE earlier in the file that emptied the table this hazard is
    #: about (0: none). In a transaction its lock keeps the table empty, so `lint` reports
    #: the hazard only in a file that runs outside one.
    emptied: int = 0


def hazards(node_type: str, body: Node, locate: Locate) -> tuple[Hazard, ...]:
    """Every hazard of one top-level statement."""
    found = _HAZARDS.get(node_type)
    return tuple(found(body, locate)) if found is not None else ()


# -- hazards of each statement kind -------------------------------------------------------

_HazardsOf = Callable[[Node, Locate], Iterator[Hazard]]


def _hazard(code: str, message: str, hint: str, locate: Locate, at: int | None = None) -> Hazard:
    line, column = locate(at)
    return Hazard(code=code, message=message, hint=hint, line=line, column=column)


def _rerun(message: str, fix: str, locate: Locate, at: int | None = None) -> Hazard:
    """A not-idempotent hazard whose hint is the statement form `fix`."""
    return _hazard(NOT_IDEMPOTENT, message, f"write `{fix}`", locate, at)


def _needs_no_transaction(what: str, locate: Locate) -> Hazard:
    # The hint depends on the rest of the file: `fit` writes it.
    return _hazard(
        CONCURRENTLY_IN_TRANSACTION,
        f"{what} cannot run inside a transaction block, and this file runs in one: it "
        "holds other statements too",
        "",
        locate,
    )


def _is_temporary(relation: Node | None) -> bool:
    # A temporary relation is gone when the session ends: re-running its CREATE is fine.
    return relation is not None and relation.get("relpersistence") == "t"


def _create_table(body: Node, locate: Locate) -> Iterator[Hazard]:
    relation = body.get("relation", {})
    if body.get("if_not_exists") or _is_temporary(relation):
        return
    name = written(relation_parts(relation))
    yield _rerun(
        f"CREATE TABLE {name} fails when the table already exists",
        f"CREATE TABLE IF NOT EXISTS {name} ...",
        locate,
    )


def _create_table_as(body: Node, locate: Locate) -> Iterator[Hazard]:
    relation = body.get("into", {}).get("rel", {})
    if body.get("if_not_exists") or _is_temporary(relation):
        return
    what = "MATERIALIZED VIEW" if body.get("objtype") == "OBJECT_MATVIEW" else "TABLE"
    name = written(relation_parts(relation))
    yield _rerun(
        f"CREATE {what} {name} fails when it already exists",
        f"CREATE {what} IF NOT EXISTS {name} AS ...",
        locate,
    )


def _select_into(body: Node, locate: Locate) -> Iterator[Hazard]:
    relation = (body.get("intoClause") or {}).get("rel")
    if not relation or _is_temporary(relation):
        return
    name = written(relation_parts(relation))
    yield _rerun(
        f"SELECT ... INTO {name} fails when the table already exists",
        f"CREATE TABLE IF NOT EXISTS {name} AS SELECT ...",
        locate,
    )


def _index(body: Node, locate: Locate) -> Iterator[Hazard]:
    table = written(relation_parts(body.get("relation", {})))
    concurrently = " CONCURRENTLY" if body.get("concurrent") else ""
    unique = "UNIQUE " if body.get("unique") else ""
    if body.get("concurrent"):
        yield _needs_no_transaction("CREATE INDEX CONCURRENTLY", locate)
    if body.get("if_not_exists"):
        return
    name = body.get("idxname")
    if name is None:
        # IF NOT EXISTS needs a name; without one PostgreSQL invents a new one each time.
        # The name it gave the first time keeps databases that ran the file as they are.
        server_name = index_statement_name(body.get("relation", {}).get("relname", ""), body)
        suggested = written([server_name.first]) if server_name is not None else "<name>"
        yield _rerun(
            f"CREATE INDEX on {table} without a name builds another index each time it runs",
            f"CREATE {unique}INDEX{concurrently} IF NOT EXISTS {suggested} ON {table} (...)",
            locate,
        )
        return
    index = written([name])
    yield _rerun(
        f"CREATE INDEX {index} fails when the index already exists",
        f"CREATE {unique}INDEX{concurrently} IF NOT EXISTS {index} ON {table} (...)",
        locate,
    )


def _if_not_exists(what: str, name_of: Callable[[Node], str]) -> _HazardsOf:
    """Hazards of a `CREATE <what> [IF NOT EXISTS] name` statement."""

    def found(body: Node, locate: Locate) -> Iterator[Hazard]:
        if body.get("if_not_exists"):
            return
        name = name_of(body)
        yield _rerun(
            f"CREATE {what} {name} fails when it already exists",
            f"CREATE {what} IF NOT EXISTS {name}",
            locate,
        )

    return found


_create_sequence = _if_not_exists("SEQUENCE", lambda b: written(relation_parts(b["sequence"])))


def _sequence(body: Node, locate: Locate) -> Iterator[Hazard]:
    if not _is_temporary(body.get("sequence")):
        yield from _create_sequence(body, locate)


def _schema_name(body: Node) -> str:
    # CREATE SCHEMA AUTHORIZATION joe names the schema after the role.
    return written([body.get("schemaname") or body.get("authrole", {}).get("rolename", "")])


def _view(body: Node, locate: Locate) -> Iterator[Hazard]:
    relation = body.get("view", {})
    if body.get("replace") or _is_temporary(relation):
        return
    name = written(relation_parts(relation))
    yield _rerun(
        f"CREATE VIEW {name} fails when the view already exists",
        f"CREATE OR REPLACE VIEW {name} AS ...",
        locate,
    )


def _function(body: Node, locate: Locate) -> Iterator[Hazard]:
    if body.get("replace"):
        return
    what = "PROCEDURE" if body.get("is_procedure") else "FUNCTION"
    name = written(name_parts(body.get("funcname")))
    yield _rerun(
        f"CREATE {what} {name} fails when it already exists",
        f"CREATE OR REPLACE {what} {name}(...)",
        locate,
    )


def _trigger(body: Node, locate: Locate) -> Iterator[Hazard]:
    if body.get("replace"):
        return
    name = written([body.get("trigname", "")])
    table = written(relation_parts(body.get("relation", {})))
    yield _hazard(
        NOT_IDEMPOTENT,
        f"CREATE TRIGGER {name} fails when the trigger already exists",
        f"write `CREATE OR REPLACE TRIGGER {name} ... ON {table} ...` (PostgreSQL 14+), "
        f"or put `DROP TRIGGER IF EXISTS {name} ON {table};` before it",
        locate,
    )


def _type(field: str, what: str) -> _HazardsOf:
    """Hazards of CREATE TYPE / DOMAIN, which have no IF NOT EXISTS in PostgreSQL."""

    def found(body: Node, locate: Locate) -> Iterator[Hazard]:
        value = body.get(field) or {}
        parts = relation_parts(value) if field == "typevar" else name_parts(value)
        name = written(parts)
        yield _rerun(
            f"CREATE {what} {name} fails when it already exists "
            f"(PostgreSQL has no CREATE {what} IF NOT EXISTS)",
            f"DO $$ BEGIN CREATE {what} {name} ...; EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
            locate,
        )

    return found


def _define(body: Node, locate: Locate) -> Iterator[Hazard]:
    if body.get("kind") == "OBJECT_TYPE":
        yield from _type("defnames", "TYPE")(body, locate)


_DROP_WORDS = {"OBJECT_MATVIEW": "MATERIALIZED VIEW", "OBJECT_ROUTINE": "ROUTINE"}


def _drop(body: Node, locate: Locate) -> Iterator[Hazard]:
    remove_type: str = body.get("removeType", "")
    what = _DROP_WORDS.get(remove_type) or remove_type.removeprefix("OBJECT_").replace("_", " ")
    concurrently = " CONCURRENTLY" if body.get("concurrent") else ""
    if body.get("concurrent"):
        yield _needs_no_transaction("DROP INDEX CONCURRENTLY", locate)
    if body.get("missing_ok"):
        return
    names = ", ".join(_drop_target(remove_type, target) for target in body.get("objects", ()))
    yield _rerun(
        f"DROP {what} {names} fails when it does not exist",
        f"DROP {what}{concurrently} IF EXISTS {names}",
        locate,
    )


def _drop_target(remove_type: str, target: Any) -> str:
    parts = name_parts(target)
    if remove_type in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE") and len(parts) > 1:
        return f"{written(parts[-1:])} ON {written(parts[:-1])}"
    return written(parts)


def _alter_table(body: Node, locate: Locate) -> Iterator[Hazard]:
    if body.get("objtype") != "OBJECT_TABLE":
        return
    table = written(relation_parts(body.get("relation", {})))
    for command in wrapped(body.get("cmds"), "AlterTableCmd"):
        yield from _alter_table_command(table, command, locate)


def _alter_table_command(table: str, command: Node, locate: Locate) -> Iterator[Hazard]:
    subtype = command.get("subtype")
    definition = command.get("def") or {}
    if subtype == "AT_AddColumn" and not command.get("missing_ok"):
        column_def = definition.get("ColumnDef", {})
        column = written([column_def.get("colname", "")])
        yield _rerun(
            f"ALTER TABLE {table} ADD COLUMN {column} fails when the column already exists",
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} ...",
            locate,
            column_def.get("location"),
        )
    elif subtype == "AT_DropColumn" and not command.get("missing_ok"):
        column = written([command.get("name", "")])
        yield _rerun(
            f"ALTER TABLE {table} DROP COLUMN {column} fails when the column does not exist",
            f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}",
            locate,
        )
    elif subtype == "AT_DetachPartition" and definition.get("PartitionCmd", {}).get("concurrent"):
        yield _needs_no_transaction("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY", locate)


def _reindex(body: Node, locate: Locate) -> Iterator[Hazard]:
    kind = body.get("kind")
    if kind in ("REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
        yield _needs_no_transaction(f"REINDEX {kind.removeprefix('REINDEX_OBJECT_')}", locate)
    elif any(
        option.get("defname") == "concurrently" and option_is_true(option)
        for option in wrapped(body.get("params"), "DefElem")
    ):
        yield _needs_no_transaction("REINDEX CONCURRENTLY", locate)


def option_is_true(option: Node) -> bool:
    """Whether `(CONCURRENTLY)` / `(CONCURRENTLY true)` is on; a bare option means on."""
    argument = option.get("arg")
    if argument is None:
        return True
    if "Boolean" in argument:
        return bool(argument["Boolean"].get("boolval"))
    if "Integer" in argument:
        return bool(argument["Integer"].get("ival"))
    value = argument.get("String", {}).get("sval", "true")
    return str(value).lower() not in ("false", "off", "no", "0")


def _vacuum(body: Node, locate: Locate) -> Iterator[Hazard]:
    if body.get("is_vacuumcmd"):  # ANALYZE alone may run in a transaction
        yield _needs_no_transaction("VACUUM", locate)


def _cluster(body: Node, locate: Locate) -> Iterator[Hazard]:
    if not body.get("relation"):
        yield _needs_no_transaction("CLUSTER without a table", locate)


def _alter_database(body: Node, locate: Locate) -> Iterator[Hazard]:
    if any(option.get("defname") == "tablespace"
           for option in wrapped(body.get("options"), "DefElem")):
        yield _needs_no_transaction("ALTER DATABASE ... SET TABLESPACE", locate)


def _never_in_transaction(what: str) -> _HazardsOf:
    def found(body: Node, locate: Locate) -> Iterator[Hazard]:
        yield _needs_no_transaction(what, locate)

    return found


_HAZARDS: dict[str, _HazardsOf] = {
    "CreateStmt": _create_table,
    "CreateTableAsStmt": _create_table_as,
    "SelectStmt": _select_into,
    "IndexStmt": _index,
    "CreateSeqStmt": _sequence,
    "CreateSchemaStmt": _if_not_exists("SCHEMA", _schema_name),
    "CreateExtensionStmt": _if_not_exists("EXTENSION", lambda b: written([b["extname"]])),
    "ViewStmt": _view,
    "CreateFunctionStmt": _function,
    "CreateTrigStmt": _trigger,
    "CreateEnumStmt": _type("typeName", "TYPE"),
    "CreateRangeStmt": _type("typeName", "TYPE"),
    "CompositeTypeStmt": _type("typevar", "TYPE"),
    "CreateDomainStmt": _type("domainname", "DOMAIN"),
    "DefineStmt": _define,
    "DropStmt": _drop,
    "AlterTableStmt": _alter_table,
    "ReindexStmt": _reindex,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "CreatedbStmt": _never_in_transaction("CREATE DATABASE"),
    "DropdbStmt": _never_in_transaction("DROP DATABASE"),
    "AlterSystemStmt": _never_in_transaction("ALTER SYSTEM"),
    "CreateTableSpaceStmt": _never_in_transaction("CREATE TABLESPACE"),
    "DropTableSpaceStmt": _never_in_transaction("DROP TABLESPACE"),
    "AlterDatabaseStmt": _alter_database,
}
