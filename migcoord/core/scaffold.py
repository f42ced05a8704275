"""What `migcoord init` proposes for a repository (pure): services from the folders that
hold golang-migrate files, the version width those files use, the config text, each
service's two-line Makefile, and the advice for a Makefile that is already there.

The repository is read by repo/scaffold.py and handed in as `FoundFolder` values; the
decisions here read nothing and write nothing.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePosixPath

import attrs

from migcoord.core.naming import TIMESTAMP_WIDTH, parse_filename

#: Folder names that say "migrations live here" rather than which service they belong
#: to: `aggregator/db/migrations` is aggregator's.
GENERIC_FOLDERS = frozenset({"migrations", "migration", "migrate", "db", "database", "sql",
                             "schema", "schemas"})
DEFAULT_WIDTH = 6
GITIGNORE_ENTRY = ".migcoord/"
#: The targets Makefile.inc defines; a service Makefile that defines one of them too
#: makes GNU make warn "overriding recipe" and run only the later one.
MAKEFILE_INC_TARGETS = ("migrate-help", "migrate-create", "migrate-up", "migrate-down",
                        "migrate-status", "migrate-force", "check-migrations", "migrate-verify")

_NOT_A_SERVICE_CHAR = re.compile(r"[^A-Za-z0-9_.\-]+")


@attrs.frozen
class FoundFolder:
    """A folder of the repository that holds golang-migrate up files."""

    #: Relative to the repository root, `/`-separated; "." for the root itself.
    path: PurePosixPath
    #: The file names in it that read as migrations (`{version}_{name}.(up|down).sql`).
    filenames: tuple[str, ...]
    #: The tables its migrations create and leave in place, in order of creation.
    tables: tuple[str, ...] = ()

    @property
    def first_version(self) -> int:
        versions = [p.version for p in map(parse_filename, self.filenames) if p is not None]
        return min(versions, default=0)

    @property
    def up_count(self) -> int:
        return sum(1 for name in self.filenames if name.endswith(".up.sql"))


@attrs.frozen
class ProposedService:
    """One `[services.NAME]` table, and where its Makefile goes."""

    name: str
    #: The migrations folder, relative to the root (`/`-separated).
    migrations: PurePosixPath
    #: The service's own folder (its Makefile's), relative to the root; "." for the root.
    home: PurePosixPath
    migration_count: int
    #: Proposed `owns`: the tables its migrations create that no other service creates.
    owns: tuple[str, ...] = ()

    @property
    def include_path(self) -> str:
        """How the service's Makefile names the root's Makefile.inc."""
        depth = 0 if str(self.home) == "." else len(self.home.parts)
        return "/".join([".."] * depth + ["Makefile.inc"])

    def makefile(self) -> str:
        """The two-line Makefile this service gets when it has none."""
        return f"SERVICE := {self.name}\ninclude {self.include_path}\n"


@attrs.frozen
class Proposal:
    """Everything `init` would write, decided from the folders found."""

    services: tuple[ProposedService, ...]
    version_width: int
    #: Version widths seen in the files, most common first (empty for a new repository).
    widths_seen: tuple[int, ...]
    #: The highest version found, when the found history skips numbers (golang-migrate
    #: allows it): `adopted_through`, so that `gap` judges only what comes after.
    adopted_through: int | None = None

    @property
    def is_new(self) -> bool:
        """True when no golang-migrate folder was found: a starting config."""
        return all(service.migration_count == 0 for service in self.services)


def propose(root_name: str, folders: Sequence[FoundFolder]) -> Proposal:
    """Services from `folders` (one per folder, named by its nearest non-generic folder
    name, made unique), and the most common version width of their files. Without any
    folder: one service named after the repository (`root_name`), migrations in
    `migrations/`, the default width."""
    if not folders:
        name = service_name(root_name) or "app"
        service = ProposedService(name=name, migrations=PurePosixPath("migrations"),
                                  home=PurePosixPath("."), migration_count=0)
        return Proposal(services=(service,), version_width=DEFAULT_WIDTH, widths_seen=())
    # In the order their migrations began, as a reader of the history would list them.
    ordered = sorted(folders, key=lambda f: (f.first_version, f.path))
    named = [(home_of(folder.path), folder) for folder in ordered]
    names = _unique_names(root_name, [home for home, _ in named])
    creators = Counter(table for folder in folders for table in set(folder.tables))
    services = tuple(
        ProposedService(name=name, migrations=folder.path, home=home,
                        migration_count=folder.up_count,
                        owns=tuple(t for t in folder.tables if creators[t] == 1))
        for name, (home, folder) in zip(names, named, strict=True))
    widths = Counter(len(parsed.version_text) for folder in folders for parsed in
                     (parse_filename(name) for name in folder.filenames) if parsed is not None)
    seen = tuple(width for width, _ in widths.most_common())
    width = seen[0] if seen else DEFAULT_WIDTH
    versions = sorted({parsed.version for folder in folders for parsed in
                       (parse_filename(name) for name in folder.filenames) if parsed is not None})
    skips = any(high - low > 1 for low, high in itertools.pairwise(versions))
    # Timestamp versions are never dense, and `gap` does not judge them anyway.
    adopted = versions[-1] if skips and width < TIMESTAMP_WIDTH else None
    return Proposal(services=services, version_width=width, widths_seen=seen,
                    adopted_through=adopted)


def service_name(text: str) -> str:
    """`text` made into a valid service name (letters, digits, `_`, `-`, `.`), or ""."""
    return _NOT_A_SERVICE_CHAR.sub("-", text).strip("-.")


def home_of(folder: PurePosixPath) -> PurePosixPath:
    """The service's own folder: `folder` without its trailing generic folder names."""
    parts = list(folder.parts) if str(folder) != "." else []
    while parts and parts[-1].lower() in GENERIC_FOLDERS:
        parts.pop()
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _unique_names(root_name: str, homes: Sequence[PurePosixPath]) -> list[str]:
    """A service name for each home: its last folder name, with more of its path (joined
    by `-`) where two homes would get the same name."""
    def name_of(home: PurePosixPath, depth: int) -> str:
        parts = [] if str(home) == "." else list(home.parts)
        chosen = "-".join(parts[-depth:]) if parts else root_name
        return service_name(chosen) or "app"

    depths = [1] * len(homes)
    for _ in range(max((len(home.parts) for home in homes), default=1) + 1):
        names = [name_of(home, depth) for home, depth in zip(homes, depths, strict=True)]
        counts = Counter(names)
        if all(counts[name] == 1 for name in names):
            return names
        depths = [depth + 1 if counts[name] > 1 else depth
                  for name, depth in zip(names, depths, strict=True)]
    # Still equal at full depth (e.g. `a-b/x` and `a/b-x`): number them.
    return [f"{name}-{index}" if counts[name] > 1 else name
            for index, name in enumerate(names, start=1)]


