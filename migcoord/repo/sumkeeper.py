"""Keep migcoord.sum in step with the migration files (the format is core/sumfile.py).

`create`, `renumber` and `sum` write it under the repository's file lock; `check`,
`docs` and `adopt` read it. A checkout may hold only some services' folders (a deployed
image holds its own): the lines of the absent services are then kept as recorded, since
their files are not here to be read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from migcoord.core import sumfile
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
            hint="resolve migcoord.sum first: after a merge, `migcoord renumber` your "
            "branch's migration, then `migcoord sum`")


def absent_with_migrations(config: Config, catalog: Catalog) -> list[str]:
    """Services whose folder is absent although migcoord.sum lists migrations of them,
    sorted; empty when every folder is here or there is no sum to tell."""
    absent = catalog.absent_services
    text = read(config) if absent else None
    if text is None:
        return []
    return sorted({line.service for line in sumfile.parse(text).lines}.intersection(absent))


def write(config: Config, catalog: Catalog) -> Path:
    """Rewrite the sum file from the files in `catalog` (absent services' lines kept as
    recorded) and return its path; UsageError when there is no sum file."""
    path = path_of(config)
    absent = catalog.absent_services
    _refuse_unwritable(catalog.migrations)
    workspace.replace_atomically(path, _render(catalog.migrations, _lines_of(config, absent)))
    return path


def _refuse_unwritable(migrations: Iterable[Migration]) -> None:
    """A name that is not valid UTF-8 (undecodable bytes in the file name) cannot be a
    line of migcoord.sum; check reports it as bad-filename."""
    for migration in migrations:
        try:
            migration.name.encode("utf-8")
        except UnicodeEncodeError:
            raise RefusedError(
                f"{migration.path}: its name is not valid UTF-8, so migcoord.sum cannot "
                "list it", hint="rename the migration's files (`migcoord check` names "
                "them as bad-filename)", path=migration.path) from None


def add(config: Config, catalog: Catalog, added: Iterable[Migration]) -> None:
    """Add lines for new migrations, keeping every recorded line as it was; without a
    sum file yet, write one from `catalog` (read after the new files were written).

    Recorded lines are not refreshed from disk: an edit made since stays visible to
    `check` as sum-mismatch instead of being blessed by an unrelated `create`.
    """
    path = config.sum_path
    if path is None:
        return
    text = read(config)
    if text is None:
        _refuse_unwritable(catalog.migrations)
        workspace.replace_atomically(path, sumfile.render(catalog.migrations))
        return
    workspace.replace_atomically(path, _render(added, sumfile.parse(text).lines))


def _lines_of(config: Config, services: Iterable[str]) -> list[sumfile.SumLine]:
    """The recorded lines of `services` (read only when there are any)."""
    wanted = set(services)
    text = read(config) if wanted else None
    if text is None:
        return []
    return [line for line in sumfile.parse(text).lines if line.service in wanted]


def _render(migrations: Iterable[Migration], kept: Iterable[sumfile.SumLine]) -> str:
    """The whole file: lines for `migrations`, and the `kept` lines they do not replace."""
    merged = {(line.version_text, line.service, line.name): line for line in kept}
    merged.update({(line.version_text, line.service, line.name): line
                   for line in sumfile.lines_for(migrations)})
    lines = sorted(merged.values(), key=lambda line: (line.version, line.service, line.name))
    return sumfile.render_lines(line.render() for line in lines)
