"""Why git could not name a commit, or the commit two histories split at, in words that
say what is true and a command that helps.

`repo/git` asks git first and comes here only when git failed:

- `unknown_ref`: REF names no commit. A walk like `main~5` or `HEAD^2` that leaves the
  history (past the first commit, a second parent of a commit that has only one) is told
  apart from a shallow clone whose history stops short, a ref that names a tree or a
  blob, and a name git does not know at all.
- `no_merge_base`: HEAD and REF share no commit: a shallow clone that lacks the history
  back to where they split, two unrelated histories (an orphan branch), or a branch
  with no commit yet.

Each function gets `run`, which runs git in the work tree's top and returns its output
(GitError when git fails); the processes themselves are `repo/git`'s.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from migcoord.errors import GitError

Run = Callable[[list[str]], bytes]

#: `git fetch --unshallow` fetches from the branch's remote, else origin.
UNSHALLOW = ("fetch the whole history: `git fetch --unshallow` (in GitHub Actions, "
             "`fetch-depth: 0` on actions/checkout)")
#: A ref that ends in parent steps: `main~5`, `HEAD^2`, `v1.0^^~3`.
_WALK = re.compile(r"(.+?)((?:\^[0-9]*|~[0-9]*)+)")
_STEP = re.compile(r"\^([0-9]*)|~([0-9]*)")


def unknown_ref(run: Run, ref: str, command: str | None) -> GitError:
    """The error for a `ref` that git's `rev-parse REF^{commit}` refused; `command` is
    what to run without --against (`migcoord check`), None when there is nothing."""
    walked = _walk(run, ref, command)
    if walked is not None:
        return walked
    if _shallow(run):
        return GitError(
            f"git does not know the ref {ref!r}: this clone is shallow (it has only the "
            "newest commits)",
            hint=f"{UNSHALLOW}, or check the spelling: `git rev-parse {shlex.quote(ref)}`")
    kind = _object_type(run, ref)
    if kind is not None and kind != "commit":
        what = {"tree": "folder (a git tree)", "blob": "file (a git blob)"}.get(kind, kind)
        return GitError(f"{ref!r} names a {what}, not a commit",
                        hint="name a branch, a tag or a commit (e.g. origin/main)")
    fetch = _fetch(run, ref)
    return GitError(f"git does not know the ref {ref!r}",
                    hint=f"{fetch}check the spelling: `git rev-parse {shlex.quote(ref)}`; "
                    "`git branch -a` lists the branches git knows")


def no_merge_base(run: Run, ref: str, command: str | None) -> GitError:
    """The error when `git merge-base HEAD REF` finds nothing (REF itself is known)."""
    if _commit(run, "HEAD") is None:
        return GitError(f"this branch has no commit yet, so it shares no history with {ref!r}",
                        hint="commit first (`git add -A` and `git commit`), then compare"
                        + (f"; `{command}` without --against needs no commit" if command
                           else ""))
    if _shallow(run):
        return GitError(
            f"this clone is shallow: it lacks the history back to where HEAD and {ref!r} "
            "split, so what each side added since then cannot be told", hint=UNSHALLOW)
    return GitError(
        f"HEAD and {ref!r} share no commit: their histories are unrelated (as an orphan "
        "branch's is), and git merges them only with --allow-unrelated-histories, so there "
        "is no merge to compare with",
        hint="name the branch this one was made from and will merge into" + (
            f"; `{command}` without --against runs on this branch alone" if command else ""))


def _walk(run: Run, ref: str, command: str | None) -> GitError | None:
    """When `ref` is a known ref followed by parent steps (`~N`, `^N`): the error naming
    the step that leaves the history, None when there is none (or `ref` is no walk)."""
    match = _WALK.fullmatch(ref)
    if match is None:
        return None
    prefix = match.group(1)
    commit = _commit(run, prefix)
    if commit is None:
        return None
    for step in _STEP.finditer(match.group(2)):
        text = step.group(0)
        if text.startswith("^"):
            number = int(step.group(1) or "1")
            if number > 0:
                parents = _parents(run, commit)
                if number > len(parents):
                    return _no_parent(run, ref, prefix, commit, number, parents, command)
                if _cut_off(run, commit, parents):
                    return _cut(ref, prefix)
                commit = parents[number - 1]
        else:
            number = int(step.group(2) or "1")
            # The first-parent chain counted at once: `~100000` is no 100000 processes.
            steps = int(run(["rev-list", "--first-parent", "--count", commit]).decode()) - 1
            if number > steps:
                last = run(["rev-parse", f"{commit}~{steps}"]).decode().strip()
                if _cut_off(run, last, _parents(run, last)):
                    return _cut(ref, f"{prefix}~{steps}" if steps else prefix)
                return _too_far(run, ref, prefix, last, number, steps, command)
            commit = run(["rev-parse", f"{commit}~{number}"]).decode().strip()
        prefix += text
    return None


def _no_parent(run: Run, ref: str, prefix: str, commit: str, number: int,
               parents: list[str], command: str | None) -> GitError:
    """`prefix^number` does not exist: `prefix` has fewer parents."""
    if not parents:
        return _at_root(run, f"{ref!r} names a parent of {prefix!r}, which has none",
                        prefix, commit, command)
    have = "only one parent (it is not a merge commit)" if len(parents) == 1 else \
        f"only {len(parents)} parents"
    return GitError(f"{ref!r} names parent {number} of {prefix!r}, which has {have}",
                    hint=f"`git log --oneline --graph -n 10 {shlex.quote(prefix)}` shows "
                    "its history: name a commit there")


def _too_far(run: Run, ref: str, prefix: str, commit: str, number: int, taken: int,
             command: str | None) -> GitError:
    """`prefix~number` goes past the first commit: only `taken` steps exist."""
    before = {0: "no commit", 1: "one commit"}.get(taken, f"{taken} commits")
    return _at_root(run, f"{ref!r} goes {number} commits back from {prefix!r} along first "
                    f"parents, but {prefix!r} has {before} before it",
                    prefix, commit, command)


def _at_root(run: Run, said: str, prefix: str, commit: str, command: str | None) -> GitError:
    """The walk stopped at `commit`, which has no parent: a first commit."""
    short = commit[:12]
    if commit == _commit(run, "HEAD") and command is not None:
        return GitError(f"{said}: HEAD ({short}) is a first commit, with nothing before it",
                        hint="a first commit has nothing to compare with: run "
                        f"`{command}` without --against here")
    return GitError(f"{said}: {short} is a first commit, with nothing before it",
                    hint=f"`git log --oneline --graph -n 10 {shlex.quote(prefix)}` shows "
                    "its history: name a commit there")


def _cut(ref: str, last: str) -> GitError:
    """The walk reached the oldest commit a shallow clone has: its parents are not
    fetched."""
    return GitError(f"{ref!r} goes back past {last!r}, where the history of this shallow "
                    "clone stops (it has only the newest commits)", hint=UNSHALLOW)


def _parents(run: Run, commit: str) -> list[str]:
    """The parents `commit` records, also those a shallow clone has not fetched (which
    `git rev-list` hides)."""
    header = run(["cat-file", "commit", commit]).decode("utf-8", "replace").split("\n\n", 1)[0]
    return [line.split()[1] for line in header.splitlines() if line.startswith("parent ")]


def _cut_off(run: Run, commit: str, parents: list[str]) -> bool:
    """Whether a shallow clone's history stops at `commit`: git sees fewer parents than
    the commit records."""
    seen = run(["rev-list", "--parents", "-n", "1", commit]).decode().split()[1:]
    return len(seen) < len(parents)


def _shallow(run: Run) -> bool:
    try:
        return run(["rev-parse", "--is-shallow-repository"]).decode().strip() == "true"
    except GitError:
        return False


def _commit(run: Run, ref: str) -> str | None:
    try:
        return run(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"]).decode().strip() \
            or None
    except GitError:
        return None


def _object_type(run: Run, ref: str) -> str | None:
    try:
        name = run(["rev-parse", "--verify", "--quiet", ref]).decode().strip()
        return run(["cat-file", "-t", name]).decode().strip() or None
    except GitError:
        return None


def _fetch(run: Run, ref: str) -> str:
    """The start of a hint that fetches `ref`: from the remote it names (`origin/x`),
    else origin, else every remote; "" when there is no remote to fetch from."""
    try:
        remotes = run(["remote"]).decode("utf-8", "surrogateescape").split()
    except GitError:
        return ""
    named = ref.split("/", 1)[0] if "/" in ref else None
    remote = named if named in remotes else "origin" if "origin" in remotes else None
    if remote is not None:
        return f"fetch it first (`git fetch {shlex.quote(remote)}`), or "
    return "fetch it first (`git fetch --all`), or " if remotes else \
        "this repository has no remote to fetch it from; "
