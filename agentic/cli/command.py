"""What every command shares: the `Command` an entry point names, the one-line `UsageError`, the parser
that raises it, and the flags built from an options dataclass."""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console

COMMAND_GROUP = "agentic.commands"
METAVARS = {int: "N", str: "TEXT"}


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


def flag_help(field: dataclasses.Field, default: Any) -> str:
    """A field's help text (`agentic.options.option`), with its unit and default."""
    help_text, unit = field.metadata.get("help", ""), field.metadata.get("unit", "")
    shown = "" if default == "" else f"default {default}{' ' + unit if unit else ''}"
    return f"{help_text} ({shown})" if help_text and shown else help_text or f"({shown})"


def flag_name(field_name: str, prefix: str = "") -> str:
    """``--prefix-field-name``: the flag of an options field."""
    return "--" + prefix + field_name.replace("_", "-")


def flag_dest(field_name: str, prefix: str = "") -> str:
    """Where the flag of an options field lands in the parsed arguments (prefixed, so that the options of several
    stages can share one command line)."""
    return (prefix + field_name).replace("-", "_")


class DeprecatedFlag(argparse.Action):
    """A flag kept for old command lines: says which flag replaces it, on stderr, and sets that flag's value
    (its own value converted like the new flag's, or ``const``)."""

    def __init__(self, option_strings: Sequence[str], dest: str, replacement: str, **kwargs: Any):
        self.replacement = replacement
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"agentic: {option_string} is deprecated: use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_option_flags(
    parser: argparse.ArgumentParser,
    options_class: type,
    *,
    prefix: str = "",
    defaults: Mapping[str, Any] | None = None,
    set_by_command: Sequence[str] = (),
    deprecated: Mapping[str, str | tuple[str, Any]] | None = None,
) -> None:
    """One ``--flag`` per field of an options dataclass, typed by its default, with the help text, choices and unit
    the field declares (TRL's config/trainer style).

    ``prefix`` goes in front of every flag (``--ppo-epochs``); ``defaults`` replace fields' defaults for this command;
    fields in ``set_by_command`` get no flag (the command sets them). ``deprecated`` maps an old flag to the field it
    now sets, or to ``(field, value)`` for an old switch that stands for one value; it still works, with a warning.
    """
    defaults = defaults or {}
    fields = {field.name: field for field in dataclasses.fields(options_class)}
    for field in fields.values():
        if field.name in set_by_command:
            continue
        default = defaults.get(field.name, field.default)
        flag, dest = flag_name(field.name, prefix), flag_dest(field.name, prefix)
        if isinstance(field.default, bool):
            action = argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=dest, action=action, default=default, help=flag_help(field, default))
            continue
        parser.add_argument(
            flag,
            dest=dest,
            type=flag_type(field),
            default=default,
            choices=field.metadata.get("choices") or None,
            metavar=None if field.metadata.get("choices") else METAVARS.get(type(field.default), "X"),
            help=flag_help(field, default),
        )
    for old, target in (deprecated or {}).items():
        name, value = target if isinstance(target, tuple) else (target, None)
        field, dest, new = fields[name], flag_dest(name, prefix), flag_name(name, prefix)
        if isinstance(target, tuple):
            switch = new if value is True else "--no-" + new[2:] if value is False else f"{new} {value}"
            parser.add_argument(
                old, dest=dest, action=DeprecatedFlag, nargs=0, const=value, replacement=switch, help=argparse.SUPPRESS
            )
        else:
            parser.add_argument(
                old,
                dest=dest,
                action=DeprecatedFlag,
                type=flag_type(field),
                choices=field.metadata.get("choices") or None,
                replacement=new,
                help=argparse.SUPPRESS,
            )


def flag_type(field: dataclasses.Field) -> Callable[[str], Any]:
    """How a field's flag value is read: floats refuse NaN and infinities; others by the default's type."""
    return finite_float if isinstance(field.default, float) else type(field.default)


def option_values(options_class: type, args: argparse.Namespace, *, prefix: str = "") -> dict[str, Any]:
    """The values the parsed flags give the fields of an options dataclass (under ``prefix``), by field name."""
    fields = (field.name for field in dataclasses.fields(options_class))
    return {name: getattr(args, flag_dest(name, prefix)) for name in fields if hasattr(args, flag_dest(name, prefix))}


def options_from(options_class: type, args: argparse.Namespace, *, prefix: str = "", **fixed: Any) -> Any:
    """An options dataclass from the parsed flags of its fields (under ``prefix``), plus ``fixed`` values."""
    return options_class(**option_values(options_class, args, prefix=prefix) | fixed)
