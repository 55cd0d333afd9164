"""Integer flag types that refuse out-of-range values when the command line is read (one line, exit 2)."""

from __future__ import annotations

import argparse


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
