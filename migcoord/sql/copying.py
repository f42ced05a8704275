"""`COPY ... FROM STDIN` and `COPY ... TO STDOUT`: statements a migration cannot hold.

Both need a client that takes part in the copy: psql sends the lines after `COPY ...
FROM STDIN;` (up to `\\.`) as its rows, and prints what `TO STDOUT` returns. migcoord
sends a file to the server as SQL, as golang-migrate does, so the rows would be read as
SQL (a syntax error at the first row, after the statements before it ran) and the
connection would be left in the middle of a copy. `check` reports each such statement
(`client-copy`, checks/files.py), and `up` and `down` refuse the file before anything is sent.

    for copy in copying.client_copies(text):
        copy.statement.line, copy.direction    # "FROM STDIN" or "TO STDOUT"
"""

from __future__ import annotations

import attrs

from migcoord.sql import reader
from migcoord.sql._scanner import CLOSE_PAREN, COMMENTS, OPEN_PAREN, scan
from migcoord.sql.reader import Statement


@attrs.frozen
class ClientCopy:
    """One `COPY` whose data goes through the client."""

    statement: Statement
    #: "FROM STDIN" or "TO STDOUT".
    direction: str

    @property
    def message(self) -> str:
        if self.direction == "FROM STDIN":
            fate = ("the rows that follow it would be read as SQL and fail"
                    if self.statement.copy_data else
                    "the server would wait for rows that never come")
            return ("`COPY ... FROM STDIN` needs a client that sends its rows, as psql "
                    "sends the lines after it; migcoord sends the file to the server as SQL "
                    f"(as golang-migrate does), so {fate}")
        return ("`COPY ... TO STDOUT` needs a client that reads what it returns, as psql "
                "does; a migration has none")

    @property
    def hint(self) -> str:
        if self.direction == "FROM STDIN":
            return ("write the rows as `INSERT INTO table (columns) VALUES (...), (...);` "
                    "(or `COPY ... FROM 'file'` for a file on the database server)")
        return "remove it, or write the rows to a server file with `COPY ... TO 'file'`"


def client_copies(text: str) -> tuple[ClientCopy, ...]:
    """Every `COPY ... FROM STDIN` and `COPY ... TO STDOUT` of `text`, in file order."""
    lowered = text.lower()  # a substring test first: most files hold no COPY at all
    if "copy" not in lowered or ("stdin" not in lowered and "stdout" not in lowered):
        return ()
    found = []
    for statement in reader.statements(text):
        if statement.head[:1] != ("COPY",):
            continue
        direction = _client_side(statement.text)
        if direction is not None:
            found.append(ClientCopy(statement, direction))
    return tuple(found)


def _client_side(statement_text: str) -> str | None:
    """"FROM STDIN" or "TO STDOUT" when the COPY's own target (outside the parentheses
    of a query or a column list) is the client; else None."""
    depth = 0
    previous = ""
    for token in scan(statement_text).tokens:
        if token.name in COMMENTS:
            continue
        if token.name == OPEN_PAREN:
            depth += 1
        elif token.name == CLOSE_PAREN:
            depth = max(depth - 1, 0)
        elif depth == 0 and (previous, token.name) in (("FROM", "STDIN"), ("TO", "STDOUT")):
            return f"{previous} {token.name}"
        previous = token.name
    return None
