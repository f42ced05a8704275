"""The repository side of a merge: what the other side has, and whether a merge is unresolved.

Used by `resolve` (which side keeps its numbers), `check` (which migration of a
duplicate-version is this branch's) and `up` (nothing runs while migcoord.sum holds
git's conflict markers). git itself is read by `repo/git`; the decisions are
`core/resolution`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from migcoord.core import sumfile
from migcoord.core.model import Catalog, Config
from migcoord.errors import GitError, RefusedError, UsageError
from migcoord.repo import sumkeeper

if TYPE_CHECKING:
    from migcoord.core import resolution
    from migcoord.repo import git

# git and core/resolution are imported where they are used: `up` calls only
# refuse_unresolved_merge, at the boot of every replica.


def their_side(config: Config, onto: str | None) -> tuple[git.OtherSide,
                                                           tuple[resolution.TheirFile, ...]]:
    """The other side (`onto`, else the merge or rebase in progress) and its migration
    files; UsageError, saying what to run, when there is neither."""
    from migcoord.core import resolution
    from migcoord.repo import git

    side = git.other_side(config, onto)
    if side is None:
        raise UsageError(
            "no merge or rebase is in progress, so resolve does not know which side's "
            "migrations keep their numbers",
            hint="before merging, name the branch you will merge into: `migcoord resolve "
            "--onto origin/main`; after `git merge` or `git rebase` stops on a conflict, run "
            "`migcoord resolve`")
    return side, resolution.their_files(git.files_at(config, side), git.folders_of(config))


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
    if text is None or not sumfile.parse(text).conflicted:
        return
    raise RefusedError(
        f"{config.sum_path} holds a git merge conflict: a merge or rebase that brought in "
        "other migrations is not resolved, and numbers may still change. Nothing was applied",
        hint="run `migcoord resolve`, then up again", path=config.sum_path)
