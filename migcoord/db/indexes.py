"""INVALID indexes: what a failed `CREATE INDEX CONCURRENTLY` leaves behind.

A concurrent build that fails (a duplicate key, a deadlock, a timeout, a cancel) leaves
its index in pg_index with `indisvalid = false`: it enforces nothing (a UNIQUE one lets
duplicates in), queries never use it, and every write still pays to maintain it. Run
again, `CREATE INDEX CONCURRENTLY IF NOT EXISTS` sees the name taken and skips the build,
so the migration would be recorded as applied over an index that does not work. A failed
`REINDEX ... CONCURRENTLY` or `DROP INDEX CONCURRENTLY` leaves such indexes too.

The executor asks: which invalid indexes appeared while a failed migration ran
(`left_behind`, compared with `invalid_oids` taken before it), whether an index the
migration creates by name is invalid (`named_invalid`), and which invalid indexes an
earlier attempt left on the tables it indexes (`invalid_on`). An index whose table
another session is working on concurrently (a `ShareUpdateExclusiveLock` held by anyone
but autovacuum: a concurrent build, reindex or drop) is left out: it may be theirs, still
in progress, and naming its DROP would be dangerous advice.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import attrs
import psycopg

from migcoord.sql.analysis import analyze
from migcoord.sql.effects import TableAction


@attrs.frozen
class InvalidIndex:
    #: Schema-qualified and quoted as SQL needs it: `public.users_email_key`.
    name: str
    table: str

    @property
    def drop(self) -> str:
        return f"DROP INDEX CONCURRENTLY {self.name};"


_INVALID = """
    SELECT i.indexrelid, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
           quote_ident(tn.nspname) || '.' || quote_ident(t.relname)
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace tn ON tn.oid = t.relnamespace
     WHERE NOT i.indisvalid
       -- A partitioned index (CREATE INDEX ... ON ONLY parent) stays invalid by design
       -- until an index of every partition is attached: no build failed.
       AND c.relkind <> 'I'
       AND NOT EXISTS (
           SELECT 1 FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'relation' AND l.relation = i.indrelid AND l.granted
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.mode = 'ShareUpdateExclusiveLock' AND l.pid <> pg_backend_pid()
              AND a.backend_type IS DISTINCT FROM 'autovacuum worker')
"""


def invalid_oids(conn: psycopg.Connection) -> frozenset[int]:
    """The oids of every invalid index in the database now."""
    return frozenset(int(row[0]) for row in conn.execute(_INVALID).fetchall())


def left_behind(conn: psycopg.Connection, before: Collection[int]) -> list[InvalidIndex]:
    """The invalid indexes that were not invalid when `before` was taken."""
    return [InvalidIndex(name, table) for oid, name, table in conn.execute(_INVALID).fetchall()
            if int(oid) not in before]


def named_invalid(conn: psycopg.Connection,
                  names: Sequence[tuple[str, str]]) -> list[InvalidIndex]:
    """The invalid indexes among `names`: (the table as SQL names it, the index name),
    the index in its table's schema, as `CREATE INDEX name ON table` puts it."""
    if not names:
        return []
    rows = conn.execute(
        _INVALID + """
       AND (c.relname, c.relnamespace) IN (
            SELECT w.idx, r.relnamespace
              FROM unnest(%s::text[], %s::text[]) AS w(tbl, idx)
              JOIN pg_class r ON r.oid = to_regclass(w.tbl))
        """, ([table for table, _ in names], [index for _, index in names])).fetchall()
    return [InvalidIndex(name, table) for _, name, table in rows]


def invalid_on(conn: psycopg.Connection, tables: Sequence[str]) -> list[InvalidIndex]:
    """The invalid indexes of `tables` (as SQL names them)."""
    if not tables:
        return []
    rows = conn.execute(
        _INVALID + " AND i.indrelid IN (SELECT to_regclass(w) FROM unnest(%s::text[]) AS w)",
        (list(tables),)).fetchall()
    return [InvalidIndex(name, table) for _, name, table in rows]


@attrs.frozen
class Targets:
    """What a file's `CREATE INDEX` statements name."""

    #: (table as SQL names it, index name) of each named index.
    named: tuple[tuple[str, str], ...] = ()
    #: Each table it indexes, as SQL names it.
    tables: tuple[str, ...] = ()


_CREATES_INDEX = re.compile(r"\bcreate\s+(?:unique\s+)?index\b", re.IGNORECASE)


def targets(text: str) -> Targets:
    """The indexes and tables of each `CREATE INDEX` in `text`.

    An unqualified table stays unqualified, for the server to resolve with the session's
    search_path (a `SET search_path` earlier in the file qualifies it).
    """
    if not _CREATES_INDEX.search(text):
        return Targets()
    indexed = [effect for effect in analyze(text, default_schema="").table_effects
               if effect.action is TableAction.INDEXED]
    return Targets(
        named=tuple(dict.fromkeys((str(effect.table), effect.index.name)
                                  for effect in indexed if effect.index is not None)),
        tables=tuple(dict.fromkeys(str(effect.table) for effect in indexed)))


def described(indexes: Sequence[InvalidIndex]) -> str:
    """`the INVALID index public.x (on public.t)`, or several, for a sentence."""
    names = ", ".join(f"{index.name} (on {index.table})" for index in indexes)
    return f"the INVALID index{'es' if len(indexes) > 1 else ''} {names}"


def drops(indexes: Sequence[InvalidIndex]) -> str:
    return " ".join(f"`{index.drop}`" for index in indexes)
