"""Two-hop lookup: answer a question that chains two facts of a small fictional knowledge base.

Each instance generates its own knowledge base (countries, cities, people, companies
with made-up names), so the facts cannot be memorised: the agent must call
``kb_lookup`` twice, feeding the first result into the second call, then finish.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from agentic import Score, Task, Turn, finish, tool_call
from agentic.tools.knowledge_base import kb_lookup, normalize

SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ren",
    "tor",
    "va",
    "zen",
    "bel",
    "dru",
    "fen",
    "gal",
    "hil",
    "mor",
    "nax",
    "pra",
    "sul",
    "tak",
    "vin",
)
FIRST_NAMES = ("Alma", "Boris", "Cora", "Dario", "Edda", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Leon")
SUFFIXES = {"country": "ia", "city": "", "company": "trix", "person": ""}
COUNTS = {"country": 3, "city": 6, "person": 5, "company": 4}
RELATIONS = ("founded_by", "headquartered_in", "born_in", "lives_in", "located_in", "capital")

# (first relation, second relation, question): the question asks for the second hop's value.
CHAINS = (
    ("founded_by", "born_in", "In which city was the founder of {} born?"),
    ("founded_by", "lives_in", "In which city does the founder of {} live?"),
    ("headquartered_in", "located_in", "In which country is {} headquartered?"),
    ("born_in", "located_in", "In which country was {} born?"),
    ("lives_in", "located_in", "In which country does {} live?"),
    ("located_in", "capital", "What is the capital of the country where {} lies?"),
)
SUBJECT_KIND = {
    "founded_by": "company",
    "headquartered_in": "company",
    "born_in": "person",
    "lives_in": "person",
    "located_in": "city",
}


def generate_kb(rng: random.Random) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """A knowledge base ``entity -> relation -> value`` and the entity names by kind."""
    names = _unique_names(rng)
    countries, cities, people, companies = (names[kind] for kind in ("country", "city", "person", "company"))
    kb: dict[str, dict[str, str]] = {}
    for i, city in enumerate(cities):  # the first cities are the capitals, one per country
        kb[city] = {"located_in": countries[i] if i < len(countries) else rng.choice(countries)}
    for i, country in enumerate(countries):
        kb[country] = {"capital": cities[i]}
    for person in people:
        kb[person] = {"born_in": rng.choice(cities), "lives_in": rng.choice(cities)}
    for company in companies:
        kb[company] = {"founded_by": rng.choice(people), "headquartered_in": rng.choice(cities)}
    return kb, names


def _unique_names(rng: random.Random) -> dict[str, list[str]]:
    taken: set[str] = set()
    names: dict[str, list[str]] = {}
    for kind, count in COUNTS.items():
        names[kind] = []
        while len(names[kind]) < count:
            word = "".join(rng.choice(SYLLABLES) for _ in range(2)) + SUFFIXES[kind]
            name = f"{rng.choice(FIRST_NAMES)} {word.capitalize()}" if kind == "person" else word.capitalize()
            if word not in taken:
                taken.add(word)
                names[kind].append(name)
    return names


class TwoHop(Task):
    """Chain two facts of a fictional knowledge base with ``kb_lookup``."""

    name = "TwoHop"
    description = "answer a two-hop question with two kb_lookup calls, then finish with the value"
    tools = (kb_lookup,)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        kb, names = generate_kb(rng)
        first, second, question = rng.choice(CHAINS)
        subject = rng.choice(names[SUBJECT_KIND[first]])
        answer = kb[kb[subject][first]][second]
        return {
            "kb": kb,
            "subject": subject,
            "relations": [first, second],
            "question": question.format(subject),
            "answer": answer,
        }

    def instructions(self, instance: dict[str, Any]) -> str:
        return f"{self.tool_manual()}\nRelations: {', '.join(RELATIONS)}."

    def question(self, instance: dict[str, Any]) -> str:
        return f"Question: {instance['question']}"

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        correct = answer is not None and " ".join(answer.split()).casefold() == instance["answer"].casefold()
        return Score(float(correct), {"correct": float(correct)}, success=correct)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        """Look up the subject's first relation, then the second relation of what came back."""
        found = [t.tool_result.text for t in history if t.tool_result is not None and t.tool_result.ok]
        first, second = instance["relations"]
        if not found:
            return tool_call("kb_lookup", {"entity": instance["subject"], "relation": first})
        if len(found) == 1:
            return tool_call("kb_lookup", {"entity": found[0], "relation": second})
        return finish(found[-1])

    def match_arguments(self, tool: str, predicted: dict[str, Any], expected: dict[str, Any]) -> bool:
        """A call matches when it looks up the same fact, as `kb_lookup` compares names."""
        keys = ("entity", "relation")
        return set(predicted) == set(keys) and all(
            normalize(str(predicted[k])) == normalize(str(expected[k])) for k in keys
        )
