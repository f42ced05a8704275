"""Connection strings: how migcoord reads them, names them, and never shows a password.

Every rule about a DSN lives here (as psycopg keeps its own in `psycopg.conninfo`):
reading one (`parse`), naming a database in a message (`describe`), a URL that is safe
to print (`public_url`), another database of the same server (`with_database`), and
the two ways a password is kept out of text:

- `hide_password(text, dsn)` when the DSN is at hand: it removes every form that DSN's
  password may take in a message (as libpq read it, as written, percent-decoded, and,
  for a URL whose password held an unescaped `/` or `@` that libpq took for the end of
  it, the pieces libpq took for a host, port or database name);
- `redact(text)` for text of unknown origin, the last line of defence before anything
  is printed or logged: a URL's user:password, `password=` pairs (quoted or not) and
  `?password=` query parameters.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import attrs

from migcoord.errors import UsageError

# psycopg is imported inside the functions that read a DSN, not here: the CLI runs
# `redact` on every command, most of which never connect, and importing psycopg
# would add some 70 ms to each of them.

MASK = "***"

#: The settings that hold a secret: the password, and the passphrase of the client's key.
_SECRET_KEYS = ("password", "sslpassword")
#: Settings that say nothing about where a database is, left out of `public_url`.
_PRIVATE = (*_SECRET_KEYS, "application_name", "connect_timeout")


def parse(dsn: str) -> dict[str, str]:
    """The DSN's settings as libpq reads them (a URL or key=value pairs), as text.

    Raises UsageError saying what libpq could not read, without the password.
    """
    try:
        return _read(dsn)
    except _Unreadable as err:
        reason = _without_quoted_values(hide_password(str(err), dsn), dsn)
        raise UsageError(f"the DSN cannot be read: {reason}",
                         hint="use postgresql://USER@HOST:PORT/DBNAME or key=value pairs") from None


def _without_quoted_values(message: str, dsn: str) -> str:
    """libpq's parse errors quote the piece of the DSN they stopped at (`missing "="
    after "..."`). A DSN that does not parse may be a password pasted on its own, so
    every quoted piece of it is left out, except a key written with its `=`."""

    def keep_keys(match: re.Match[str]) -> str:
        piece = match.group(1)
        if (not re.search(r"\w", piece) or piece not in dsn
                or re.search(rf"(?:^|[\s?&]){re.escape(piece)}\s*=", dsn)):
            return match.group(0)
        return '"…"'

    return re.sub(r'"([^"]*)"', keep_keys, message)


def describe(dsn: str) -> str:
    """`user@host:port/dbname` for messages: never the password, never the raw DSN."""
    try:
        params = parse(dsn)
    except UsageError:
        return "(an unreadable DSN)"
    user = params.get("user") or ""
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or user
    described = f"{user + '@' if user else ''}{host}:{port}/{dbname}"
    # Only a URL whose password libpq cut short puts a piece of it in these fields.
    cut = any("@" in params.get(key, "") for key in _LOCATION)
    return hide_password(described, dsn) if cut else described


def public_url(dsn: str) -> str:
    """`dsn` as a `postgresql://user@host:port/dbname` URL without the password.

    Safe to print; libpq finds the password where it found it before (PGPASSWORD,
    ~/.pgpass). Other settings such as sslmode are kept as query parameters.
    """
    params = parse(dsn)
    user = params.pop("user", "")
    host = params.pop("host", "localhost")
    port = params.pop("port", "5432")
    dbname = params.pop("dbname", "")
    for private in _PRIVATE:
        params.pop(private, None)
    user_part = f"{quote(user, safe='')}@" if user else ""
    if host.startswith("/"):
        params = {"host": host, "port": port, **params}
        host_part = ""
    else:
        host_part = (f"[{host}]" if ":" in host else host) + f":{port}"
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"postgresql://{user_part}{host_part}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointed at another database of the same server."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, dbname=database)


def first_line(err: BaseException) -> str:
    """The first line of an exception's text (libpq adds detail lines), or its type."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class _Unreadable(ValueError):
    """libpq could not read a DSN; the text is libpq's message, which may quote it."""


def _read(dsn: str) -> dict[str, str]:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as err:
        raise _Unreadable(first_line(err)) from None
    except UnicodeDecodeError:
        # psycopg decodes libpq's values as UTF-8: `%80` in a URL used to be a traceback.
        raise _Unreadable("a percent-encoded value is not valid UTF-8") from None
    return {key: str(value) for key, value in params.items() if value is not None}


# -- keeping the password out of text ----------------------------------------------------

_URL = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://(?P<rest>.*?)\s*$", re.DOTALL)
# libpq ends a URL's user:password at the first `@`, or at a `/` before any `@`.
_LIBPQ_USERINFO = re.compile(r"^[^@/:]*:(?P<pw>[^@/]*)@")
_QUERY_PASSWORD = re.compile(r"[?&](?:ssl)?password=(?P<pw>[^&#]*)", re.IGNORECASE)
# Quoted, backslash escapes inside; an unterminated quote runs to the end.
_QUOTED_PASSWORD = re.compile(r"\b(?:ssl)?password\s*=\s*'(?P<pw>(?:[^'\\]|\\.)*)",
                              re.IGNORECASE | re.DOTALL)
# Unquoted: up to a space, backslash escapes inside.
_UNQUOTED_PASSWORD = re.compile(
    r"\b(?:ssl)?password\s*=\s*(?P<pw>(?:\\.|[^\s'\\])(?:\\.|[^\s\\])*)", re.IGNORECASE)
