"""What every command handler gets (`Context`) and the shapes of handlers and of the
function that registers them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TextIO

from migcoord.cli.terminal import Palette

if TYPE_CHECKING:
    from migcoord.coordinator import Coordinator

Handler = Callable[[argparse.Namespace, "Context"], int]


class AddCommand(Protocol):
    """Adds one subcommand: `add(name, handler, help) -> its ArgumentParser`."""

    def __call__(self, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        ...


class Context:
    """What every command needs: the parsed globals, the environment and the output."""

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str],
                 stdout: TextIO, stderr: TextIO,
                 parser: argparse.ArgumentParser | None = None) -> None:
        self.args = args
        #: The command line's parser, for a command that describes it (`completion`).
        self.parser = parser
        self.environ = environ
        self.stdout = stdout
        self.stderr = stderr
        self.json = args.format == "json"
        # Each stream is coloured only when it is a terminal (cli/terminal.py).
        self.paint_out = Palette.of(stdout, environ)
        self.paint_err = Palette.of(stderr, environ)
        #: How many digits versions are shown with: the loaded config's `version_width`.
        self.version_width = 6

    def coordinator(self) -> Coordinator:
        from migcoord.coordinator import Coordinator

        loaded = Coordinator.load(self.args.config, environ=self.environ)
        self.version_width = loaded.config.version_width
        return loaded

    def dsn(self, coordinator: Coordinator) -> str:
        from migcoord.local.target import resolve_dsn

        return resolve_dsn(self.args.dsn, coordinator.config, self.environ)
