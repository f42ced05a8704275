"""A password in the DSN never shows: not in output, logs, exceptions or the database.

The test server trusts local connections, so the password is accepted and never
checked; what matters is that every path that could echo the DSN does not.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import PgServer
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from helpers import make_tree, pair, run, run_process
from migcoord import ConnectError, Coordinator, LockTimeout, MigcoordError, MigrationFailed
from test_engine_support import (
    AB_CONFIG,
    capture_migcoord_log,
    env,
    holding_lock,
    query,
    temporary_role,
)

PASSWORD = "s3cr3t-pass"
FRAGMENT = "s3cr3t"


@pytest.fixture
def password_role(pg_server: PgServer, dsn: str) -> Iterator[str]:
    """A superuser login role whose password is PASSWORD, dropped afterwards."""
    with temporary_role(pg_server, dsn, "mc_pw", attributes="LOGIN SUPERUSER",
                        password=PASSWORD) as role:
        yield role


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dsn_forms(dsn: str, role: str, *, port: int | None = None) -> dict[str, str]:
    """The same target as a URL and as key=value pairs, both carrying PASSWORD."""
    params = conninfo_to_dict(dsn)
    host, dbname = params["host"], params["dbname"]
    port = port or int(params["port"])
    return {
        "url": f"postgresql://{role}:{PASSWORD}@{host}:{port}/{dbname}?connect_timeout=5",
        "keyvalue": make_conninfo(host=host, port=port, dbname=dbname, user=role,
                                  password=PASSWORD, connect_timeout=5),
    }


def tree(root: Path) -> Path:
    """a: one good migration; b: one that fails."""
    return make_tree(root, {
        **pair("a", "000001", "good", "CREATE TABLE good (id int);\n", "DROP TABLE good;\n"),
        **pair("b", "000002", "bad", "CREATE TABLE bad (id nosuchtype);\n", "SELECT 1;\n"),
    }, config=AB_CONFIG)


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert FRAGMENT not in text, text


@pytest.mark.parametrize("form", ["url", "keyvalue"])
def test_password_never_appears_in_cli_output(
    tmp_path: Path, dsn: str, password_role: str, form: str
) -> None:
    """Failing and successful up, status, unreachable server, lock timeout: no password."""
    root = tree(tmp_path)
    secret_dsn = dsn_forms(dsn, password_role)[form]
    unreachable = dsn_forms(dsn, password_role, port=free_port())[form]
    results = []
    for fmt in ("text", "json"):
        results += [
            ("failing up", 1, run(["up", "--service", "b", "-v", "--format", fmt], cwd=root,
                                  environ=env(secret_dsn))),
            ("up", 0, run(["up", "--service", "a", "-v", "--format", fmt], cwd=root,
                          environ=env(secret_dsn))),
            ("status", 0, run(["status", "-v", "--format", fmt, "--dsn", secret_dsn],
                              cwd=root)),
            ("check --db", 0, run(["check", "--db", "-v", "--format", fmt], cwd=root,
                                  environ=env(secret_dsn))),
            ("unreachable", 3, run(["status", "-v", "--format", fmt], cwd=root,
                                   environ=env(unreachable))),
        ]
        with holding_lock(dsn, application_name="holder"):
            results.append(("lock timeout", 3, run(
                ["up", "--service", "b", "--lock-timeout", "0.2", "-v", "--format", fmt],
                cwd=root, environ=env(secret_dsn))))

    for what, code, result in results:
        assert result.code == code, (what, result)
        assert_clean(result.stdout, result.stderr)
    assert "could not connect" in results[4][2].stderr
    assert query(dsn, "SELECT count(*) FROM migcoord_history") == [(1,)]


def test_password_never_appears_in_the_database(
    tmp_path: Path, dsn: str, password_role: str
) -> None:
    """History, events and pg_stat_activity carry no password after up, failure and mark."""
    root = tree(tmp_path)
    secret = dsn_forms(dsn, password_role)["url"]
    assert run(["up", "--all"], cwd=root, environ=env(secret)).code == 1
    assert run(["mark", "2", "--applied", "--reason", "by hand"], cwd=root,
               environ=env(secret)).code == 0
    assert run(["down", "--service", "a"], cwd=root, environ=env(secret)).code == 0

    for table in ("migcoord_history", "migcoord_events"):
        dumped = query(dsn, f"SELECT t::text FROM {table} t")
        assert dumped
        assert_clean(*(row[0] for row in dumped))
    assert query(dsn, "SELECT actor FROM migcoord_events LIMIT 1")[0][0].startswith(password_role)


def test_password_never_appears_in_api_errors_or_logs(
    tmp_path: Path, dsn: str, password_role: str
) -> None:
    """The library's exceptions and `migcoord` log records hold no password."""
    coordinator = Coordinator.load(tree(tmp_path) / "migcoord.toml", environ={})
    forms = dsn_forms(dsn, password_role)
    unreachable = dsn_forms(dsn, password_role, port=free_port())
    errors: list[MigcoordError] = []
    with capture_migcoord_log() as log:
        for form, secret in forms.items():
            with pytest.raises(MigrationFailed) as failed:
                coordinator.up("b", dsn=secret)
            errors.append(failed.value)
            coordinator.up("a", dsn=secret)
            coordinator.status(dsn=secret)
            coordinator.down("a", dsn=secret)
            with pytest.raises(ConnectError) as unreached:
                coordinator.status(dsn=unreachable[form])
            errors.append(unreached.value)
            with holding_lock(dsn, application_name="holder"), \
                    pytest.raises(LockTimeout) as timed_out:
                coordinator.up("b", dsn=secret, lock_timeout=0.2)
            errors.append(timed_out.value)

    assert len(errors) == 6
    for error in errors:
        assert_clean(str(error), repr(error), error.message, error.hint or "",
                     *(str(arg) for arg in error.args))
    assert "applied 000001 a good" in log.text
    assert_clean(log.text)


