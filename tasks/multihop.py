"""Task C of the paper: multi-hop questions over Wikitext-103 facts combined by arithmetic.

Each question needs two facts from (usually) two articles, e.g. "What is the combined
population of A and B?" or "How many years passed from when A was founded to when B was
born?". The facts come from the fact table `agentic.tools.wiki.Wiki` extracts from the corpus; the
agent gathers them with `entity_lookup` (or `search_passage` / `verify_fact`), combines them
with `arithmetic` and finishes with the number. Reward: exact match of the requested value.

The default corpus is the shipped stand-in; real runs pass the hub id, e.g.
``MultiHopKnowledge(corpus="Salesforce/wikitext", limit=200_000)``, or a local file.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

from agentic import Score, Task, Turn, finish, tool_call
from agentic.tasks.corpora import load_corpus, standin_path
from agentic.tools.calculator import CalculatorError, arithmetic, evaluate, format_number
from agentic.tools.wiki import Wiki, entity_lookup, search_passage, verify_fact

QUANTITY_QUESTIONS = {
    ("population", "+"): "What is the combined population of {0} and {1}?",
    ("population", "-"): "How many more people live in {0} than in {1}?",
    ("elevation", "-"): "How many metres higher is {0} than {1}?",
    ("length", "+"): "What is the total length of {0} and {1} in kilometres?",
    ("length", "-"): "How many kilometres longer is {0} than {1}?",
}
YEAR_EVENTS = {"founded": "{} was founded", "born": "{} was born", "died": "{} died", "opened": "{} opened"}
YEAR_QUESTION = "How many years passed from when {early} to when {late}?"


@functools.lru_cache(maxsize=4)
def load_wiki(corpus: str | None, split: str, config: str, limit: int | None) -> Wiki:
    """The `Wiki` of a corpus (the shipped stand-in when ``corpus`` is None), built once per process."""
    rows = load_corpus(corpus or standin_path("wikitext103"), split=split, config=config, limit=limit)
    return Wiki.from_lines(rows["text"])


class MultiHopKnowledge(Task):
    """Answer a question that combines two numeric Wikipedia facts with + or -."""

    name = "MultiHopKnowledge"
    description = "look up two facts in Wikipedia articles, combine them with arithmetic, finish with the number"
    tools = (search_passage, entity_lookup, arithmetic, verify_fact)

    def __init__(
        self,
        corpus: str | None = None,
        split: str = "train",
        config: str = "wikitext-103-raw-v1",
        limit: int | None = None,
    ):
        self.wiki = load_wiki(corpus, split, config, limit)
        facts = sorted(
            (entity, attribute, value)
            for entity, table in self.wiki.facts.items()
            for attribute, value in table.items()
        )
        self._pools = {
            kind: pool for kind in [*QUANTITY_QUESTIONS, "years"] if _has_two_values(pool := _pool(facts, kind))
        }
        if not self._pools:
            raise ValueError("the corpus yields too few facts for a question; use a larger corpus or limit")

    def sample(self, rng: random.Random) -> dict[str, Any]:
        kind = rng.choice(list(self._pools))
        first, second = rng.sample(self._pools[kind], 2)
        while first[2] == second[2]:
            first, second = rng.sample(self._pools[kind], 2)
        operator = "-" if kind == "years" else kind[1]
        if operator == "-" and first[2] < second[2]:
            first, second = second, first
        if kind == "years":
            question = YEAR_QUESTION.format(
                early=YEAR_EVENTS[second[1]].format(second[0]), late=YEAR_EVENTS[first[1]].format(first[0])
            )
        else:
            question = QUANTITY_QUESTIONS[kind].format(first[0], second[0])
        answer = format_number(evaluate(f"{first[2]} {operator} {second[2]}"))
        return {"question": question, "facts": [list(first), list(second)], "operator": operator, "answer": answer}

    def split_keys(self, instance: dict[str, Any]) -> tuple[str, ...]:
        """The entities whose facts the question combines: an evaluation question uses only evaluation entities,
        so no fact it needs was ever in a training episode."""
        return tuple(entity for entity, _, _ in instance["facts"])

    def question(self, instance: dict[str, Any]) -> str:
        return f"Question: {instance['question']}"

    def user(self, instance: dict[str, Any], question: str, state: dict[str, Any]) -> str:
        needed = " and ".join(f"the {attribute} of {entity}" for entity, attribute, _ in instance["facts"])
        return f"You need {needed}."

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        exact = answer is not None and _number(answer) == float(instance["answer"])
        found = sum(
            self._looked_up(history, entity, attribute) is not None for entity, attribute, _ in instance["facts"]
        )
        breakdown = {"exact_match": float(exact), "facts_found": found / len(instance["facts"])}
        return Score(float(exact), breakdown, success=exact)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        """Look up each fact, compute with the values the lookups returned, finish with the result."""
        values = []
        for entity, attribute, _ in instance["facts"]:
            value = self._looked_up(history, entity, attribute)
            if value is None:
                return tool_call("entity_lookup", {"entity": entity, "attribute": attribute})
            values.append(value)
        expression = f" {instance['operator']} ".join(values)
        computed = [
            t.tool_result.text
            for t in history
            if _ok_call(t, "arithmetic") and t.tool_result.arguments["expression"] == expression
        ]
        if not computed:
            return tool_call("arithmetic", {"expression": expression})
        return finish(computed[-1])

    def match_arguments(self, tool: str, predicted: dict[str, Any], expected: dict[str, Any]) -> bool:
        """Entities and attributes ignore case; arithmetic expressions match when they have the same value."""
        if tool != "arithmetic":
            return super().match_arguments(tool, predicted, expected)
        try:
            return evaluate(str(predicted.get("expression", ""))) == evaluate(expected["expression"])
        except CalculatorError:
            return False

    def _looked_up(self, history: Sequence[Turn], entity: str, attribute: str) -> str | None:
        """The number an `entity_lookup` of this fact returned in the episode, as text, if any."""
        expected = {"entity": entity, "attribute": attribute}
        for turn in history:
            if (
                _ok_call(turn, "entity_lookup")
                and self.match_arguments("entity_lookup", turn.tool_result.arguments, expected)
                and _number(turn.tool_result.text) is not None
            ):
                return turn.tool_result.text
        return None


def _pool(facts: list[tuple[str, str, int]], kind: tuple[str, str] | str) -> list[tuple[str, str, int]]:
    attributes = YEAR_EVENTS if kind == "years" else (kind[0],)
    return [fact for fact in facts if fact[1] in attributes]


def _has_two_values(pool: list[tuple[str, str, int]]) -> bool:
    return len({value for _, _, value in pool}) >= 2


def _ok_call(turn: Turn, tool: str) -> bool:
    return turn.tool_result is not None and turn.tool_result.ok and turn.tool_result.tool == tool


def _number(text: str) -> float | None:
    """The number a whole answer states (thousands separators allowed), else None."""
    try:
        return float(text.strip().replace(",", ""))
    except ValueError:
        return None
