"""What git knows about the other side of a merge, read with git itself.

- `check --against REF`: the catalog a merge with REF would contain. The merge holds
  this working tree's migrations plus what REF gained since the two histories split
  (`git merge-base HEAD REF`): files REF added or changed are taken from REF, files REF
  deleted are dropped. A pull request then learns that main took 000007 before it
  merges, not after.
- `resolve` and the hints that name the migration to move: the other side
  (`other_side`), which is MERGE_HEAD during a merge, and during a rebase the commit
  the branch is replayed onto with the branch's commits replayed so far, HEAD (there
  git's "ours" is the other side, the reverse of a merge); or REF with `--onto REF`.
  Its migration files (`files_at`) keep their numbers.
"""

from __future__ import annotations

import shlex
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Literal

import attrs

from migcoord.core.model import Catalog, Config, SqlFile
from migcoord.core.naming import parse_filename
from migcoord.core.resolution import BranchEdit
from migcoord.errors import GitError
from migcoord.repo import discovery, gitrefs


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("this needs git, and git is not installed",
                       hint="install git (`check` without --against works without it)") from None
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args)} failed: {message[-1] if message else 'no output'}")
    return result.stdout


def toplevel(config: Config, command: str) -> Path:
    """The top of the git work tree that holds the config; GitError saying that
    `command` needs one when there is none."""
    try:
        return Path(_git(["rev-parse", "--show-toplevel"], config.root).decode().strip())
    except GitError as err:
        raise GitError(f"{config.root} is not inside a git repository ({err.message})",
                       hint=f"{command} compares with git's history; run it in a clone"
                       ) from None


def commit_of(top: Path, ref: str, command: str | None = "migcoord check") -> str:
    """The commit `ref` names; GitError saying what is true (a walk past the first
    commit, a shallow clone, a name git does not know) and what to do, when there is
    none. `command` is the one to run instead, without --against (None: there is none)."""
    if ref.startswith("-") or not ref:
        # git would read it as an option; no ref name starts with "-".
        raise GitError(f"{ref!r} is no git ref", hint="name a branch, a tag or a commit "
                       "(e.g. origin/main)")
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], top)
    except GitError:
        raise gitrefs.unknown_ref(lambda args: _git(args, top), ref, command) from None
    return commit.decode().strip()


def merge_base(top: Path, ref: str, command: str = "migcoord check") -> tuple[str, str]:
    """(REF's commit, the commit HEAD and REF split at); GitError saying why there is
    none (a shallow clone, unrelated histories) and what to do."""
    commit = commit_of(top, ref, command)
    try:
        base = _git(["merge-base", "HEAD", commit], top).decode().strip()
    except GitError:
        base = ""
    if not base:
        raise gitrefs.no_merge_base(lambda args: _git(args, top), ref, command)
    return commit, base


def merged_catalog(config: Config, catalog: Catalog, ref: str,
                   command: str = "check") -> Catalog:
    """The catalog after merging `ref` into the working tree (nothing is written);
    `command` (check, verify) is the one whose --against this is, for its errors."""
    top = toplevel(config, f"`{command} --against`")
    commit, base = merge_base(top, ref, f"migcoord {command}")
    folders = []
    for folder in catalog.folders:
        relative = folder.config.migrations.relative_to(top).as_posix()
        changes = _changed_on_ref(top, base, commit, relative)
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
                content = _git(["show", f"{commit}:{path}"], top)
                files[name] = discovery.sql_file_from_bytes(top / path, folder.name, content)
        migrations = discovery.pair_files(folder.name, files.values())
        folders.append(attrs.evolve(folder, present=True, migrations=tuple(migrations)))
    return Catalog.of(folders)


def migrations_on_ref(config: Config, catalog: Catalog, ref: str
                      ) -> frozenset[tuple[str, int]]:
    """(service, version) of each migration `ref` has: an up file of that version in the
    service's folder of `ref`'s tree (`verify --against`: what is already deployed from
    there is applied, not round-tripped)."""
    top = toplevel(config, "`verify --against`")
    commit = commit_of(top, ref, "migcoord verify")
    by_folder = {_relative(top, folder.config.migrations): folder.name
                 for folder in catalog.folders}
    folders = [relative for relative in by_folder if relative is not None]
    if not folders:
        return frozenset()
    output = _git(["ls-tree", "-r", "-z", "--name-only", commit, "--", *folders], top)
    versions: set[tuple[str, int]] = set()
    for path in output.decode("utf-8", "surrogateescape").split("\0"):
        folder, _, name = path.rpartition("/")
        parsed = parse_filename(name)
        if parsed is not None and parsed.direction == "up" and folder in by_folder:
            versions.add((by_folder[folder], parsed.version))
    return frozenset(versions)


