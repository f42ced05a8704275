"""Text and JSON output. JSON is one document on stdout; messages go to stderr."""

from __future__ import annotations

import json
import logging
import os
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from migcoord.cli.context import Context
from migcoord.cli.terminal import PLAIN, Palette
from migcoord.core.model import Finding, format_version
from migcoord.db import dsn
from migcoord.errors import EXIT_INTERRUPTED, ThrowawayLeft

if TYPE_CHECKING:
    from migcoord.results import (
        AdoptResult,
        Created,
        DownResult,
        MarkResult,
        PlannedStep,
        Renumbered,
        StatusReport,
        StepResult,
        UpResult,
    )



def redact(text: str) -> str:
    """Hide passwords in DSNs: the last line of defence before anything is printed."""
    return dsn.redact(text)


def redact_json(value: object) -> object:
    """`value` (a JSON-ready document) with every string redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item) for item in value]
    return value


class RedactingFormatter(logging.Formatter):
    """migcoord's log lines, passwords hidden; with a palette, warnings in yellow and
    errors in red."""

    def __init__(self, fmt: str, paint: Palette = PLAIN) -> None:
        super().__init__(fmt)
        self.paint = paint

    def format(self, record: logging.LogRecord) -> str:
        text = redact(super().format(record))
        if record.levelno >= logging.ERROR:
            return self.paint.error(text)
        if record.levelno >= logging.WARNING:
            return self.paint.warning(text)
        return text


def display(path: Path | None) -> str:
    """A path as a person wants it: relative to the working directory when close."""
    if path is None:
        return ""
    relative = os.path.relpath(path)
    far = os.sep.join([os.pardir] * 3)
    return str(path) if relative.startswith(far) else relative


def emit_json(ctx: Context, document: object) -> None:
    ctx.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def throwaway_interrupted(ctx: Context, message: str, left: ThrowawayLeft | None
                          ) -> dict[str, object]:
    """Say on stderr that a command working on a throwaway database (verify, `docs
    --schema`) was interrupted, and what is left when its database could not be dropped;
    the JSON error document for it."""
    if left is not None:
        message = f"{message}; {left.message}"
    ctx.stderr.write(f"migcoord: {redact(message)}\n")
    if left is not None and left.hint:
        ctx.stderr.write(f"  hint: {redact(left.hint)}\n")
    document: dict[str, object] = {"type": "Interrupted", "message": redact(message),
                                   "exit_code": EXIT_INTERRUPTED}
    if left is not None:
        document.update(hint=redact(left.hint or ""), databases=list(left.databases))
    return document


def message(ctx: Context, text: str, document: dict[str, object] | None = None) -> None:
    if ctx.json:
        emit_json(ctx, document or {"message": text})
    elif not ctx.args.quiet:
        ctx.stdout.write(text + "\n")


# -- check ----------------------------------------------------------------------------------


def findings(ctx: Context, root: Path, found: list[Finding], *, ok: bool,
             summary: bool = True, merged: tuple[str, int] | None = None) -> None:
    """`check`'s report; JSON paths are relative to `root`, the config's folder.
    `merged` (with --against): the ref and how many of its warnings were left out."""
    if ctx.json:
        document: dict[str, object] = {"ok": ok, "findings": [f.as_json(root) for f in found]}
        if merged is not None:
            document["merged_warnings"] = merged[1]
        emit_json(ctx, document)
        return
    for finding in found:
        where = display(finding.path)
        if finding.line is not None:
            where += f":{finding.line}"
            if finding.column is not None:
                where += f":{finding.column}"
        prefix = f"{where}: " if where else ""
        severity = ctx.paint_out.severity(str(finding.severity))
        ctx.stdout.write(f"{prefix}{severity}: {finding.code}: {finding.message}\n")
        if finding.hint:
            ctx.stdout.write(f"    hint: {finding.hint}\n")
    errors = sum(1 for f in found if f.is_error)
    warnings = len(found) - errors
    if summary and not ctx.args.quiet:
        counts = (f"{errors} error{'s' if errors != 1 else ''}, "
                  f"{warnings} warning{'s' if warnings != 1 else ''}")
        if merged is not None and merged[1]:
            ref, left_out = merged
            counts += (f" ({left_out:,} more in migrations {ref} already has: "
                       f"`{_plain_check(ctx)}` lists them)")
        paint = ctx.paint_err
        verdict = paint.ok("check ok") if ok else paint.error("check failed")
        ctx.stderr.write(f"{verdict}: {counts}\n")


def _plain_check(ctx: Context) -> str:
    """The `check` without --against that lists every warning, with this run's config."""
    config = getattr(ctx.args, "config", None)
    return f"migcoord check --config {shlex.quote(str(config))}" if config else "migcoord check"


# -- create / renumber ----------------------------------------------------------------------


