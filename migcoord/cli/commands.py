"""One handler per command: parse its options, make one Coordinator call, render."""

from __future__ import annotations

import argparse

from migcoord.cli import helptext
from migcoord.cli import render as out
from migcoord.cli.context import AddCommand, Context, Handler
from migcoord.cli.progress import live_progress
from migcoord.cli.usage import Parser
from migcoord.core.ddl import duration_problem
from migcoord.core.naming import MAX_VERSION
from migcoord.errors import EXIT_FAILED, EXIT_OK, UsageError
from migcoord.repo.config import seconds_problem
from migcoord.results import shown_path


def _version(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number (digits only)")
    if int(text) > MAX_VERSION:
        raise argparse.ArgumentTypeError(
            f"{text} is above {MAX_VERSION}, the largest version PostgreSQL can record")
    return int(text)


def _version_or_label(text: str) -> tuple[int, str | None]:
    """`000007` -> (7, None); `000007_add_index` (a migration's label) -> (7, "add_index")."""
    number, underscore, name = text.partition("_")
    if underscore and not name:
        raise argparse.ArgumentTypeError(f"{text!r} has no name after the version")
    return _version(number), (name if underscore else None)


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _seconds(text: str) -> float:
    """A lock wait: the rule of migcoord.toml's lock_timeout (finite, above 0, at most a
    day), so `nan`, `inf`, `-1` and `1e300` are usage errors, not an endless wait."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    why = seconds_problem(value)
    if why is not None:
        raise argparse.ArgumentTypeError(why.replace(repr(value), repr(text)))
    return value


_LOCK_HELP = "how long to wait for another migcoord's migration lock (default 60)"


def register(sub: argparse._SubParsersAction[Parser],
             common: Parser) -> None:
    """Add every subcommand to `sub`, each with the global options of `common`."""

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = sub.add_parser(name, parents=[common], help=help_text, description=help_text,
                                epilog=helptext.epilog(name), formatter_class=helptext.Formatter)
        parser.set_defaults(handler=handler)
        return parser

    _register_offline(add)
    _register_database(add)
    _register_repair(add)
    # Commands of the SQL analysis (docs) and of the development tools (verify, dev).
    from migcoord.cli import completion, devcmds, initcmds, resolvecmd, sqlcmds

    resolvecmd.register(add, seconds=_seconds)
    sqlcmds.register(add)
    devcmds.register(add)
    initcmds.register(add)
    completion.register(add)


def _register_offline(add: AddCommand) -> None:
    p = add("create", cmd_create, "write the next migration's up and down files")
    p.add_argument("name", metavar="NAME", help="what the migration does, e.g. add_email_index")
    p.add_argument("--service", "-s", required=True, help="the service the migration belongs to")
    p.add_argument("--lock-timeout", type=_seconds, default=30.0, metavar="SEC",
                   help="how long to wait for another create (default 30)")

    p = add("check", cmd_check, "validate migrations offline (and with --db, against the database)")
    p.add_argument("--db", action="store_true", help="also compare with the database's history")
    p.add_argument("--strict", action="store_true", help="fail on warnings too")
    p.add_argument("--against", metavar="REF",
                   help="validate the merge with this git ref (e.g. origin/main)")
    p.add_argument("--no-sql", action="store_true",
                   help="skip the SQL analysis (ownership, dependencies, lints, docs-stale)")

    add("sum", cmd_sum, "rewrite migcoord.sum from the files (after a deliberate edit)")

    p = add("renumber", cmd_renumber, "move a migration to the next free number")
    p.add_argument("version", type=_version_or_label, metavar="VERSION",
                   help="the version to move, e.g. 000007; or its version and name, e.g. "
                   "000007_add_index, to pick one of two migrations with one number")
    p.add_argument("--service", "-s", required=True,
                   help="the service whose migration with that version moves")
    p.add_argument("--to", type=_version, metavar="V", help="the new number (default: next free)")


def _register_database(add: AddCommand) -> None:
    p = add("status", cmd_status, "every migration's state in the database")
    p.add_argument("--service", "-s", help="only this service's migrations")

    p = add("up", cmd_up, "apply pending migrations")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--service", "-s", help="apply this service's pending migrations")
    target.add_argument("--all", action="store_true",
                        help="apply every service's pending migrations in version order")
    p.add_argument("--to", type=_version, metavar="V", help="stop after version V")
    p.add_argument("--with-deps", action="store_true",
                   help="first apply other services' migrations this one depends on")
    p.add_argument("--allow-out-of-order", action="store_true",
                   help="apply a pending migration numbered below an applied one")
    p.add_argument("--dry-run", action="store_true", help="print the plan and SQL; change nothing")
    p.add_argument("--lock-timeout", "--migration-lock-timeout", type=_seconds, default=None,
                   metavar="SEC", help=_LOCK_HELP)
    _ddl_option(p)
    p.add_argument("--sync-each", action="store_true",
                   help="wait for a durable commit after every migration, not only the last")

    p = add("down", cmd_down, "roll back applied migrations, newest first")
    p.add_argument("--service", "-s", required=True,
                   help="roll back this service's migrations")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--steps", type=_positive, metavar="N", help="how many (default 1)")
    amount.add_argument("--to", type=_version, metavar="V",
                        help="roll back everything above V (V stays applied)")
    p.add_argument("--cascade", action="store_true",
                   help="first roll back applied migrations that depend on these")
    p.add_argument("--dry-run", action="store_true", help="print the plan and SQL; change nothing")
    p.add_argument("--lock-timeout", "--migration-lock-timeout", type=_seconds, default=None,
                   metavar="SEC", help=_LOCK_HELP)
    _ddl_option(p)


def _duration(text: str) -> str:
    """A DDL timeout: the rule of migcoord.toml's `[ddl] lock_timeout`."""
    why = duration_problem(text)
    if why is not None:
        raise argparse.ArgumentTypeError(why)
    return text


def _ddl_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ddl-lock-timeout", type=_duration, default=None, metavar="DURATION",
        help="each migration's PostgreSQL lock_timeout, e.g. 30s or 500ms; 0 waits without "
        "limit (default: the file's, the service's or [ddl]'s, else 5s)")


