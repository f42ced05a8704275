"""What a server error means: a lost connection or a refusal, and its cause in words.

psycopg raises `OperationalError` both when the connection is gone and for errors of a
live session in SQLSTATE classes 40, 53, 55 and 57: a lock timeout, a deadlock, a
statement timeout, a serialization failure. Only the connection's own state tells them
apart (`lost`); telling them apart by exception class reported a lock timeout as "lost
the connection". The exit code of each is decided by `migcoord.errors.exit_code_for`.

libpq reports no SQLSTATE for a failed connection attempt, only the server's sentence;
`connect_sqlstate` reads the SQLSTATE back from PostgreSQL's (English) wording, so that
a wrong password is not reported as worth retrying. A server that answers in another
language gives no match, and the failure counts as a network one (exit 3).
"""

from __future__ import annotations

import re

import attrs
import psycopg


def lost(conn: psycopg.Connection) -> bool:
    """Whether `conn` is gone (closed, or broken by the server or the network)."""
    return conn.closed or conn.broken


@attrs.frozen
class Cause:
    """Why the server stopped a statement, and what to look at or change."""

    #: Completes "the statement failed because ...".
    because: str
    #: What to look at or change before running it again ("" when nothing in particular).
    advice: str = ""


#: The SQLSTATEs whose server message alone does not say what happened or what to do.
CAUSES: dict[str, Cause] = {
    "55P03": Cause(
        "it waited longer than lock_timeout for a lock that another session holds",
        "pg_locks and pg_stat_activity show who holds the lock it waited for"),
    "57014": Cause(
        "it ran longer than statement_timeout, or someone cancelled it (pg_cancel_backend)",
        "running it as it is will time out again: raise statement_timeout for this "
        "migration (`-- migcoord:statement-timeout 10min` at its top) or make the "
        "statement faster"),
    "40P01": Cause(
        "it deadlocked with another session, and PostgreSQL cancelled it to end the deadlock",
        "if it recurs, take the tables' locks in one order at the top of the migration "
        "(`LOCK TABLE a, b IN ... MODE;`)"),
    "40001": Cause("a concurrent transaction changed data it read (a serialization failure)"),
    "42501": Cause(
        "the role it runs as lacks a privilege",
        "grant the privilege the server names to the migration role (or to the service's "
        "`role`)"),
}


#: 57014 told apart by the server's (English) words; other wordings get CAUSES' text.
_CANCELLED_BY = (
    ("due to statement timeout", Cause(
        "it ran longer than statement_timeout",
        "running it as it is will time out again: raise statement_timeout for this "
        "migration (`-- migcoord:statement-timeout 10min` at its top) or make the "
        "statement faster")),
    ("due to user request", Cause(
        "someone cancelled it (pg_cancel_backend, or a client's cancel request)",
        "find out who cancelled it (an operator, or a tool that cancels long queries) and "
        "run it again when it will not be")),
)


def cause(sqlstate: str | None, message: str | None = None) -> Cause | None:
    """The cause of a failure with `sqlstate` (and the server's `message`, where its words
    tell causes of one SQLSTATE apart), where the message alone would leave a reader
    guessing; else None."""
    if sqlstate == "57014" and message:
        for words, known in _CANCELLED_BY:
            if words in message:
                return known
    return CAUSES.get(sqlstate or "")


# The server's words for a refused connection, in the order they are tried. The SQLSTATE
# is what the server sent; libpq keeps only the words. "no password supplied" is libpq's
# own: the server asked for a password that the DSN does not have.
_CONNECT_SQLSTATES = (
    (re.compile(r"password authentication failed|no password supplied"), "28P01"),
    (re.compile(r'database "[^"]*" does not exist|no such database'), "3D000"),
    (re.compile(r'role "[^"]*" (does not exist|is not permitted to log in)'
                r"|no pg_hba\.conf entry|pg_hba\.conf rejects|authentication failed for user"),
     "28000"),
    (re.compile(r"permission denied for database|permission denied to set parameter"),
     "42501"),
    (re.compile(r'invalid value for parameter "'), "22023"),
    (re.compile(r'unrecognized configuration parameter "'), "42704"),
    (re.compile(r'parameter "[^"]*" cannot be (changed|set)'), "55P02"),
    (re.compile(r"too many clients already|remaining connection slots are reserved"),
     "53300"),
    (re.compile(r"the database system is (starting up|shutting down|in recovery mode"
                r"|not yet accepting connections|not accepting connections)"), "57P03"),
)


