"""Rules on which service may change which table: `ownership` and `unowned-table`.

A table belongs to the service whose `owns` (migcoord.toml) lists it, else to the
service whose migration created it (`Owners`). A migration of another service that
changes it is an `ownership` error; a service that declares `owns` and creates a table
no `owns` lists gets an `unowned-table` warning. The docs file's "tables owned" column
comes from `Owners.owned_by`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

import attrs

from migcoord.checks._located import finding_at
from migcoord.checks.analysis import Analyses, Effect, Table
from migcoord.core.model import Catalog, Config, Finding, Migration, format_version
from migcoord.core.owners import display, owned_name
from migcoord.core.scaffold import toml_key, toml_literal


@attrs.frozen
class Owner:
    """Who owns one table, and why: declared in `owns`, or created by `migration`."""

    service: str
    migration: Migration | None = None

    def why(self, width: int) -> str:
        if self.migration is None:
            return "declared in its `owns` in migcoord.toml"
        return f"created by {self.migration.service}:{format_version(self.migration.version, width)}"


@attrs.frozen
class Owners:
    """The owner of every known table, the migrations that create each table (in version
    order), and the problems of the `owns` lists themselves."""

    owners: Mapping[Table, Owner]
    creators: Mapping[Table, tuple[Migration, ...]]
    declared: Mapping[Table, tuple[str, ...]]
    #: Tables that exist after every migration: created or renamed to, and not dropped.
    existing: frozenset[Table] = frozenset()
    problems: tuple[Finding, ...] = ()

    @classmethod
    def of(cls, catalog: Catalog, config: Config, analyses: Analyses) -> Owners:
        declared: dict[Table, tuple[str, ...]] = {}
        problems: list[Finding] = []
        for service in config.services:
            for text in service.owns:
                name = owned_name(text, config.default_schema)
                if name is None:
                    problems.append(Finding.of(
                        "ownership",
                        f"`owns` of {service.name} lists {text!r}, which is not a table name",
                        path=config.path,
                        hint='write a table name, optionally schema-qualified: "rules" or '
                        '"app.rules"'))
                    continue
                if service.name not in declared.get(name, ()):
                    declared[name] = (*declared.get(name, ()), service.name)
        for name, services in declared.items():
            if len(services) > 1:
                problems.append(Finding.of(
                    "ownership",
                    f"table {display(name, config)} is claimed in `owns` by "
                    f"{' and '.join(services)}; a table has one owning service",
                    path=config.path,
                    hint="keep it in the `owns` of the service whose migrations change it, and "
                    "remove it from the others"))
        creators: dict[Table, list[Migration]] = defaultdict(list)
        existing: set[Table] = set()
        for migration in catalog.migrations:
            analysed = analyses.of(migration)
            if analysed is None or analysed.up is None:
                continue
            for name in analysed.up.created:
                creators[name].append(migration)
            for effect in analysed.up.effects:
                if effect.action == "created":
                    existing.add(effect.table)
                elif effect.action == "dropped":
                    existing.discard(effect.table)
                elif effect.new_name is not None:
                    existing.discard(effect.table)
                    existing.add(effect.new_name)
        owners = {name: Owner(services[0]) for name, services in declared.items()}
        for name, made_by in creators.items():
            if name not in owners:
                owners[name] = Owner(made_by[0].service, made_by[0])
        return cls(owners=owners, creators={k: tuple(v) for k, v in creators.items()},
                   declared=declared, existing=frozenset(existing), problems=tuple(problems))

    def owned_by(self, service: str) -> list[Table]:
        """Tables `service` owns: those it declares, and those its migrations created, that
        still exist and that nobody declares."""
        return sorted(
            name for name, owner in self.owners.items()
            if owner.service == service and (owner.migration is None or name in self.existing))




def ownership(catalog: Catalog, config: Config, analyses: Analyses,
              owners: Owners) -> Iterator[Finding]:
    """A migration that changes a table another service owns (in its up file, or in its
    down file when the up does not already change that table)."""
    width = config.version_width
    for migration in catalog.migrations:
        analysed = analyses.of(migration)
        if analysed is None:
            continue
        reported: set[Table] = set()
        for down, file_sql in ((False, analysed.up), (True, analysed.down)):
            if file_sql is None:
                continue
            for name, (verbs, line) in _verbs_by_table(file_sql.effects).items():
                owner = owners.owners.get(name)
                if owner is None or owner.service == migration.service or name in reported:
                    continue
                reported.add(name)
                table = display(name, config)
                yield finding_at(
                    migration, "ownership",
                    f"{migration.service}:{migration.version_text} {_join(verbs)} {table}, "
                    f"which {owner.service} owns ({owner.why(width)})",
                    hint=f"ask {owner.service} to make this change in one of its own migrations "
                    f"(and depend on it), or, if {table} really moves to {migration.service}, "
                    f"move it from {owner.service}'s `owns` to {migration.service}'s in "
                    "migcoord.toml",
                    line=line, down=down)


_VERBS = {
    "created": "creates", "altered": "alters", "dropped": "drops", "renamed": "renames",
    "truncated": "truncates", "written": "writes rows of", "indexed": "indexes",
    "trigger": "adds a trigger to", "policy": "sets a policy on", "comment": "comments on",
    "row-security": "sets row security on",
}


def _verbs_by_table(effects: Iterable[Effect]) -> dict[Table, tuple[list[str], int]]:
    """Table -> (what the file does to it, the first line doing it); reads left out."""
    found: dict[Table, tuple[list[str], int]] = {}
    for effect in effects:
        verb = _VERBS.get(effect.action)
        if verb is None:
            continue
        names = [effect.table] if effect.new_name is None else [effect.table, effect.new_name]
        for name in names:
            verbs = found.setdefault(name, ([], effect.line))[0]
            if verb not in verbs:
                verbs.append(verb)
    return found


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def unowned_table(catalog: Catalog, config: Config, analyses: Analyses,
                  owners: Owners) -> Iterator[Finding]:
    """A service that declares `owns` creates a table nobody declares."""
    for migration in catalog.migrations:
        service = config.service(migration.service)
        analysed = analyses.of(migration)
        if service is None or not service.owns or analysed is None or analysed.up is None:
            continue
        lines: dict[Table, int] = {}
        for effect in analysed.up.effects:
            lines.setdefault(effect.new_name or effect.table, effect.line)
        for name in analysed.up.created:
            if name in owners.declared:
                continue  # declared by this service: fine; by another: an ownership error
            table = display(name, config)
            yield finding_at(
                migration, "unowned-table",
                f"{migration.service}:{migration.version_text} creates {table}, which is not "
                f"in {migration.service}'s `owns` in migcoord.toml",
                hint=f"add {toml_literal(table)} to `owns` of "
                f"[services.{toml_key(migration.service)}]",
                line=lines.get(name))

