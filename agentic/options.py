"""Options dataclasses: each field carries its help text, choices, unit and allowed bounds, as TRL's
``field(metadata={"help": ...})`` does, so that the command line's flags (`agentic.cli.command.add_option_flags`)
and the checks are generated from the one place the option is declared.

Conventions: option classes are named ``*Options``; a value that switches something off (a limit, a
coefficient, a period) is 0, never None. `check_options` refuses NaN and infinite floats everywhere and
values outside a field's bounds, naming every problem at once, before any work starts; dataclasses that derive
from `Options` are checked so when they are made.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

RANGES = {
    "positive": (lambda v: v > 0, "must be positive"),
    "non-negative": (lambda v: v >= 0, "must be >= 0"),
    "fraction": (lambda v: 0 <= v <= 1, "must lie in [0, 1]"),
}


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[str] = (),
    unit: str = "",
    bounds: str = "",
) -> Any:
    """A dataclass field with its help text, the values it may take (``choices``), its unit (e.g. ``"s"``) and its
    bounds (one of `RANGES`: ``positive``, ``non-negative``, ``fraction``)."""
    if bounds and bounds not in RANGES:
        raise ValueError(f"unknown bounds {bounds!r}; use one of {', '.join(RANGES)}")
    metadata = {"help": help, "choices": tuple(choices), "unit": unit, "bounds": bounds}
    return dataclasses.field(default=default, metadata=metadata)


def option_problems(options: Any) -> list[str]:
    """One message per field of ``options`` whose value is NaN, infinite, not among its choices or out of its bounds."""
    problems = []
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{field.name} must be a finite number, got {value}")
            continue
        choices = field.metadata.get("choices")
        if choices and value not in choices:
            problems.append(f"{field.name} must be one of {', '.join(choices)}, got {value!r}")
        checked = RANGES.get(field.metadata.get("bounds", ""))
        if checked and isinstance(value, (int, float)) and not isinstance(value, bool) and not checked[0](value):
            problems.append(f"{field.name} {checked[1]}, got {value}")
    return problems


def check_options(options: Any, extra_problems: Sequence[str] = ()) -> None:
    """Raise ValueError naming every problem of ``options`` (`option_problems` plus ``extra_problems``)."""
    problems = [*option_problems(options), *extra_problems]
    if problems:
        raise ValueError(f"bad {type(options).__name__}: " + "; ".join(problems))


class Options:
    """Base of options dataclasses: checked when made (`check_options`), with the problems `problems` adds (rules
    that involve several fields, or bounds no declaration states)."""

    def __post_init__(self) -> None:
        check_options(self, self.problems())

    def problems(self) -> list[str]:
        return []