def config_text(proposal: Proposal) -> str:
    """migcoord.toml for `proposal`, with comments that say what to fill in next."""
    lines = [
        "# migcoord.toml: the services that share one PostgreSQL database.",
        "# Written by `migcoord init`; every key is described in migcoord's docs/config.md.",
        'database_url_env = "DATABASE_URL"   # the variable that holds the database URL',
        f"version_width = {proposal.version_width}",
        'history_schema = "public"           # where migcoord_history and migcoord_events live',
        '# docs = "docs/MIGRATIONS.md"       # where `migcoord docs` writes the generated tables',
    ]
    if proposal.adopted_through is not None:
        lines += [
            "# The history found skips numbers, as golang-migrate allows; those gaps are",
            "# history. New migrations continue the one sequence without skips after it.",
            f'adopted_through = "{str(proposal.adopted_through).zfill(proposal.version_width)}"',
        ]
    for service in proposal.services:
        lines += [
            "",
            f"[services.{toml_key(service.name)}]",
            f"migrations = {toml_string(str(service.migrations))}",
        ]
        if service.owns:
            lines += ["# The tables its migrations create: only this service may change them.",
                      f"owns = [{', '.join(toml_string(t) for t in service.owns)}]"]
        else:
            lines.append('# owns = ["table_a"]   # the tables only this service may change')
    return "\n".join(lines) + "\n"


def toml_key(name: str) -> str:
    """`name` as a TOML key: bare when it may be, else quoted (`a.b` -> `"a.b"`)."""
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def toml_string(text: str) -> str:
    """`text` as a TOML basic string."""
    escaped = "".join(
        "\\\\" if char == "\\" else '\\"' if char == '"'
        else f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in text)
    return f'"{escaped}"'


def toml_literal(text: str) -> str:
    """`text` as TOML that reads best: `"rules"`; a literal string where a basic one would
    need escapes, so that a quoted SQL name stays as written (`'"MixedCase"'`); else an
    escaped basic string."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        return toml_string(text)
    if '"' not in text and "\\" not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return toml_string(text)


def makefile_advice(text: str, service: ProposedService) -> str | None:
    """What to change in a service's existing Makefile `text` so it uses Makefile.inc,
    or None when it already includes it."""
    if re.search(r"^\s*-?include\s+.*Makefile\.inc\b", text, re.MULTILINE):
        return None
    clashes = [target for target in MAKEFILE_INC_TARGETS
               if re.search(rf"^{re.escape(target)}\s*:(?!=)", text, re.MULTILINE)]
    advice = f"add `SERVICE := {service.name}` and `include {service.include_path}`"
    if clashes:
        advice += (f", and remove its own {', '.join(clashes)} target"
                   f"{'s' if len(clashes) > 1 else ''} (Makefile.inc defines them)")
    elif re.search(r"^\t.*\bmigrate\s", text, re.MULTILINE):
        advice += ("; its recipes that call `migrate` directly can then call the "
                   "Makefile.inc targets (make migrate-up, ...)")
    return advice


def gitignore_addition(text: str | None) -> str | None:
    """The text to append to .gitignore (`text`, None when absent) so that migcoord's
    local state is ignored; None when it already is."""
    if text is not None:
        for line in text.splitlines():
            if line.strip().rstrip("/").lstrip("/") in (".migcoord", ".migcoord/*"):
                return None
    prefix = "" if not text or text.endswith("\n") else "\n"
    return f"{prefix}# migcoord's local state: lock files, the development server\n{GITIGNORE_ENTRY}\n"


@attrs.frozen
class SkippedFolder:
    """A folder `init` saw and did not make a service of, and why (init lists them)."""

    #: Relative to the repository root, `/`-separated.
    path: PurePosixPath
    reason: str


def addition_for(folder: FoundFolder, taken: Sequence[str]) -> tuple[str, str]:
    """The service name and the `[services.NAME]` table that configure `folder`, named
    as init would name it (its nearest non-generic folder name), made unique among
    `taken`."""
    home = home_of(folder.path)
    base = service_name(home.name if str(home) != "." else folder.path.name) or "app"
    name, index = base, 2
    while name in taken:
        name, index = f"{base}-{index}", index + 1
    return name, f"[services.{toml_key(name)}]\nmigrations = {toml_string(str(folder.path))}\n"
