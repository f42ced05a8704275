"""The repository side of a merge: what the other side has, and whether a merge is unresolved.

Used by `resolve` (which side keeps its numbers), `check` (which migration of a
duplicate-version is this branch's) and `up` (nothing runs while migcoord.sum holds
git's conflict markers). git itself is read by `repo/git`; the decisions are
`core/resolution`'s.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from migcoord.core import sumfile
from migcoord.core.model import Catalog, Config
from migcoord.core.naming import parse_filename
from migcoord.errors import GitError, RefusedError, UsageError
from migcoord.repo import sumkeeper

if TYPE_CHECKING:
    from migcoord.core import resolution
    from migcoord.repo import git

# git and core/resolution are imported where they are used: `up` calls only
# refuse_unresolved_merge, at the boot of every replica.


def their_side(config: Config, onto: str | None, catalog: Catalog
               ) -> tuple[git.OtherSide, tuple[resolution.TheirFile, ...]]:
    """The other side (`onto`, else the merge or rebase in progress) and its migration
    files; UsageError, saying what to run, when there is neither (and, when `catalog`
    holds two migrations of one number, the command that parts them without a merge)."""
    from migcoord.core import duplicates, resolution
    from migcoord.repo import git

    side = git.other_side(config, onto)
    if side is None:
        shared = duplicates.moves(catalog, config)
        raise UsageError(
            "no merge or rebase is in progress, so resolve does not know which side's "
            "migrations keep their numbers",
            hint=_onto_hint(git.likely_base(config)) + (
                "; two migrations of one number on this branch, without a merge, are "
                "parted by renumber: " + duplicates.describe(shared) if shared else ""))
    return side, resolution.their_files(git.files_at(config, side), git.folders_of(config))


def _onto_hint(base: git.BaseGuess) -> str:
    """What to run instead of resolve without a merge: `--onto` the branch this one
    merges into; on that branch itself (main, with no remote), the other branch's
    resolve, since this branch's migrations are the ones that keep their numbers."""
    after = "after `git merge` or `git rebase` stops on a conflict, run `migcoord resolve`"
    if base.ref is not None:
        return (f"before merging, name the branch you will merge into: `migcoord resolve "
                f"--onto {shlex.quote(base.ref)}`; {after}")
    if not base.current_is_base:
        here = f" (branches here: {', '.join(base.others[:5])})" if base.others else ""
        return ("before merging, name the branch you will merge into: `migcoord resolve "
                f"--onto BRANCH`{here}; {after}")
    current = shlex.quote(str(base.current))
    said = (f"this branch, {base.current}, is the one others merge into, and its migrations "
            "keep their numbers: resolve runs on the branch to be merged")
    if not base.others:
        return f"{said} (there is no other branch here)"
    switch = (f"`git switch {shlex.quote(base.others[0])}`" if len(base.others) == 1 else
              f"`git switch BRANCH` (branches here: {', '.join(base.others[:5])})")
    return (f"{said}: {switch}, then `migcoord resolve --onto {current}`; or there, "
            f"`git rebase {current}` and `migcoord resolve` when it stops")


def written_against(config: Config, side: git.OtherSide, catalog: Catalog,
                    theirs: tuple[resolution.TheirFile, ...]) -> resolution.WrittenAgainst | None:
    """The tree this branch's files were written in (`git.this_branch_commit`): what each
    number meant there, and the depends lines there of this branch's files that have
    any. None when git has no such commit."""
    from migcoord.core import resolution
    from migcoord.repo import git

    commit = git.this_branch_commit(side)
    if commit is None:
        return None
    files = resolution.their_files(git.files_at(config, side, commit), git.folders_of(config))
    numbers: dict[int, list[tuple[str, str]]] = {}
    paths: dict[tuple[str, str], list[str]] = {}
    folders = {service: folder for folder, service in git.folders_of(config).items()}
    for f in files:
        parsed = parse_filename(f.name)
        if parsed is not None and parsed.direction == "up":
            key = (f.service, parsed.name)
            numbers.setdefault(f.version, []).append(key)
            paths.setdefault(key, []).append(f"{folders[f.service]}/{f.name}")
    their_names = {(f.service, f.name) for f in theirs}
    wanted = {}
    for migration in catalog.migrations:
        up = migration.up
        key = (migration.service, migration.name)
        # A name two files had there says nothing about which one this file was.
        if up is not None and up.text is not None and len(paths.get(key, ())) == 1 \
                and (migration.service, up.path.name) not in their_names \
                and resolution.depends_lines(up.text):
            wanted[key] = paths[key][0]
    contents = git.contents_at(config, side, commit, list(wanted.values()))
    depends = {key: resolution.depends_lines(contents[path].decode("utf-8", "replace"))
               for key, path in wanted.items() if path in contents}
    return resolution.WrittenAgainst(
        numbers={version: tuple(keys) for version, keys in numbers.items()}, depends=depends)


def merge_sides(config: Config, catalog: Catalog,
                against: str | None) -> resolution.MergeSides | None:
    """What the other side of the merge has (`against`, else the merge or rebase in
    progress), asked of git only when two migrations share a version; None when git
    cannot tell (no repository, no git, no merge)."""
    from migcoord.core import resolution
    from migcoord.repo import git

    versions = [m.version for m in catalog.migrations]
    if len(set(versions)) == len(versions):
        return None
    try:
        side = git.other_side(config, against)
        if side is None:
            return None
        files = resolution.their_files(git.files_at(config, side), git.folders_of(config))
    except GitError:
        return None
    return resolution.MergeSides.of(files, side.label, side.command)


def refuse_unresolved_merge(config: Config) -> None:
    """RefusedError while migcoord.sum holds git's conflict markers: a merge or rebase is
    unresolved, and its migrations' numbers may still change."""
    text = sumkeeper.read(config)
    # Every replica's `up` asks: a file without git's markers at all is not parsed.
    if text is None or ("<<<<<<<" not in text and ">>>>>>>" not in text) or (
            not sumfile.parse(text).conflicted):
        return
    raise RefusedError(
        f"{config.sum_path} holds a git merge conflict: a merge or rebase that brought in "
        "other migrations is not resolved, and numbers may still change. Nothing was applied",
        hint="run `migcoord resolve`, then up again", path=config.sum_path)
