"""CLI commands for `docs`: generated migration tables and the schema registry."""

from __future__ import annotations

import argparse

from migcoord.cli import render as out
from migcoord.cli.context import AddCommand, Context
from migcoord.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Interrupted, ThrowawayLeft
from migcoord.results import shown_path


def register(add: AddCommand) -> None:
    p = add("docs", cmd_docs,
            "write the generated tables (services, migrations, dependencies) into the "
            "configured docs file")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 with docs-stale when the file is out of date "
                   "(the schema registry is judged by its fingerprint, with no server)")
    p.add_argument("--schema", action=argparse.BooleanOptionalAction, default=None,
                   help="also write the schema registry: apply every migration on a "
                   "throwaway database (on --dsn's server, else the dev server or a "
                   "temporary one) and describe what each service owns, with diagrams "
                   "(default: the config's docs_schema)")


def cmd_docs(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    builds = not args.check and (args.schema if args.schema is not None
                                 else coordinator.config.docs_schema)
    if builds:
        from migcoord.cli.devcmds import sigterm_as_interrupt

        try:
            with sigterm_as_interrupt():
                update = coordinator.docs(schema=args.schema, dsn=args.dsn)
        except KeyboardInterrupt as stop:
            return _interrupted(ctx, stop.left if isinstance(stop, Interrupted) else None)
    else:
        update = coordinator.docs(check=args.check, schema=args.schema, dsn=args.dsn)
    if args.check:
        finding = update.finding()
        found = [finding] if finding is not None else []
        out.findings(ctx, coordinator.config.root, found, ok=not found)
        return EXIT_FAILED if found else EXIT_OK
    shown = out.display(update.path)
    text = f"wrote {shown}" if update.written else f"{shown} is up to date"
    out.message(ctx, text, {**update.as_json(),
                            "path": shown_path(update.path, coordinator.config.root)})
    return EXIT_OK


_INTERRUPTED = ("docs --schema interrupted; no throwaway database is left and no other "
                "database was touched")


def _interrupted(ctx: Context, left: ThrowawayLeft | None) -> int:
    """Ctrl-C (or SIGTERM) while the schema was built: the throwaway database is dropped
    on the way out (verify.servers), so say that (or what is left when it could not be),
    not the advice for a real database."""
    error = out.throwaway_interrupted(
        ctx, _INTERRUPTED if left is None else "docs --schema interrupted", left)
    if ctx.json:
        out.emit_json(ctx, {"ok": False, "error": error})
    return EXIT_INTERRUPTED
