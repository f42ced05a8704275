"""The progress of `up`, `down` and `verify` on a terminal: one status line on stderr,
redrawn in place.

    up 3/40 000007 aggregator add_index  2.1s  (total 14s)

It is drawn only when stderr is a terminal that can redraw a line (cli/terminal.py),
and never with `-q` or `--format json`; anywhere else nothing of it is written, and the
per-migration lines are exactly what they are without it. Every other line written to
stderr meanwhile (the log's per-migration lines, warnings, verify's verdicts) goes
through `LiveStatus.write`, which wipes the status line first, so the terminal ends up
with the same lines as a log file would, and no trace of the status line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from migcoord.cli.terminal import can_redraw
from migcoord.core.progress import StepStarted

if TYPE_CHECKING:
    from migcoord.cli.context import Context

#: How often the elapsed time is redrawn while one migration runs (seconds).
TICK = 0.5


def elapsed(seconds: float) -> str:
    """`0.4s`, `12s`, `3m05s`, `2h03m`: short, and no more precise than is useful."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def status_text(step: StepStarted, step_seconds: float, total_seconds: float) -> str:
    """The status line for `step`, running for `step_seconds` of `total_seconds`."""
    where = f"{step.index}/{step.total} " if step.version is not None else ""
    return (f"{step.command} {where}{step.label}  {elapsed(step_seconds)}"
            f"  (total {elapsed(total_seconds)})")


class LiveStatus:
    """One status line at the bottom of a terminal stream; safe to use from the
    command's thread and the ticker's."""

    def __init__(self, stream: IO[str], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.step: StepStarted | None = None
        self.step_started = self.started
        self.shown = 0  # how many characters the drawn status line has; 0: none drawn
        self.lock = threading.Lock()

    def on_step(self, step: StepStarted) -> None:
        """The OnStep callback: `step` starts now."""
        with self.lock:
            self.step = step
            self.step_started = self.clock()
            self._draw()

    def redraw(self) -> None:
        """Draw the status line again, with its times brought up to date."""
        with self.lock:
            self._draw()

    def write(self, text: str) -> None:
        """Write `text` (whole lines) where the status line is; it is drawn again at the
        next step or tick."""
        with self.lock:
            self._wipe()
            self.stream.write(text)
            self.stream.flush()

    def close(self) -> None:
        """Leave the terminal as if no status line had been drawn."""
        with self.lock:
            self._wipe()
            self.step = None

    def flush(self) -> None:
        with self.lock:
            self.stream.flush()

    def _draw(self) -> None:
        if self.step is None:
            return
        now = self.clock()
        text = status_text(self.step, now - self.step_started, now - self.started)
        # A line longer than the terminal wraps, and `\r` would then go back only to
        # the start of its last row.
        text = text[:max(_columns(self.stream) - 1, 10)]
        padding = " " * max(self.shown - len(text), 0)
        # Counted as drawn before it is written: a Ctrl-C lands in the main thread
        # between any two bytecodes, and a line written but not yet counted would be
        # left on the screen by the wipe that follows the interrupt.
        self.shown = max(self.shown, len(text))
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self.shown = len(text)

    def _wipe(self) -> None:
        # Spaces, not an ANSI erase: they clear the line on every terminal.
        if self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.shown = 0


def _columns(stream: IO[str]) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 80
    return columns if columns > 0 else 80


class _Above:
    """The stream of a log handler while a status line is drawn: every record is
    written through LiveStatus.write."""

    def __init__(self, status: LiveStatus) -> None:
        self.status = status

    def write(self, text: str) -> None:
        self.status.write(text)

    def flush(self) -> None:
        self.status.flush()


@contextlib.contextmanager
def live_progress(ctx: Context) -> Iterator[LiveStatus | None]:
    """A status line on ctx's stderr for the command run inside, or None when there
    must be none (not a terminal that can redraw a line, `-q`, `--format json`).

    While it lasts, migcoord's log handlers that write to that stderr write through it,
    and a ticker thread redraws the elapsed time; on the way out the line is wiped.
    """
    if ctx.json or ctx.args.quiet or not can_redraw(ctx.stderr, ctx.environ):
        yield None
        return
    status = LiveStatus(ctx.stderr)
    rerouted = _reroute_log(ctx.stderr, _Above(status))
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK):
            status.redraw()

    ticker = threading.Thread(target=tick, name="migcoord-progress", daemon=True)
    ticker.start()
    try:
        yield status
    finally:
        stop.set()
        ticker.join()
        status.close()
        for handler, stream in rerouted:
            handler.setStream(stream)


def _reroute_log(stream: IO[str], through: _Above) -> list[tuple[logging.StreamHandler[IO[str]],
                                                                 IO[str]]]:
    """Point migcoord's log handlers that write to `stream` at `through`; returns each
    handler with its stream, to put back."""
    rerouted: list[tuple[logging.StreamHandler[IO[str]], IO[str]]] = []
    for handler in logging.getLogger("migcoord").handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
            rerouted.append((handler, stream))
            handler.setStream(through)
    return rerouted
