"""What every command shares: the `Command` an entry point names, the one-line `UsageError`, the parser
that raises it, and the flags built from an options dataclass."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """Parse; where ``--config`` or ``--resume`` supply defaults (`add_config_flag`), parse again with them, so
        that the flags given still override them."""
        parsed, extras = super().parse_known_args(args, namespace)
        defaults = config_defaults(self, parsed) if any(a.dest == CONFIG_DEST for a in self._actions) else {}
        if not defaults:
            return parsed, extras
        self.set_defaults(**defaults)
        return super().parse_known_args(args, namespace)


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


CONFIG_DEST = "config"


def add_config_flag(parser: argparse.ArgumentParser, *, resume: bool = False) -> None:
    """``--config FILE`` (YAML or JSON): a mapping of this command's long flags (``learning_rate`` or
    ``learning-rate``) to values, read as the flags' defaults, so flags on the command line override the file.
    With ``resume``, ``--resume`` also reads the run's saved config.json (``<out_dir>/config.json``) that way, so
    no other flag is needed; values given by flag or file still win, and the run refuses those that disagree with
    the saved run.

    Hand-written rather than TRL's `TrlParser` (which does this for `HfArgumentParser` dataclasses): these flags come
    from `add_option_flags`, with prefixes and renamed flags that an `HfArgumentParser` would not build."""
    parser.add_argument(
        "--config",
        dest=CONFIG_DEST,
        metavar="FILE",
        default="",
        help="a YAML or JSON file of flag values (keys are the long flag names); flags given here override it",
    )
    parser.set_defaults(**{_RESUME_HOOK: resume})


_RESUME_HOOK = "_config_reads_saved_run"


def config_defaults(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The defaults ``--config`` (and, where enabled, ``--resume``) give ``parser``'s flags, by destination."""
    defaults: dict[str, Any] = {}
    if getattr(args, CONFIG_DEST, ""):
        defaults = flag_values(parser, read_config_file(args.config), source=args.config, strict=True)
    if getattr(args, _RESUME_HOOK, False) and getattr(args, "resume", False):
        saved = Path(defaults.get("out_dir", args.out_dir)) / "config.json"
        if not saved.is_file():
            raise UsageError(f"{parser.prog}: --resume: {saved} does not exist (is --out-dir the run to continue?)")
        recorded = {k: v for k, v in read_config_file(str(saved)).items() if k != "resume"}
        defaults = flag_values(parser, recorded, source=str(saved), strict=False) | defaults
    return defaults


def read_config_file(path: str) -> dict[str, Any]:
    """The mapping a YAML or JSON file holds (JSON is YAML); a clear one-line error when it cannot be read."""
    import yaml

    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"agentic: cannot read the config file {path}: {error.strerror or error}") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise UsageError(f"agentic: {path} is not YAML or JSON{line}: {getattr(error, 'problem', error)}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"agentic: {path} must hold a mapping of flag names to values, not {type(values).__name__}")
    return values


def flag_values(
    parser: argparse.ArgumentParser, values: Mapping[str, Any], *, source: str, strict: bool
) -> dict[str, Any]:
    """``values`` keyed by flag (``--learning-rate`` as ``learning_rate`` or ``learning-rate``) checked and converted
    as the flags convert their text, by destination. An unknown key is refused when ``strict``, skipped otherwise
    (a saved config.json records more than flags)."""
    flags = {
        action.option_strings[0][2:].replace("-", "_"): action
        for action in parser._actions  # argparse offers no public list of a parser's actions
        if action.option_strings
        and action.option_strings[0].startswith("--")
        and action.help is not argparse.SUPPRESS
        and action.dest not in ("help", CONFIG_DEST)
    }
    converted = {}
    for key, value in values.items():
        action = flags.get(str(key).replace("-", "_"))
        if action is None:
            if strict:
                close = difflib.get_close_matches(str(key).replace("-", "_"), flags, n=1)
                hint = f"; did you mean {close[0]}?" if close else f" (see {parser.prog} --help)"
                raise UsageError(f"{parser.prog}: {source}: unknown option {key!r}{hint}")
            continue
        try:
            converted[action.dest] = _flag_value(action, value)
        except (argparse.ArgumentTypeError, TypeError, ValueError) as error:
            raise UsageError(f"{parser.prog}: {source}: {key}: {error}") from None
    return converted


def _flag_value(action: argparse.Action, value: Any) -> Any:
    """``value`` as the flag of ``action`` would read it: booleans for switches, other flags through their type
    (the text of a number, so that an integer flag refuses 2.5 and a float flag takes 1), then their choices."""
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise TypeError(f"must be true or false, got {value!r}")
        return value
    if value is None or isinstance(value, (bool, list, dict)):
        raise TypeError(f"must be a single {'text' if action.type is str else 'number'}, got {value!r}")
    converted = action.type(value if isinstance(value, str) else str(value)) if action.type else value
    if action.choices and converted not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}, got {converted!r}")
    return converted


_LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """``-v`` / ``-q`` on the ``agentic`` command: how much it logs (`configured_output`)."""
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log what runs do (-vv: and debug detail)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log errors only, the libraries' too")


@contextlib.contextmanager
def configured_output(args: argparse.Namespace) -> Iterator[None]:
    """Python `logging` for one command line, put back as it was when the command returns (a command run in-process,
    from a notebook or a test, must not leave the ``agentic`` logger writing to its stderr and hiding records from
    the caller's handlers): the ``agentic`` loggers to stderr at WARNING, INFO with ``-v``, DEBUG with ``-vv``
    (transformers' and datasets' at INFO too), ERROR with ``-q`` (theirs too); ``--no-progress`` turns off every
    progress bar, datasets' included. (transformers' and datasets' settings stay: they are their own libraries'.)"""
    import logging

    from transformers.utils import logging as transformers_logging

    verbose, quiet = getattr(args, "verbose", 0), getattr(args, "quiet", False)
    logger = logging.getLogger("agentic")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.ERROR if quiet else {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG))
    if quiet or verbose > 1:
        import datasets

        transformers_logging.set_verbosity(logging.ERROR if quiet else logging.INFO)
        datasets.logging.set_verbosity(logging.ERROR if quiet else logging.INFO)
    if hasattr(args, "progress"):  # a command with progress bars: datasets' follow its --progress / --no-progress
        import datasets

        if args.progress:
            datasets.enable_progress_bars()
        else:
            datasets.disable_progress_bars()
    try:
        yield
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
