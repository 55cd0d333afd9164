"""Missing quantity: a word problem with one number left out, which only the user knows.

The agent must ``<ask>`` for the missing number, compute with the calculator and
finish with the result. The missing number ranges over 2..40, so an answer that
guesses it instead of asking is right about one time in forty. Scoring, shaping
and argument matching are Arithmetic's: the answer is a number, the tool the calculator.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agentic import Turn, ask, finish, tool_call
from agentic.tasks.arithmetic import Arithmetic
from agentic.tools.calculator import evaluate, format_number

MISSING_RANGE = (2, 40)
NAMES = ("Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ivy", "Ben")
ANY_MISSING = ("missing", "unknown")
UNHELPFUL = "I don't know about that."


@dataclass(frozen=True)
class Template:
    """A word problem in which ``x`` is the missing quantity, named by ``nouns``.

    ``story``, ``question`` and ``reply`` are formatted with ``name``, ``a``, ``b`` (and
    ``x`` for the reply); ``expression`` is the computation with ``x`` left in.
    """

    story: str
    question: str
    reply: str
    nouns: tuple[str, ...]
    expression: str
    a: tuple[int, int]
    b: tuple[int, int]


TEMPLATES = (
    Template(
        "{name} buys some boxes of {a} pencils and gives away {b} pencils. How many pencils are left?",
        "How many boxes does {name} buy?",
        "{name} buys {x} boxes.",
        ("box", "boxes"),
        "x * {a} - {b}",
        (3, 12),
        (1, 6),
    ),
    Template(
        "{name} has {a} stickers and gets some packs of {b} stickers. How many stickers does {name} have now?",
        "How many packs does {name} get?",
        "{name} gets {x} packs.",
        ("pack", "packs"),
        "{a} + x * {b}",
        (5, 60),
        (3, 10),
    ),
    Template(
        "{name} reads {a} pages a day for some days, then {b} more pages. How many pages does {name} read?",
        "For how many days does {name} read?",
        "{name} reads for {x} days.",
        ("day", "days"),
        "{a} * x + {b}",
        (5, 30),
        (1, 9),
    ),
    Template(
        "{name} has {a} dollars and buys some pens at {b} dollars each. How many dollars are left?",
        "How many pens does {name} buy?",
        "{name} buys {x} pens.",
        ("pen", "pens"),
        "{a} - x * {b}",
        (81, 150),
        (1, 2),
    ),
    Template(
        "{name} saves {a} dollars a week for some weeks, then spends {b} dollars. How many dollars are left?",
        "For how many weeks does {name} save?",
        "{name} saves for {x} weeks.",
        ("week", "weeks"),
        "x * {a} - {b}",
        (5, 20),
        (1, 4),
    ),
)


@dataclass(frozen=True)
class Problem:
    story: str
    nouns: list[str]
    question: str
    reply: str
    expression: str
    missing: int
    answer: str


class MissingQuantity(Arithmetic):
    """Arithmetic in words, with one operand that the agent must ask the user for."""

    name = "MissingQuantity"
    description = "ask the user for the missing number of a word problem, compute it with the calculator, finish"
    allows_ask = True

    def sample(self, rng: random.Random) -> dict[str, Any]:
        template = rng.choice(TEMPLATES)
        values = {"name": rng.choice(NAMES), "a": rng.randint(*template.a), "b": rng.randint(*template.b)}
        missing = rng.randint(*MISSING_RANGE)
        expression = template.expression.format(**values)
        return asdict(
            Problem(
                story=template.story.format(**values),
                nouns=list(template.nouns),
                question=template.question.format(**values),
                reply=template.reply.format(x=missing, **values),
                expression=expression,
                missing=missing,
                answer=format_number(evaluate(expression.replace("x", str(missing)))),
            )
        )

    def split_keys(self, instance: dict[str, Any]) -> tuple[str, ...]:
        """The story, which the prompt shows: instances that differ only in the missing number stay on one side."""
        return (instance["story"],)

    def question(self, instance: dict[str, Any]) -> str:
        return f"Task: {instance['story']} Ask for the missing number."

    def user(self, instance: dict[str, Any], question: str, state: dict[str, Any]) -> str:
        """The missing value when the question names it (its noun, or "missing"/"unknown"); a shrug otherwise."""
        words = set(re.findall(r"[a-z]+", question.lower()))
        return instance["reply"] if words & {*instance["nouns"], *ANY_MISSING} else UNHELPFUL

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        """Ask, read the number from the user's reply, compute with it, finish with the result."""
        revealed = [m.group() for t in history if t.event == "ask" and (m := re.search(r"\d+", t.observation))]
        results = [t.tool_result.text for t in history if t.tool_result is not None and t.tool_result.ok]
        if not revealed:
            return ask(instance["question"])
        if not results:
            return tool_call("calculator", {"expression": instance["expression"].replace("x", revealed[-1])})
        return finish(results[-1])
