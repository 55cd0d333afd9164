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


def test_a_prefix_command_defaults_and_fields_the_command_sets():
    """One options class can give several commands their flags: under a prefix (a stage of a longer command line),
    with that command's defaults, and without the fields the command sets itself."""
    parser = Parser(prog="example")
    add_option_flags(parser, ExampleOptions, prefix="stage-", defaults={"rate": 0.5}, set_by_command=("kind",))
    text = parser.format_help()
    assert "--stage-rate" in text and "how fast (default 0.5)" in text and "--stage-kind" not in text
    args = parser.parse_args(["--stage-share", "0.25"])
    assert options_from(ExampleOptions, args, prefix="stage-", kind="b") == ExampleOptions(
        rate=0.5, share=0.25, kind="b"
    )


def test_a_renamed_flag_still_works_and_says_what_replaced_it(capsys):
    parser = Parser(prog="example")
    add_option_flags(parser, ExampleOptions, deprecated={"--speed": "rate", "--quiet": ("loud", False)})
    assert "--speed" not in parser.format_help(), "old flags are not advertised"
    options = options_from(ExampleOptions, parser.parse_args(["--speed", "3", "--loud", "--quiet"]))
    assert options == ExampleOptions(rate=3.0, loud=False)
    error = capsys.readouterr().err
    assert "--speed is deprecated: use --rate" in error and "--quiet is deprecated: use --no-loud" in error
    with pytest.raises(UsageError, match="not a finite number"):
        parser.parse_args(["--speed", "nan"])
