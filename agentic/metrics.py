"""Metrics with honest definitions: tool-call validity and accuracy at decision points, Wilson intervals for
proportions and Student-t intervals for means.

A decision point is a context (from an oracle episode run through the real environment)
after which the oracle calls a tool. The policy continues that context with one action:

- ``tool_call_validity``: the action parses as a tool call (`parse_action`), names a tool
  the task offers, and its arguments pass the tool's JSON Schema;
- ``tool_call_accuracy``: valid, the same tool as the oracle's, and arguments the task's
  `match_arguments` accepts;
- ``first_sentinel_is_tool`` (the paper's looser figure): the first sentinel-like tag in the
  text opens a call to a tool the task offers, whatever follows it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import norm, ttest_1samp

from agentic.actions import ActionKind
from agentic.parsing import parse_action
from agentic.task import Task
from agentic.tooling import ToolRegistry

_FIRST_SENTINEL = re.compile(r'<tool\s+name\s*=\s*"([^"]*)"|<ask\s*>|<finish\s*>')


@dataclass(frozen=True)
class ToolCallJudgement:
    valid: bool
    accurate: bool
    first_sentinel_is_tool: bool


def judge_tool_call(
    action_text: str, expected_tool: str, expected_arguments: dict[str, Any], task: Task, tools: ToolRegistry
) -> ToolCallJudgement:
    """How a policy's action compares with the oracle's tool call at one decision point."""
    action = parse_action(action_text)
    valid = (
        action.kind is ActionKind.TOOL
        and action.tool in tools
        and tools.validate(action.tool, action.arguments) is None
    )
    accurate = (
        valid
        and action.tool == expected_tool
        and task.match_arguments(expected_tool, action.arguments, expected_arguments)
    )
    first = _FIRST_SENTINEL.search(action_text)
    loose = first is not None and first.group(1) is not None and first.group(1) in tools
    return ToolCallJudgement(valid, accurate, loose)


@dataclass(frozen=True)
class Proportion:
    """k successes out of n, with the Wilson score interval (95% by default)."""

    k: float
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "k": self.k, "n": self.n, "low": self.low, "high": self.high}


def wilson(k: float, n: int, confidence: float = 0.95) -> Proportion:
    """The Wilson score interval: well-behaved at 0, 1 and small n, unlike the normal approximation.

    ``k`` may be fractional (e.g. a win rate with ties counted as half): outcomes in [0, 1] vary
    at most as much as coin flips, so the interval stays conservative.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Proportion(0, 0, 0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Proportion(k, n, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Mean:
    """The mean of n values, with a confidence interval (95% by default)."""

    value: float
    n: int
    low: float
    high: float

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "n": self.n, "low": self.low, "high": self.high}


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Mean:
    """The mean of ``values`` with its Student-t interval (scipy's one-sample t-test): what a graded score, such as a
    story's or a summary's, is compared with between two models. Fewer than two values give no interval (NaN ends)."""
    n = len(values)
    if n < 2:
        return Mean(float(values[0]) if n else math.nan, n, math.nan, math.nan)
    interval = ttest_1samp(values, 0.0).confidence_interval(confidence)
    return Mean(math.fsum(values) / n, n, float(interval.low), float(interval.high))