@pytest.mark.parametrize("dsn_text", [
    f"postgresql://someone:{PASSWORD}%zz@127.0.0.1:5432/db",
    f"postgresql://127.0.0.1:5432/db?password={PASSWORD}%zz",
    f"host=127.0.0.1 password={PASSWORD} dbname",
    f"host=127.0.0.1 password='{PASSWORD}",
    f"postgresql://someone:{PASSWORD}@127.0.0.1:notaport/db",
    # libpq quotes the whole URL, or the piece it stopped at.
    f"postgresql://someone:{PASSWORD}@[::1/db",
    f"postgresql://someone:{PASSWORD} x@127.0.0.1:5432/db",
    f"postgresql://127.0.0.1:5432/db?password=%00{PASSWORD}",
    f"postgresqlx://someone:{PASSWORD}@127.0.0.1:5432/db",
    # An unquoted password with a space: libpq says "{PASSWORD}" lacks its `=`.
    f"host=127.0.0.1 password=x {PASSWORD} dbname=db",
    # A raw `/` ends the URL's host part, so libpq reads the password as the port.
    f"postgresql://someone:{PASSWORD}/{PASSWORD}@127.0.0.1:5432/db",
    # ... and psycopg quotes it with repr(), a backslash doubled.
    f"postgresql://someone:{PASSWORD}\\x/@127.0.0.1:5432/db",
    # libpq: password "a", host "b", port "{PASSWORD}@127.0.0.1:5432".
    f"postgresql://someone:a@b:{PASSWORD}@127.0.0.1:5432/db",
    # Not valid UTF-8 once decoded, and a host name with an empty label: both were
    # tracebacks from psycopg and Python's resolver.
    f"postgresql://someone:{PASSWORD}%80@127.0.0.1:5432/db",
    f"postgresql://someone:{PASSWORD}@.@127.0.0.1:5432/db",
    # The secret pasted where the DSN belongs: libpq quotes it as a key without its `=`.
    PASSWORD,
    f"host=127.0.0.1 {PASSWORD}",
])
def test_an_unreadable_dsn_is_reported_without_its_password(
    tmp_path: Path, dsn_text: str
) -> None:
    """A DSN that libpq cannot use is reported, without echoing the password."""
    root = tree(tmp_path)
    result = run(["status"], cwd=root, environ=env(dsn_text))
    assert result.code in (2, 3), result
    assert "DSN" in result.stderr
    assert_clean(result.stdout, result.stderr)
    with pytest.raises(MigcoordError) as raised:
        Coordinator.load(root / "migcoord.toml", environ={}).status(dsn=dsn_text)
    assert_clean(str(raised.value))


