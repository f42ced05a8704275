"""Running the CLI with its output on a pseudo-terminal, and reading what a person sees."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from helpers import REPO


@attrs.frozen
class TerminalRun:
    code: int
    #: Everything written to the terminal, as the terminal got it (`\n` became `\r\n`).
    raw: str
    #: stdout, when it was a pipe rather than the terminal.
    stdout: str

    @property
    def written(self) -> str:
        """What the program wrote to the terminal: raw, with the terminal's own `\r\n`
        turned back into `\n`, so every `\r` left is one the program wrote."""
        return self.raw.replace("\r\n", "\n")

    @property
    def screen(self) -> list[str]:
        """The lines a person sees at the end, once each `\r` let later text overwrite
        the line from its start; trailing blanks and empty lines dropped."""
        lines = []
        for line in self.written.split("\n"):
            cells: list[str] = []
            for segment in line.split("\r"):
                cells[:len(segment)] = segment
            shown = "".join(cells).rstrip()
            if shown:
                lines.append(shown)
        return lines


def run_on_terminal(args: Sequence[str], *, cwd: Path, environ: Mapping[str, str] | None = None,
                    stdout_too: bool = False, timeout: float = 120,
                    interrupt_at: str | None = None) -> TerminalRun:
    """`python -m migcoord ARGS` with stderr (and with `stdout_too`, stdout) on a new
    pseudo-terminal of 200 columns; TERM=xterm unless `environ` says otherwise. With
    `interrupt_at`, the process gets SIGINT (Ctrl-C) once the terminal shows that text."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "TERM": "xterm"}
    if "MIGCOORD_PG_BIN" in os.environ:
        env["MIGCOORD_PG_BIN"] = os.environ["MIGCOORD_PG_BIN"]
    env.update(environ or {})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "migcoord", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
        stdout=slave if stdout_too else subprocess.PIPE, stderr=slave)
    os.close(slave)
    piped: list[bytes] = []
    reader = None
    if process.stdout is not None:
        stream = process.stdout
        reader = threading.Thread(target=lambda: piped.append(stream.read()))
        reader.start()
    got = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            got += chunk
            if interrupt_at is not None and interrupt_at in got.decode(errors="replace"):
                process.send_signal(signal.SIGINT)
                interrupt_at = None
        process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
        if reader is not None:
            reader.join()
    return TerminalRun(process.returncode, got.decode(), b"".join(piped).decode())
