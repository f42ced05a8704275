"""Catalog snapshots that read only what changed since the last one (verify's throwaway
database), with the same rows a full read (migcoord.db.snapshot_sql) returns.

When verify creates its throwaway database (as a superuser), `install` adds two event
triggers, enabled ALWAYS (so `session_replication_role = replica` does not silence them),
whose SECURITY DEFINER functions (owned by that superuser, so a migration running under
`SET ROLE` still logs) write each object a DDL command created, altered or dropped
(classid, objid, objsubid) to a log table in a schema of their own, which snapshots
leave out. A `Scope` keeps the last snapshot's rows in memory, each with the object it
hangs on (its *key*: a column, constraint, index, trigger, policy or rule hangs on its
table), and on each read:

- reads the log since the last read, and with it the keys of every logged object and of
  everything that depends on one (pg_depend, followed to the end: a renamed type changes
  the text of the columns, defaults and functions that use it);
- adds the keys of dropped objects (their rows' keys from memory, or the table a dropped
  default or constraint belonged to, which the trigger resolved when it was dropped) and
  the former partitions or children of a touched table (a DETACH changes the child, yet
  reports the parent);
- drops the rows of those keys from its copy, reads theirs again (the same queries,
  limited to those keys), and returns the patched copy.

A full read is taken instead, never a guess, whenever the scope cannot be known: the
first read (a database just created, built again or copied, or a new connection), a
command whose objects cannot be mapped (`needs_full_read`), or a change the triggers do
not see: roles renamed, owners reassigned (`REASSIGN OWNED`), the set of invalid indexes
changed (a `REINDEX` on servers before 17, a `CREATE INDEX CONCURRENTLY` that failed
half-way), or the event triggers themselves altered. When they are gone (a migration
dropped their schema, `DROP OWNED`), every later read is a full one.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable
from typing import Any

import attrs
import psycopg

from migcoord.db.snapshot_sql import QUERIES, SCOPE_SCHEMA, CatalogRows, row_order

__all__ = ["SCOPE_SCHEMA", "Scope", "install", "prepare_session", "uninstall"]

log = logging.getLogger("migcoord")

LOG = f"{SCOPE_SCHEMA}.ddl_log"
#: The two event triggers (ddl_command_end, sql_drop), in name order.
TRIGGERS = ("migcoord_verify_scope_ddl", "migcoord_verify_scope_drop")

_INSTALL = f"""
CREATE SCHEMA {SCOPE_SCHEMA};
REVOKE ALL ON SCHEMA {SCOPE_SCHEMA} FROM PUBLIC;
CREATE TABLE {LOG} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tag text NOT NULL,
    dropped boolean NOT NULL,
    classid oid,
    objid oid,
    objsubid integer,
    parent oid
);
CREATE FUNCTION {SCOPE_SCHEMA}.ddl_command_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO {LOG} (tag, dropped, classid, objid, objsubid)
    SELECT command_tag, false, classid, objid, objsubid FROM pg_event_trigger_ddl_commands();
    IF NOT FOUND THEN
        -- A command that names no object: harmless for CREATE ... IF NOT EXISTS and
        -- DROP (its objects come through sql_drop), a full read for anything else.
        INSERT INTO {LOG} (tag, dropped) VALUES (tg_tag, false);
    END IF;
END $$;
CREATE FUNCTION {SCOPE_SCHEMA}.sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    -- A dropped default or constraint no longer says which table or domain it was on;
    -- its address still names it, and that one may still exist.
    INSERT INTO {LOG} (tag, dropped, classid, objid, objsubid, parent)
    SELECT tg_tag, true, classid, objid, objsubid,
           CASE WHEN object_type IN ('default value', 'table constraint', 'trigger',
                                     'policy', 'rule', 'table column')
                     AND cardinality(address_names) >= 2
                THEN to_regclass(format('%I.%I', address_names[1], address_names[2]))::oid
                WHEN object_type = 'domain constraint' AND cardinality(address_names) >= 1
                THEN to_regtype(address_names[1])::oid END
      FROM pg_event_trigger_dropped_objects();
