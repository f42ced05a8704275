"""Read a schema Snapshot from pg_catalog (the SQL behind migcoord.core.snapshot).

Every query returns `kind, name, summary, parent` and then one column per attribute,
named as the attribute is named in a diff; all values are text (or NULL). The queries
run in one round trip (pipeline mode) inside one transaction whose search_path is only
pg_catalog, so every name in a definition comes out schema-qualified, whatever the
migrations did to the session's search_path.

Left out everywhere: system schemas (pg_catalog, information_schema, pg_toast, temp
schemas), objects that belong to an extension, and migcoord's own tables
(migcoord_history and migcoord_events in the history schema) with all that hangs on them,
and the schema in which verify logs what each DDL command touched
(migcoord.db.snapshot_scope).
"""

from __future__ import annotations

from typing import Any

import attrs
import psycopg

from migcoord.core.snapshot import SchemaObject, Snapshot
from migcoord.db.history import EVENTS, HISTORY

#: The schema of verify's DDL log (migcoord.db.snapshot_scope): never part of a snapshot.
SCOPE_SCHEMA = "migcoord_verify_scope"


def _user_schema(ns: str) -> str:
    return (f"{ns}.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', "
            f"'{SCOPE_SCHEMA}') "
            f"AND {ns}.nspname NOT LIKE 'pg\\_temp\\_%%' "
            f"AND {ns}.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'")


def _not_extension_member(catalog: str, oid: str) -> str:
    # Most databases have no extension but plpgsql (whose objects are in pg_catalog): the
    # first test, evaluated once, then spares a scan of pg_depend for every query.
    return (f"(NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname <> 'plpgsql') "
            f"OR NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
            f"AND e.objid = {oid} AND e.deptype = 'e'))")


def _not_migcoord(rel: str, ns: str) -> str:
    return (f"NOT ({ns}.nspname = %(history_schema)s "
            f"AND {rel}.relname IN ('{HISTORY}', '{EVENTS}'))")


def _relation_ok(rel: str, ns: str) -> str:
    return (f"{_user_schema(ns)} AND {_not_migcoord(rel, ns)} "
            f"AND {_not_extension_member('pg_class', rel + '.oid')}")


_YES_NO = "CASE WHEN {} THEN 'yes' ELSE 'no' END"

