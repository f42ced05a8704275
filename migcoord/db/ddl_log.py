"""Verify's DDL log: the event triggers that write what each DDL command touched, and the
SQL that reads it (migcoord.db.snapshot_scope decides what to read from it).

`install` gives a database (as a superuser) two event triggers, `ddl_command_end` and
`sql_drop`, enabled ALWAYS (so `session_replication_role = replica` does not silence
them), whose SECURITY DEFINER functions (owned by that superuser, so a migration running
under `SET ROLE` still logs) write the objects (classid, objid, objsubid) to a table in
a schema of their own, which snapshots leave out (snapshot_sql.SCOPE_SCHEMA).
"""

from __future__ import annotations

from typing import Any

import psycopg

from migcoord.db.snapshot_sql import QUERIES, SCOPE_SCHEMA

LOG = f"{SCOPE_SCHEMA}.ddl_log"
#: The two event triggers (ddl_command_end, sql_drop), in name order.
TRIGGERS = ("migcoord_verify_scope_ddl", "migcoord_verify_scope_drop")

INSTALL = f"""
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
#: INDEX CONCURRENTLY that failed half-way leaves one behind without a completed command);
#: any event trigger and its comment (no event trigger fires for those); the comments on
#: large objects (`lo_unlink()` drops one with a function call, not a command).
GUARD = f"""
SELECT (SELECT string_agg(e.evtname || ' ' || e.evtenabled::text || ' ' || e.xmin::text, ', '
                          ORDER BY e.evtname)
          FROM pg_event_trigger e WHERE e.evtname IN ('{TRIGGERS[0]}', '{TRIGGERS[1]}')),
       (SELECT md5(string_agg(r.oid::text || ' ' || r.rolname, ',' ORDER BY r.oid))
          FROM pg_roles r),
       (SELECT string_agg(i.indexrelid::text, ',' ORDER BY i.indexrelid)
          FROM pg_index i WHERE NOT i.indisvalid),
       (SELECT md5(string_agg(e.oid::text || ' ' || e.evtname || ' ' || e.xmin::text
                              || ' ' || coalesce(d.description, ''), ',' ORDER BY e.oid))
          FROM pg_event_trigger e
          LEFT JOIN pg_description d ON d.classoid = 'pg_event_trigger'::regclass
               AND d.objoid = e.oid AND d.objsubid = 0),
       (SELECT md5(string_agg(m.oid::text || ' ' || d.description, ',' ORDER BY m.oid))
          FROM pg_largeobject_metadata m
          JOIN pg_description d ON d.objoid = m.oid AND d.objsubid = 0
               AND d.classoid = 'pg_largeobject'::regclass)
"""

#: Nor do they see REASSIGN OWNED, which changes owners (and their shared dependencies).
#: Each object's shared dependencies in this database are summed up as one number (a sum
#: of hashes): those of the objects the log names are read again, and those of all others
#: must add up to what they did.
_SHARED_HASH = """hashtext(s.classid::text || ' ' || s.objsubid::text || ' ' || s.refclassid::text
                 || ' ' || s.refobjid::text || ' ' || s.deptype::text)::bigint"""
_THIS_DATABASE = "s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
SHARED_ALL = f"""
SELECT s.objid, sum({_SHARED_HASH}) FROM pg_shdepend s WHERE {_THIS_DATABASE} GROUP BY s.objid
"""
SHARED_OF = f"""
SELECT s.objid, sum({_SHARED_HASH}) FROM pg_shdepend s
 WHERE {_THIS_DATABASE} AND s.objid = ANY(%(keys)s::oid[]) GROUP BY s.objid
"""
SHARED_OTHERS = f"""
SELECT coalesce(sum({_SHARED_HASH}), 0) FROM pg_shdepend s
 WHERE {_THIS_DATABASE} AND NOT s.objid = ANY(%(keys)s::oid[])
