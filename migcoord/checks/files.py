"""Rules on each migration's files: names, pairs, encoding, content, directive lines.

`bad-filename`, `unreadable-file`, `missing-down`, `missing-up`, `name-mismatch`,
`encoding`, `empty-migration`, `unknown-directive` (the problems core/directives found in
the `-- migcoord:` lines), `unconfigured-folder` (a folder of migrations no service
configures, found by repo/unconfigured.py), `explicit-transaction` (decided by
migcoord.sql.transactions, which the executor asks too) and `client-copy`
(migcoord.sql.copying). Each rule is a pure function of the catalog, the config and the
ledger (see checks/numbering.py). The errors of these rules also stop `up`, `down` and
`verify` for the migrations they concern: see checks/runnable.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from migcoord.checks._located import finding_at
from migcoord.checks.numbering import Ledger
from migcoord.core import scaffold
from migcoord.core.model import Catalog, Config, Finding, Migration, SqlFile, format_version
from migcoord.core.naming import MAX_VERSION, name_problem, parse_filename
from migcoord.sql import copying, reader, transactions

_RENAME_HINT = ("rename it to {version}_{name}.up.sql / .down.sql, or move it out of "
                "the migrations folder")


def bad_filename(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for folder in catalog.folders:
        for stray in folder.strays:
            if stray.code != "bad-filename":
                continue
            yield Finding.of(
                "bad-filename",
                f"{stray.path.name} is not a migration file: {stray.reason}",
                path=stray.path, service=folder.name, hint=_RENAME_HINT,
            )
    # Names golang-migrate reads (so they are migrations) that migcoord cannot run.
    for migration, down, sql_file in _files(catalog):
        if sql_file.version <= MAX_VERSION and sql_file.name and sql_file.name.isascii():
            continue  # what name_problem accepts, known without parsing the name again
        parsed = parse_filename(sql_file.path.name)
        problem = name_problem(parsed) if parsed is not None else None
        if problem is not None:
            yield finding_at(migration, "bad-filename",
                             f"{sql_file.path.name} cannot be run: {problem}", down=down,
                             hint="rename both files of the migration to a version of at most "
                             "19 digits and a name, e.g. 000042_add_index.up.sql")


def unreadable_file(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    """Entries named like migration files (and verify files) that are not read, and
    migrations folders that cannot be listed: never skipped without a word."""
    for folder in catalog.folders:
        if folder.problem is not None:
            yield Finding.of("unreadable-file",
                             f"{folder.config.migrations}: {folder.problem}",
                             path=folder.config.migrations, service=folder.name,
                             hint="make it a folder this user can read (or fix `migrations` "
                             "in migcoord.toml)")
        for stray in folder.strays:
            if stray.code == "unreadable-file":
                yield Finding.of("unreadable-file", f"{stray.path.name}: {stray.reason}",
                                 path=stray.path, service=folder.name, hint=_UNREADABLE_HINT)
    for migration, down, sql_file in _files(catalog):
        if sql_file.read_error is not None:
            yield finding_at(migration, "unreadable-file",
                             f"{sql_file.path.name}: {sql_file.read_error}", down=down,
                             hint=_UNREADABLE_HINT)


_UNREADABLE_HINT = ("make it a readable file inside the repository (replace a symlink with "
                    "the file itself), or move it out of the migrations folder")


def _files(catalog: Catalog) -> Iterator[tuple[Migration, bool, SqlFile]]:
    """(migration, is it the down file, the file) for every file of every migration."""
    for migration in catalog.migrations:
        for down, sql_file in ((False, migration.up), (True, migration.down)):
            if sql_file is not None:
                yield migration, down, sql_file


def missing_pair(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    adopted = config.adopted_through
    for migration in catalog.migrations:
        if migration.down is None and not (adopted is not None and migration.version <= adopted
                                           and migration.up is not None):
            # An adopted history that shipped no downs (golang-migrate allows it) is what it
            # is: `down` refuses such a migration by itself, and verify only applies it.
            yield finding_at(migration, "missing-down",
                             f"{migration.label}.up.sql has no {migration.label}.down.sql "
                             f"(no down file of version {migration.version_text} at all)",
                             hint="every up needs its down; write the statements that undo the up")
        if migration.up is None:
            yield finding_at(migration, "missing-up",
                             f"{migration.label}.down.sql has no {migration.label}.up.sql "
                             f"(no up file of version {migration.version_text} at all)",
                             down=True,
                             hint="restore the up file, or delete the down if the migration was "
                             "abandoned before it was ever applied")


def name_mismatch(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    """An up and a down of one version with different names: one migration, as in
    golang-migrate, whose name (in history and migcoord.sum) is the up's."""
    for migration in catalog.migrations:
        up, down = migration.up, migration.down
        if up is None or down is None:
            continue
        if (up.version_text, up.name) != (down.version_text, down.name):
            yield finding_at(migration, "name-mismatch",
                             f"{up.path.name} and {down.path.name} are one migration (paired "
                             "by version, as golang-migrate pairs them) with two names",
                             down=True,
                             hint=f"rename the down file to {migration.label}.down.sql")