def _register_repair(add: AddCommand) -> None:
    for name, help_text in (("mark", "record a migration as applied or pending without running it"),
                            ("force", "alias of `mark VERSION --applied` (golang-migrate's force)")):
        p = add(name, cmd_mark, help_text)
        p.add_argument("version", type=_version, metavar="VERSION",
                       help="the migration to record, e.g. 000007")
        if name == "mark":
            state = p.add_mutually_exclusive_group(required=True)
            state.add_argument("--applied", action="store_true",
                               help="record it as applied (you made its changes by hand)")
            state.add_argument("--pending", action="store_true",
                               help="record it as not applied (you undid its changes by hand)")
        else:
            p.set_defaults(applied=True, pending=False)
        p.add_argument("--reason", metavar="TEXT", help="why (kept in migcoord_events)")
        p.add_argument("--lock-timeout", "--migration-lock-timeout", type=_seconds,
                       default=None, metavar="SEC", help=_LOCK_HELP)

    p = add("adopt", cmd_adopt, "take over a database that golang-migrate managed")
    p.add_argument("--from-golang-migrate", action="store_true", required=True,
                   help="read golang-migrate's schema_migrations (the only source so far)")
    p.add_argument("--table", default="schema_migrations",
                   help="golang-migrate's table (default schema_migrations; schema.table works)")
    p.add_argument("--lock-timeout", "--migration-lock-timeout", type=_seconds, default=None,
                   metavar="SEC", help=_LOCK_HELP)


# -- offline commands -----------------------------------------------------------------------


def cmd_create(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    created = coordinator.create(args.service, args.name, lock_timeout=args.lock_timeout)
    out.created(ctx, created, coordinator.config.root)
    return EXIT_OK


def cmd_check(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    # This process runs no other threads, so the SQL analysis may fork workers.
    merged: tuple[str, int] | None = None
    if args.against is None:
        findings = coordinator.check(sql=not args.no_sql, parallel=True)
    else:
        # The warnings of migrations the ref already has cannot be fixed here: counted,
        # not listed, and not failing --strict.
        scoped = coordinator.check_against(args.against, sql=not args.no_sql, parallel=True)
        findings, merged = list(scoped.shown), (args.against, len(scoped.merged))
    if args.db:
        findings = findings + coordinator.check_database(dsn=ctx.dsn(coordinator))
    failing = [f for f in findings if f.is_error or args.strict]
    out.findings(ctx, coordinator.config.root, findings, ok=not failing, merged=merged)
    return EXIT_FAILED if failing else EXIT_OK


def cmd_sum(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    path = coordinator.write_sum()
    out.message(ctx, f"wrote {out.display(path)}",
                {"sum": shown_path(path, coordinator.config.root)})
    return EXIT_OK


def cmd_renumber(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    # Only an explicit --dsn involves the database (see Coordinator.renumber).
    version, name = args.version
    result = coordinator.renumber(version, args.service, to=args.to, name=name, dsn=args.dsn)
    out.renumbered(ctx, result, coordinator.config.root)
    return EXIT_OK


# -- database commands ----------------------------------------------------------------------


def cmd_status(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    report = coordinator.status(service=args.service, dsn=ctx.dsn(coordinator))
    out.status(ctx, report, coordinator.config.root)
    return EXIT_FAILED if report.has_errors else EXIT_OK


def cmd_up(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    dsn = ctx.dsn(coordinator)
    if args.to is not None and args.all and args.with_deps:
        raise UsageError("--with-deps has no meaning with --all (everything is applied)")
    with live_progress(ctx) as live:
        result = coordinator.up(
            args.service, all_services=args.all, to=args.to, with_deps=args.with_deps,
            allow_out_of_order=args.allow_out_of_order, dry_run=args.dry_run,
            sync_each=args.sync_each, lock_timeout=args.lock_timeout,
            ddl_lock_timeout=args.ddl_lock_timeout, dsn=dsn,
            on_step=live.on_step if live else None)
    out.up_result(ctx, result)
    return EXIT_OK


def cmd_down(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    dsn = ctx.dsn(coordinator)
    with live_progress(ctx) as live:
        result = coordinator.down(
            args.service, steps=args.steps, to=args.to, cascade=args.cascade,
            dry_run=args.dry_run, lock_timeout=args.lock_timeout,
            ddl_lock_timeout=args.ddl_lock_timeout, dsn=dsn,
            on_step=live.on_step if live else None)
    out.down_result(ctx, result)
    return EXIT_OK


def cmd_mark(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    result = coordinator.mark(args.version, applied=bool(args.applied), reason=args.reason,
                              lock_timeout=args.lock_timeout, dsn=ctx.dsn(coordinator))
    out.marked(ctx, result)
    return EXIT_OK


def cmd_adopt(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    result = coordinator.adopt(table=args.table, lock_timeout=args.lock_timeout,
                               dsn=ctx.dsn(coordinator))
    out.adopted(ctx, result)
    return EXIT_OK
