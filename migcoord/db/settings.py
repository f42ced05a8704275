"""A session's settings before a migration, and the SQL that puts them back afterwards.

A migration may change its session: `SET search_path`, `SET ROLE`, `SET
statement_timeout`, `SET session_replication_role`, `SET SESSION AUTHORIZATION`... A
`SET` inside a transaction that commits outlives it, so without care the next migration
of the same run would start from the last one's settings: one `up` of two migrations and
two separate `up`s would build different schemas. And a caller's `conn=` would come back
changed. So each migration starts from the settings its session had before it (`save`),
and they are put back after it (`restore_sql`): inside its transaction, before its
history row is written, or after the last statement of a no-transaction migration (whose
progress is recorded between statements with them put back for that transaction only).

What is put back: every parameter PostgreSQL lists in `pg_settings` that the session had
set (`source = 'session'`) or that the migration set, and the two it does not list, `role`
and `session_authorization`. Not covered: a custom placeholder parameter (`SET app.x`)
that no loaded module defines, which PostgreSQL does not list anywhere; and state that is
not a setting (temporary tables, prepared statements, `LISTEN`).

Reading `pg_settings` costs the server about half a millisecond (it formats every one of
its ~350 rows), as much as running a trivial migration. So `save` also notes the value of
each parameter a session can change (`SET` by a user or a superuser), and the restore
first compares those ~180 values (`current_setting`, a lookup each): only when one
differs does it read `pg_settings` to put everything back. The executor's own `SET LOCAL`
timeouts differ during every migration, so those are put back unconditionally instead.
A caller saves once per run: after each migration the session is back where it was.

Even gated so, that statement costs the server a plan of `pg_settings` on every migration
(~0.4 ms, measured: 1,000 trivial migrations applied in 1.50 s with it and 1.08 s
without). So a migration sent in one round trip carries only the cheap part inside its
transaction (`Restore.session`: the role and session authorization, which its history row
is written under, and the timeouts), and after its COMMIT one comparison
(`Restore.changed`); the parameters are put back (`Restore.parameters`) only when that
says one differs. A `SET` that commits lasts for the session, so putting it back after
the COMMIT leaves the next migration where putting it back before would have.
"""

from __future__ import annotations

import contextlib
import json

import attrs
import psycopg
from psycopg import sql

# Per transaction, not per session: reset by the transaction's end, and not settable
# once it has run a query.
_PER_TRANSACTION = ("transaction_isolation", "transaction_read_only", "transaction_deferrable")

# Set by the executor with SET LOCAL before every migration (db/lockwait.timeouts_sql), so
# they always differ while it runs: put back unconditionally, left out of the comparison.
_ALWAYS = ("lock_timeout", "statement_timeout")

_SAVE = sql.SQL(
    "SELECT pg_catalog.current_setting('role'), "
    "pg_catalog.current_setting('session_authorization'), "
    "coalesce(pg_catalog.json_object_agg(name, setting) FILTER ("
    "WHERE source = 'session' AND name <> ALL ({per_transaction})), '{{}}')::text, "
    "coalesce(pg_catalog.array_agg(name ORDER BY name) FILTER (WHERE {compared}), '{{}}'), "
    "coalesce(pg_catalog.array_agg(pg_catalog.current_setting(name) ORDER BY name) "
    "FILTER (WHERE {compared}), '{{}}') "
    "FROM pg_catalog.pg_settings"
)
# What a session can change itself and the restore compares.
_COMPARED = sql.SQL(
    "context IN ('user', 'superuser') AND name <> ALL ({per_transaction}) "
    "AND name <> ALL ({always})")

# Session authorization first (it also resets the role), then the role (whose privileges
# a superuser-only parameter needs), then the executor's timeouts, then the parameters:
# each one the session had set back to its value, each one only the migration set reset
# (`set_config` with NULL is RESET). Each only where needed, so an unchanged session
# costs no SET; `pg_settings` is read only when a compared value differs (the planner
# runs the uncorrelated EXISTS once, as a one-time filter above the scan).
_SESSION = sql.SQL(
    "SELECT pg_catalog.set_config('session_authorization', {authorization}, {local}) "
    "WHERE pg_catalog.current_setting('session_authorization') <> {authorization};\n"
    "SELECT pg_catalog.set_config('role', {role}, {local}) "
    "WHERE pg_catalog.current_setting('role') <> {role};\n"
    "SELECT {always};\n"
)
_DIFFERS = sql.SQL(
    "EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest({names}::text[]), "
    "pg_catalog.unnest({compared}::text[])) AS b(name, value) "
    "WHERE pg_catalog.current_setting(b.name, true) IS DISTINCT FROM b.value)")
