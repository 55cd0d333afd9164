"""What every command shares: the `Command` an entry point names, the one-line `UsageError`, the parser
that raises it, and the flags built from an options dataclass."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

COMMAND_GROUP = "agentic.commands"


class UsageError(Exception):
    """A bad argument or input: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a `UsageError`) instead of usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


@dataclass(frozen=True)
class Command:
    """One ``agentic`` subcommand: ``add_arguments(parser)`` declares its flags (called only when it is the
    command given, so it may import what it needs), ``run(args, console)`` does the work."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Console], None]
    description: str = ""


def finite_float(text: str) -> float:
    """A float flag's value: NaN and infinities are refused when the command line is read, before any work."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number")
    return value


def flag_help(field: dataclasses.Field) -> str:
    """A field's help text (`agentic.options.option`), with its unit and default."""
    help_text, unit = field.metadata.get("help", ""), field.metadata.get("unit", "")
    default = f"default {field.default}{' ' + unit if unit else ''}" if field.default != "" else ""
    return f"{help_text} ({default})" if help_text and default else help_text or f"({default})"


def add_option_flags(parser: argparse.ArgumentParser, options_class: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per field of an options dataclass, typed by its default, with the help text, choices and unit
    the field declares (TRL's config/trainer style)."""
    for field in dataclasses.fields(options_class):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=field.name, action=action, default=field.default, help=flag_help(field))
            continue
        kind = finite_float if isinstance(field.default, float) else type(field.default)
        choices = field.metadata.get("choices") or None
        parser.add_argument(
            flag, dest=field.name, type=kind, default=field.default, choices=choices, help=flag_help(field)
        )


def options_from(options_class: type, args: argparse.Namespace, **fixed: Any) -> Any:
    """An options dataclass from the parsed flags of its fields, plus ``fixed`` values."""
    names = {f.name for f in dataclasses.fields(options_class)}
    return options_class(**{k: v for k, v in vars(args).items() if k in names}, **fixed)
