"""The first up of a migration, measured for verify's lock report (migcoord.core.lockreport).

The report needs the relations as they were before the up (to name what it locked, and
to see whose storage it replaced) and their storage after it. Reading every relation of
the database before and after each up costs what the schema holds; with a scoped
observer (migcoord.db.snapshot_scope) only the relations the up locked are read, with
the same report:

- just before the COMMIT, inside the migration's transaction, the locks it holds are
  read, and the observer (another session, which sees only what is committed, that is
  the schema as it was before the up) reads those relations, and the tables of those
  that are indexes;
- after the COMMIT, the observer reads the same relations again, for their storage.

Nothing outside them can be reported: a lock names its relation, and a relation's
storage is replaced (TRUNCATE, a rewriting ALTER TABLE, CLUSTER, REFRESH MATERIALIZED
VIEW) only under a lock its transaction holds until it ends. A no-transaction migration
commits statement by statement and its locks are not read: there every relation is read
before and after, as without the scope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from migcoord.core import lockreport, owners
from migcoord.core.lockreport import LockImpact, Relation
from migcoord.core.model import Config, Migration

if TYPE_CHECKING:
    import psycopg

    from migcoord.db.scratch import Observer

BeforeCommit = Callable[["psycopg.Connection"], None]


def measured_up(migration: Migration, up: Callable[[BeforeCommit | None], int],
                observer: Observer, config: Config) -> tuple[int, LockImpact]:
    """Run `up` (which applies `migration`, calling its argument just before COMMIT);
    its duration in ms and what it locked and rewrote."""
    from migcoord.db import executor, impact

    held: list[list[tuple[int, str]]] = []
    before: Mapping[int, Relation]
    if not observer.scoped or executor.outside_transaction(migration, "up"):
        before = observer.read(impact.relations)
        ms = up(lambda conn: held.append(impact.held(conn)))
        after = observer.read(impact.relations)
    else:
        seen: list[Mapping[int, Relation]] = []

        def look(conn: psycopg.Connection) -> None:
            locks = impact.held(conn)
            held.append(locks)
            seen.append(observer.read(lambda other: impact.relations(other, _oids(locks))))

        ms = up(look)
        before = seen[-1] if seen else {}
        after = observer.read(lambda conn: impact.relations(conn, before))
    schema = config.history_schema
    return ms, lockreport.measure(
        before, after, held[-1] if held else None,
        owners.declared_owners(config.services, config.default_schema),
        skip=[(schema, "migcoord_history"), (schema, "migcoord_events")])


def _oids(locks: Iterable[tuple[int, str]]) -> list[int]:
    return [oid for oid, _mode in locks]
