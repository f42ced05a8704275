"""What a migration file's own transaction control means, and whether its statements fit
in a transaction: decided here once, for `check` and for the executor alike.

    from migcoord.sql import transactions

    found = transactions.explicit_transaction(text, no_transaction=False)
    found.refused        # each an explicit-transaction error; up/down refuse the file
    found.wrapper        # a whole-file BEGIN; ... COMMIT; that runs as its body
    found.body(text)     # what to send: the file, or the wrapper's body

    fit = transactions.transaction_fit(text, wrapper=found.wrapper is not None)
    fit.alone            # its only statement cannot run in a transaction: run it outside
    fit.refused          # such statements among others: concurrently-in-transaction

migcoord runs each migration and its history row in one transaction. golang-migrate's
README recommends wrapping a migration in `BEGIN; ... COMMIT;`: such a whole-file wrapper
is accepted and its body runs in migcoord's transaction, which has the same effect.
Every other statement that would end, abandon or park that transaction is refused before
anything is sent. And golang-migrate sends a file as one query, which PostgreSQL runs
outside any transaction block when it holds one statement: so a file whose only
statement cannot run in a transaction (`CREATE INDEX CONCURRENTLY`, `VACUUM`...) runs
outside one, while such a statement among others is an error (`lints.fit` says which).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from migcoord.sql import reader
from migcoord.sql._scanner import COMMENTS, scan
from migcoord.sql.reader import Statement, TransactionControl

if TYPE_CHECKING:
    from migcoord.sql.analysis import TransactionFit

#: The finding code of transaction control that a migration may not hold.
EXPLICIT_TRANSACTION = "explicit-transaction"

# Every statement with a concurrently-in-transaction hazard holds one of these keywords
# (see `lints._HAZARDS`); a file without any of them is not parsed to find out.
_MAY_NOT_FIT = re.compile(
    r"\b(?:concurrently|vacuum|reindex|cluster|database|system|tablespace)\b",
    re.IGNORECASE)


@attrs.frozen
class Refusal:
    """A transaction control statement that a migration may not hold, and why."""

    control: TransactionControl
    message: str
    hint: str

    @property
    def line(self) -> int:
        return self.control.line

    @property
    def column(self) -> int:
        return self.control.column


@attrs.frozen
class Wrapper:
    """A whole-file `BEGIN; ... COMMIT;`, as golang-migrate's README recommends: the file
    is run as its body inside the transaction migcoord runs every migration in."""

    begin: Statement
    commit: Statement
    #: The transaction modes of the BEGIN (`ISOLATION LEVEL SERIALIZABLE`), or "".
    modes: str = ""

    def body(self, text: str) -> str:
        """`text` (the file the wrapper was read from) with the BEGIN and the COMMIT
        blanked: every other character keeps its offset, line and column, so the server's
        error positions still point into the file."""
        return "".join((text[:self.begin.start], _blank(text[self.begin.start:self.begin.end]),
                        text[self.begin.end:self.commit.start],
                        _blank(text[self.commit.start:self.commit.end]), text[self.commit.end:]))


@attrs.frozen
class ExplicitTransaction:
    """What a file's own transaction control means for running it (`explicit_transaction`)."""

    #: The whole-file wrapper, when the file has an accepted one.
    wrapper: Wrapper | None = None
    #: Everything else, and what would release migcoord's migration lock (`DISCARD ALL`,
    #: `pg_advisory_unlock_all()`): each one an `explicit-transaction` error, and
    #: `up`/`down` refuse the file before sending anything.
    refused: tuple[Refusal, ...] = ()

    def body(self, text: str) -> str:
        """What to send of `text`: the file, or its wrapper's body."""
        return self.wrapper.body(text) if self.wrapper is not None else text


def explicit_transaction(text: str, *, no_transaction: bool = False) -> ExplicitTransaction:
    """Decide what the transaction control in a migration file means: `check` reports
    `refused` as explicit-transaction errors, and the executor refuses the same file, or
    runs its wrapper's body.

    A whole-file wrapper is accepted: the first statement is `BEGIN` or `START
    TRANSACTION`, the last is `COMMIT` or `END` (not `AND CHAIN`), and no other statement
    controls the transaction; comments may come before and after it. golang-migrate sends
    such a file as one query, which the wrapper makes one transaction; migcoord runs the
    body in the transaction it holds anyway, with the history row. Any other transaction
    control is refused, and so is a wrapper in a `-- migcoord:no-transaction` file
    (`no_transaction`), which asks for the opposite.
    """
    every = reader.transaction_control(text)
    releasing = _lock_releasing(text, every)
    controls = [control for control in every if control.words != DISCARD_ALL]
    if not controls:
        return ExplicitTransaction(refused=releasing)
    wrapper = _wrapper(reader.statements(text), controls)
    if wrapper is not None and not no_transaction:
        return ExplicitTransaction(wrapper=wrapper, refused=releasing)
    if wrapper is not None:
        return ExplicitTransaction(refused=tuple(
            Refusal(control, f"{control.words} controls the transaction of a file marked "
                    "`-- migcoord:no-transaction`, whose statements run one by one outside "
                    "any transaction", _NO_TRANSACTION_WRAPPER_HINT)
            for control in controls) + releasing)
    return ExplicitTransaction(refused=_in_file_order(
        tuple(_refusal(control) for control in controls) + releasing))


DISCARD_ALL = "DISCARD ALL"
_UNLOCK_ALL = "pg_advisory_unlock_all"


