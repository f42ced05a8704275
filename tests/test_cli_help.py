"""`--help` tells what every option does."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from helpers import REPO
from migcoord.cli import build_parser


def test_every_option_and_argument_has_help_text() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    silent = [(name, action.option_strings or action.dest)
              for name, sub in [("migcoord", parser), *commands.choices.items()]
              for action in sub._actions
              if not action.help and not isinstance(action, argparse._HelpAction)]
    assert silent == []


def registered_commands() -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in build_parser()._actions
                   if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_every_command_help_ends_with_an_example_and_its_docs_section() -> None:
    """`migcoord COMMAND --help` ends with `Example: migcoord COMMAND ...` and `Docs:
    docs/commands.md#COMMAND`, each on its own line."""
    missing = []
    for name, parser in registered_commands().items():
        *_, example, docs = parser.format_help().rstrip("\n").splitlines()
        if not (example.startswith(f"Example: migcoord {name}")
                and docs == f"Docs: docs/commands.md#{name}"):
            missing.append((name, example, docs))
    assert missing == []
    *_, example, docs = build_parser().format_help().rstrip("\n").splitlines()
    assert example == "Example: migcoord up --service aggregator"
    assert docs == "Docs: README.md, docs/commands.md"


def test_every_help_example_parses_with_the_real_parser_as_its_command() -> None:
    """An example that the parser refuses (a renamed option, a missing required one)
    fails here, not in a user's terminal."""
    from migcoord.cli import helptext

    parsed = {}
    for name in registered_commands():
        argv = shlex.split(helptext.EXAMPLES[name])
        assert argv[0] == "migcoord"
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit as exit_:  # argparse's way of refusing
            raise AssertionError(f"{name}'s example does not parse: {argv}") from exit_
        parsed[name] = args.command
    assert parsed == {name: name for name in registered_commands()}
    assert set(helptext.EXAMPLES) == set(registered_commands())


def test_every_docs_section_named_in_help_exists() -> None:
    """Each `Docs: docs/commands.md#X` names an anchor that page has."""
    page = (REPO / "docs" / "commands.md").read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', page))
    assert set(registered_commands()) - anchors == set()
    assert "terminal" in anchors  # where progress and colour are explained


def test_help_keeps_wrapping_long_descriptions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Line breaks of the epilog are kept, yet a long description still wraps."""
    monkeypatch.setenv("COLUMNS", "80")
    text = registered_commands()["init"].format_help()
    description = text.split("\n\n")[1]
    assert len(description.splitlines()) > 1
    assert max(len(line) for line in description.splitlines()) <= 80