_PARAMETERS = sql.SQL(
    "SELECT pg_catalog.count(pg_catalog.set_config(s.name, k.value, {local})) "
    "FROM pg_catalog.pg_settings s "
    "LEFT JOIN pg_catalog.json_each_text({values}::json) k ON k.key = s.name "
    "WHERE (SELECT {differs}) "
    "AND s.name <> ALL ({per_transaction}) AND CASE WHEN k.key IS NULL "
    "THEN s.source = 'session' ELSE s.setting IS DISTINCT FROM k.value END;\n"
)
#: The column `Restore.changed` answers in.
CHANGED = "migcoord_settings_changed"


@attrs.frozen
class Saved:
    """A session's settings at one moment (see the module)."""

    role: str
    authorization: str
    #: JSON object: each parameter the session had set itself -> its value.
    values: str
    #: Each parameter the restore compares, and its `current_setting` then.
    compared: tuple[tuple[str, str], ...] = ()


def save(conn: psycopg.Connection) -> Saved:
    """The settings of `conn`'s session now (no transaction is left open)."""
    _load_plpgsql(conn)
    row = conn.execute(_SAVE.format(per_transaction=_names(_PER_TRANSACTION),
                                    compared=_compared()), prepare=False).fetchone()
    assert row is not None  # an aggregate returns one row
    return Saved(role=str(row[0]), authorization=str(row[1]), values=str(row[2]),
                 compared=tuple(zip(row[3], row[4], strict=True)))


def _load_plpgsql(conn: psycopg.Connection) -> None:
    """Load PL/pgSQL into the session, so that its parameters (`plpgsql.check_asserts`...)
    are among those saved and compared: a module's parameters are listed only once the
    module is loaded, and a migration's first `DO` block would load it mid-run, after the
    save, letting a `SET plpgsql...` of one migration reach the next. (Other modules a
    migration loads with `LOAD` stay outside the comparison.)"""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):  # no PL/pgSQL, or no right to use it
        conn.execute("DO $$BEGIN END$$", prepare=False)


@attrs.frozen
class Restore:
    """The SQL that sets a session back to a `Saved`, in its three parts (see the module)."""

    #: The session authorization, the role and the executor's timeouts (cheap).
    session: str
    #: Every other parameter set or reset as it was; reads `pg_settings` only when one
    #: differs, but is planned every time it is sent.
    parameters: str
    #: One row, one boolean column named CHANGED: whether a parameter `parameters` puts
    #: back differs now (no trailing semicolon).
    changed: str

    @property
    def whole(self) -> str:
        return self.session + self.parameters


def restore_parts(conn: psycopg.Connection, saved: Saved, *, local: bool = False) -> Restore:
    """The SQL that sets the session back to `saved`: every parameter changed since, set or
    reset as it was. Run inside a transaction it takes effect when that commits (and not
    at all when it rolls back, as then neither does what it undoes). With `local`, only
    until the transaction it runs in ends, as `SET LOCAL` does."""
    scope = sql.Literal(local)
    session_values = json.loads(saved.values)
    always = sql.SQL(", ").join(
        sql.SQL("pg_catalog.set_config({}, {}, {})").format(
            sql.Literal(name), sql.Literal(session_values.get(name)), scope)
        for name in _ALWAYS)
    differs = _DIFFERS.format(names=sql.Literal([name for name, _ in saved.compared]),
                              compared=sql.Literal([value for _, value in saved.compared]))
    return Restore(
        session=_SESSION.format(authorization=sql.Literal(saved.authorization),
                                role=sql.Literal(saved.role), always=always,
                                local=scope).as_string(conn),
        parameters=_PARAMETERS.format(values=sql.Literal(saved.values), differs=differs,
                                      per_transaction=_names(_PER_TRANSACTION),
                                      local=scope).as_string(conn),
        changed=sql.SQL("SELECT {} AS " + CHANGED).format(differs).as_string(conn))


def restore_sql(conn: psycopg.Connection, saved: Saved, *, local: bool = False) -> str:
    """All of `restore_parts`, to be sent as one."""
    return restore_parts(conn, saved, local=local).whole


def restore(conn: psycopg.Connection, saved: Saved) -> None:
    """Set the session back to `saved` now (autocommit)."""
    conn.execute(restore_sql(conn, saved))


def _names(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(map(sql.Literal, names)))


def _compared() -> sql.Composable:
    return _COMPARED.format(per_transaction=_names(_PER_TRANSACTION), always=_names(_ALWAYS))
