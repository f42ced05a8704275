"""`--help` tells what every option does."""

from __future__ import annotations

import argparse

from migcoord.cli import build_parser


def test_every_option_and_argument_has_help_text() -> None:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    silent = [(name, action.option_strings or action.dest)
              for name, sub in [("migcoord", parser), *commands.choices.items()]
              for action in sub._actions
              if not action.help and not isinstance(action, argparse._HelpAction)]
    assert silent == []