QUERIES: dict[str, str] = {
    "schema": f"""
SELECT 'schema', format('%%I', n.nspname), '', NULL,
       pg_get_userbyid(n.nspowner) AS owner, n.nspacl::text AS privileges
  FROM pg_namespace n
 WHERE {_user_schema('n')} AND {_not_extension_member('pg_namespace', 'n.oid')}
""",
    "extension": """
SELECT 'extension', format('%%I', x.extname), x.extversion, NULL,
       x.extversion AS version, format('%%I', n.nspname) AS schema
  FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
""",
    "relation": f"""
SELECT CASE c.relkind WHEN 'p' THEN 'partitioned table' WHEN 'f' THEN 'foreign table'
                      WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
       format('%%I.%%I', n.nspname, c.relname), '', NULL,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition,
       CASE c.relpersistence WHEN 'u' THEN 'unlogged' WHEN 't' THEN 'temporary'
            ELSE 'logged' END AS persistence,
       pg_get_partkeydef(c.oid) AS "partition key",
       (SELECT format('%%I.%%I', pn.nspname, p.relname) || ' ' || pg_get_expr(c.relpartbound, c.oid)
          FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_namespace pn ON pn.oid = p.relnamespace
         WHERE i.inhrelid = c.oid AND c.relispartition) AS "partition of",
       (SELECT string_agg(format('%%I.%%I', pn.nspname, p.relname), ', ' ORDER BY i.inhseqno)
          FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
          JOIN pg_namespace pn ON pn.oid = p.relnamespace
         WHERE i.inhrelid = c.oid AND NOT c.relispartition) AS inherits,
       CASE WHEN c.relrowsecurity AND c.relforcerowsecurity THEN 'enabled, forced'
            WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END AS "row level security",
       CASE c.relreplident WHEN 'n' THEN 'nothing' WHEN 'f' THEN 'full'
            WHEN 'i' THEN 'index' ELSE 'default' END AS "replica identity",
       array_to_string(c.reloptions, ', ') AS options,
       pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS privileges
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {_relation_ok('c', 'n')}
""",
    "column": f"""
SELECT 'column', format('%%I.%%I.%%I', n.nspname, c.relname, a.attname),
       format_type(a.atttypid, a.atttypmod), format('%%I.%%I', n.nspname, c.relname),
       format_type(a.atttypid, a.atttypmod) AS type,
       {_YES_NO.format('a.attnotnull')} AS "not null",
       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS default,
       CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END AS identity,
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid)
            || CASE a.attgenerated WHEN 's' THEN ' stored' ELSE ' virtual' END END AS generated,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN
            (SELECT format('%%I.%%I', cn.nspname, co.collname) FROM pg_collation co
               JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
       END AS collation
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f')
   AND {_relation_ok('c', 'n')}
""",
    "constraint": f"""
SELECT 'constraint', format('%%I on %%I.%%I', k.conname, n.nspname, c.relname),
       pg_get_constraintdef(k.oid), format('%%I.%%I', n.nspname, c.relname),
       pg_get_constraintdef(k.oid) AS definition
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE k.contype IN ('c', 'f', 'p', 'u', 'x') AND {_relation_ok('c', 'n')}
""",
    "index": f"""
SELECT 'index', format('%%I.%%I', n.nspname, ic.relname), NULL,
       format('%%I.%%I', n.nspname, c.relname),
       pg_get_indexdef(i.indexrelid) AS definition,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       {_YES_NO.format('i.indisunique')} AS unique,
       {_YES_NO.format('i.indisvalid')} AS valid
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class c ON c.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_relation_ok('c', 'n')}
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                      AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
""",
    "sequence": f"""
SELECT 'sequence', format('%%I.%%I', n.nspname, c.relname), format_type(s.seqtypid, NULL),
       CASE WHEN o.relname IS NOT NULL THEN format('%%I.%%I', o.nspname, o.relname) END,
       format_type(s.seqtypid, NULL) AS type, s.seqstart::text AS start,
       s.seqincrement::text AS increment, s.seqmin::text AS minimum,
       s.seqmax::text AS maximum, s.seqcache::text AS cache,
       {_YES_NO.format('s.seqcycle')} AS cycle,
       CASE WHEN o.relname IS NOT NULL
            THEN format('%%I.%%I.%%I', o.nspname, o.relname, o.attname) END AS "owned by",
       pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS privileges
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  -- The column a serial (or OWNED BY) sequence belongs to; its table is the parent.
  LEFT JOIN LATERAL (
       SELECT tn.nspname, t.relname, a.attname
         FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid
         JOIN pg_namespace tn ON tn.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a') o ON true
 WHERE {_relation_ok('c', 'n')}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'i')
""",
    "rule": f"""
SELECT 'rule', format('%%I on %%I.%%I', r.rulename, n.nspname, c.relname), NULL,
       format('%%I.%%I', n.nspname, c.relname),
       pg_get_ruledef(r.oid) AS definition,
       CASE r.ev_enabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica'
            WHEN 'A' THEN 'always' ELSE 'origin' END AS enabled
  FROM pg_rewrite r
  JOIN pg_class c ON c.oid = r.ev_class
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE r.rulename <> '_RETURN' AND {_relation_ok('c', 'n')}
""",
    "function": f"""
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                      WHEN 'w' THEN 'window function' ELSE 'function' END,
       format('%%I.%%I(%%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes)),
       NULL, NULL,
       pg_get_function_arguments(p.oid) AS arguments,
       pg_get_function_result(p.oid) AS result,
       l.lanname AS language,
       CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable'
            ELSE 'volatile' END AS volatility,
       {_YES_NO.format('p.proisstrict')} AS strict,
       CASE WHEN p.prosecdef THEN 'definer' ELSE 'invoker' END AS security,
       CASE p.proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted'
            ELSE 'unsafe' END AS parallel,
       array_to_string(p.proconfig, ', ') AS settings,
       md5(coalesce(CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid)
                         ELSE p.prosrc END, '') || coalesce(p.probin, '')) AS body,
       pg_get_userbyid(p.proowner) AS owner, p.proacl::text AS privileges
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE {_user_schema('n')} AND {_not_extension_member('pg_proc', 'p.oid')}
""",
    "trigger": f"""
SELECT 'trigger', format('%%I on %%I.%%I', t.tgname, n.nspname, c.relname), NULL,
       format('%%I.%%I', n.nspname, c.relname),
       pg_get_triggerdef(t.oid) AS definition,
       CASE t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'R' THEN 'replica'
            WHEN 'A' THEN 'always' ELSE 'origin' END AS enabled
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND {_relation_ok('c', 'n')}
""",
    "type": f"""
SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' WHEN 'r' THEN 'range type'
                      ELSE 'composite type' END,
       format('%%I.%%I', n.nspname, t.typname), NULL, NULL,
       (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
          FROM pg_enum e WHERE e.enumtypid = t.oid) AS values,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS "base type",
       CASE WHEN t.typtype = 'd' THEN {_YES_NO.format('t.typnotnull')} END AS "not null",
       t.typdefault AS default,
       (SELECT string_agg(format('%%I %%s', k.conname, pg_get_constraintdef(k.oid)), '; '
                          ORDER BY k.conname)
          FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype <> 'n') AS constraints,
       (SELECT string_agg(format('%%I %%s', a.attname, format_type(a.atttypid, a.atttypmod)),
                          ', ' ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c'
           AND a.attnum > 0 AND NOT a.attisdropped) AS attributes,
       (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r
         WHERE r.rngtypid = t.oid) AS subtype,
       pg_get_userbyid(t.typowner) AS owner
  FROM pg_type t
  JOIN pg_namespace n ON n.oid = t.typnamespace
  LEFT JOIN pg_class tc ON tc.oid = t.typrelid
 WHERE (t.typtype IN ('e', 'd', 'r') OR tc.relkind = 'c')
   AND {_user_schema('n')} AND {_not_extension_member('pg_type', 't.oid')}
""",
    "policy": f"""
SELECT 'policy', format('%%I on %%I.%%I', p.polname, n.nspname, c.relname), NULL,
       format('%%I.%%I', n.nspname, c.relname),
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
            WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END AS mode,
       (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(r)) END,
                          ', ' ORDER BY 1) FROM unnest(p.polroles) AS r) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS using,
       pg_get_expr(p.polwithcheck, p.polrelid) AS "with check"
  FROM pg_policy p
  JOIN pg_class c ON c.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_relation_ok('c', 'n')}
""",
    "comment": f"""
SELECT 'comment', 'on ' || o.type || ' ' || o.identity, NULL,
       CASE WHEN d.classoid = 'pg_class'::regclass THEN
            (SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = d.objoid)
            WHEN d.classoid IN ('pg_constraint'::regclass, 'pg_trigger'::regclass,
                                'pg_policy'::regclass, 'pg_rewrite'::regclass) THEN
            (SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = CASE d.classoid
                    WHEN 'pg_constraint'::regclass THEN
                         (SELECT conrelid FROM pg_constraint WHERE oid = d.objoid)
                    WHEN 'pg_trigger'::regclass THEN
                         (SELECT tgrelid FROM pg_trigger WHERE oid = d.objoid)
                    WHEN 'pg_policy'::regclass THEN
                         (SELECT polrelid FROM pg_policy WHERE oid = d.objoid)
                    ELSE (SELECT ev_class FROM pg_rewrite WHERE oid = d.objoid) END)
       END,
       d.description AS text
  FROM pg_description d
  CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) AS o
 WHERE d.objoid >= 16384
   AND (o.schema IS NULL OR o.schema NOT IN ('pg_catalog', 'information_schema', 'pg_toast',
                                             '{SCOPE_SCHEMA}'))
   AND (o.schema IS NULL OR o.schema NOT LIKE 'pg\\_temp\\_%%')
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = d.classoid
                      AND e.objid = d.objoid AND e.deptype = 'e')
   AND NOT (d.classoid = 'pg_class'::regclass AND d.objoid IN (
        SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {_not_migcoord('c', 'n').removeprefix('NOT ')}))
""",
}


