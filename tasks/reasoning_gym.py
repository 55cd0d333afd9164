"""Any `reasoning_gym` dataset as a task: answer its question with ``<finish>``, scored by its own `score_answer`.

reasoning_gym generates its entries procedurally and offline, entry ``i`` always the
same for a given dataset, size, seed and options. An instance therefore stores the
entry's index (and its question and answer, for reading); the score regenerates
the entry from the index, so metadata that `score_answer` needs never has to be
JSON-friendly. reasoning_gym is an optional dependency, imported when a task is built.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from agentic import Budget, Score, Task, Turn, finish

DEFAULT_DATASET = "basic_arithmetic"


class ReasoningGym(Task):
    """A reasoning_gym dataset, e.g. ``ReasoningGym("chain_sum", size=500, min_terms=2, max_terms=3)``.

    Extra keyword arguments are the dataset's own options (`reasoning_gym.create_dataset`).
    """

    name = "ReasoningGym"
    description = "answer a reasoning_gym question with <finish>, scored by the dataset's score_answer"
    budget = Budget(max_turns=4)

    def __init__(self, dataset: str = DEFAULT_DATASET, size: int = 1000, seed: int = 0, **dataset_kwargs: Any):
        try:
            import reasoning_gym
        except ImportError as err:
            raise ImportError("the ReasoningGym task needs reasoning_gym: pip install agentic-slm[reasoning]") from err
        self.dataset_name = dataset
        self.dataset = reasoning_gym.create_dataset(dataset, size=size, seed=seed, **dataset_kwargs)

    def sample(self, rng: random.Random) -> dict[str, Any]:
        index = rng.randrange(len(self.dataset))
        entry = self.dataset[index]
        return {
            "dataset": self.dataset_name,
            "index": index,
            "question": entry["question"].strip(),
            "answer": entry["answer"],
        }

    def prompt(self, instance: dict[str, Any]) -> str:
        return f"{self.tool_manual()}\nTask: {instance['question']}\n"

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        value = 0.0 if answer is None else float(self.dataset.score_answer(answer, self.dataset[instance["index"]]))
        return Score(value, {"score_answer": value}, success=value == 1.0)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        return finish(instance["answer"])
