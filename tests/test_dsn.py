"""DSN rules (migcoord.db.dsn): reading, naming and hiding the password, without a server."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migcoord.db import dsn
from migcoord.errors import UsageError

PW = "s3cr3t"


@pytest.mark.parametrize("text", [
    f"postgresql://u:{PW}@h:5432/db",
    f"postgres://u:{PW}@h/db",
    f"postgresql://u:{PW}@x@h/db",
    f"postgresql://u:{PW}/x@h/db",
    f"postgresql://u:a:{PW}@h/db",
    f"postgresql://u:{PW}%40x%2F@h/db",
    f"postgresql://u:{PW}@h1:5432,h2:5433/db",
    f"postgresql://u:{PW}@[::1]:5432/db",
    f"connecting to 'postgresql://u:{PW}@h/db' failed",
    f"postgresqlx://u:{PW}@h/db",
    f"postgresql://u@h/db?password={PW}",
    f"postgresql://u@h/db?sslmode=require&password={PW}&application_name=x",
    f"host=h password={PW} dbname=db",
    f"host=h password = {PW} dbname=db",
    f"host=h password='{PW} with spaces' dbname=db",
    f"host=h password='{PW} \\' quote' dbname=db",
    f"host=h password='{PW}",
    f"host=h PASSWORD={PW}",
    f"PGPASSWORD={PW} migcoord up",
    f"host=h sslpassword={PW} sslkey=/k",
    f"postgresql://u@h/db?sslkey=/k&sslpassword={PW}",
    f"host=/tmp password={PW}",
])
def test_redact_hides_a_password_in_free_text(text: str) -> None:
    redacted = dsn.redact(text)
    assert PW not in redacted
    assert dsn.MASK in redacted


def test_redact_keeps_what_is_not_a_password() -> None:
    """Where the database is stays readable; other settings of a URL stay."""
    assert dsn.redact("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert dsn.redact("postgresql://u@h:5432/db?password=pw&sslmode=require") == (
        "postgresql://u@h:5432/db?password=***&sslmode=require")
    assert dsn.redact("host=h password=pw dbname=db") == "host=h password=*** dbname=db"
    plain = "could not connect to u@h:5432/db: password authentication failed for user \"u\""
    assert dsn.redact(plain) == plain


def test_describe_names_the_database_without_the_password() -> None:
    assert dsn.describe(f"postgresql://u:{PW}@h:6432/app") == "u@h:6432/app"
    assert dsn.describe(f"host=h password={PW} user=u") == "u@h:5432/u"
    assert dsn.describe("host=/tmp dbname=app") == "/tmp:5432/app"
    assert dsn.describe(f"host=h password='{PW}") == "(an unreadable DSN)"
    # libpq reads a raw `/` in the password as the end of the host part.
    assert PW not in dsn.describe(f"postgresql://u:1234/{PW}@h/app")
    assert "1234" not in dsn.describe(f"postgresql://u:1234/{PW}@h/app")


def test_public_url_has_no_password_and_keeps_the_other_settings() -> None:
    assert dsn.public_url(f"postgresql://u:{PW}@h:6432/app?sslmode=require&connect_timeout=3"
                          ) == "postgresql://u@h:6432/app?sslmode=require"
    assert dsn.public_url(f"host=/run/pg port=5433 user=u password={PW} dbname=app"
                          ) == "postgresql://u@/app?host=%2Frun%2Fpg&port=5433"
    assert dsn.public_url(f"postgresql://u:{PW}@[::1]:5432/app") == "postgresql://u@[::1]:5432/app"
    assert dsn.public_url(f"host=h user=u sslkey=/k sslpassword={PW}") == (
        "postgresql://u@h:5432/?sslkey=%2Fk")


def test_parse_refuses_an_unreadable_dsn_without_quoting_its_password() -> None:
    with pytest.raises(UsageError, match="the DSN cannot be read") as raised:
        dsn.parse(f"postgresql://u:{PW}%zz@h/db")
    assert PW not in str(raised.value)
    assert dsn.parse("postgresql://u@h:5/db") == {"user": "u", "host": "h", "port": "5",
                                                  "dbname": "db"}


def test_an_unreadable_dsn_keeps_the_keys_libpq_names_and_nothing_else_of_it() -> None:
    """A DSN that is only a secret is not quoted back; a misspelt key still is."""
    for text in (PW, f"host=h {PW}", f"{PW} host=h"):
        with pytest.raises(UsageError) as raised:
            dsn.parse(text)
        assert PW not in str(raised.value)
        assert 'missing "=" after "…"' in str(raised.value)
    with pytest.raises(UsageError, match='invalid connection option "pasword"'):
        dsn.parse("host=h pasword=x")
    with pytest.raises(UsageError, match='invalid URI query parameter: "bogus"'):
        dsn.parse("postgresql://u@h:5432/db?bogus=1")


def test_with_database_changes_only_the_database() -> None:
    moved = dsn.parse(dsn.with_database(f"postgresql://u:{PW}@h:5/db?sslmode=require", "other"))
    assert moved == {"user": "u", "password": PW, "host": "h", "port": "5", "dbname": "other",
                     "sslmode": "require"}


@pytest.mark.parametrize(("text", "whole", "pieces"), [
    (f"postgresql://u:{PW}@h/db", {PW}, set()),
    (f"postgresql://u:{quote(PW + '@/x', safe='')}@h/db",
     {PW + "@/x", quote(PW + "@/x", safe="")}, set()),
    # libpq: password "s3cr3t", host "tail@h": the password as meant, and its pieces.
    (f"postgresql://u:{PW}@tail@h/db", {f"{PW}@tail"}, {PW, "tail"}),
    # libpq: host "u", port "12", database "s3cr3t@h/db".
    (f"postgresql://u:12/{PW}@h/db", {f"12/{PW}"}, {"12", PW}),
    # libpq: password "one", then a key "s3cr3t" without its `=`.
    (f"host=h password=one {PW} dbname=db", {f"one {PW}"}, {"one", PW}),
    # As written, as libpq reads it (a backslash escapes the next character), as repr quotes it.
    ("host=h password=a\\b", {"ab", "a\\b", "a\\\\b"}, set()),
    (f"host=h password='{PW} x'", {f"{PW} x"}, set()),
])
def test_the_forms_a_password_may_take(text: str, whole: set[str], pieces: set[str]) -> None:
    found = dsn.Passwords.of(text)
    assert set(found.whole) == whole
    assert set(found.pieces) == pieces


def test_a_piece_is_hidden_only_as_a_word_of_its_own() -> None:
    hidden = dsn.hide_password("port '12' of host '12ab' is not a number; see 12",
                               "postgresql://u:12/s3cr3t@h/db")
    assert hidden == "port '***' of host '12ab' is not a number; see ***"


def test_a_remnant_of_a_cut_password_does_not_garble_the_message() -> None:
    """libpq reads `a` as the password of `u:a@b:s3cr3t@h` and `s3cr3t@h` as the port."""
    hidden = dsn.hide_password("port 's3cr3t@h:5432' failed at the later stage",
                               f"postgresql://u:a@b:{PW}@h:5432/db")
    assert hidden == "port '***@h:5432' failed at the later stage"


passwords = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                    min_size=4, max_size=30).map(lambda s: "Zq" + s)


@settings(max_examples=300, deadline=None)
@given(password=passwords)
def test_any_password_is_hidden_from_its_own_dsn_and_from_free_text(password: str) -> None:
    """URL (percent-encoded) and key=value (quoted): hidden from any message that quotes
    it, as written or as read; and the DSN itself redacted as free text."""
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    for text in (f"postgresql://u:{quote(password, safe='')}@h:5432/db",
                 f"host=h port=5432 user=u dbname=db password='{escaped}'"):
        message = f"could not connect: '{password}' / {text}"
        hidden = dsn.hide_password(message, text)
        assert password not in hidden
        assert quote(password, safe="") not in hidden
        assert password not in dsn.redact(text)
