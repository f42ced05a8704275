"""Keep migcoord.sum in step with the migration files (the format is core/sumfile.py).

`create`, `renumber`, `resolve` and `sum` write it under the repository's file lock;
`check`, `docs`, `up` and `adopt` read it. A checkout may hold only some services' folders (a deployed
image holds its own): the lines of the absent services are then kept as recorded, since
their files are not here to be read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from migcoord.core import duplicates, sumfile
from migcoord.core.model import Catalog, Config, Migration
from migcoord.errors import RefusedError, UsageError, WorkspaceError
from migcoord.repo import workspace


def read(config: Config) -> str | None:
    """The sum file's text; None when the config has no sum file or it does not exist.

    Bytes that are not UTF-8 read as U+FFFD, so `check` reports the line they are on
    (sum-mismatch); WorkspaceError when the path cannot be read at all.
    """
    path = config.sum_path
    if path is None:
        return None
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise WorkspaceError(f"{path} cannot be read: {err.strerror}",
                             hint="migcoord.sum must be a readable file; `migcoord sum` "
                             "rewrites it from the migration files", path=path) from None


def path_of(config: Config) -> Path:
    """Where the sum file is; UsageError for a coordinator without a config file."""
    path = config.sum_path
    if path is None:
        raise UsageError("this coordinator has no config file, so it has no migcoord.sum",
                         hint="use Coordinator.load() with a migcoord.toml")
    return path


def refuse_broken(config: Config) -> None:
    """Raise RefusedError, naming the first problem, when the sum file is unreadable
    (after a merge: git conflict markers); an absent sum file is fine."""
    text = read(config)
    if text is None:
        return
    parsed = sumfile.parse(text)
    if parsed.problems:
        line, problem = parsed.problems[0]
        raise RefusedError(
            f"{config.sum_path}:{line}: {problem}",
            hint="run `migcoord resolve` (during a merge or rebase; before one, "
            "`migcoord resolve --onto <ref>`): it moves your branch's migrations after "
            "the other side's and rewrites migcoord.sum" if parsed.conflicted else
            "`migcoord sum` rewrites it from the migration files", path=config.sum_path,
            line=line)


def absent_with_migrations(config: Config, catalog: Catalog) -> list[str]:
    """Services whose folder is absent although migcoord.sum lists migrations of them,
    sorted; empty when every folder is here or there is no sum to tell."""
    absent = catalog.absent_services
    text = read(config) if absent else None
    if text is None:
        return []
    return sorted({line.service for line in sumfile.parse(text).lines}.intersection(absent))


def write(config: Config, catalog: Catalog, *, refuse_duplicates: bool = True) -> Path:
    """Rewrite the sum file from the files in `catalog` (absent services' lines kept as
    recorded) and return its path; UsageError when there is no sum file.

    With `refuse_duplicates`, RefusedError (nothing written) when two migrations share a
    version: the ledger gives each number to one migration, and `resolve` decides which
    one moves. `renumber` writes what its moves leave (check reports what is still shared).
    """
    path = path_of(config)
    absent = catalog.absent_services
    _refuse_unwritable(catalog.migrations)
    lines = _merged(catalog.migrations, _lines_of(config, absent))
    if refuse_duplicates:
        _refuse_duplicates(lines, config, catalog)
    workspace.replace_atomically(path, sumfile.render_lines(lines))
    return path


def _refuse_duplicates(lines: Iterable[sumfile.SumLine], config: Config,
                       catalog: Catalog) -> None:
    by_version: dict[int, list[sumfile.SumLine]] = {}
    for line in lines:
        by_version.setdefault(line.version, []).append(line)
    shared = {version: group for version, group in by_version.items() if len(group) > 1}
    if not shared:
        return
    version, group = min(shared.items())
    names = ", ".join(f"{line.service}/{line.version_text}_{line.name}" for line in group)
    more = f" (and {len(shared) - 1} more number(s))" if len(shared) > 1 else ""
    during = ("`migcoord resolve` during the merge or rebase that brought them together "
              "(before merging: `migcoord resolve --onto <ref>`, e.g. origin/main) keeps the "
              "other side's numbers, moves your branch's migrations and rewrites the sum")
    # Where the files of both are here, renumber parts them (an absent service's line is
    # known only from the sum, and its files are not here to move).
    found = duplicates.moves(catalog, config)
    raise RefusedError(
        f"version {group[0].version_text} is used by {len(group)} migrations: {names}{more}; "
        "migcoord.sum gives each number to one migration, so it was not written",
        hint=(duplicates.describe(found) + "; or " + during) if found else "run " + during,
        path=config.sum_path, version=version)


def _refuse_unwritable(migrations: Iterable[Migration]) -> None:
    """A name that is not valid UTF-8 (undecodable bytes in the file name), or that holds
    a line break, cannot be a line of migcoord.sum; check reports it as bad-filename."""
    for migration in migrations:
        try:
            migration.name.encode("utf-8")
        except UnicodeEncodeError:
            why = "is not valid UTF-8"
        else:
            if "\n" not in migration.name:
                continue
            why = "holds a line break"
        raise RefusedError(
            f"{migration.path}: its name {why}, so migcoord.sum cannot list it",
            hint="rename the migration's files (`migcoord check` names them as "
            "bad-filename)", path=migration.path)


def add(config: Config, catalog: Catalog, added: Iterable[Migration]) -> None:
    """Add lines for new migrations, keeping every recorded line as it was; without a
    sum file yet, write one from `catalog` (read after the new files were written).

    Recorded lines are not refreshed from disk: a file renamed by hand since stays
    visible to `check` as sum-mismatch instead of being blessed by an unrelated `create`.
    """
    path = config.sum_path
    if path is None:
        return
    text = read(config)
    if text is None:
        _refuse_unwritable(catalog.migrations)
        workspace.replace_atomically(path, sumfile.render(catalog.migrations))
        return
    workspace.replace_atomically(
        path, sumfile.render_lines(_merged(added, sumfile.parse(text).lines)))


def _lines_of(config: Config, services: Iterable[str]) -> list[sumfile.SumLine]:
    """The recorded lines of `services` (read only when there are any)."""
    wanted = set(services)
    text = read(config) if wanted else None
    if text is None:
        return []
    return [line for line in sumfile.parse(text).lines if line.service in wanted]


def _merged(migrations: Iterable[Migration],
            kept: Iterable[sumfile.SumLine]) -> tuple[sumfile.SumLine, ...]:
    """The lines for `migrations` and the `kept` lines, sorted."""
    return sumfile.sort_lines([*kept, *sumfile.lines_for(migrations)])
