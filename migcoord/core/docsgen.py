"""The generated part of the `docs` file: services, migrations, dependencies (pure).

`render` turns the catalog into Markdown tables; `merge` puts them between the marker
comments of the existing file, leaving everything outside the markers as it was. The
coordinator reads and writes the file (`Coordinator.docs`).

The tables are what teams sharing a database used to keep by hand:

- services, with the versions their files hold and the tables they own;
- per service, its migrations with a description derived from the name
  (`000004 | Remove email from rules`);
- the cross-service dependencies declared with `-- migcoord:depends`
  (`aggregator 000006 | rule-service 000001, 000002`).

Each table has one row per service or migration, so two branches that add migrations to
different services change different lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from migcoord.core.model import Catalog, Config, Finding, Migration, format_version
from migcoord.core.naming import humanize
from migcoord.core.sumfile import is_conflict_marker
from migcoord.errors import UsageError

BEGIN = "<!-- migcoord:begin generated -->"
END = "<!-- migcoord:end generated -->"
TITLE = "# Database migrations"
_NOTE = ("<!-- Written by `migcoord docs` from migcoord.toml and the migration files; "
         "edits between these markers are overwritten. -->")


@attrs.frozen
class DocsUpdate:
    """What `Coordinator.docs` found: the file, whether it was out of date (and why), and
    whether it was written."""

    path: Path
    stale: bool
    written: bool = False
    reason: str = ""
    #: What regenerates it: `migcoord docs`, or `migcoord docs --schema` when the schema
    #: registry is what is out of date.
    command: str = "migcoord docs"
    #: The schema registry as data, when `docs --schema` built it.
    registry: Mapping[str, object] | None = None

    def as_json(self) -> dict[str, object]:
        document: dict[str, object] = {"path": str(self.path), "written": self.written}
        if self.registry is not None:
            document["registry"] = dict(self.registry)
        return document

    def finding(self) -> Finding | None:
        """The `docs-stale` finding for a stale file, else None."""
        if not self.stale:
            return None
        return stale_finding(self.path, self.reason, command=self.command)


def conflict_finding(path: Path, text: str | None) -> Finding | None:
    """`docs-conflict` when git left its conflict markers in the docs file, else None."""
    if text is None:
        return None
    lines = [n for n, line in enumerate(text.split("\n"), start=1)
             if is_conflict_marker(line.removesuffix("\r"))]
    if not lines:
        return None
    return Finding.of(
        "docs-conflict", f"git left a merge conflict in it (markers on lines "
        f"{', '.join(map(str, lines))})", path=path, line=lines[0],
        hint="run `migcoord docs` to write the generated tables again (during a merge or "
        "rebase `migcoord resolve` does it too), then commit the file")


def stale_finding(path: Path, reason: str, *, command: str = "migcoord docs") -> Finding:
    return Finding.of("docs-stale", f"the generated docs are out of date: {reason}",
                      path=path, hint=f"run `{command}` and commit the file")


def render(catalog: Catalog, config: Config, owned: Mapping[str, Sequence[str]]) -> str:
    """The generated block, markers included, ending with a newline.

    `owned` maps each service to the names of the tables it owns, as shown.
    """
    width = config.version_width
    lines = [BEGIN, _NOTE, "", "## Services", "",
             "| Service | Versions | Tables owned |", "| --- | --- | --- |"]
    for service in config.services:
        versions = _ranges([m.version for m in catalog.for_service(service.name)], width)
        tables = ", ".join(_cell(t) for t in owned.get(service.name, ())) or "none"
        lines.append(f"| {_cell(service.name)} | {versions or 'none yet'} | {tables} |")
    lines += ["", "## Migrations"]
    for service in config.services:
        migrations = catalog.for_service(service.name)
        lines += ["", f"### {service.name}", ""]
        if not migrations:
            lines.append("No migrations yet.")
            continue
        lines += ["| Version | Description |", "| --- | --- |"]
        for migration in migrations:
            lines.append(f"| {migration.version_text} | {_cell(humanize(migration.name))} |")
    lines += ["", "## Dependencies between services", ""]
    by_version = catalog.by_version()
    rows = [_dependency_row(m, by_version, width) for m in catalog.migrations]
    present = [row for row in rows if row is not None]
    if present:
        lines += ["| Migration | Depends on |", "| --- | --- |", *present]
    else:
        lines.append("No migration depends on another service's migrations.")
    lines.append(END)
    return "\n".join(lines) + "\n"


def _dependency_row(migration: Migration, by_version: Mapping[int, Migration],
                    width: int) -> str | None:
    """`| aggregator 000006 | rule-service 000001, 000002 |` for the declared depends on
    other services' migrations, or None when there are none."""
    targets: dict[str, list[int]] = {}
    for ref in migration.directives.depends:
        target = by_version.get(ref.version)
        service = target.service if target is not None else ref.service
        if service is None or service == migration.service:
            continue
        if ref.version not in targets.setdefault(service, []):
            targets[service].append(ref.version)
    if not targets:
        return None
    needs = "; ".join(
        f"{_cell(service)} {', '.join(format_version(v, width) for v in sorted(versions))}"
        for service, versions in sorted(targets.items()))
    return f"| {_cell(migration.service)} {migration.version_text} | {needs} |"


def _ranges(versions: Sequence[int], width: int) -> str:
    """[1, 2, 3, 6] -> `000001-000003, 000006`."""
    spans: list[tuple[int, int]] = []
    for version in sorted(set(versions)):
        if spans and version == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], version)
        else:
            spans.append((version, version))
    return ", ".join(
        format_version(first, width) if first == last
        else f"{format_version(first, width)}-{format_version(last, width)}"
        for first, last in spans)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def replace_marked(existing: str, block: str, begin: str, end: str, command: str) -> str:
    """`existing` with the text from `begin` to `end` (and the line break after it)
    replaced by `block`, or `block` appended when neither marker is there. Raises
    UsageError when the markers are unbalanced or out of order, rather than guess which
    text is generated; `command` is what writes the block again."""
    begins, ends = existing.count(begin), existing.count(end)
    if begins == 0 and ends == 0:
        separator = "" if not existing or existing.endswith("\n\n") else (
            "\n" if existing.endswith("\n") else "\n\n")
        return existing + separator + block
    start, stop = existing.find(begin), existing.find(end)
    if begins != 1 or ends != 1 or stop < start:
        raise UsageError(
            f"the docs file must hold exactly one `{begin}` followed by one `{end}`; it "
            f"has {begins} begin and {ends} end marker(s)",
            hint="fix the markers by hand (or delete both and everything between them), "
            f"then run `{command}`")
    return existing[:start] + block + existing[stop + len(end):].removeprefix("\n")


def merge(existing: str | None, block: str) -> str:
    """The whole file with `block` between the markers.

    A missing file becomes a title and the block; a file without markers gets the block
    appended. Raises UsageError when the markers are unbalanced or out of order, rather
    than guess which text is generated.
    """
    if existing is None:
        return f"{TITLE}\n\n{block}"
    merged = replace_marked(existing, block, BEGIN, END, "migcoord docs")
    if conflict_finding(Path(), merged) is not None:
        raise UsageError(
            "git left a merge conflict in the docs file outside the generated tables; "
            "only the text between the migcoord markers is written by migcoord",
            hint="resolve the conflict in the text around the markers by hand, then run "
            "`migcoord docs`")
    return merged