# Where libpq cut a URL's password that held an unescaped delimiter...
_URL_DELIMITERS = re.compile(r"[/@:?#&=,]+")
# ... or a key=value password that held a space (libpq's isspace: ASCII only).
_KEYVALUE_DELIMITERS = re.compile(r"[ \t\n\r\f\v=]+")
#: Where a URL's password ends up when libpq cuts it short.
_LOCATION = ("host", "hostaddr", "port", "dbname")


@attrs.frozen
class Passwords:
    """What a message may quote of one DSN's password.

    `whole`: the password as written, as libpq read it, and percent-decoded; hidden
    wherever they appear. `pieces`: where libpq cut a malformed password (an unescaped
    `/` or `@` in a URL, a space in an unquoted value) and quotes a piece as a host,
    port, database name or key; hidden where they stand as a word of their own.
    """

    whole: tuple[str, ...] = ()
    pieces: tuple[str, ...] = ()

    @classmethod
    def of(cls, dsn: str) -> Passwords:
        """Read from `dsn`, which libpq need not be able to read (its error messages
        quote exactly those DSNs)."""
        whole: set[str] = set()
        pieces: set[str] = set()
        try:
            parsed: dict[str, str] | None = _read(dsn)
        except _Unreadable:
            parsed = None
        if parsed is not None:
            whole.update(parsed.get(key, "") for key in _SECRET_KEYS)
        url = _URL.match(dsn)
        if url is not None:
            rest = url["rest"]
            libpq = _LIBPQ_USERINFO.match(rest)
            if libpq is not None:
                whole.add(libpq["pw"])
            whole.update(match["pw"] for match in _QUERY_PASSWORD.finditer(rest))
            # A host, port or database name never holds `@`: libpq cut the password short.
            where = "".join(parsed.get(key, "") for key in _LOCATION) if parsed else "@"
            meant = _meant_url_password(rest) if "@" in where else ""
            if meant:
                whole.add(meant)
                pieces.update(_URL_DELIMITERS.split(meant))
        else:
            whole.update(match["pw"] for match in _QUOTED_PASSWORD.finditer(dsn))
            whole.update(match["pw"] for match in _UNQUOTED_PASSWORD.finditer(dsn))
            if parsed is None:
                # An unquoted password may have run on over spaces into what libpq then
                # took for keys, one of which its message quotes.
                for meant in _meant_keyvalue_passwords(dsn):
                    whole.add(meant)
                    pieces.update(_KEYVALUE_DELIMITERS.split(meant))
        # What libpq read of a password it cut short (`pa` of `pa@ss`) is a piece too:
        # replaced everywhere, a one-letter remnant would garble the whole message.
        pieces |= {text for text in whole if any(text in other and text != other
                                                 for other in whole)}
        whole = {form for text in whole - pieces for form in _quoted_forms(text)}
        pieces = {form for text in pieces for form in _quoted_forms(text)} - whole
        return cls(whole=_longest_first(whole), pieces=_longest_first(pieces))

    def hide(self, text: str) -> str:
        """`text` with each of these replaced by ***, longest first (so that a password
        goes whole before a piece of it could leave the rest showing)."""
        secrets = [(secret, False) for secret in self.whole]
        secrets += [(piece, True) for piece in self.pieces]
        for secret, as_word in sorted(secrets, key=lambda item: len(item[0]), reverse=True):
            if as_word:
                text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
            else:
                text = text.replace(secret, MASK)
        return text


def _meant_url_password(rest: str) -> str:
    """A URL's password as meant, when libpq cut it short: up to the last `@`.

    `postgresql://u:pa/ss@host/db` reads in libpq as host `u`, port `pa`, database
    `ss@host/db`; `u:pa@ss@host` as password `pa`, host `ss@host`. Messages about the
    host, port or database then quote a piece of the password.
    """
    end = rest.rfind("@")
    userinfo = rest[:end] if end >= 0 else ""
    return userinfo.split(":", 1)[1] if ":" in userinfo else ""


def _meant_keyvalue_passwords(dsn: str) -> list[str]:
    """Each unquoted `password=` value as meant: up to the next key libpq knows."""
    import psycopg

    keys = "|".join(re.escape(option.keyword.decode())
                    for option in psycopg.pq.Conninfo.get_defaults())
    meant = re.compile(rf"\b(?:ssl)?password\s*=\s*(?!')(?P<pw>.*?)(?=\s+(?:{keys})\s*=|\s*$)",
                       re.IGNORECASE | re.DOTALL)
    return [match["pw"] for match in meant.finditer(dsn)]


def _quoted_forms(text: str) -> set[str]:
    """`text` as written, percent-decoded, and as Python's repr quotes it (psycopg's
    messages do): a backslash doubled, a quote escaped."""
    forms = {text, unquote(text)}
    return forms | {repr(form)[1:-1] for form in forms} | {form.replace("\\", "\\\\") for form in forms}


def _longest_first(texts: set[str]) -> tuple[str, ...]:
    # Longest first, so that a password is hidden whole before any piece of it.
    return tuple(sorted(texts - {""}, key=len, reverse=True))


def hide_password(text: str, dsn: str) -> str:
    """`text` with `dsn`'s password hidden in every form a message may quote it (see
    `Passwords`), and then `redact`ed."""
    return redact(Passwords.of(dsn).hide(text))


# Free text: a URL's user:password up to the last `@` of the word (a password may hold
# `@`, `/`, `:`); `password=` (and `sslpassword=`, `PGPASSWORD=`) as a query parameter,
# quoted or not.
_TEXT_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<pw>\S*)@")
_TEXT_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)
_TEXT_KEYVALUE_PASSWORD = re.compile(
    r"(?P<head>(?<![?&])\b(?:PG|ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|(?:\\.|[^\s'\\])+)",
    re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with passwords in DSNs hidden: the last line of defence before printing."""
    text = _TEXT_URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _TEXT_QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
    return _TEXT_KEYVALUE_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