END $$;
CREATE EVENT TRIGGER {TRIGGERS[0]} ON ddl_command_end
    EXECUTE FUNCTION {SCOPE_SCHEMA}.ddl_command_end();
CREATE EVENT TRIGGER {TRIGGERS[1]} ON sql_drop EXECUTE FUNCTION {SCOPE_SCHEMA}.sql_drop();
ALTER EVENT TRIGGER {TRIGGERS[0]} ENABLE ALWAYS;
ALTER EVENT TRIGGER {TRIGGERS[1]} ENABLE ALWAYS;
"""

#: What the event triggers do not see: the triggers themselves (their rows' xmin changes
#: with any ALTER EVENT TRIGGER); the roles' names (owners, privileges and policies show
#: them); the invalid indexes (REINDEX before PostgreSQL 17 makes one valid, a CREATE
#: INDEX CONCURRENTLY that failed half-way leaves one behind without a completed command).
_GUARD = f"""
SELECT (SELECT string_agg(e.evtname || ' ' || e.evtenabled::text || ' ' || e.xmin::text, ', '
                          ORDER BY e.evtname)
          FROM pg_event_trigger e WHERE e.evtname IN ('{TRIGGERS[0]}', '{TRIGGERS[1]}')),
       (SELECT md5(string_agg(r.oid::text || ' ' || r.rolname, ',' ORDER BY r.oid))
          FROM pg_roles r),
       (SELECT string_agg(i.indexrelid::text, ',' ORDER BY i.indexrelid)
          FROM pg_index i WHERE NOT i.indisvalid)
"""

#: Nor do they see REASSIGN OWNED, which changes owners (and their shared dependencies).
#: Each object's shared dependencies in this database are summed up as one number (a sum
#: of hashes): those of the objects the log names are read again, and those of all others
#: must add up to what they did.
_SHARED_HASH = """hashtext(s.classid::text || ' ' || s.objsubid::text || ' ' || s.refclassid::text
                 || ' ' || s.refobjid::text || ' ' || s.deptype::text)::bigint"""
_THIS_DATABASE = "s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
_SHARED_ALL = f"""
SELECT s.objid, sum({_SHARED_HASH}) FROM pg_shdepend s WHERE {_THIS_DATABASE} GROUP BY s.objid
"""
_SHARED_OF = f"""
SELECT s.objid, sum({_SHARED_HASH}) FROM pg_shdepend s
 WHERE {_THIS_DATABASE} AND s.objid = ANY(%(keys)s::oid[]) GROUP BY s.objid
"""
_SHARED_OTHERS = f"""
SELECT coalesce(sum({_SHARED_HASH}), 0) FROM pg_shdepend s
 WHERE {_THIS_DATABASE} AND NOT s.objid = ANY(%(keys)s::oid[])
"""

#: The observer's session (`prepare_session`): names come out schema-qualified (as
#: snapshot_sql reads them); the prepared queries are planned once (planning them costs
#: more than running them on a few keys); and never compiled: the planner cannot know how
#: few rows the DDL log holds past the last read, and compiling a query (JIT) that then
#: reads one row took 190 ms.
_SESSION = ("SET search_path TO pg_catalog; SET plan_cache_mode TO force_generic_plan; "
            "SET jit TO off")

_ENTRIES = f"""
SELECT l.id, l.tag, l.dropped, l.objid, l.parent, l.classid = 'pg_extension'::regclass
  FROM {LOG} l WHERE l.id > {{last}} ORDER BY l.id