def directive_problems(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        for sql_file, problems in ((migration.up, migration.directive_findings),
                                   (migration.down, migration.down_directive_findings)):
            for problem in problems:
                yield attrs.evolve(problem, path=sql_file.path if sql_file else None,
                                   service=migration.service, version=migration.version)


def encoding(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration, down, sql_file in _files(catalog):
        if sql_file.encoding_error is not None:
            yield finding_at(migration, "encoding",
                             f"{sql_file.path.name} is not UTF-8 text: "
                             f"{sql_file.encoding_error}",
                             down=down, line=sql_file.encoding_line,
                             hint="save the file as UTF-8 text (e.g. `iconv -f latin1 -t "
                             "utf-8`), without NUL bytes")


def empty_migration(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    for migration in catalog.migrations:
        up, down = migration.up, migration.down
        up_empty = up is not None and up.text is not None and not reader.has_statements(up.text)
        if up is not None and up_empty:
            yield finding_at(migration, "empty-migration",
                      f"{up.path.name} has no SQL statement yet",
                      hint="write the migration, or delete both files if it is not needed")
        elif (down is not None and down.text is not None
              and not reader.has_statements(down.text)):
            yield finding_at(migration, "empty-migration",
                      f"{down.path.name} has no SQL statement: rolling back "
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


def unconfigured_folder(folders: Iterable[scaffold.FoundFolder], config: Config) -> Iterator[Finding]:
    """`unconfigured-folder`: a folder of golang-migrate files (found by
    repo/unconfigured.py near the configured ones) that no service configures."""
    taken = list(config.service_names)
    for folder in folders:
        ups = folder.up_count
        downs = len(folder.filenames) - ups
        versions = sorted({p.version for p in map(parse_filename, folder.filenames)
                           if p is not None})
        shown = ", ".join(format_version(v, config.version_width) for v in versions[:3])
        more = f" and {len(versions) - 3} more" if len(versions) > 3 else ""
        table = scaffold.addition_for(folder, taken)[1].rstrip("\n").replace("\n", "` and `")
        yield Finding.of(
            "unconfigured-folder",
            f"{folder.path} holds golang-migrate files ({ups} up, {downs} down; versions "
            f"{shown}{more}) that no service in migcoord.toml configures: check, up and "
            "create do not see them, so their numbers can collide unnoticed",
            path=config.root / folder.path,
            hint=f"if they belong to this database, add the service to migcoord.toml "
            f"(`{table}`), then run `migcoord sum`; if not, move them away or add "
            '"unconfigured-folder" to `allow` in migcoord.toml')


def client_copy(catalog: Catalog, config: Config, ledger: Ledger) -> Iterator[Finding]:
    """`COPY ... FROM STDIN` (with its rows inline, psql style) or `TO STDOUT`: the server
    would read the rows as SQL, so `up` and `down` refuse the file before it runs."""
    for migration, down, sql_file in _files(catalog):
        if sql_file.text is None:
            continue
        for copy in copying.client_copies(sql_file.text):
            yield finding_at(migration, "client-copy", copy.message, down=down,
                             line=copy.statement.line, column=copy.statement.column,
                             hint=copy.hint)
