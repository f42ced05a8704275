"""`migcoord` command line: argparse -> one Coordinator call -> render.

The only place that exits the process. Global options are accepted before or after the
command (`migcoord --format json status` == `migcoord status --format json`).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn, TextIO

from migcoord.cli.context import Context, Handler
from migcoord.cli.usage import Parser, UsageExit, print_json, wants_json
from migcoord.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Interrupted,
    MigcoordError,
    UsageError,
)

log = logging.getLogger("migcoord")

def _common_options() -> Parser:
    common = Parser(add_help=False)
    group = common.add_argument_group("global options")
    # SUPPRESS keeps a value given before the command from being reset by the
    # subcommand's own copy of the option.
    group.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                       help="migcoord.toml to use (default: $MIGCOORD_CONFIG, else the nearest "
                       "one above the working directory)")
    group.add_argument("--dsn", metavar="DSN", default=argparse.SUPPRESS,
                       help="database to use (default: the env var named by database_url_env)")
    group.add_argument("--format", choices=("text", "json"), default=argparse.SUPPRESS,
                       help="output format (json: one document on stdout)")
    group.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                       help="print only errors and warnings")
    group.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="print debug detail")
    return common


def build_parser() -> argparse.ArgumentParser:
    from migcoord.cli import commands, helptext

    common = _common_options()
    parser = Parser(
        prog="migcoord", parents=[common],
        description="Coordinate SQL migrations for several services sharing one PostgreSQL "
        "database.", epilog=helptext.TOP_EPILOG, formatter_class=helptext.Formatter)
    # Its own dest: `renumber VERSION` and `mark VERSION` have a positional `version`.
    parser.add_argument("--version", action="store_true", dest="show_version",
                        help="print the installed version of migcoord and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND",
                                help="run `migcoord COMMAND --help` for its options")
    commands.register(sub, common)
    return parser


def run() -> NoReturn:
    """The `migcoord` command and `python -m migcoord`: one command, then the process ends."""
    # What the imports built lives as long as the process, so the collector need not walk
    # it again: a full collection over psycopg's and migcoord's objects, set off by a boot
    # reading a thousand files, cost more than the reading. A library caller (or a test
    # calling `main`) keeps its collector as it is.
    gc.freeze()
    sys.exit(main())


def main(argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    env = os.environ if environ is None else environ
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(words)
    except KeyboardInterrupt:
        print("migcoord: interrupted before the command began; nothing was done", file=err)
        return EXIT_INTERRUPTED
    except UsageExit as refused:
        if wants_json(words):
            print_json(refused.error, out)
        return refused.error.exit_code
    except SystemExit as exit_:
        return int(exit_.code or 0)
    for name, default in (("config", None), ("dsn", None), ("format", "text"),
                          ("quiet", False), ("verbose", False)):
        if not hasattr(args, name):
            setattr(args, name, default)
    if getattr(args, "show_version", False):
        import migcoord

        if args.format == "json":
            print(json.dumps({"version": migcoord.__version__}), file=out)
        else:
            print(f"migcoord {migcoord.__version__}", file=out)
        return EXIT_OK
    if args.command is None:
        parser.print_help(err)
        if args.format == "json":
            print_json(UsageError("no command given", hint="run `migcoord --help` for the "
                                  "commands"), out)
        return EXIT_USAGE
    restore_logging = _configure_logging(args, err, env)
    context = Context(args, env, out, err, parser)
    handler: Handler = args.handler
    try:
        return handler(args, context)
    except MigcoordError as error:
        _report(error, context)
        return error.exit_code
    except ImportError as import_error:
        from migcoord.cli.extras import missing_dependency

        missing = missing_dependency(import_error)
        if missing is None:
            raise
        _report(missing, context)
        return missing.exit_code
    except KeyboardInterrupt as stop:
        _report_interrupt(stop, context)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
    finally:
        restore_logging()


#: Under which key `up` and `down` list what committed before a failure (DESIGN.md).
_PARTIAL_KEYS = {"up": "applied", "down": "rolled_back"}


def _report(error: MigcoordError, context: Context) -> None:
    from migcoord.cli.render import redact, redact_json

    text = redact(str(error))
    print(f"migcoord: {context.paint_err.error('error')}: {text}", file=context.stderr)
    if context.json:
        document: dict[str, object] = {"ok": False, "error": redact_json(error.as_json())}
        key = _PARTIAL_KEYS.get(context.args.command)
        if key is not None:
            document[key] = [step.as_json() for step in error.applied]
        print(json.dumps(document, indent=2), file=context.stdout)


_INTERRUPTED = ("interrupted; each migration is applied together with its history row or "
                "not at all (a no-transaction migration can be left dirty: see `migcoord "
                "status`)")


def _report_interrupt(stop: KeyboardInterrupt, context: Context) -> None:
    """Say what an interrupt leaves behind; with --format json also as the one document
    on stdout, listing what `up`/`down` committed before it."""
    print(f"migcoord: {_INTERRUPTED}", file=context.stderr)
    if context.json:
        document: dict[str, object] = {"ok": False, "error": {
            "type": "Interrupted", "message": _INTERRUPTED, "exit_code": EXIT_INTERRUPTED}}
        key = _PARTIAL_KEYS.get(context.args.command)
        if key is not None:
            done = stop.applied if isinstance(stop, Interrupted) else ()
            document[key] = [step.as_json() for step in done]
        print(json.dumps(document, indent=2), file=context.stdout)


def _configure_logging(args: argparse.Namespace, stream: TextIO,
                       environ: Mapping[str, str]) -> Callable[[], None]:
    """Send migcoord's log to `stream` for this command; returns what undoes it, so a
    program that calls main() keeps its own logging setup."""
    from migcoord.cli.render import RedactingFormatter
    from migcoord.cli.terminal import Palette

    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("migcoord: %(message)s", Palette.of(stream, environ)))
    logger = logging.getLogger("migcoord")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False

    def restore() -> None:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]

    return restore


__all__ = ["EXIT_OK", "build_parser", "main"]
