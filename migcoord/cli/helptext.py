"""How each command's `--help` ends: an example to copy and the page that documents it.

    Example: migcoord up --service aggregator
    Docs: docs/commands.md#up

Every anchor named here is an explicit `<a id="...">` (or a heading) of that page, and
every example parses with the real parser: tests/test_cli_help.py holds both to it.
"""

from __future__ import annotations

import argparse

#: The page every command is documented on; each has an anchor named like the command.
COMMANDS_PAGE = "docs/commands.md"

#: command -> an example of it, as a user would type it.
EXAMPLES = {
    "init": "migcoord init --dry-run",
    "makefile": "migcoord makefile --write .",
    "create": "migcoord create add_email_index --service aggregator",
    "check": "migcoord check --against origin/main",
    "sum": "migcoord sum",
    "resolve": "migcoord resolve --onto origin/main",
    "renumber": "migcoord renumber 000007 --service aggregator",
    "docs": "migcoord docs --check",
    "status": "migcoord status --service aggregator",
    "up": "migcoord up --service aggregator",
    "down": "migcoord down --service aggregator --steps 1",
    "mark": "migcoord mark 000007 --applied --reason 'index built by hand'",
    "force": "migcoord force 000007",
    "adopt": "migcoord adopt --from-golang-migrate",
    "verify": "migcoord verify --service aggregator",
    "dev": "migcoord dev start",
    "completion": "migcoord completion bash",
}

#: `migcoord --help`'s own ending.
TOP_EPILOG = ("Example: migcoord up --service aggregator\n"
              f"Docs: README.md, {COMMANDS_PAGE}")


def epilog(command: str) -> str | None:
    """The end of `command`'s help, or None for a command without an example (which
    tests/test_cli_help.py reports)."""
    example = EXAMPLES.get(command)
    if example is None:
        return None
    return f"Example: {example}\nDocs: {COMMANDS_PAGE}#{command}"


class Formatter(argparse.HelpFormatter):
    """argparse's formatter, except that a description or epilog keeps its line breaks
    (each line is still wrapped to the terminal's width)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n".join(fill(line, width, indent) if line else "" for line in text.splitlines())