@attrs.frozen
class CatalogRows:
    """What the snapshot queries returned, as plain tuples.

    Cheap to compare (rows come sorted by name, and equal rows make equal snapshots),
    so a caller comparing many states builds a Snapshot only when rows differ.
    """

    #: Per query: the attribute names, and the rows (kind, name, summary, parent, *values).
    results: tuple[tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]], ...]

    def snapshot(self) -> Snapshot:
        return Snapshot.of(_object(kind, name, summary, parent, names, values)
                           for names, rows in self.results
                           for kind, name, summary, parent, *values in rows)


def read(conn: psycopg.Connection[Any], history_schema: str) -> CatalogRows:
    """The catalog rows describing the schema of the database `conn` is connected to.

    Runs in its own transaction (`conn` must be idle, as migcoord's connections are in
    autocommit), and leaves the session's settings as they were.
    """
    params = {"history_schema": history_schema}
    with conn.transaction():
        conn.execute("SET LOCAL search_path TO pg_catalog")
        with conn.pipeline():
            cursors = [conn.cursor().execute(query, params) for query in QUERIES.values()]
        return CatalogRows(tuple(
            (tuple(column.name for column in cursor.description or ())[4:],
             tuple(sorted(cursor.fetchall(), key=row_order)))
            for cursor in cursors))