def _lock_releasing(text: str, controls: Sequence[TransactionControl]) -> tuple[Refusal, ...]:
    """`DISCARD ALL` and calls of `pg_advisory_unlock_all()`: both release every advisory
    lock of the session at once, migcoord's migration lock among them, so another
    process could start migrating while this one goes on. Found anywhere in a statement
    (a DO block or a function body too), since where it runs cannot be known."""
    found = [Refusal(control, "DISCARD ALL would release migcoord's migration lock (and "
                     "reset the session), so another process could run migrations at the "
                     "same time as this one", "delete it; to drop temporary objects use "
                     "`DISCARD TEMP`, to forget cached plans `DISCARD PLANS`")
             for control in controls if control.words == DISCARD_ALL]
    if _UNLOCK_ALL in text.lower():
        found += [Refusal(TransactionControl(statement, "pg_advisory_unlock_all()"),
                          "pg_advisory_unlock_all() would release migcoord's migration lock, "
                          "so another process could run migrations at the same time as this "
                          "one", "delete it; release only the advisory locks the migration "
                          "took itself, with `pg_advisory_unlock(key)`, or use "
                          "`pg_advisory_xact_lock(key)`, which ends with the transaction")
                  for statement in reader.statements(text)
                  if _UNLOCK_ALL in statement.text.lower()]
    return _in_file_order(tuple(found))


def _in_file_order(refusals: tuple[Refusal, ...]) -> tuple[Refusal, ...]:
    return tuple(sorted(refusals, key=lambda refusal: refusal.control.statement.start))


_NO_TRANSACTION_WRAPPER_HINT = (
    "choose one: delete the `-- migcoord:no-transaction` line to run the file in one "
    "transaction (its BEGIN and COMMIT are then accepted), or delete the BEGIN and COMMIT "
    "to run it statement by statement")
_WRAP_HINT = ("a whole-file `BEGIN; ... COMMIT;` is accepted: BEGIN as the first statement, "
              "COMMIT as the last, no other transaction control in between; a statement "
              "that cannot run in a transaction (CREATE INDEX CONCURRENTLY) runs outside one "
              "when it is alone in its file")


def _refusal(control: TransactionControl) -> Refusal:
    """Why `control`, which is not part of an accepted wrapper, is refused."""
    words = control.words
    if words in ("BEGIN", "START TRANSACTION"):
        return Refusal(control, f"{words} opens a transaction inside the one migcoord runs "
                       "this migration in, and does not wrap the whole file",
                       f"delete it; {_WRAP_HINT}")
    if words in ("COMMIT", "END"):
        return Refusal(control, f"{words} would commit part of this migration before its "
                       "history row, and run the rest outside any transaction",
                       f"delete it: migcoord commits each migration with its history row; "
                       f"{_WRAP_HINT}")
    if words in ("ROLLBACK", "ABORT"):
        return Refusal(control, f"{words} would undo part of this migration and run the rest "
                       "outside any transaction",
                       "delete it; to undo part of a migration, use SAVEPOINT and "
                       "ROLLBACK TO SAVEPOINT")
    if words == "PREPARE TRANSACTION":
        return Refusal(control, "PREPARE TRANSACTION would park this migration's changes in a "
                       "prepared transaction while its history row records it applied",
                       "delete it: a migration cannot take part in a two-phase commit")
    return Refusal(control, f"{words} finishes a prepared transaction, which cannot be part "
                   "of a migration", "delete it, and run it by hand outside migrations")


def _wrapper(every: Sequence[Statement], controls: Sequence[TransactionControl]) -> Wrapper | None:
    """The whole-file wrapper formed by `controls` in the file of `every` statement, if any."""
    if len(controls) != 2:
        return None
    begin, commit = controls
    if (begin.statement.index != 0 or commit.statement.index != len(every) - 1
            or begin.words not in ("BEGIN", "START TRANSACTION")
            or commit.words not in ("COMMIT", "END") or _chains(commit.statement)
            or commit.statement.unterminated):
        return None
    return Wrapper(begin.statement, commit.statement, _modes(begin.statement))


def _chains(statement: Statement) -> bool:
    """Whether a COMMIT or END says AND CHAIN (which starts a new transaction at once)."""
    names = [token.name for token in scan(statement.text).tokens
             if token.name not in COMMENTS]
    return "AND" in names and names[names.index("AND") + 1:][:1] != ["NO"]


def _modes(begin: Statement) -> str:
    """The transaction modes of a BEGIN or START TRANSACTION, comments left out:
    `BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY` -> "ISOLATION LEVEL SERIALIZABLE , READ
    ONLY"."""
    tokens = [token for token in scan(begin.text).tokens if token.name not in COMMENTS]
    skip = 2 if tokens[0].name == "START" or (
        len(tokens) > 1 and tokens[1].name in ("WORK", "TRANSACTION")) else 1
    return " ".join(begin.text[token.start:token.end] for token in tokens[skip:])


def _blank(piece: str) -> str:
    """`piece` with every character but line breaks made a space."""
    return "".join(char if char in "\r\n" else " " for char in piece)


def transaction_fit(text: str, *, wrapper: bool = False) -> TransactionFit:
    """Whether the file `text` (without `-- migcoord:no-transaction`) runs alone outside
    a transaction, or which of its statements PostgreSQL would refuse inside the one it
    runs in (`analysis.fit`); `wrapper`: the file is a whole-file `BEGIN; ... COMMIT;`.
    The file is parsed only when it may hold such a statement, and the analysis modules
    are loaded only then: a service's start-up reads files without them."""
    from migcoord.sql.analysis import TransactionFit, analyze, fit

    if _MAY_NOT_FIT.search(text) is None:
        return TransactionFit()
    return fit(analyze(text), wrapper=wrapper)