"""

#: The observer's session (`prepare_session`): names come out schema-qualified (as
#: snapshot_sql reads them); the prepared queries are planned once (planning them costs
#: more than running them on a few keys); and never compiled: the planner cannot know how
#: few rows the DDL log holds past the last read, and compiling a query (JIT) that then
#: reads one row took 190 ms.
SESSION = ("SET search_path TO pg_catalog; SET plan_cache_mode TO force_generic_plan; "
            "SET jit TO off")

ENTRIES = f"""
SELECT l.id, l.tag, l.dropped, l.objid, l.parent, l.classid = 'pg_extension'::regclass
  FROM {LOG} l WHERE l.id > {{last}} ORDER BY l.id
"""

#: The keys of the rows that the logged (not dropped) objects, and everything that
#: depends on them, show up in. Planned for each read, with the log's position written
#: in: a generic plan of it (for any position) can be a thousand times slower.
KEYS = f"""
WITH RECURSIVE touched(classid, objid, objsubid) AS (
    SELECT l.classid, l.objid, l.objsubid FROM {LOG} l
     WHERE l.id > {{last}} AND NOT l.dropped AND l.objid IS NOT NULL AND l.objid <> 0
    UNION
    -- An index lookup per object, never a scan of pg_depend (OFFSET 0 keeps the planner
    -- from turning the LATERAL into a hash join). Besides what depends on an object: a
    -- relation's column, constraint or trigger stands for the whole relation, whose
    -- inheritance children and partitions take a renamed column, constraint or trigger
    -- along, level after level; a
    -- composite type's relation stands for its type, which typed tables depend on.
    SELECT d.classid, d.objid, d.objsubid
      FROM touched t CROSS JOIN LATERAL (
           (SELECT d.classid, d.objid, d.objsubid FROM pg_depend d
             WHERE d.refclassid = t.classid AND d.refobjid = t.objid
               AND (t.objsubid = 0 OR d.refobjsubid = t.objsubid) OFFSET 0)
           UNION ALL
           SELECT t.classid, t.objid, 0 WHERE t.objsubid <> 0
              AND t.classid = 'pg_class'::regclass
           UNION ALL
           (SELECT 'pg_class'::regclass, k.conrelid, 0 FROM pg_constraint k
             WHERE t.classid = 'pg_constraint'::regclass AND k.oid = t.objid
               AND k.conrelid <> 0 OFFSET 0)
           UNION ALL
           (SELECT 'pg_class'::regclass, g.tgrelid, 0 FROM pg_trigger g
             WHERE t.classid = 'pg_trigger'::regclass AND g.oid = t.objid OFFSET 0)
           UNION ALL
           (SELECT 'pg_class'::regclass, h.inhrelid, 0 FROM pg_inherits h
             WHERE t.classid = 'pg_class'::regclass AND h.inhparent = t.objid OFFSET 0)
           UNION ALL
           (SELECT 'pg_type'::regclass, c.reltype, 0 FROM pg_class c
             WHERE t.classid = 'pg_class'::regclass AND c.oid = t.objid AND c.relkind = 'c'
            OFFSET 0)) d
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
HIDDEN_COUNT = 3

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


FULL = tuple(_keyed(name, query, scoped=False) for name, query in QUERIES.items())
SCOPED = tuple(_keyed(name, query, scoped=True) for name, query in QUERIES.items())


def run(conn: psycopg.Connection[Any], query: str,
         params: dict[str, Any] | None = None) -> psycopg.Cursor[Any]:
    """`query` on a cursor of its own, as a prepared statement: planning these catalog
    queries costs several times what running them on a few keys does. (migcoord's
    connections prepare nothing, for poolers; verify needs a session of its own anyway,
    since it holds the migration lock for the whole run.)"""
    return conn.cursor().execute(query, params, prepare=True)


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Make `conn` a session that scoped reads can run on: prepared statements, planned
    once, and pg_catalog as the only schema searched. Scoped reads run outside any
    transaction: nothing else writes to the database while verify reads it."""
    conn.prepare_threshold = 5
    conn.execute(SESSION)


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
            conn.execute(INSTALL)
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