def _changed_on_ref(top: Path, base: str, commit: str, folder: str) -> list[tuple[str, str]]:
    """(git's change letter, path) for each file of `folder` that `commit` changed since
    `base` (A added, M modified, D deleted, ...)."""
    output = _git(["diff", "--name-status", "--no-renames", "-z", base, commit, "--", folder],
                  top)
    parts = output.decode("utf-8", "surrogateescape").split("\0")
    changes: dict[str, str] = defaultdict(str)
    for letter, path in zip(parts[0::2], parts[1::2], strict=False):
        if letter:
            changes[path] = letter[0]
    return [(letter, path) for path, letter in changes.items()]


def branch_edits(config: Config, ref: str) -> list[BranchEdit]:
    """The migration files of the working tree that differ from `ref` where `ref` did not
    change them since the histories split: this branch changed (or removed) a migration
    `ref` already has. A difference of line endings or BOM only is no change (the
    checksum ignores them)."""
    top = toplevel(config, "`check --against`")
    commit, base = merge_base(top, ref)
    services = {r: s.name for s in config.services
                if (r := _relative(top, s.migrations)) is not None}
    if not services:
        return []
    here = _git(["diff", "--name-status", "--no-renames", "-z", commit, "--", *services], top)
    there = _git(["diff", "--name-only", "--no-renames", "-z", base, commit, "--", *services],
                 top)
    changed_there = set(there.decode("utf-8", "surrogateescape").split("\0"))
    parts = here.decode("utf-8", "surrogateescape").split("\0")
    edits = []
    for letter, path in zip(parts[0::2], parts[1::2], strict=False):
        folder, _, name = path.rpartition("/")
        parsed = parse_filename(name)
        if letter[:1] not in ("M", "D") or path in changed_there or parsed is None \
                or folder not in services:
            continue
        if letter[:1] == "M":
            theirs = discovery.checksum(_git(["show", f"{commit}:{path}"], top))
            try:
                if discovery.checksum((top / path).read_bytes()) == theirs:
                    continue
            except OSError:
                pass  # unreadable here: check reports it; it differs from ref all the same
        edits.append(BranchEdit(path=top / path, service=services[folder],
                                version=parsed.version, direction=parsed.direction, ref=ref,
                                removed=letter[:1] == "D"))
    return edits


@attrs.frozen
class OtherSide:
    """The side whose migrations keep their numbers."""

    #: "merge": MERGE_HEAD; "rebase": the commit the branch is replayed onto, with the
    #: branch's commits replayed so far (HEAD); "ref": --onto.
    kind: Literal["merge", "rebase", "ref"]
    commit: str
    #: How a person calls it: "origin/main", "main (being merged)".
    label: str
    #: The resolve command that works in this state.
    command: str
    top: Path


def other_side(config: Config, onto: str | None) -> OtherSide | None:
    """`onto` when given, else the merge or rebase in progress, else None. GitError when
    there is no git repository (or `onto` is unknown)."""
    top = toplevel(config, "resolve")
    if onto is not None:
        return OtherSide("ref", commit_of(top, onto, None), onto,
                         f"migcoord resolve --onto {shlex.quote(onto)}", top)
    merge_head = _git_path(top, "MERGE_HEAD")
    if merge_head.is_file():
        commit = merge_head.read_text().split()[0]
        return OtherSide("merge", commit, f"{_name(top, commit)} (being merged)",
                         "migcoord resolve", top)
    for folder in ("rebase-merge", "rebase-apply"):
        onto_file = _git_path(top, folder) / "onto"
        if onto_file.is_file():
            onto_commit = onto_file.read_text().strip()
            # HEAD is the commit rebased onto plus this branch's commits already replayed,
            # whose collisions earlier stops resolved: all of it keeps its numbers.
            commit = _git(["rev-parse", "--verify", "HEAD^{commit}"], top).decode().strip()
            return OtherSide("rebase", commit, f"{_name(top, onto_commit)} (rebased onto)",
                             "migcoord resolve", top)
    return None


@attrs.frozen
class BaseGuess:
    """What a hint can name as the branch this one will merge into."""

    #: The most likely branch, as a ref git knows; None when none is known.
    ref: str | None
    #: This branch's name (None when HEAD is detached or there is no git).
    current: str | None = None
    #: The other local branches, the most recently committed first.
    others: tuple[str, ...] = ()

    @property
    def current_is_base(self) -> bool:
        """This branch is a main or master with no remote base: others merge into it."""
        return self.ref is None and self.current in ("main", "master")


def likely_base(config: Config) -> BaseGuess:
    """The branch this one will most likely merge into, as a ref git knows, for a hint's
    command: the remote's default branch (`origin/HEAD`), else this branch's upstream,
    else a local `main` or `master` that is not this branch; none when none of them is
    there (or git is not), so that a hint never names a ref that does not exist. Then
    also this branch's name and the other local branches, for the hint to name."""
    try:
        top = toplevel(config, "resolve")
    except GitError:
        return BaseGuess(None)
    for args in (["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"],
                 ["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}"]):
        try:
            ref = _git(args, top).decode().strip()
        except GitError:
            continue
        if ref:
            return BaseGuess(ref)
    try:
        current = _git(["symbolic-ref", "--quiet", "--short", "HEAD"], top).decode().strip()
    except GitError:
        current = ""
    branches = _git(["for-each-ref", "--sort=-committerdate", "--format=%(refname:short)",
                     "refs/heads"], top).decode("utf-8", "surrogateescape").split("\n")
    others = tuple(name for name in branches if name and name != current)
    for name in ("main", "master"):
        if name in others:
            return BaseGuess(name, current or None, others)
    return BaseGuess(None, current or None, others)


