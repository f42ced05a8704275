"""Catalog snapshots that read only what changed since the last one (verify's throwaway
database), with the same rows a full read (migcoord.db.snapshot_sql) returns.

When verify creates its throwaway database as a superuser, it gets the event triggers
of migcoord.db.ddl_log, which log each object a DDL command created, altered or dropped.
A `Scope` keeps the last snapshot's rows in memory, each with the object it
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

from migcoord.db import ddl_log
from migcoord.db.snapshot_sql import CatalogRows, row_order

log = logging.getLogger("migcoord")

#: Commands whose objects cannot be mapped to rows: GRANT and REVOKE name no object,
#: ALTER SCHEMA may rename everything in it, extensions bring their own objects.
_UNMAPPED = frozenset({
    "ALTER SCHEMA", "CREATE EXTENSION", "ALTER EXTENSION", "DROP EXTENSION", "GRANT", "REVOKE",
    "ALTER DEFAULT PRIVILEGES", "IMPORT FOREIGN SCHEMA", "DROP OWNED", "REASSIGN OWNED",
})


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
            guard = ddl_log.run(conn, ddl_log.GUARD)
            shared = ddl_log.run(conn, ddl_log.SHARED_ALL)
            cursors = [ddl_log.run(conn, query, params) for query in ddl_log.FULL]
        guard_row = guard.fetchone()
        self._shared = {int(objid): int(total) for objid, total in shared.fetchall()}
        self._shared_total = sum(self._shared.values())
        self._queries = []
        self._owned = {}
        self._children = {}
        for cursor in cursors:
            names = tuple(column.name for column in cursor.description or ())[
                ddl_log.HIDDEN_COUNT + 4:]
            rows = _Rows(names, [], {})
            self._queries.append(rows)
            rows.rows.extend(self._add(rows, cursor.fetchall()))
            rows.rows.sort(key=row_order)
            rows.frozen = tuple(rows.rows)
        self._guard = tuple(guard_row) if guard_row is not None else None
        healthy = self.enabled and self._guard is not None and self._triggers_healthy(
            self._guard[0])
        if healthy:
            last = conn.execute(f"SELECT coalesce(max(id), 0) FROM {ddl_log.LOG}").fetchone()
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
        return (len(triggers) == len(ddl_log.TRIGGERS)
                and all(t.split(" ")[:2] == [name, "A"] for t, name in zip(
                    triggers, ddl_log.TRIGGERS, strict=True)))

    def _scoped(self, conn: psycopg.Connection[Any]) -> CatalogRows:
        with conn.pipeline():
            guard = ddl_log.run(conn, ddl_log.GUARD)
            logged = conn.cursor().execute(ddl_log.ENTRIES.format(last=int(self._last)),
                                           prepare=False)
            touched = conn.cursor().execute(ddl_log.KEYS.format(last=int(self._last)),
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
            others = ddl_log.run(conn, ddl_log.SHARED_OTHERS, params)
            mine = ddl_log.run(conn, ddl_log.SHARED_OF, params)
            cursors = [ddl_log.run(conn, query, params) for query in ddl_log.SCOPED] if keys else []
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
