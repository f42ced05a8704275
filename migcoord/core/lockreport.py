"""What a migration really locked and rewrote, measured by `verify` (pure).

`verify` applies each migration on a throwaway database; just before its COMMIT it reads
the relation locks its own backend holds (pg_locks), and it compares the storage
(relfilenode) of every table before and after. This module turns those readings into
the report: each table or index locked, with the strongest mode taken on it and the
service that owns the table (migcoord.toml's `owns`); each table rewritten; and the
flags a reviewer should see: a lock of SHARE or stronger on another service's table
(it stops that service's writes, or with ACCESS EXCLUSIVE its reads too, for as long
as the migration runs), and any table rewrite (it lasts as long as the table is big).

A relation the migration created is left out: nobody else can be using it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from migcoord.core.owners import Table

#: PostgreSQL's table lock modes, weakest first (its documentation's "Table-Level Locks").
MODES = ("AccessShareLock", "RowShareLock", "RowExclusiveLock", "ShareUpdateExclusiveLock",
         "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
#: From here on a lock blocks the table's writers (ACCESS EXCLUSIVE: its readers too).
STRONG = MODES[MODES.index("ShareLock"):]
#: Relation kinds reported: tables, partitioned tables, views, materialized views,
#: foreign tables; and indexes (`i`, `I`), reported with their table.
TABLE_KINDS = frozenset("rpvmf")
INDEX_KINDS = frozenset("iI")
#: Kinds whose storage a rewrite replaces.
STORED_KINDS = frozenset("rm")


@attrs.frozen
class Relation:
    """One relation of the database at one moment, as pg_class has it."""

    oid: int
    schema: str
    name: str
    #: Schema-qualified, quoted where SQL needs it (as the server's quote_ident does).
    qualified: str
    kind: str
    relfilenode: int
    #: For an index: the oid of its table.
    table_oid: int | None = None


@attrs.frozen
class LockTaken:
    """The strongest lock a migration held on one table (or on one of its indexes)."""

    table: str
    mode: str
    #: The service whose `owns` lists the table; None when no service declares it.
    owner: str | None
    #: The index, when the lock was on an index of `table`.
    index: str | None = None

    @property
    def strong(self) -> bool:
        return self.mode in STRONG

    def as_json(self) -> dict[str, object]:
        return {"table": self.table, "mode": self.mode, "owner": self.owner,
                "index": self.index}


@attrs.frozen
class LockImpact:
    """What one migration's up locked (None when it was not measured: a no-transaction
    migration commits each statement, and its locks go with it) and rewrote."""

    locks: tuple[LockTaken, ...] | None
    rewrites: tuple[str, ...] = ()
    #: The owner of each rewritten table, in the same order.
    rewrite_owners: tuple[str | None, ...] = ()

    def flags(self, service: str) -> tuple[str, ...]:
        """What a reviewer of `service`'s migration should see (see the module)."""
        found: list[str] = []
        for lock in self.locks or ():
            if lock.strong and lock.owner is not None and lock.owner != service:
                on = f"index {lock.index} of " if lock.index else ""
                found.append(f"{lock.mode} on {on}{lock.table}, owned by {lock.owner}")
        for table, owner in zip(self.rewrites, self.rewrite_owners, strict=True):
            whose = f", owned by {owner}" if owner is not None and owner != service else ""
            found.append(f"rewrites {table}{whose} (the table is copied, under "
                         "AccessExclusiveLock, for as long as that takes)")
        return tuple(found)


def measure(before: Mapping[int, Relation], after: Mapping[int, Relation],
            held: Iterable[tuple[int, str]] | None, owners: Mapping[Table, str],
            skip: Iterable[Table] = ()) -> LockImpact:
    """The impact of a migration from the relations `before` and `after` it (by oid), and
    the (relation oid, mode) locks `held` before its commit (None: not measured).
    `owners` maps tables to their declared services; `skip` are tables not to report
    (migcoord's own history tables)."""
    skipped = set(skip)

    def reported(relation: Relation | None) -> Relation | None:
        """The table a relation that existed before stands for, if it is reported."""
        if relation is None:
            return None
        if relation.kind in INDEX_KINDS:
            relation = before.get(relation.table_oid or 0)
            if relation is None:
                return None
        if relation.kind not in TABLE_KINDS or (relation.schema, relation.name) in skipped:
            return None
        return relation

    locks: tuple[LockTaken, ...] | None = None
    if held is not None:
        strongest: dict[tuple[str, str | None], tuple[str, str | None]] = {}
        for oid, mode in held:
            relation = before.get(oid)
            table = reported(relation)
            if relation is None or table is None or mode not in MODES:
                continue
            index = relation.qualified if relation.kind in INDEX_KINDS else None
            key = (table.qualified, index)
            known = strongest.get(key)
            if known is None or MODES.index(mode) > MODES.index(known[0]):
                strongest[key] = (mode, owners.get((table.schema, table.name)))
        locks = tuple(LockTaken(table=table, mode=mode, owner=owner, index=index)
                      for (table, index), (mode, owner) in sorted(
                          strongest.items(), key=lambda item: (item[0][0], item[0][1] or "")))
    rewritten = sorted(
        (relation for oid, relation in before.items()
         if relation.kind in STORED_KINDS and (relation.schema, relation.name) not in skipped
         and oid in after and after[oid].relfilenode != relation.relfilenode),
        key=lambda relation: relation.qualified)
    return LockImpact(locks=locks, rewrites=tuple(r.qualified for r in rewritten),
                      rewrite_owners=tuple(owners.get((r.schema, r.name)) for r in rewritten))


def by_oid(relations: Sequence[Relation]) -> dict[int, Relation]:
    return {relation.oid: relation for relation in relations}
