"""`migcoord init` and `migcoord makefile` on disk: find the golang-migrate folders, then
write what core/scaffold.py proposes, never replacing a file that is already there.

Every write is a new file made exclusively (workspace.create_exclusive) or, for
.gitignore, one appended line; a file that exists is kept, and the report says so and
what to change in it by hand.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Literal

import attrs

from migcoord.core import scaffold
from migcoord.core.model import Config
from migcoord.core.naming import parse_filename
from migcoord.errors import FileExists, UsageError, WorkspaceError
from migcoord.repo import config as config_file
from migcoord.repo import discovery, sumkeeper, workspace

MAKEFILE_INC = "Makefile.inc"

#: Folders never searched for migrations: other people's code, tools' caches, and Go's
#: `testdata` (golang-migrate's own test migrations sit in one, inside `vendor/`).
SKIPPED_FOLDERS = frozenset({"node_modules", "vendor", "testdata", "venv", "site-packages",
                             "__pycache__"})

Action = Literal["wrote", "appended", "kept", "change", "skipped", "would write",
                 "would append"]


@attrs.frozen
class InitStep:
    """What init did (or, with dry_run, would do) to one file."""

    action: Action
    path: Path
    note: str = ""

    def as_json(self, root: Path) -> dict[str, object]:
        return {"action": self.action, "path": _relative(self.path, root), "note": self.note}


@attrs.frozen
class InitReport:
    """The outcome of `init`: the services, each file's fate, and what to run next."""

    root: Path
    proposal: scaffold.Proposal
    steps: tuple[InitStep, ...]
    next_commands: tuple[str, ...]
    dry_run: bool = False
    #: Folders seen and passed over, and why (only down files, a symbolic link).
    skipped: tuple[scaffold.SkippedFolder, ...] = ()
    #: With a migcoord.toml already there: folders of up files no service configures,
    #: each with the `[services.X]` table that would add it.
    unconfigured: tuple[tuple[scaffold.FoundFolder, str], ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "dry_run": self.dry_run,
            "version_width": self.proposal.version_width,
            "services": [{"name": s.name, "migrations": str(s.migrations),
                          "migrations_found": s.migration_count}
                         for s in self.proposal.services],
            "files": [step.as_json(self.root) for step in self.steps],
            "next": list(self.next_commands),
            "skipped": [{"path": str(f.path), "reason": f.reason} for f in self.skipped],
            "unconfigured": [{"path": str(f.path), "migrations_found": f.up_count,
                              "add": table} for f, table in self.unconfigured],
        }


def packaged_makefile_inc() -> Path:
    """The Makefile.inc installed with migcoord (a real file: pip unpacks wheels)."""
    found = resources.files("migcoord").joinpath(MAKEFILE_INC)
    path = Path(str(found))
    if not path.is_file():
        raise WorkspaceError(f"this installation of migcoord has no {MAKEFILE_INC} ({path})",
                             hint="reinstall migcoord with pip")
    return path


def write_makefile_inc(target: Path, *, folder: bool = False) -> InitStep:
    """Copy the packaged Makefile.inc to `target`: a file, or a folder to put it in (one
    that exists, or, with `folder`, one to create, as `DIR/` asks for).

    An identical file there is kept; a different one is never replaced (FileExists).
    """
    if folder or target.is_dir():
        target = target / MAKEFILE_INC
    text = packaged_makefile_inc().read_text(encoding="utf-8")
    if _read_text(target) is not None:
        if _read_text(target) == text:
            return InitStep("kept", target, "identical to the installed one")
        raise FileExists(
            f"{target} already exists and differs from the installed Makefile.inc; it was "
            "not overwritten",
            hint=f"compare them with `diff {target} \"$(migcoord makefile)\"`, or remove it "
            "and run this again", path=target)
    workspace.create_exclusive(target, text)
    return InitStep("wrote", target)


def find_migration_folders(root: Path) -> list[scaffold.FoundFolder]:
    """Every folder under `root` holding a golang-migrate up file, outermost only (a
    folder inside another found one is part of it), hidden and SKIPPED_FOLDERS left out."""
    return survey_folders(root)[0]


