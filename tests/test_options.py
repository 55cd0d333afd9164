"""Options dataclasses: fields that carry their help, choices, unit and bounds; flags and checks built from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from agentic.cli.command import Parser, UsageError, add_option_flags, options_from
from agentic.options import check_options, option


@dataclass(frozen=True)
class ExampleOptions:
    rate: float = option(0.1, "how fast", bounds="positive")
    share: float = option(0.5, "a part of the whole", bounds="fraction")
    seconds: float = option(0.0, "stop after this long; 0: no limit", unit="s", bounds="non-negative")
    kind: str = option("a", "which one", choices=("a", "b"))
    loud: bool = option(False, "say more")

    def __post_init__(self) -> None:
        check_options(self)


def parse(argv: list[str]) -> ExampleOptions:
    parser = Parser(prog="example")
    add_option_flags(parser, ExampleOptions)
    return options_from(ExampleOptions, parser.parse_args(argv))


def test_flags_carry_the_fields_help_unit_default_and_choices():
    parser = Parser(prog="example")
    add_option_flags(parser, ExampleOptions)
    text = parser.format_help()
    assert "stop after this long; 0: no limit (default 0.0 s)" in text
    assert "{a,b}" in text and "--loud, --no-loud" in text
    assert parse(["--rate", "2", "--kind", "b", "--loud"]) == ExampleOptions(rate=2.0, kind="b", loud=True)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_floats_are_refused_when_the_flags_are_read(value):
    with pytest.raises(UsageError, match="not a finite number"):
        parse([f"--rate={value}"])


def test_every_problem_is_named_at_once():
    with pytest.raises(ValueError) as caught:
        ExampleOptions(rate=-1.0, share=1.5, seconds=math.nan, kind="c")
    message = str(caught.value)
    for fragment in (
        "rate must be positive",
        "share must lie in [0, 1]",
        "seconds must be a finite number",
        "kind must be one of a, b",
    ):
        assert fragment in message


def test_a_bad_choice_is_a_usage_error():
    with pytest.raises(UsageError, match="invalid choice"):
        parse(["--kind", "c"])