"""

#: The keys of the rows that the logged (not dropped) objects, and everything that
#: depends on them, show up in. Planned for each read, with the log's position written
#: in: a generic plan of it (for any position) can be a thousand times slower.
_KEYS = f"""
WITH RECURSIVE touched(classid, objid, objsubid) AS (
    SELECT l.classid, l.objid, l.objsubid FROM {LOG} l
     WHERE l.id > {{last}} AND NOT l.dropped AND l.objid IS NOT NULL AND l.objid <> 0
    UNION
    -- An index lookup per object, never a scan of pg_depend (OFFSET 0 keeps the planner
    -- from turning the LATERAL into a hash join).
    SELECT d.classid, d.objid, d.objsubid
      FROM touched t CROSS JOIN LATERAL (
           SELECT d.classid, d.objid, d.objsubid FROM pg_depend d
            WHERE d.refclassid = t.classid AND d.refobjid = t.objid
              AND (t.objsubid = 0 OR d.refobjsubid = t.objsubid) OFFSET 0) d
)
SELECT DISTINCT m.key FROM touched t, LATERAL (
    SELECT t.objid
    UNION ALL SELECT i.indrelid FROM pg_index i
     WHERE t.classid = 'pg_class'::regclass AND i.indexrelid = t.objid
    UNION ALL SELECT c.reltype FROM pg_class c
     WHERE t.classid = 'pg_class'::regclass AND c.oid = t.objid AND c.relkind = 'c'
    UNION ALL SELECT CASE WHEN k.conrelid <> 0 THEN k.conrelid ELSE k.contypid END
      FROM pg_constraint k WHERE t.classid = 'pg_constraint'::regclass AND k.oid = t.objid
    UNION ALL SELECT g.tgrelid FROM pg_trigger g
     WHERE t.classid = 'pg_trigger'::regclass AND g.oid = t.objid
    UNION ALL SELECT p.polrelid FROM pg_policy p
     WHERE t.classid = 'pg_policy'::regclass AND p.oid = t.objid
    UNION ALL SELECT r.ev_class FROM pg_rewrite r
     WHERE t.classid = 'pg_rewrite'::regclass AND r.oid = t.objid
    UNION ALL SELECT a.adrelid FROM pg_attrdef a
     WHERE t.classid = 'pg_attrdef'::regclass AND a.oid = t.objid
) AS m(key)
"""

_COMMENT_KEY = """CASE d.classoid
    WHEN 'pg_constraint'::regclass THEN (SELECT CASE WHEN k.conrelid <> 0 THEN k.conrelid
                                                     ELSE k.contypid END
                                           FROM pg_constraint k WHERE k.oid = d.objoid)
    WHEN 'pg_trigger'::regclass THEN (SELECT g.tgrelid FROM pg_trigger g WHERE g.oid = d.objoid)
    WHEN 'pg_policy'::regclass THEN (SELECT p.polrelid FROM pg_policy p WHERE p.oid = d.objoid)
    WHEN 'pg_rewrite'::regclass THEN (SELECT r.ev_class FROM pg_rewrite r WHERE r.oid = d.objoid)
    ELSE d.objoid END"""

#: Per query of snapshot_sql: the row's key (what it hangs on), the object it stands for
#: itself (to find its key again once it is dropped), and the tables whose change can
#: change it without naming it (a table's parents: DETACH PARTITION reports the parent).
_HIDDEN: dict[str, tuple[str, str, str]] = {
    "schema": ("n.oid", "n.oid", "NULL::oid[]"),
    "extension": ("x.oid", "x.oid", "NULL::oid[]"),
    "relation": ("c.oid", "c.oid",
                 "ARRAY(SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = c.oid)"),
    "column": ("c.oid", "c.oid", "NULL::oid[]"),
    "constraint": ("c.oid", "k.oid", "NULL::oid[]"),
    "index": ("c.oid", "i.indexrelid", "NULL::oid[]"),
    "sequence": ("c.oid", "c.oid", "NULL::oid[]"),
    "rule": ("c.oid", "r.oid", "NULL::oid[]"),
    "function": ("p.oid", "p.oid", "NULL::oid[]"),
    "trigger": ("c.oid", "t.oid", "NULL::oid[]"),
    "type": ("t.oid", "t.oid", "NULL::oid[]"),
    "policy": ("c.oid", "p.oid", "NULL::oid[]"),
    "comment": (_COMMENT_KEY, "d.objoid", "NULL::oid[]"),
}
_HIDDEN_COUNT = 3

#: Commands whose objects cannot be mapped to rows: GRANT and REVOKE name no object,
#: ALTER SCHEMA may rename everything in it, extensions bring their own objects.
_UNMAPPED = frozenset({
    "ALTER SCHEMA", "CREATE EXTENSION", "ALTER EXTENSION", "DROP EXTENSION", "GRANT", "REVOKE",
    "ALTER DEFAULT PRIVILEGES", "IMPORT FOREIGN SCHEMA", "DROP OWNED", "REASSIGN OWNED",
})


def _keyed(name: str, query: str, *, scoped: bool) -> str:
    """`query` with the hidden columns first; `scoped`: limited to the keys %(keys)s."""
    key, own, related = _HIDDEN[name]
    body = query.strip()
    assert body.startswith("SELECT ")
    text = f"SELECT ({key})::oid, ({own})::oid, {related},\n       {body[len('SELECT '):]}"
    if scoped:
        joiner = "\n   AND " if "\n WHERE " in query else "\n WHERE "
        text += f"{joiner}({key}) = ANY(%(keys)s::oid[])"
    return text


_FULL = tuple(_keyed(name, query, scoped=False) for name, query in QUERIES.items())
_SCOPED = tuple(_keyed(name, query, scoped=True) for name, query in QUERIES.items())


def _run(conn: psycopg.Connection[Any], query: str,
         params: dict[str, Any] | None = None) -> psycopg.Cursor[Any]:
    """`query` on a cursor of its own, as a prepared statement: planning these catalog
    queries costs several times what running them on a few keys does. (migcoord's
    connections prepare nothing, for poolers; verify needs a session of its own anyway,
    since it holds the migration lock for the whole run.)"""
    return conn.cursor().execute(query, params, prepare=True)


@attrs.frozen
class Entry:
    """One row of the DDL log: an object a command touched (objid None: the command
    named none), or dropped; `parent` is the table or domain a dropped sub-object was on."""

    tag: str
    dropped: bool
    objid: int | None
    parent: int | None = None
    extension: bool = False


def needs_full_read(entries: Iterable[Entry]) -> str | None:
    """Why these logged commands cannot be mapped to the rows they change (a full read
    is needed), or None."""
    for entry in entries:
        if entry.tag in _UNMAPPED or entry.extension:
            return f"{entry.tag} touches what the log cannot map"
        if not entry.objid and not (entry.tag.startswith(("CREATE ", "DROP "))):
            return f"{entry.tag} named no object"
    return None


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Make `conn` a session that scoped reads can run on: prepared statements, planned
    once, and pg_catalog as the only schema searched. Scoped reads run outside any
    transaction: nothing else writes to the database while verify reads it."""
    conn.prepare_threshold = 5
    conn.execute(_SESSION)


