"""The data round trip of `-- migcoord:verify-data`: the verify file, its seed and its check.

The part of `{version}_{name}.verify.sql` before the `-- migcoord:check` line (the seed)
runs after the up and is committed; the part after it (the check) runs after the down
and the up again, in a transaction that is rolled back, and must return no rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from migcoord.core.model import Migration
from migcoord.verify.plan import CHECK_SEPARATOR, split_verify_script
from migcoord.verify.report import Problem

if TYPE_CHECKING:
    import psycopg


def halves(migration: Migration, read_verify_file: Callable[[Migration], str | None],
           problems: list[Problem]) -> tuple[str, str] | None:
    """The (seed, check) halves of the migration's verify file, or None; notes problems."""
    wanted = migration.directives.verify_data
    try:
        text = read_verify_file(migration)
    except OSError as err:
        problems.append(Problem("verify-data", f"{migration.label}.verify.sql cannot be "
                                f"read: {err.strerror}"))
        return None
    except UnicodeDecodeError as err:
        line = bytes(err.object).count(b"\n", 0, err.start) + 1
        problems.append(Problem("verify-data", f"{migration.label}.verify.sql:{line}: is not "
                                "UTF-8, so it was not run; save it as UTF-8"))
        return None
    if text is not None and "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        problems.append(Problem("verify-data", f"{migration.label}.verify.sql:{line}: holds a "
                                "NUL byte, which PostgreSQL cannot take, so it was not run; remove it"))
        return None
    if text is None:
        if wanted:
            problems.append(Problem(
                "verify-data", f"the up file says `-- migcoord:verify-data`, and there is "
                f"no {migration.label}.verify.sql beside it"))
        return None
    if not wanted:
        problems.append(Problem(
            "verify-data", f"{migration.label}.verify.sql was not run: the up file has no "
            "`-- migcoord:verify-data` line"))
        return None
    found = split_verify_script(text)
    if found is None:
        problems.append(Problem(
            "verify-data", f"{migration.label}.verify.sql has no `{CHECK_SEPARATOR}` line "
            "between the rows it inserts and the query that checks them"))
        return None
    if not has_sql(found[1]):
        problems.append(Problem(
            "verify-data", f"{migration.label}.verify.sql checks nothing: no statement "
            f"after `{CHECK_SEPARATOR}`"))
        return None
    control = _transaction_control(text, *found)
    if control is not None:
        line, words = control
        problems.append(Problem(
            "verify-data", f"{migration.label}.verify.sql:{line}: {words} controls the "
            "transaction, so the file was not run: verify commits the seed in one "
            "transaction and rolls the check back in another (a COMMIT in the check would "
            "keep what it changes); remove it"))
        return None
    return found


def _transaction_control(text: str, seed: str, check: str) -> tuple[int, str] | None:
    """The first BEGIN, COMMIT, ROLLBACK... of either half of the verify file `text`:
    (its line in the file, what)."""
    from migcoord.sql import reader

    separator = next(number for number, line in enumerate(text.split("\n"), start=1)
                     if line.strip() == CHECK_SEPARATOR)
    for half, first_line in ((seed, 1), (check, separator + 1)):
        found = reader.transaction_control(half)
        if found:
            return found[0].line + first_line - 1, found[0].words
    return None


def seed(conn: psycopg.Connection[Any], text: str) -> str | None:
    """Run a seed and commit it: the error text, or None (also for a seed of comments only)."""
    from migcoord.db import scratch

    return scratch.run_seed(conn, text) if has_sql(text) else None


def check(conn: psycopg.Connection[Any], migration: Migration, text: str) -> list[Problem]:
    """Run a check (rolled back): a problem when it fails or returns rows."""
    from migcoord.db import scratch

    rows, error = scratch.run_check(conn, text)
    if error is not None:
        return [Problem("verify-data", f"the check part of {migration.label}.verify.sql "
                        f"failed after down and up again: {error}")]
    if rows:
        return [Problem("verify-data", f"the check part of {migration.label}.verify.sql "
                        "returned rows after down and up again: the round trip lost or "
                        "changed data", tuple(rows))]
    return []


def has_sql(text: str) -> bool:
    from migcoord.sql import reader

    return reader.has_statements(text)
