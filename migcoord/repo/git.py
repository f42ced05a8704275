"""`check --against REF`: the catalog a merge with REF would contain, read with git itself.

The merge holds this working tree's migrations plus what REF gained since the two
histories split (`git merge-base HEAD REF`): files REF added or changed are taken from
REF, files REF deleted are dropped. A pull request then learns that main took 000007
before it merges, not after.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path

import attrs

from migcoord.core.model import Catalog, Config, SqlFile
from migcoord.core.naming import parse_filename
from migcoord.errors import GitError
from migcoord.repo import discovery


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("`check --against` needs git, and git is not installed",
                       hint="install git, or run `migcoord check` without --against") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed: {message[-1] if message else 'no output'}")
    return result.stdout


def merged_catalog(config: Config, catalog: Catalog, ref: str) -> Catalog:
    """The catalog after merging `ref` into the working tree (nothing is written)."""
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], config.root).decode().strip())
    except GitError as err:
        raise GitError(f"{config.root} is not inside a git repository ({err.message})",
                       hint="`check --against` compares with a git ref; run it in a clone, or "
                       "run `migcoord check` without --against") from None
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    except GitError:
        raise GitError(
            f"git does not know the ref {ref!r}",
            hint=f"fetch it first (`git fetch origin`), or check the spelling: `git rev-parse {ref}`",
        ) from None
    base = _git(["merge-base", "HEAD", ref], top).decode().strip()
    folders = []
    for folder in catalog.folders:
        relative = folder.config.migrations.relative_to(top).as_posix()
        changes = _changed_on_ref(top, base, ref, relative)
        if not changes:
            folders.append(folder)
            continue
        files: dict[str, SqlFile] = {}
        for migration in folder.migrations:
            for sql_file in (migration.up, migration.down):
                if sql_file is not None:
                    files[sql_file.path.name] = sql_file
        for change, path in changes:
            name = Path(path).name
            if parse_filename(name) is None or Path(path).parent.as_posix() != relative:
                continue
            if change == "D":
                files.pop(name, None)
            else:
                content = _git(["show", f"{ref}:{path}"], top)
                files[name] = discovery.sql_file_from_bytes(top / path, folder.name, content)
        migrations = discovery.pair_files(folder.name, files.values())
        folders.append(attrs.evolve(folder, present=True, migrations=tuple(migrations)))
    return Catalog.of(folders)


def _changed_on_ref(top: Path, base: str, ref: str, folder: str) -> list[tuple[str, str]]:
    """(git's change letter, path) for each file of `folder` that `ref` changed since
    `base` (A added, M modified, D deleted, ...)."""
    output = _git(["diff", "--name-status", "--no-renames", "-z", base, ref, "--", folder], top)
    parts = output.decode("utf-8", "surrogateescape").split("\0")
    changes: dict[str, str] = defaultdict(str)
    for letter, path in zip(parts[0::2], parts[1::2], strict=False):
        if letter:
            changes[path] = letter[0]
    return [(letter, path) for path, letter in changes.items()]
