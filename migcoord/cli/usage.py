"""Usage errors (argparse's exit 2) that still honour `--format json`.

argparse prints its usage text and exits before migcoord knows the options, so the
format is read from the raw command line here, and a usage error becomes `UsageExit`:
the usage text stays on stderr, and main() prints the JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import NoReturn, TextIO

from migcoord.errors import UsageError


class UsageExit(SystemExit):
    """argparse refused the command line; `error` says why, as a migcoord error."""

    def __init__(self, code: int | str | None, error: UsageError) -> None:
        super().__init__(code)
        self.error = error


class Parser(argparse.ArgumentParser):
    """argparse's parser whose usage errors carry their message (and which passes that
    on to every subcommand's parser, argparse's default `parser_class`)."""

    def error(self, message: str) -> NoReturn:
        try:
            super().error(message)
        except SystemExit as exit_:
            hint = f"run `{self.prog} --help` for its options"
            raise UsageExit(exit_.code, UsageError(message, hint=hint)) from None


def wants_json(argv: Sequence[str]) -> bool:
    """Whether `argv` asks for `--format json` (the later of two wins, as in argparse);
    read before argparse has parsed anything, so that its own errors can honour it."""
    fmt = "text"
    words = list(argv)
    for index, word in enumerate(words):
        if word == "--":
            break
        name, equals, value = word.partition("=")
        # argparse accepts an unambiguous prefix of a long option (`--form json`).
        if len(name) < 4 or not "--format".startswith(name):
            continue
        if equals:
            fmt = value
        elif index + 1 < len(words):
            fmt = words[index + 1]
    return fmt == "json"


def print_json(error: UsageError, stdout: TextIO) -> None:
    """The one document a failed command prints with --format json."""
    document = {"ok": False, "error": error.as_json()}
    print(json.dumps(document, indent=2), file=stdout)


__all__ = ["Parser", "UsageExit", "print_json", "wants_json"]