def created(ctx: Context, result: Created, root: Path) -> None:
    """`create`'s paths; in JSON relative to `root`, the config's folder."""
    if ctx.json:
        emit_json(ctx, result.as_json(root))
        return
    ctx.stdout.write(f"{display(result.up)}\n{display(result.down)}\n")


def renumbered(ctx: Context, result: Renumbered, root: Path) -> None:
    """What `renumber` moved; in JSON relative to `root`, the config's folder."""
    if ctx.json:
        emit_json(ctx, result.as_json(root))
        return
    for source, target in result.moved:
        ctx.stdout.write(f"renamed {display(source)} -> {display(target)}\n")
    for path in result.edited:
        ctx.stdout.write(f"updated depends in {display(path)}\n")
    for left in result.ambiguous:
        ctx.stderr.write(f"migcoord: {ctx.paint_err.warning('warning')}: left a bare reference "
                         "unchanged (two migrations had that number, so it may mean either): "
                         f"{left.describe(display(left.path))}\n")
    ctx.stdout.write("updated migcoord.sum\n")


# -- database commands ----------------------------------------------------------------------


def _v(ctx: Context, version: int) -> str:
    """A version as this project writes them (its `version_width`)."""
    return format_version(version, ctx.version_width)


def _plan(ctx: Context, planned: tuple[PlannedStep, ...], verb: str) -> None:
    if not planned:
        ctx.stdout.write(f"nothing to {verb}\n")
        return
    ctx.stdout.write(f"would {verb} {len(planned)} migration{'s' if len(planned) != 1 else ''}:\n")
    for step in planned:
        mode = " (no-transaction)" if step.no_transaction else ""
        reason = f"  [{step.reason}]" if step.reason else ""
        ctx.stdout.write(f"\n-- {step.direction} {_v(ctx, step.version)} {step.service}"
                         f" {step.name}{mode}{reason}\n")
        ctx.stdout.write(step.sql.rstrip() + "\n")


def up_result(ctx: Context, result: UpResult) -> None:
    _steps(ctx, result, result.applied, verb="apply", done="applied",
           nothing="nothing to apply: the database is up to date")


def down_result(ctx: Context, result: DownResult) -> None:
    _steps(ctx, result, result.rolled_back, verb="roll back", done="rolled back",
           nothing="nothing to roll back")


def _steps(ctx: Context, result: UpResult | DownResult, steps: tuple[StepResult, ...], *,
           verb: str, done: str, nothing: str) -> None:
    """What `up` or `down` did (or, with --dry-run, would do). Its warnings are not
    repeated: the library logged each one as the run planned (they are in the JSON)."""
    if ctx.json:
        emit_json(ctx, result.as_json())
        return
    if result.dry_run:
        _plan(ctx, result.planned, verb)
        return
    if ctx.args.quiet:
        return
    if not steps:
        ctx.stdout.write(nothing + "\n")
        return
    total = sum(s.duration_ms for s in steps)
    ctx.stdout.write(f"{done} {len(steps)} migration{'s' if len(steps) != 1 else ''} "
                     f"in {total} ms\n")


def status(ctx: Context, report: StatusReport, root: Path) -> None:
    """`status`'s table, then what `up` would refuse (paths in JSON relative to `root`)."""
    if ctx.json:
        emit_json(ctx, report.as_json(root))
        return
    version = "none" if report.database_version is None else _v(ctx, report.database_version)
    dirty = "yes" if report.dirty else "no"
    ctx.stdout.write(f"database version: {version}   dirty: {dirty}\n")
    rows = [("VERSION", "SERVICE", "NAME", "STATE", "APPLIED AT")]
    for m in report.migrations:
        # With its zone: the server's session time zone decides the clock shown.
        applied = m.applied_at.isoformat(sep=" ", timespec="seconds") if m.applied_at else ""
        state = str(m.state) + (f" ({m.detail})" if m.detail else "")
        rows.append((_v(ctx, m.version), m.service, m.name, state, applied))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        ctx.stdout.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
                         + "\n")
    if report.unjudged_services:
        ctx.stdout.write("folders not here (not judged): "
                         + ", ".join(report.unjudged_services) + "\n")
    if report.problems:
        ctx.stdout.write("\nup would refuse these files (see `migcoord check`):\n")
        findings(ctx, root, list(report.problems), ok=False, summary=False)


def marked(ctx: Context, result: MarkResult) -> None:
    text = (f"marked {_v(ctx, result.version)} {result.service} {result.name} as "
            f"{result.state} (was {result.previous or 'not recorded'})")
    message(ctx, text, result.as_json())


def adopted(ctx: Context, result: AdoptResult) -> None:
    text = (f"golang-migrate was at version {_v(ctx, result.golang_version)}; recorded "
            f"{len(result.recorded)} migration{'s' if len(result.recorded) != 1 else ''} as "
            f"applied ({len(result.already)} already recorded)")
    message(ctx, text, result.as_json())

