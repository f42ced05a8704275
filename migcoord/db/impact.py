"""The readings behind `verify`'s lock report (migcoord.core.lockreport): the relations
of a database with their storage, and the relation locks the session holds now."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from migcoord.core.lockreport import Relation
from migcoord.db.snapshot_sql import SCOPE_SCHEMA

#: Verify's DDL log (migcoord.db.snapshot_scope) is written by an event trigger inside each
#: migration: its lock is verify's own doing, never the migration's.
_RELATIONS = f"""
SELECT c.oid, n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       c.relkind::text, c.relfilenode, i.indrelid
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'i', 'I')
   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
   AND n.nspname <> '{SCOPE_SCHEMA}'
"""

_HELD = """
SELECT relation, mode FROM pg_catalog.pg_locks
 WHERE pid = pg_catalog.pg_backend_pid() AND locktype = 'relation' AND granted
   AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
"""


#: Limited to some relations, and the tables of those that are indexes (a query with
#: parameters spells a literal % as %%).
_SOME = _RELATIONS.replace("%", "%%") + """
   AND (c.oid = ANY(%(oids)s::oid[])
        OR c.oid IN (SELECT x.indrelid FROM pg_catalog.pg_index x
                      WHERE x.indexrelid = ANY(%(oids)s::oid[])))
"""


def relations(conn: psycopg.Connection[Any], oids: Iterable[int] | None = None
              ) -> dict[int, Relation]:
    """Every user table, view and index of the database now, by oid; with `oids`, only
    those of them (and the tables of those that are indexes)."""
    if oids is None:
        rows = conn.execute(_RELATIONS).fetchall()
    else:
        wanted = "{" + ",".join(str(oid) for oid in sorted(set(oids))) + "}"
        rows = conn.execute(_SOME, {"oids": wanted}).fetchall()
    return {int(row[0]): Relation(oid=int(row[0]), schema=str(row[1]), name=str(row[2]),
                                  qualified=str(row[3]), kind=str(row[4]),
                                  relfilenode=int(row[5]),
                                  table_oid=None if row[6] is None else int(row[6]))
            for row in rows}


def held(conn: psycopg.Connection[Any]) -> list[tuple[int, str]]:
    """(relation oid, mode) of each relation lock this session holds now (inside the
    transaction that took them)."""
    return [(int(row[0]), str(row[1])) for row in conn.execute(_HELD).fetchall()]
