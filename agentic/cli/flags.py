"""Flags that are not options of a dataclass: integer types that refuse out-of-range values when the command line
is read (one line, exit 2), and the run directory."""

from __future__ import annotations

import argparse

from agentic.cli.command import DeprecatedFlag


def _at_least(minimum: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


non_negative_int = _at_least(0, "a non-negative integer (0 or more)")
positive_int = _at_least(1, "a positive integer (1 or more)")


def add_out_dir_flag(parser: argparse.ArgumentParser, help: str) -> None:
    """``--out-dir``, where the command writes (as every command names it); the old ``--out`` still works, with a
    deprecation message."""
    parser.add_argument("--out-dir", help=help)
    parser.add_argument("--out", dest="out_dir", action=DeprecatedFlag, replacement="--out-dir", help=argparse.SUPPRESS)