def install(conn: psycopg.Connection[Any]) -> bool:
    """Give the database `conn` is connected to the event triggers and their log (a copy
    of a database that has them keeps them); False when that cannot be done (the user is
    not a superuser), and nothing is changed then."""
    row = conn.execute("SELECT rolsuper FROM pg_catalog.pg_roles "
                       "WHERE rolname = current_user").fetchone()
    if row is None or not row[0]:
        return False
    present = conn.execute("SELECT count(*) FROM pg_catalog.pg_event_trigger "
                           "WHERE evtname = ANY(%s)", (list(TRIGGERS),)).fetchone()
    if present is not None and present[0] == len(TRIGGERS):
        return True
    try:
        with conn.transaction():
            conn.execute(_INSTALL)
    except psycopg.errors.InsufficientPrivilege:
        return False
    except psycopg.errors.DuplicateSchema:
        # Left half-made by someone else: read in full, as without the triggers.
        return False
    return True


def uninstall(conn: psycopg.Connection[Any]) -> None:
    """Drop the event triggers and their log (dropping their functions' schema drops the
    triggers with them); nothing to do when there are none."""
    conn.execute(f"DROP SCHEMA IF EXISTS {SCOPE_SCHEMA} CASCADE")


@attrs.define
class _Rows:
    """One query's rows: sorted as a full read sorts them, and by key."""

    names: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    by_key: dict[int, list[tuple[int, list[int], tuple[Any, ...]]]]
    frozen: tuple[tuple[Any, ...], ...] = ()