def survey_folders(root: Path) -> tuple[list[scaffold.FoundFolder],
                                         list[scaffold.SkippedFolder]]:
    """`find_migration_folders`, and the folders of migration files passed over, with
    why: one holding only down files (golang-migrate runs none of them), and a symbolic
    link to a folder of migration files (links are not followed)."""
    found: list[scaffold.FoundFolder] = []
    skipped: list[scaffold.SkippedFolder] = []
    for folder, dirs, files in os.walk(root, onerror=None, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            if not name.startswith(".") and (here / name).is_symlink():
                skipped.extend(_linked(root, here / name))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
        names = tuple(sorted(name for name in files if parse_filename(name) is not None))
        relative = PurePosixPath(here.relative_to(root).as_posix())
        if names and not any(name.endswith(".up.sql") for name in names):
            skipped.append(scaffold.SkippedFolder(
                relative, f"only down files ({len(names)}), no up file: golang-migrate would "
                "run nothing from it; add the up files, or remove the folder"))
        if not any(name.endswith(".up.sql") for name in names):
            continue
        found.append(scaffold.FoundFolder(path=relative, filenames=names,
                                          tables=_tables_created(here, names)))
        dirs[:] = []  # a service's folder holds no other service's folder
    return found, skipped


def _linked(root: Path, link: Path) -> list[scaffold.SkippedFolder]:
    """A symbolic link to a folder that holds migration files, as a skipped folder."""
    try:
        names = os.listdir(link)
        target = link.resolve()
    except OSError:
        return []
    if not any(parse_filename(name) is not None for name in names):
        return []
    shown = (target.relative_to(root).as_posix() if target.is_relative_to(root)
             else str(target))
    return [scaffold.SkippedFolder(
        PurePosixPath(link.relative_to(root).as_posix()),
        f"a symbolic link to {shown}; links are not followed: configure the folder itself, "
        "once")]


def _tables_created(folder: Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """The tables the up files in `folder` create and leave in place, in version order,
    named as `owns` names them (`rules`, `audit.events`). A file that cannot be read or
    parsed is passed over: `check` reports it."""
    from migcoord.sql import analyze
    from migcoord.sql.effects import QualifiedName, TableAction

    ups = sorted((parsed.version, name) for name in names
                 if (parsed := parse_filename(name)) is not None and parsed.direction == "up")
    tables: dict[QualifiedName, None] = {}
    for _, name in ups:
        try:
            text = (folder / name).read_bytes().decode("utf-8").removeprefix("\ufeff")
        except (OSError, UnicodeDecodeError):
            continue
        for effect in analyze(text).table_effects:
            if effect.action is TableAction.CREATED:
                tables[effect.table] = None
            elif effect.action is TableAction.DROPPED:
                tables.pop(effect.table, None)
            elif (effect.action is TableAction.RENAMED and effect.new_name is not None
                  and effect.table in tables):
                del tables[effect.table]
                tables[effect.new_name] = None
    return tuple(str(QualifiedName("", t.name)) if t.schema == "public" else str(t)
                 for t in tables)


def init(root: Path, *, dry_run: bool = False) -> InitReport:
    """Set up migcoord in the repository at `root` (see the module docstring).

    With an existing migcoord.toml its services are used and only what is missing is
    written; a migcoord.toml in a folder above `root` is a UsageError (the repository is
    already set up there).
    """
    root = root.resolve()
    _refuse_nested(root)
    config_path = root / config_file.CONFIG_NAME
    steps: list[InitStep] = []
    found, skipped = survey_folders(root)
    unconfigured: list[tuple[scaffold.FoundFolder, str]] = []
    configured = config_path.is_file()
    if configured:
        loaded = config_file.load(config_path)
        proposal = _proposal_of(loaded, root)
        # init never rewrites the config: it says what to add to it.
        known = {resolved(s.migrations) for s in loaded.services}
        taken = list(loaded.service_names)
        for folder in found:
            if resolved(root / folder.path) not in known:
                name, table = scaffold.addition_for(folder, taken)
                taken.append(name)
                unconfigured.append((folder, table))
    else:
        proposal = scaffold.propose(root.name, found)
    _refuse_blocked(root, proposal)
    if configured:
        steps.append(InitStep("kept", config_path, "already there; its services are used"))
    else:
        steps.append(_create(config_path, scaffold.config_text(proposal), dry_run))
    steps.append(_makefile_inc_step(root / MAKEFILE_INC, dry_run))
    for service in proposal.services:
        steps.append(_service_makefile_step(root, service, dry_run))
    steps.append(_gitignore_step(root / ".gitignore", dry_run))
    steps.append(_sum_step(config_path, dry_run))
    return InitReport(root=root, proposal=proposal, steps=tuple(steps),
                      next_commands=_next_commands(proposal), dry_run=dry_run,
                      skipped=tuple(skipped), unconfigured=tuple(unconfigured))


def resolved(path: Path) -> Path:
    """`path` with links resolved, or as given when it cannot be (a loop, no permission)."""
    try:
        return path.resolve()
    except OSError:
        return path


def _refuse_blocked(root: Path, proposal: scaffold.Proposal) -> None:
    """Before anything is written: refuse when a file init would write or read is in the
    way as something else (a folder, a broken symlink), naming every one, so that init
    never stops half-way with some files written."""
    targets = [root / config_file.CONFIG_NAME, root / MAKEFILE_INC, root / ".gitignore",
               root / "migcoord.sum"]
    targets += [root / service.home / "Makefile" for service in proposal.services
                if (root / service.home).is_dir()]
    blocked = [(path, why) for path in targets if (why := _not_a_file(path)) is not None]
    if blocked:
        what = "; ".join(f"{_relative(path, root)} is {why}" for path, why in blocked)
        raise WorkspaceError(
            f"init wrote nothing: {what}, where init would write a file",
            hint="move or rename what is in the way, then run `migcoord init` again",
            path=blocked[0][0])


def _not_a_file(path: Path) -> str | None:
    """What `path` is when something other than a regular file (or nothing) is there."""
    if path.is_dir():
        return "a folder"
    if path.is_symlink() and not path.exists():
        return "a broken symlink"
    if path.exists() and not path.is_file():
        return "not a regular file"
    return None


def _refuse_nested(root: Path) -> None:
    for folder in root.parents:
        candidate = folder / config_file.CONFIG_NAME
        if candidate.is_file():
            raise UsageError(
                f"{candidate} already configures the repository around {root}",
                hint=f"run `migcoord init` in {folder} to add what is missing there; a "
                "service's folder needs no config of its own")


def _proposal_of(loaded: Config, root: Path) -> scaffold.Proposal:
    """The services of an existing config, as init's proposal."""
    services = []
    for service in loaded.services:
        relative = PurePosixPath(service.migrations.relative_to(root).as_posix())
        count = 0
        if service.migrations.is_dir():
            count = sum(1 for name in os.listdir(service.migrations)
                        if name.endswith(".up.sql") and parse_filename(name) is not None)
        services.append(scaffold.ProposedService(
            name=service.name, migrations=relative, home=scaffold.home_of(relative),
            migration_count=count))
    return scaffold.Proposal(services=tuple(services), version_width=loaded.version_width,
                             widths_seen=())


def _create(path: Path, text: str, dry_run: bool, note: str = "") -> InitStep:
    if dry_run:
        return InitStep("would write", path, note)
    workspace.create_exclusive(path, text)
    return InitStep("wrote", path, note)


def _makefile_inc_step(path: Path, dry_run: bool) -> InitStep:
    text = packaged_makefile_inc().read_text(encoding="utf-8")
    existing = _read_text(path)
    if existing is None:
        return _create(path, text, dry_run, "the migrate-* targets every service includes")
    if existing == text:
        return InitStep("kept", path, "identical to the installed one")
    return InitStep("kept", path, "differs from the installed one; compare with "
                    f"`diff {path.name} \"$(migcoord makefile)\"`")


def _service_makefile_step(root: Path, service: scaffold.ProposedService,
                           dry_run: bool) -> InitStep:
    path = root / service.home / "Makefile"
    if not path.parent.is_dir():
        return InitStep("skipped", path, f"{service.name} has no folder yet; when it has, its "
                        f"Makefile is `SERVICE := {service.name}` and "
                        f"`include {service.include_path}`")
    existing = _read_text(path)
    if existing is None:
        return _create(path, service.makefile(), dry_run, f"SERVICE := {service.name}")
    advice = scaffold.makefile_advice(existing, service)
    if advice is None:
        return InitStep("kept", path, "already includes Makefile.inc")
    return InitStep("change", path, f"not overwritten: {advice}")


def _gitignore_step(path: Path, dry_run: bool) -> InitStep:
    existing = _read_text(path)
    addition = scaffold.gitignore_addition(existing)
    if addition is None:
        return InitStep("kept", path, f"already ignores {scaffold.GITIGNORE_ENTRY}")
    if dry_run:
        return InitStep("would append" if existing is not None else "would write", path,
                        scaffold.GITIGNORE_ENTRY)
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(addition)
    except OSError as err:
        raise WorkspaceError(f"cannot write {path}: {err.strerror}", path=path) from None
    return InitStep("appended" if existing is not None else "wrote", path,
                    scaffold.GITIGNORE_ENTRY)


def _sum_step(config_path: Path, dry_run: bool) -> InitStep:
    sum_path = config_path.parent / "migcoord.sum"
    if sum_path.exists():
        return InitStep("kept", sum_path, "already there; `migcoord check` compares it")
    if dry_run:
        return InitStep("would write", sum_path, "one line per migration")
    loaded = config_file.load(config_path)
    catalog = discovery.read_catalog(loaded)
    sumkeeper.write(loaded, catalog)
    count = len(catalog.migrations)
    return InitStep("wrote", sum_path, f"{count} migration{'s' if count != 1 else ''}")


def _next_commands(proposal: scaffold.Proposal) -> tuple[str, ...]:
    first = proposal.services[0].name
    if proposal.is_new:
        return (f"migcoord create create_first_table --service {first}",
                "migcoord check")
    return ("migcoord check",
            "migcoord adopt --from-golang-migrate   # once per database golang-migrate "
            "already migrated (needs DATABASE_URL)",
            "migcoord status                        # needs DATABASE_URL")


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise WorkspaceError(f"{path} is a folder, where init would write a file",
                             path=path) from None
    except OSError as err:
        raise WorkspaceError(f"cannot read {path}: {err.strerror}", path=path) from None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
