"""Rules on each migration's files: names, pairs, encoding, content, directive lines.

`bad-filename`, `missing-down`, `missing-up`, `encoding`, `empty-migration`,
`unknown-directive` (the problems core/directives found in the `-- migcoord:` lines),
and `explicit-transaction` (decided by migcoord.sql.transactions, which the executor
asks too). Each rule is a pure function of the catalog, the config and the ledger (see
checks/numbering.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from migcoord.checks._located import finding_at
from migcoord.checks.numbering import Ledger
from migcoord.core.model import Catalog, Config, Finding
from migcoord.sql import reader, transactions


def bad_filename(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for folder in catalog.folders:
        for stray in folder.strays:
            yield Finding.of(
                "bad-filename",
                f"{stray.path.name} is not a migration file: {stray.reason}",
                path=stray.path, service=folder.name,
                hint="rename it to {version}_{name}.up.sql / .down.sql, or move it out of "
                "the migrations folder",
            )


def missing_pair(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        if migration.down is None:
            yield finding_at(migration, "missing-down",
                             f"{migration.label}.up.sql has no {migration.label}.down.sql",
                             hint="every up needs its down; write the statements that undo the up")
        if migration.up is None:
            yield finding_at(migration, "missing-up",
                             f"{migration.label}.down.sql has no {migration.label}.up.sql",
                             down=True,
                             hint="restore the up file, or delete the down if the migration was "
                             "abandoned before it was ever applied")


def directive_problems(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for sql_file, problems in ((migration.up, migration.directive_findings),
                                   (migration.down, migration.down_directive_findings)):
            for problem in problems:
                yield attrs.evolve(problem, path=sql_file.path if sql_file else None,
                                   service=migration.service, version=migration.version)


def encoding(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for down, sql_file in ((False, migration.up), (True, migration.down)):
            if sql_file is not None and sql_file.encoding_error is not None:
                yield finding_at(migration, "encoding",
                                 f"{sql_file.path.name} is not UTF-8 text: "
                                 f"{sql_file.encoding_error}",
                                 down=down,
                                 hint="save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")


def empty_migration(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        up, down = migration.up, migration.down
        up_empty = up is not None and up.text is not None and not reader.has_statements(up.text)
        if up_empty:
            yield finding_at(migration, "empty-migration",
                      f"{migration.label}.up.sql has no SQL statement yet",
                      hint="write the migration, or delete both files if it is not needed")
        elif (down is not None and down.text is not None
              and not reader.has_statements(down.text)):
            yield finding_at(migration, "empty-migration",
                      f"{migration.label}.down.sql has no SQL statement: rolling back "
                      "would record the migration as undone while changing nothing",
                      down=True, hint="write the statements that undo the up file")


def explicit_transaction(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for down, sql_file, directives in ((False, migration.up, migration.directives),
                                           (True, migration.down, migration.down_directives)):
            if sql_file is None or sql_file.text is None:
                continue
            # The executor decides with the same call: it refuses what is reported here,
            # and runs a whole-file BEGIN; ... COMMIT; as its body.
            found = transactions.explicit_transaction(
                sql_file.text, no_transaction=directives.no_transaction)
            for refusal in found.refused:
                yield finding_at(migration, "explicit-transaction", refusal.message,
                                 down=down, line=refusal.line, column=refusal.column,
                                 hint=refusal.hint)