class Scope:
    """The rows of the last snapshot of one database, patched by what changed since."""

    def __init__(self, history_schema: str) -> None:
        self.history_schema = history_schema
        self.enabled = True
        self._conn: psycopg.Connection[Any] | None = None
        self._queries: list[_Rows] = []
        self._owned: dict[int, set[int]] = {}  # an object's own oid -> the keys of its rows
        self._children: dict[int, set[int]] = {}  # a table -> its partitions and children
        self._last = 0
        self._shared: dict[int, int] = {}  # an object's sum of shared-dependency hashes
        self._shared_total = 0
        self._guard: tuple[Any, ...] | None = None
        #: How the last read was made ("full" or "scoped"), and why a full one (for tests).
        self.last_read = ""
        self.last_reason: str | None = None
        #: How many keys the last scoped read read again.
        self.last_keys = 0

    def read(self, conn: psycopg.Connection[Any]) -> CatalogRows:
        """The snapshot now; scoped when the last read was on this very connection."""
        if self._conn is not conn:
            return self._full(conn, "first read on this connection")
        try:
            return self._scoped(conn)
        except psycopg.OperationalError:
            raise
        except psycopg.Error as err:
            # The log or its schema is gone: a migration dropped it.
            self.enabled = False
            return self._full(conn, f"the DDL log could not be read: {err}")

    def _full(self, conn: psycopg.Connection[Any], reason: str) -> CatalogRows:
        self.last_read, self.last_reason = "full", reason
        log.debug("snapshot: full read (%s)", reason)
        params = {"history_schema": self.history_schema}
        with conn.pipeline():
            guard = _run(conn, _GUARD)
            shared = _run(conn, _SHARED_ALL)
            cursors = [_run(conn, query, params) for query in _FULL]
        guard_row = guard.fetchone()
        self._shared = {int(objid): int(total) for objid, total in shared.fetchall()}
        self._shared_total = sum(self._shared.values())
        self._queries = []
        self._owned = {}
        self._children = {}
        for cursor in cursors:
            names = tuple(column.name for column in cursor.description or ())[
                _HIDDEN_COUNT + 4:]
            rows = _Rows(names, [], {})
            self._queries.append(rows)
            rows.rows.extend(self._add(rows, cursor.fetchall()))
            rows.rows.sort(key=row_order)
            rows.frozen = tuple(rows.rows)
        self._guard = tuple(guard_row) if guard_row is not None else None
        healthy = self.enabled and self._guard is not None and self._triggers_healthy(
            self._guard[0])
        if healthy:
            last = conn.execute(f"SELECT coalesce(max(id), 0) FROM {LOG}").fetchone()
            self._last = int(last[0]) if last is not None else 0
        self._conn = conn if healthy else None
        if not healthy and self.enabled:
            self.enabled = False
            log.debug("verify reads every snapshot in full: its event triggers are gone")
        return self._result()

    @staticmethod
    def _triggers_healthy(guard: str | None) -> bool:
        """Both triggers are there and enabled ALWAYS."""
        if guard is None:
            return False
        triggers = guard.split(", ")
        return (len(triggers) == len(TRIGGERS)
                and all(t.split(" ")[:2] == [name, "A"] for t, name in zip(
                    triggers, TRIGGERS, strict=True)))

    def _scoped(self, conn: psycopg.Connection[Any]) -> CatalogRows:
        with conn.pipeline():
            guard = _run(conn, _GUARD)
            logged = conn.cursor().execute(_ENTRIES.format(last=int(self._last)),
                                           prepare=False)
            touched = conn.cursor().execute(_KEYS.format(last=int(self._last)),
                                            prepare=False)
        guard_row = guard.fetchone()
        rows = logged.fetchall()
        keys = {int(row[0]) for row in touched.fetchall() if row[0] is not None}
        entries = [Entry(tag=row[1], dropped=row[2], objid=row[3], parent=row[4],
                         extension=bool(row[5])) for row in rows]
        current = tuple(guard_row) if guard_row is not None else None
        if current != self._guard:
            return self._full(conn, "a change the event triggers do not see (roles, owners, "
                              "invalid indexes, the triggers themselves)")
        reason = needs_full_read(entries)
        if reason is not None:
            return self._full(conn, reason)
        if rows:
            self._last = int(rows[-1][0])
        for entry in entries:
            if entry.dropped and entry.objid:
                keys.add(entry.objid)
                keys.update(self._owned.get(entry.objid, ()))
                if entry.parent:
                    keys.add(entry.parent)
        for key in list(keys):
            keys.update(self._children.get(key, ()))
        if not self._refresh(conn, keys):
            return self._full(conn, "owners changed that the log does not name (REASSIGN OWNED)")
        self.last_read, self.last_reason, self.last_keys = "scoped", None, len(keys)
        log.debug("snapshot: scoped read of %d key%s", len(keys), "" if len(keys) == 1 else "s")
        return self._result()

    def _refresh(self, conn: psycopg.Connection[Any], keys: set[int]) -> bool:
        """Read the rows of `keys` again and put them in place of the ones held; False
        (and nothing changed) when the shared dependencies of other objects changed."""
        params = {"history_schema": self.history_schema,
                  "keys": "{" + ",".join(str(key) for key in sorted(keys)) + "}"}
        with conn.pipeline():
            others = _run(conn, _SHARED_OTHERS, params)
            mine = _run(conn, _SHARED_OF, params)
            cursors = [_run(conn, query, params) for query in _SCOPED] if keys else []
        fresh = [cursor.fetchall() for cursor in cursors]
        other_row = others.fetchone()
        shared = {int(objid): int(total) for objid, total in mine.fetchall()}
        others_now = int(other_row[0]) if other_row is not None else None
        if others_now != self._shared_total - sum(self._shared.get(key, 0) for key in keys):
            return False
        for key in keys:
            self._shared.pop(key, None)
        self._shared.update(shared)
        self._shared_total = others_now + sum(shared.values())
        for rows, new in zip(self._queries, fresh, strict=False):
            gone = [row for key in keys for row in self._remove(rows, key)]
            if not gone and not new:
                continue
            for row in gone:
                index = bisect.bisect_left(rows.rows, row_order(row), key=row_order)
                while rows.rows[index] is not row:
                    index += 1
                del rows.rows[index]
            for row in self._add(rows, new):
                bisect.insort(rows.rows, row, key=row_order)
            rows.frozen = tuple(rows.rows)
        return True

    def _add(self, rows: _Rows, fetched: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Index `fetched` (hidden columns first) under their keys; their visible rows."""
        added = []
        for key, own, related, *visible in fetched:
            row = tuple(visible)
            parents = list(related or ())
            rows.by_key.setdefault(key, []).append((own, parents, row))
            self._owned.setdefault(own, set()).add(key)
            for parent in parents:
                self._children.setdefault(parent, set()).add(key)
            added.append(row)
        return added

    def _remove(self, rows: _Rows, key: int) -> list[tuple[Any, ...]]:
        """Forget the rows held under `key`; the visible rows."""
        held = rows.by_key.pop(key, ())
        for own, parents, _row in held:
            owners = self._owned.get(own)
            if owners is not None:
                owners.discard(key)
                if not owners:
                    del self._owned[own]
            for parent in parents:
                children = self._children.get(parent)
                if children is not None:
                    children.discard(key)
        return [row for _own, _parents, row in held]

    def _result(self) -> CatalogRows:
        return CatalogRows(tuple((rows.names, rows.frozen) for rows in self._queries))
