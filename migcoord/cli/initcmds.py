"""CLI commands that set a repository up: `init` and `makefile`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from migcoord.cli import render as out
from migcoord.cli.context import AddCommand, Context
from migcoord.errors import EXIT_OK


def register(add: AddCommand) -> None:
    p = add("init", cmd_init,
            "set migcoord up in this repository: migcoord.toml from the golang-migrate folders "
            "found here, Makefile.inc, each service's two-line Makefile, .gitignore, the sum; "
            "never overwrites a file")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be written; write nothing")

    p = add("makefile", cmd_makefile,
            "print the path of the Makefile.inc installed with migcoord, or write a copy")
    p.add_argument("--write", metavar="PATH",
                   help="write a copy to PATH (a file, or a folder to put Makefile.inc in: "
                   "one that exists, or DIR/ to create it); an existing different file is "
                   "never overwritten")


def cmd_init(args: argparse.Namespace, ctx: Context) -> int:
    from migcoord.repo import scaffold

    report = scaffold.init(Path.cwd(), dry_run=args.dry_run)
    if ctx.json:
        out.emit_json(ctx, report.as_json())
        return EXIT_OK
    if ctx.args.quiet:
        # Only what asks for the user's hand: a Makefile init did not overwrite.
        for step in report.steps:
            if step.action == "change":
                ctx.stdout.write(f"  {step.action:<12} {out.display(step.path)}  ({step.note})\n")
        return EXIT_OK
    write = ctx.stdout.write
    services = ", ".join(f"{s.name} ({s.migrations}, {s.migration_count} migration"
                         f"{'s' if s.migration_count != 1 else ''})"
                         for s in report.proposal.services)
    if report.proposal.is_new:
        write(f"no golang-migrate folder found: a starting config with one service, {services}\n")
    else:
        write(f"services: {services}\n")
        width = report.proposal.widths_seen
        if len(width) > 1:
            write(f"version width {report.proposal.version_width} (the most common; files with "
                  f"width {', '.join(map(str, width[1:]))} are reported as version-width)\n")
    for step in report.steps:
        note = f"  ({step.note})" if step.note else ""
        write(f"  {step.action:<12} {out.display(step.path)}{note}\n")
    for folder, table in report.unconfigured:
        count = f"{folder.up_count} migration{'s' if folder.up_count != 1 else ''}"
        write(f"not configured: {folder.path} ({count}); init does not change an existing "
              "migcoord.toml: add\n")
        write("".join(f"    {line}\n" for line in table.splitlines()))
        write("  to it, then run `migcoord sum`\n")
    for skipped in report.skipped:
        write(f"skipped: {skipped.path} ({skipped.reason})\n")
    if report.dry_run:
        write("nothing written (--dry-run); run `migcoord init` to write it\n")
        return EXIT_OK
    write("next:\n")
    for command in report.next_commands:
        write(f"  {command}\n")
    return EXIT_OK


def cmd_makefile(args: argparse.Namespace, ctx: Context) -> int:
    from migcoord.repo import scaffold

    if args.write is None:
        path = scaffold.packaged_makefile_inc()
        out.message(ctx, str(path), {"path": str(path)})
        return EXIT_OK
    # The trailing `/` of `DIR/` says "a folder"; Path() would drop it. The path is shown
    # as it was given, not relative to the working directory.
    folder = args.write.endswith(("/", os.sep))
    step = scaffold.write_makefile_inc(Path(args.write), folder=folder)
    text = (f"wrote {step.path}" if step.action == "wrote"
            else f"{step.path} is already the installed Makefile.inc")
    out.message(ctx, text, {"path": str(step.path), "action": step.action})
    return EXIT_OK
