"""CLI command `resolve`: move this branch's migrations after a merge collision."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from migcoord.cli import render as out
from migcoord.cli.context import AddCommand, Context
from migcoord.errors import EXIT_OK
from migcoord.results import Resolved

#: What to run once resolve is done, by the git state it worked in.
_NEXT = {
    "merge": "`git add -A` the moved files and migcoord.sum, then `git commit` to finish the merge",
    "rebase": "`git add -A` the moved files and migcoord.sum, then `git rebase --continue`",
    "ref": "commit the moved files and migcoord.sum; `migcoord check --against {ref}` is "
           "then clean of collisions",
}


def register(add: AddCommand, *, seconds: Callable[[str], float]) -> None:
    """Add `resolve`; `seconds` parses --lock-timeout as every command does."""
    p = add("resolve", cmd_resolve,
            "after (or before) a merge collision: keep the other side's numbers, move this "
            "branch's migrations after them")
    p.add_argument("--onto", metavar="REF",
                   help="the branch you will merge into (e.g. origin/main), before merging; "
                   "default: the merge or rebase in progress")
    p.add_argument("--lock-timeout", type=seconds, default=30.0, metavar="SEC",
                   help="how long to wait for another create/renumber (default 30)")


def cmd_resolve(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    # Only an explicit --dsn involves the database (as for renumber).
    result = coordinator.resolve(onto=args.onto, lock_timeout=args.lock_timeout, dsn=args.dsn)
    resolved(ctx, result, args.onto)
    return EXIT_OK


def resolved(ctx: Context, result: Resolved, onto: str | None) -> None:
    if ctx.json:
        out.emit_json(ctx, result.as_json())
        return
    write = ctx.stdout.write
    if not result.versions:
        write(f"nothing to move: no migration of this branch shares a number with "
              f"{result.other_side}\n")
    for name in result.kept:
        write(f"kept {name} ({result.other_side})\n")
    for service, name, old, new in result.versions:
        write(f"moved {service} {old}_{name} -> {new}_{name}\n")
    for source, target in result.moved:
        write(f"  renamed {out.display(source)} -> {out.display(target)}\n")
    for path in result.edited:
        write(f"updated depends in {out.display(path)}\n")
    for left in result.ambiguous:
        ctx.stderr.write(f"migcoord: {ctx.paint_err.warning('warning')}: left a bare reference "
                         f"unchanged (two of this branch's migrations moved from that number): "
                         f"{left.describe(out.display(left.path))}\n")
    if result.sum_updated:
        write("updated migcoord.sum\n")
    if not ctx.args.quiet:
        ctx.stderr.write("migcoord: next: " + _NEXT[result.state].format(ref=onto) + "\n")