def row_order(row: tuple[Any, ...]) -> tuple[str, str]:
    """Rows are sorted by name, then kind, in Python (code point order): equal schemas
    give equal rows whatever the catalog's order, and rows read at different times (see
    migcoord.db.snapshot_scope) fall in the same places, whatever the database's
    collation."""
    return (row[1], row[0])


def take(conn: psycopg.Connection[Any], history_schema: str) -> Snapshot:
    """The schema of the database `conn` is connected to, as a Snapshot."""
    return read(conn, history_schema).snapshot()


def _object(kind: str, name: str, summary: str | None, parent: str | None,
            names: tuple[str, ...], values: list[str | None]) -> SchemaObject:
    attributes = list(zip(names, values, strict=True))
    if kind == "index":
        attributes, summary = _index_attributes(name, attributes)
    elif kind in ("view", "materialized view"):
        attributes = [(key, value) for key, value in attributes
                      if key in ("definition", "options", "owner", "privileges")]
    elif kind in ("table", "partitioned table", "foreign table"):
        attributes = [(key, value) for key, value in attributes if key != "definition"]
    elif kind in ("enum", "domain", "composite type", "range type"):
        attributes = [(key, value) for key, value in attributes
                      if value is not None or key in _TYPE_ATTRIBUTES[kind]]
    return SchemaObject(kind=kind, name=name, attributes=tuple(attributes),
                        summary=summary or "", parent=parent)


_TYPE_ATTRIBUTES = {
    "enum": ("values",),
    "domain": ("base type", "not null", "default", "constraints"),
    "composite type": ("attributes",),
    "range type": ("subtype",),
}


def _index_attributes(name: str, attributes: list[tuple[str, str | None]]
                      ) -> tuple[list[tuple[str, str | None]], str]:
    """Split pg_get_indexdef so that uniqueness and the predicate are reported alone.

    `CREATE UNIQUE INDEX n ON public.t USING btree (a) WHERE (b)` becomes definition
    `ON public.t USING btree (a)`, unique `yes`, predicate `(b)`.
    """
    values = dict(attributes)
    full = values["definition"] or ""
    predicate = values.get("predicate")
    definition = full
    for prefix in ("CREATE UNIQUE INDEX ", "CREATE INDEX "):
        if definition.startswith(prefix):
            definition = definition[len(prefix):]
            # The name, as pg_get_indexdef quotes it, is the text up to " ON ".
            _name, sep, rest = definition.partition(" ON ")
            if sep:
                definition = "ON " + rest
            break
    if predicate and definition.endswith(f" WHERE {predicate}"):
        definition = definition[: -len(f" WHERE {predicate}")]
    summary = definition + (f" WHERE {predicate}" if predicate else "")
    if values.get("unique") == "yes":
        summary = "UNIQUE " + summary
    return ([("definition", definition), ("unique", values.get("unique")),
             ("predicate", predicate), ("valid", values.get("valid"))], summary)