# libpq's own refusals of the DSN's security and option settings: the same settings
# against the same server fail the same way every time, so retrying will not help.
_SETTINGS_REFUSED = (
    (re.compile(r"server does not support SSL, but SSL was required"),
     "the DSN requires SSL (sslmode=require, verify-ca or verify-full) and the server does "
     "not offer it: enable SSL on the server, or use sslmode=prefer or disable if the "
     "network is trusted"),
    (re.compile(r"root certificate file .* does not exist|could not read root certificate"
                r"|certificate verify failed|does not match host name"
                r"|could not (open|load|read) (certificate|private key)|private key file"),
     "the server's certificate could not be checked with the DSN's SSL settings: point "
     "sslrootcert at the CA that signed it (and sslcert/sslkey at readable client files), "
     "or use the host name the certificate names"),
    (re.compile(r"channel binding (is )?required"),
     "the DSN asks for channel_binding=require, which needs SCRAM over SSL: enable SSL on "
     "the server or drop channel_binding"),
    (re.compile(r"GSSAPI encryption required"),
     "the DSN asks for gssencmode=require without Kerberos credentials: run kinit, or use "
     "gssencmode=prefer or disable"),
    (re.compile(r'invalid \w+ value: "'),
     "a DSN option has a value libpq does not accept: check the spelling of its value"),
    # The server's refusal of a setting the DSN sends (`options=-c NAME=VALUE`, or
    # PGOPTIONS): the value, the name, or a setting that cannot be changed per session.
    (re.compile(r'invalid value for parameter "|unrecognized configuration parameter "'
                r'|parameter "[^"]*" cannot be (changed|set)'
                r'|permission denied to set parameter "'),
     "the server refused a setting the DSN sends (its options=-c NAME=VALUE, or "
     "PGOPTIONS): correct or remove it"),
)


def settings_refused(message: str) -> str | None:
    """What to change when libpq refused a connection because of the DSN's own SSL, GSS or
    option settings (a retry cannot help); None for any other failure."""
    for pattern, advice in _SETTINGS_REFUSED:
        if pattern.search(message):
            return advice
    return None


def connect_sqlstate(message: str) -> str | None:
    """The SQLSTATE behind a failed connection attempt's `message`, where PostgreSQL's
    wording names it; None for a network failure or an unknown (or translated) message."""
    for pattern, sqlstate in _CONNECT_SQLSTATES:
        if pattern.search(message):
            return sqlstate
    return None


def connect_advice(sqlstate: str | None) -> str:
    """What to do after a failed connection attempt with `sqlstate`."""
    if sqlstate == "28P01":
        return ("the server refused the password: check the password in the DSN "
                "(--dsn or the configured environment variable; percent-encode @ : / % in a "
                "URL); retrying will not help")
    if sqlstate == "3D000":
        return ("no database of that name on that server: check the database name in the "
                "DSN, or create the database first (createdb NAME); retrying will not help")
    if sqlstate is not None and sqlstate.startswith("28"):
        return ("the server does not let this user in (no such role, or pg_hba.conf or an "
                "authentication method such as ident, LDAP or a certificate refused it): "
                "check the user name and credentials in the DSN, and that pg_hba.conf allows "
                "them from this host; retrying will not help")
    if sqlstate == "42501":
        return "grant CONNECT on the database to the DSN's user"
    return ("check that the server is up and the DSN's host and port are right; this is "
            "worth retrying")
