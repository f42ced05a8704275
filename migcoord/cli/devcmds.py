"""CLI commands for `verify` and `dev`: round trips and the embedded development server."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from migcoord.cli import render as out
from migcoord.cli.context import AddCommand, Context
from migcoord.cli.progress import LiveStatus, live_progress
from migcoord.cli.terminal import PLAIN, Palette
from migcoord.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_RETRY, Interrupted

if TYPE_CHECKING:
    from migcoord.verify import MigrationVerdict, Problem, SequenceVerdict, VerifyReport



def register(add: AddCommand) -> None:
    p = add("verify", cmd_verify,
            "run every migration up, down and up again on a throwaway database and compare "
            "the schema after each step")
    p.add_argument("--service", "-s",
                   help="round-trip only this service's migrations (the others numbered below "
                   "them are applied once)")
    p.add_argument("--keep", action="store_true",
                   help="keep the throwaway database for inspection and print its DSN")
    p.add_argument("--against", metavar="REF",
                   help="verify the merge with this git ref: apply the migrations REF has "
                   "once, round-trip only the ones this branch adds")

    p = add("dev", cmd_dev,
            "a local PostgreSQL for development, data in .migcoord/dev (needs migcoord[embedded])")
    p.add_argument("action", choices=("start", "stop", "status", "url"),
                   help="start (prints the DSN; nothing to do when running), stop, status, "
                   "url (the DSN only: export DATABASE_URL=$(migcoord dev url))")
    p.add_argument("--port", type=int, default=None, metavar="PORT",
                   help="for start: listen on PORT (default: the previous port when free)")


# -- verify ---------------------------------------------------------------------------------


def cmd_verify(args: argparse.Namespace, ctx: Context) -> int:
    coordinator = ctx.coordinator()
    verdicts: list[MigrationVerdict | SequenceVerdict] = []
    live: LiveStatus | None = None

    def progress(item: MigrationVerdict | SequenceVerdict) -> None:
        verdicts.append(item)
        from migcoord.verify import MigrationVerdict

        if ctx.args.quiet or (isinstance(item, MigrationVerdict) and item.base and item.ok):
            return  # the base's migrations, applied once: counted in the summary
        line = f"migcoord: {_progress_line(item, ctx.paint_err)}\n"
        if live is not None:
            live.write(line)
        else:
            ctx.stderr.write(line)
            ctx.stderr.flush()

    try:
        with sigterm_as_interrupt(), live_progress(ctx) as live:
            report = coordinator.verify(args.service, dsn=args.dsn, keep=args.keep,
                                        on_progress=progress, against=args.against,
                                        on_step=live.on_step if live else None)
    except KeyboardInterrupt as stop:
        left = stop.left if isinstance(stop, Interrupted) else None
        # True also when the stop came before the database was made (during initdb).
        what = ("its throwaway database, if it was made, is kept" if args.keep
                else "no throwaway database is left")
        error = out.throwaway_interrupted(
            ctx, "verify interrupted" if left is not None else f"verify interrupted; {what}",
            left)
        if ctx.json:
            from migcoord.verify import MigrationVerdict

            # The one document on stdout still comes: what was verified before the stop.
            out.emit_json(ctx, {"ok": False, "error": error,
                                "migrations": [item.as_json() for item in verdicts
                                               if isinstance(item, MigrationVerdict)]})
        return EXIT_INTERRUPTED
    _verify_report(ctx, report)
    return EXIT_OK if report.ok else EXIT_FAILED


#: How a migration applied without a round trip is shown, by why (verify.plan.NoRoundTrip).
_APPLIED = {
    "other-service": "applied (not this service's: no round trip)",
    "base": "applied (the ref of --against has it: no round trip)",
    "adopted": "adopted: no down file, applied without a round trip",
}


def _progress_line(item: MigrationVerdict | SequenceVerdict, paint: Palette = PLAIN) -> str:
    from migcoord.verify import MigrationVerdict

    if isinstance(item, MigrationVerdict):
        times = [f"{label} {value} ms" for label, value in
                 (("up", item.up_ms), ("down", item.down_ms), ("up again", item.up_again_ms),
                  ("rebuild", item.rebuild_ms))
                 if value is not None]
        state = {"ok": paint.ok("ok"), "applied": _APPLIED[item.no_round_trip or "other-service"],
                 "failed": paint.error("FAILED") + " ("
                 + ", ".join(dict.fromkeys(p.stage for p in item.problems)) + ")",
                 "skipped": "skipped (not run)"}[item.status]
        if item.rebuilt:
            state += "; built the throwaway database again up to here to go on"
        return f"{item.label}: {state}" + (f"  [{', '.join(times)}]" if times else "")
    if not item.ran:
        return f"whole sequence down and up again: {item.note}"
    spent = f"  [down {item.down_ms} ms, up {item.up_ms} ms]" if item.up_ms is not None else ""
    verdict = paint.ok("ok") if item.ok else paint.error("FAILED")
    return f"whole sequence down and up again: {verdict}{spent}"


def _verify_report(ctx: Context, report: VerifyReport) -> None:
    if ctx.json:
        out.emit_json(ctx, report.as_json())
        return
    write = ctx.stdout.write
    paint = ctx.paint_out
    for failed_one in report.failed:
        write(f"{paint.error('FAILED')} {failed_one.label}\n")
        for problem in failed_one.problems:
            _problem(ctx, problem)
        if failed_one.rebuilt:
            write(f"  (the throwaway database was built again with every migration up to here "
                  f"applied once, in {failed_one.rebuild_ms} ms, and verify went on)\n")
    skipped = report.skipped
    if skipped:
        span = (skipped[0].label if len(skipped) == 1
                else f"{skipped[0].label} to {skipped[-1].label}")
        write(f"skipped {len(skipped)} migration{'s' if len(skipped) != 1 else ''} ({span}): "
              f"{skipped[0].skip_reason}\n")
    _lock_flags(ctx, report)
    if report.sequence.status == "failed":
        write(f"{paint.error('FAILED')} whole sequence down and up again\n")
        for problem in report.sequence.problems:
            _problem(ctx, problem)
    if report.kept_dsn:
        write(f"kept the throwaway database: {report.kept_dsn}\n")
    if ctx.args.quiet and report.ok:
        return
    verdict = paint.ok("verify ok") if report.ok else paint.error("verify failed")
    write(f"{verdict}: {_counts(report)}; "
          f"{_sequence_summary(report)} ({report.elapsed_ms / 1000:.1f} s)\n")


def _lock_flags(ctx: Context, report: VerifyReport) -> None:
    """The migrations that lock another service's table (SHARE or stronger) or rewrite a
    table, as measured on the throwaway database: what they will do in production."""
    flagged = [verdict for verdict in report.migrations if verdict.lock_flags]
    if not flagged:
        return
    ctx.stdout.write("lock impact (measured on the throwaway database; `--format json` "
                     "lists every lock):\n")
    for verdict in flagged:
        for flag in verdict.lock_flags:
            ctx.stdout.write(f"  {verdict.label}: {flag}\n")


def _counts(report: VerifyReport) -> str:
    """`N migrations round-tripped, K failed, S skipped, A applied without a round trip`:
    round-tripped counts those that passed and those that failed; a skipped migration was
    not run, so it is neither."""
    counts = report.counts
    tripped = counts["round_tripped"]
    parts = [f"{tripped} migration{'s' if tripped != 1 else ''} round-tripped"]
    parts += [f"{counts[key]} {label}" for key, label in
              (("failed", "failed"), ("skipped", "skipped"),
               ("applied", "applied without a round trip")) if counts[key]]
    return ", ".join(parts)


def _sequence_summary(report: VerifyReport) -> str:
    sequence = report.sequence
    if sequence.status == "nothing":
        return f"whole sequence: {sequence.note}"
    if not sequence.ran:
        return f"whole sequence {sequence.note}"
    return "whole sequence ok" if sequence.ok else "whole sequence FAILED"


def _problem(ctx: Context, problem: Problem) -> None:
    message = problem.message.replace("\n", "\n    ")
    ctx.stdout.write(f"  {problem.stage}: {message}\n")
    for line in problem.diff:
        ctx.stdout.write("    " + line.replace("\n", "\n    ") + "\n")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a cancelled CI job) like Ctrl-C, so the throwaway database is dropped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- dev ------------------------------------------------------------------------------------


def cmd_dev(args: argparse.Namespace, ctx: Context) -> int:
    from migcoord.local import devserver

    config = ctx.coordinator().config
    where = out.display(devserver.data_dir(config, ctx.environ))
    if args.action == "url":
        dsn = devserver.running_dsn(config, ctx.environ, asked_by="`migcoord dev url`")
        if ctx.json:
            out.emit_json(ctx, {"dsn": dsn})
        else:
            ctx.stdout.write(dsn + "\n")
        return EXIT_OK
    if args.action == "start":
        status = devserver.start(config, ctx.environ, port=args.port)
        note = (f"started the development server (data in {where})" if status.changed
                else "the development server is already running")
    elif args.action == "stop":
        status = devserver.stop(config, ctx.environ)
        note = ("stopped the development server" if status.changed
                else "the development server is not running")
    else:
        status = devserver.status(config, ctx.environ)
        if ctx.json:
            out.emit_json(ctx, status.as_json())
        elif ctx.args.quiet:
            pass  # the exit code says it
        elif status.running:
            ctx.stdout.write(f"running: {status.dsn} (data in {where})\n")
        else:
            ctx.stdout.write(f"not running (data in {where}; start it with `migcoord dev start`)\n")
        # As `dev url` (and systemctl status): a script can test for a running server.
        return EXIT_OK if status.running else EXIT_RETRY
    if ctx.json:
        out.emit_json(ctx, status.as_json())
        return EXIT_OK
    if not ctx.args.quiet:
        ctx.stderr.write(f"migcoord: {note}\n")
    if status.running:
        ctx.stdout.write(f"{status.dsn}\n")
    return EXIT_OK
