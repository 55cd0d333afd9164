"""Arithmetic with a calculator: the smallest task that needs a tool call."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agentic import Score, Task, Turn, finish, tool_call
from agentic.tools.calculator import CalculatorError, calculator, evaluate, format_number


@dataclass(frozen=True)
class Problem:
    expression: str
    answer: str


class Arithmetic(Task):
    """Compute an expression of two or three operations on two- and three-digit numbers."""

    name = "Arithmetic"
    description = "compute an arithmetic expression with the calculator, then finish with the value"
    tools = (calculator,)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        operators = [rng.choice("+-*") for _ in range(rng.randint(1, 2))]
        terms = [str(rng.randint(2, 999)) for _ in range(len(operators) + 1)]
        expression = terms[0] + "".join(f" {op} {term}" for op, term in zip(operators, terms[1:]))
        return asdict(Problem(expression, format_number(evaluate(expression))))

    def question(self, instance: dict[str, Any]) -> str:
        return f"Task: compute {instance['expression']}."

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        correct = answer is not None and _same_number(answer, instance["answer"])
        return Score(float(correct), {"correct": float(correct)}, success=correct)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        results = [t.tool_result for t in history if t.tool_result is not None and t.tool_result.ok]
        if not results:
            return tool_call("calculator", {"expression": instance["expression"]})
        return finish(results[-1].text)

    def match_arguments(self, tool: str, predicted: dict[str, Any], expected: dict[str, Any]) -> bool:
        """Two expressions match when they have the same value."""
        try:
            return evaluate(str(predicted.get("expression", ""))) == evaluate(expected["expression"])
        except CalculatorError:
            return False


def _same_number(answer: str, expected: str) -> bool:
    try:
        return float(answer.strip().replace(",", "")) == float(expected)
    except ValueError:
        return False