def files_at(config: Config, side: OtherSide, commit: str | None = None) -> list[str]:
    """Every file path under the services' folders in the other side's commit (or
    `commit`), POSIX and relative to the config's folder (as `folders_of` spells the
    folders)."""
    relative = [_relative(side.top, s.migrations) for s in config.services]
    prefix = _relative(side.top, config.root)
    output = _git(["ls-tree", "-r", "-z", "--name-only", commit or side.commit, "--",
                   *[r for r in relative if r is not None]], side.top)
    paths = output.decode("utf-8", "surrogateescape").split("\0")
    return [_strip(path, prefix) for path in paths if path]


def this_branch_commit(side: OtherSide) -> str | None:
    """The commit this branch's files were written in: HEAD during a merge or before one
    (`--onto`); during a rebase, the commit being replayed (REBASE_HEAD), whose files
    still number as the branch did before the rebase. None when git has no such commit."""
    name = "REBASE_HEAD" if side.kind == "rebase" else "HEAD"
    try:
        return _git(["rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                    side.top).decode().strip() or None
    except GitError:
        return None


def contents_at(config: Config, side: OtherSide, commit: str,
                paths: list[str]) -> dict[str, bytes]:
    """The content in `commit` of each of `paths` (relative to the config's folder, as
    `files_at` gives them), read with one `git cat-file --batch`; a path that commit does
    not have is left out."""
    if not paths:
        return {}
    prefix = _relative(side.top, config.root)
    full = [path if prefix in (None, "", ".") else f"{prefix}/{path}" for path in paths]
    return _blobs(side.top, commit, paths, full)


def _blobs(top: Path, commit: str, paths: list[str], full: list[str]) -> dict[str, bytes]:
    """`paths[i]` -> the content in `commit` of `full[i]` (relative to `top`), read with
    one `git cat-file --batch`; a path the commit does not have is left out."""
    request = "".join(f"{commit}:{path}\n" for path in full).encode("utf-8", "surrogateescape")
    try:
        result = subprocess.run(["git", "cat-file", "--batch"], cwd=top, input=request,
                                capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("this needs git, and git is not installed") from None
    if result.returncode != 0:
        raise GitError("git cat-file --batch failed: "
                       + result.stderr.decode("utf-8", "replace").strip())
    found: dict[str, bytes] = {}
    output, at = result.stdout, 0
    for path in paths:
        end = output.index(b"\n", at)
        header = output[at:end].split()
        at = end + 1
        if header[-1] == b"missing":
            continue
        size = int(header[2])
        found[path] = output[at:at + size]
        at += size + 1
    return found


def tree_at(top: Path, commit: str, folders: list[str]) -> dict[str, bytes]:
    """Every file under `folders` (POSIX, relative to `top`) in `commit`: its path
    relative to `top` -> its content."""
    if not folders:
        return {}
    output = _git(["ls-tree", "-r", "-z", "--name-only", commit, "--", *folders], top)
    paths = [p for p in output.decode("utf-8", "surrogateescape").split("\0") if p]
    return _blobs(top, commit, paths, paths)


def relative_to_top(top: Path, path: Path) -> str | None:
    """`path` relative to the work tree's top, POSIX; None when it is outside."""
    return _relative(top, path)


def folders_of(config: Config) -> dict[str, str]:
    """Each service's folder, POSIX and relative to the config's folder -> the service."""
    return {s.migrations.relative_to(config.root).as_posix() if
            s.migrations.is_relative_to(config.root) else s.migrations.as_posix(): s.name
            for s in config.services}


def _strip(path: str, prefix: str | None) -> str:
    if prefix in (None, "", "."):
        return path
    return path.removeprefix(f"{prefix}/")


def _relative(top: Path, path: Path) -> str | None:
    try:
        return path.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return None


def _git_path(top: Path, name: str) -> Path:
    """Where git keeps `name` for this work tree (a linked worktree has its own)."""
    path = Path(_git(["rev-parse", "--git-path", name], top).decode().strip())
    return path if path.is_absolute() else top / path


def _name(top: Path, commit: str) -> str:
    """A branch or tag name for `commit` when git has one, else its short hash."""
    try:
        name = _git(["name-rev", "--name-only", "--no-undefined", "--exclude=*/HEAD", commit],
                    top).decode().strip()
    except GitError:
        return commit[:12]
    return name.removeprefix("remotes/") or commit[:12]
