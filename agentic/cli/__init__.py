"""The `agentic` command line: the top layer, above the core, the built-ins and training.

Subcommands are found like tasks and tools, through an entry-point group (``agentic.commands``,
declared in pyproject.toml), so a third-party package can add its own. Each entry point is a
`Command`; its arguments are added only when it is the command given (or when ``--help`` asks for
them), so a command whose options import trl or transformers costs the others nothing.
Every subcommand has --help; bad arguments print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from rich.console import Console

from agentic.cli.command import COMMAND_GROUP, Command, Parser, UsageError, add_output_flags, configured_output

__all__ = ["COMMAND_GROUP", "Command", "UsageError", "build_parser", "commands", "main"]


def commands() -> list[Command]:
    """Every registered command, in the order its distribution declares them."""
    found = []
    for entry_point in entry_points(group=COMMAND_GROUP):
        command = entry_point.load()
        if not isinstance(command, Command):
            raise TypeError(f"entry point {entry_point.name} of {COMMAND_GROUP} is not an agentic.cli.Command")
        found.append(command)
    return found


def build_parser(argv: Sequence[str] = ()) -> Parser:
    """The ``agentic`` parser for the command line ``argv``: every command is listed, and the one ``argv``
    names gets its arguments."""
    parser = Parser(prog="agentic", description="Multi-turn agentic RL for small language models.")
    add_output_flags(parser)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    named = next((word for word in argv if not word.startswith("-")), None)  # after -v / -q, which take no value
    for command in commands():
        subparser = sub.add_parser(command.name, help=command.help, description=command.description or command.help)
        if named == command.name:
            command.add_arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns the exit status (2 for bad arguments or input, 130 when interrupted)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # weight loading/saving bars; our own progress bars stay
    console = Console(soft_wrap=True)
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(argv).parse_args(argv)
        with configured_output(args):
            args.run(args, console)
    except UsageError as err:
        print(err, file=sys.stderr)
        return 2
    except (KeyError, ValueError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"agentic: error: {message}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):
        print("\nagentic: interrupted", file=sys.stderr)
        return 130
    return 0
