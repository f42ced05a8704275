"""Schema changes that break another service's running code: `breaking-rename` and
`breaking-drop`.

During a rolling deploy the migration runs while the old replicas of every service still
serve traffic. Dropping or renaming a table or a column that only its own service reads
is that service's expand/contract business; when ANOTHER service uses the table, its
running code fails the moment the migration commits, and nothing in its own deploy
warned it. A service uses a table when one of its migrations numbered below this one
mentions it (creates, changes, reads it in a foreign key, a view, a data migration), or
declares `depends` on a migration that created it; the table's owner uses it too when
another service's migration changes it (an `ownership` error already).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from migcoord.checks._located import finding_at
from migcoord.checks.analysis import Analyses, Table
from migcoord.checks.ownership import Owners
from migcoord.core.model import Catalog, Config, Finding, Migration
from migcoord.core.owners import display

BREAKING_RENAME = "breaking-rename"
BREAKING_DROP = "breaking-drop"


def breaking_changes(catalog: Catalog, config: Config, analyses: Analyses,
                     owners: Owners) -> Iterator[Finding]:
    """A migration's up file that drops or renames a table, or a column of a table, that
    another service used before it."""
    #: table -> service -> the first migration of that service that used it.
    users: dict[Table, dict[str, Migration]] = defaultdict(dict)
    #: (service, version) -> the tables that migration created.
    created_by: dict[tuple[str, int], list[Table]] = defaultdict(list)
    for name, made in owners.creators.items():
        for creator in made:
            created_by[(creator.service, creator.version)].append(name)
    services_of: dict[int, list[str]] = defaultdict(list)
    for each in catalog.migrations:
        services_of[each.version].append(each.service)
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None or analysed.up is None:
            continue
        up = analysed.up
        #: (code, table, column ("" for the table itself), the new name or "", line)
        changes: list[tuple[str, Table, str, str, int]] = []
        for effect in up.effects:
            if effect.action == "dropped":
                changes.append((BREAKING_DROP, effect.table, "", "", effect.line))
            elif effect.new_name is not None:
                changes.append((BREAKING_RENAME, effect.table, "",
                                display(effect.new_name, config), effect.line))
        for note in up.column_notes:
            table = (note.table.schema, note.table.name)
            if note.kind == "dropped":
                changes.append((BREAKING_DROP, table, note.column, "", note.line))
            elif note.kind == "renamed":
                changes.append((BREAKING_RENAME, table, note.column, note.new_name, note.line))
        for code, table, column, new_name, line in changes:
            # Each other service that uses the table, with why: "aggregator:000006 uses it".
            others = {service: f"first in {service}:{first.version_text}"
                      for service, first in users.get(table, {}).items()
                      if service != migration.service}
            owner = owners.owners.get(table)
            if owner is not None and owner.service != migration.service:
                others.setdefault(owner.service, f"{owner.service} owns it")
            if others:
                yield _breaking(migration, code, (table, column, new_name), line, others, config)
        # Uses are recorded after the checks: a migration does not break itself.
        for table in up.mentioned:
            users[table].setdefault(migration.service, migration)
        for ref in migration.directives.depends:
            for service in services_of.get(ref.version, ()):
                for table in created_by.get((service, ref.version), ()):
                    users[table].setdefault(migration.service, migration)


def _breaking(migration: Migration, code: str, change: tuple[Table, str, str], line: int,
             others: dict[str, str], config: Config) -> Finding:
    table, column, new_name = change
    shown = display(table, config)
    what = f"column {column} of {shown}" if column else f"table {shown}"
    services = " and ".join(sorted(others))
    if code == BREAKING_DROP:
        verb = "drops"
        hint = (f"first release {services} without any use of it, then drop it in a later "
                f"migration; once they no longer use it, allow it with "
                f"`-- migcoord:allow {code}` at the top of this file")
    else:
        verb = "renames"
        what += f" to {new_name}"
        hint = ("keep the old name working while both are deployed: add the new column (or a "
                "view under the new name), write both, move every service over, then drop the "
                f"old one; once no service uses the old name, allow it with "
                f"`-- migcoord:allow {code}` at the top of this file")
    message = (f"{migration.service}:{migration.version_text} {verb} {what}, which {services} "
               f"also uses ({'; '.join(others[s] for s in sorted(others))}): during a rolling "
               "deploy its running code fails as soon as this commits")
    if code == BREAKING_DROP:
        return finding_at(migration, BREAKING_DROP, message, hint=hint, line=line)
    return finding_at(migration, BREAKING_RENAME, message, hint=hint, line=line)
