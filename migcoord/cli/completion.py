"""`migcoord completion bash`: a static bash completion script, generated from the parser.

It completes command names, each command's options, the choices of options and
arguments that have them (`--format`, `dev start|stop|...`), file names after options
that take a path, and service names after `--service`, read from the nearest
`migcoord.toml` (or `$MIGCOORD_CONFIG`) with sed: completing never starts Python.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterable

from migcoord.cli.context import AddCommand, Context
from migcoord.errors import EXIT_OK

#: Options whose value is a service name.
_SERVICE_OPTIONS = frozenset({"--service", "-s"})


def register(add: AddCommand) -> None:
    p = add("completion", cmd_completion,
            "print a shell completion script (commands, options, service names)")
    p.add_argument("shell", choices=("bash",),
                   help="the shell to complete in (bash; load it with "
                   "`source <(migcoord completion bash)`)")


def cmd_completion(args: argparse.Namespace, ctx: Context) -> int:
    assert ctx.parser is not None, "main() passes its parser"
    ctx.stdout.write(bash_script(ctx.parser))
    return EXIT_OK


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(parser: argparse.ArgumentParser) -> list[str]:
    """What may be typed next in `parser`'s command line: its options and the choices
    of its positional arguments."""
    words: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            words += action.option_strings
        elif action.choices is not None:
            words += [str(choice) for choice in action.choices]
    return list(dict.fromkeys(words))


def _value_kind(action: argparse.Action) -> str:
    """How the value of an option is completed: `choices:a b`, `file`, `service` or
    `none` (nothing to offer, but do not offer options either)."""
    if action.choices is not None:
        return "choices:" + " ".join(str(choice) for choice in action.choices)
    if set(action.option_strings) & _SERVICE_OPTIONS:
        return "service"
    if action.metavar == "PATH":
        return "file"
    return "none"


def _valued_options(parsers: Iterable[argparse.ArgumentParser]) -> dict[str, str]:
    """Every option that takes a value -> how to complete it; an option spelt alike in
    two commands with different kinds of values is completed with nothing."""
    kinds: dict[str, str] = {}
    for parser in parsers:
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            for option in action.option_strings:
                kind = _value_kind(action)
                kinds[option] = kind if kinds.get(option, kind) == kind else "none"
    return kinds


def bash_script(parser: argparse.ArgumentParser) -> str:
    """The bash completion script for `parser` (migcoord's)."""
    commands = _subcommands(parser)
    kinds = _valued_options([parser, *commands.values()])
    by_kind: dict[str, list[str]] = {}
    for option, kind in sorted(kinds.items()):
        by_kind.setdefault(kind, []).append(option)
    value_cases = []
    for kind, options in sorted(by_kind.items()):
        pattern = "|".join(options)
        if kind.startswith("choices:"):
            reply = f'COMPREPLY=($(compgen -W {shlex.quote(kind[len("choices:"):])} -- "$cur"))'
        elif kind == "file":
            reply = 'COMPREPLY=($(compgen -f -- "$cur"))'
        elif kind == "service":
            reply = 'COMPREPLY=($(compgen -W "$(_migcoord_services)" -- "$cur"))'
        else:
            reply = "COMPREPLY=()"
        value_cases.append(f"        {pattern}) {reply}; return ;;")
    word_cases = [f'        "") words={shlex.quote(" ".join(_words(parser) + list(commands)))} ;;']
    word_cases += [f"        {name}) words={shlex.quote(' '.join(_words(sub)))} ;;"
                   for name, sub in commands.items()]
    return _TEMPLATE.format(commands="|".join(commands), value_cases="\n".join(value_cases),
                            word_cases="\n".join(word_cases))


_TEMPLATE = """\
# bash completion for migcoord, written by `migcoord completion bash`.
# Load it in this shell:   source <(migcoord completion bash)
# or for every new shell:  migcoord completion bash > ~/.local/share/bash-completion/completions/migcoord

# The services of the nearest migcoord.toml ($MIGCOORD_CONFIG, else the first one found
# from the working directory up), one per line.
_migcoord_services() {{
    local dir=$PWD file=${{MIGCOORD_CONFIG:-}}
    while [[ -z $file ]]; do
        if [[ -f $dir/migcoord.toml ]]; then
            file=$dir/migcoord.toml
        elif [[ -z $dir || $dir == / ]]; then
            return 0
        else
            dir=${{dir%/*}}
        fi
    done
    [[ -r $file ]] || return 0
    sed -n -e 's/^[[:space:]]*\\[services\\.\\([A-Za-z0-9_-]*\\)\\].*/\\1/p' \\
        -e 's/^[[:space:]]*\\[services\\."\\([^"]*\\)"\\].*/\\1/p' "$file"
}}

_migcoord() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local command="" words="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${{COMP_WORDS[i]}} in
            {commands}) command=${{COMP_WORDS[i]}}; break ;;
        esac
    done
    case $prev in
{value_cases}
    esac
    case $command in
{word_cases}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}

complete -F _migcoord migcoord
"""
