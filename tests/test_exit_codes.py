"""One map from a server's SQLSTATE to the exit code, and the SQLSTATE of a refused login.

The database tests make each fault happen on a real server (test_engine_server_errors,
test_engine_own_server); these pin the table itself, including the rows a test server
cannot easily produce (a full server, one starting up, PgBouncer's wording).
"""

from __future__ import annotations

import pytest

from migcoord.db.diagnosis import connect_sqlstate
from migcoord.errors import (
    EXIT_FAILED,
    EXIT_RETRY,
    EXIT_USAGE,
    ConnectError,
    ConnectionLost,
    MigrationFailed,
    MigrationLeftDirty,
    exit_code_for,
)


@pytest.mark.parametrize(("sqlstate", "code"), [
    ("55P03", EXIT_RETRY), ("40P01", EXIT_RETRY), ("40001", EXIT_RETRY),
    ("57P01", EXIT_RETRY), ("57P02", EXIT_RETRY), ("57P03", EXIT_RETRY),
    ("53300", EXIT_RETRY), ("08006", EXIT_RETRY), ("08003", EXIT_RETRY),
    ("57014", EXIT_FAILED), ("42501", EXIT_FAILED), ("23505", EXIT_FAILED),
    ("55000", EXIT_FAILED), ("3D000", EXIT_FAILED), ("28P01", EXIT_FAILED),
])
def test_a_failed_statement_is_worth_retrying_only_where_a_retry_can_succeed(
    sqlstate: str, code: int
) -> None:
    assert exit_code_for(sqlstate, default=EXIT_FAILED) == code
    assert MigrationFailed("m", sqlstate=sqlstate).exit_code == code


@pytest.mark.parametrize(("sqlstate", "code"), [
    ("28P01", EXIT_USAGE), ("28000", EXIT_USAGE), ("3D000", EXIT_USAGE),
    ("53300", EXIT_RETRY), ("57P03", EXIT_RETRY), ("42501", EXIT_FAILED), (None, EXIT_RETRY),
])
def test_a_refused_login_is_a_wrong_dsn_and_no_server_is_worth_retrying(
    sqlstate: str | None, code: int
) -> None:
    assert ConnectError("c", sqlstate=sqlstate).exit_code == code


def test_the_state_left_behind_decides_where_the_sqlstate_would_mislead() -> None:
    """A dirty migration needs an operator whatever stopped it; a lost session rolled back."""
    assert MigrationLeftDirty("m", sqlstate="55P03").exit_code == EXIT_FAILED
    assert ConnectionLost("c", sqlstate="XX000").exit_code == EXIT_RETRY


@pytest.mark.parametrize(("message", "sqlstate"), [
    ('connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  '
     'password authentication failed for user "deploy"', "28P01"),
    ('connection failed: connection to server at "db", port 5432 failed: '
     "fe_sendauth: no password supplied", "28P01"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     'database "billing" does not exist', "3D000"),
    ('connection failed: connection to server at "127.0.0.1", port 6432 failed: ERROR:  '
     "no such database: billing", "3D000"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     'role "deploy" does not exist', "28000"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     'role "deploy" is not permitted to log in', "28000"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     'no pg_hba.conf entry for host "10.0.0.9", user "deploy", database "billing", no '
     "encryption", "28000"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     'LDAP authentication failed for user "deploy"', "28000"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     'permission denied for database "billing"', "42501"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     "sorry, too many clients already", "53300"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     "remaining connection slots are reserved for roles with the SUPERUSER attribute",
     "53300"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     "the database system is starting up", "57P03"),
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     "the database system is in recovery mode", "57P03"),
    ('connection failed: connection to server at "db", port 5432 failed: Connection refused'
     "\n\tIs the server running on that host and accepting TCP/IP connections?", None),
    ('connection failed: could not translate host name "db" to address: Name or service '
     "not known", None),
    # A server that answers in another language: no match, counted as a network failure.
    ('connection failed: connection to server at "db", port 5432 failed: FATAL:  '
     'Passwort-Authentifizierung für Benutzer »deploy« fehlgeschlagen', None),
])
def test_the_sqlstate_of_a_refused_login_is_read_from_postgresqls_words(
    message: str, sqlstate: str | None
) -> None:
    assert connect_sqlstate(message) == sqlstate