def attack_dsns(dsn: str, role: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """DSNs of every shape whose password holds FRAGMENT: {what: (dsn, texts that must not
    show)}. The well-formed ones connect (the server does not check the password); the
    malformed ones make libpq and migcoord describe what they read."""
    params = conninfo_to_dict(dsn)
    host, port, db = params["host"], params["port"], params["dbname"]
    closed = free_port()
    encoded = quote(f"{PASSWORD}@/:#?% x", safe="")
    at = f"{host}:{port}/{db}"
    return {
        "url, percent-encoded @ / : # ? % and space": (f"postgresql://{role}:{encoded}@{at}", ()),
        "url, raw : # ?": (f"postgresql://{role}:{PASSWORD}:#?x@{at}", ()),
        "url, ?password=": (f"postgresql://{role}@{at}?password={PASSWORD}", ()),
        "url, two hosts, the first closed": (
            f"postgresql://{role}:{PASSWORD}@{host}:{closed},{host}:{port}/{db}", ()),
        "key=value, quoted, space and \\'": (
            f"host={host} port={port} dbname={db} user={role} password='{PASSWORD} \\' x'", ()),
        "url, raw @": (f"postgresql://{role}:{PASSWORD}@tail{PASSWORD}@{at}", ()),
        "url, raw /": (f"postgresql://{role}:{PASSWORD}/{PASSWORD}@{at}", ()),
        "url, raw / after digits": (f"postgresql://{role}:98765/x{PASSWORD}@{at}", ("98765",)),
        "url, raw @ and /": (f"postgresql://{role}:a/{PASSWORD}@b{PASSWORD}@{at}", ()),
        "url, raw space": (f"postgresql://{role}:{PASSWORD} x@{at}", ()),
        "url, IPv6, closed": (f"postgresql://{role}:{PASSWORD}@[::1]:{closed}/{db}", ()),
        "url, two hosts, both closed": (
            f"postgresql://{role}:{PASSWORD}@{host}:{closed},[::1]:{closed}/{db}", ()),
        "url, port not a number": (f"postgresql://{role}:{PASSWORD}@{host}:5x/{db}", ()),
        "key=value, unquoted with a space": (
            f"host={host} port={port} password=x{PASSWORD} {PASSWORD}y dbname={db}", ()),
        "key=value, unix socket": (
            f"host=/nonexistent-migcoord port={port} password={PASSWORD} dbname={db}", ()),
        "key=value, unterminated quote": (f"host={host} port={port} password='{PASSWORD}", ()),
    }


def test_no_shape_of_dsn_shows_its_password(tmp_path: Path, dsn: str, password_role: str) -> None:
    """status and up, text and JSON, with -v, and the API's errors: for every DSN shape."""
    root = tree(tmp_path)
    coordinator = Coordinator.load(root / "migcoord.toml", environ={})
    outcomes = set()
    for what, (secret_dsn, also) in attack_dsns(dsn, password_role).items():
        shown = []
        for fmt in ("text", "json"):
            for command in (["status"], ["up", "--service", "a"]):
                result = run([*command, "-v", "--format", fmt], cwd=root, environ=env(secret_dsn))
                assert result.code in (0, 2, 3), (what, result)
                outcomes.add(result.code)
                shown += [result.stdout, result.stderr]
            result = run(["status", "-v", "--format", fmt, "--dsn", secret_dsn], cwd=root)
            shown += [result.stdout, result.stderr]
        with capture_migcoord_log() as log:
            try:
                coordinator.status(dsn=secret_dsn)
            except MigcoordError as error:
                shown += [str(error), repr(error), str(error.as_json())]
        shown.append(log.text)
        for text in shown:
            for forbidden in (FRAGMENT, *also):
                assert forbidden not in text, (what, text)
    assert outcomes == {0, 2, 3}


def test_pgpassword_never_appears(tmp_path: Path, dsn: str, password_role: str) -> None:
    """The password from $PGPASSWORD, which libpq reads itself: reachable or not."""
    root = tree(tmp_path)
    for target in (dsn_forms(dsn, password_role)["url"],
                   dsn_forms(dsn, password_role, port=free_port())["url"]):
        without = make_conninfo(target, password="")
        for fmt in ("text", "json"):
            result = run_process(["status", "-v", "--format", fmt], cwd=root,
                                 environ={**env(without), "PGPASSWORD": PASSWORD})
            assert result.code in (0, 3), result
            assert_clean(result.stdout, result.stderr)
