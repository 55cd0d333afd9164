"""Any `reasoning_gym` dataset as a task: answer its question with ``<finish>``, scored by its own `score_answer`.

reasoning_gym generates its entries procedurally and offline, entry ``i`` the same for a
given dataset, size, seed and options within one process (some datasets, such as
polynomial_multiplication, depend on Python's hash seed, so not across processes). An
instance therefore stores the entry's index (and its question and answer, for reading);
the score regenerates the entry from the index, so metadata that `score_answer` needs never
has to be JSON-friendly. reasoning_gym is an optional dependency, imported when a task is built.

Some datasets' scorers run the answer as code: Python's ``eval`` (`LITERAL_SCORED`) or sympy's
``parse_expr`` (`EXPRESSION_SCORED`). So no answer is scored in the training process: every score runs
in an `agentic.sandbox.SandboxProcess` (a fresh interpreter, a time-out per score, no processes,
network or file writes). Before that, answers to those datasets are screened here: a Python literal is re-rendered from its value and only that text
may be compiled (``eval`` datasets), arithmetic of numbers, names and a few maths functions may be
(``parse_expr`` datasets), any other Python expression is refused (scored 0, never sent), and text
that is not Python goes through with compiling forbidden, so the scorer's string comparisons still
see it and its attempt to evaluate it fails as it would have.
"""

from __future__ import annotations

import ast
import base64
import math
import pickle
import random
import re
from collections.abc import Sequence
from typing import Any

from agentic import Budget, Score, Task, Turn, finish
from agentic.options import RANGES
from agentic.sandbox import SandboxError, SandboxProcess, SandboxTimeout

DEFAULT_DATASET = "basic_arithmetic"
DEFAULT_SCORE_TIMEOUT_S = 5.0
RECIPE_FORMAT_REWARD = 0.15
"""The reasoning-gym GRPO seed recipe's reward: 0.15 for an answer given in the expected format (here: a
``<finish>``), plus 0.85 times `score_answer`'s score."""

LITERAL_SCORED = frozenset({"binary_matrix", "n_queens", "spiral_matrix", "string_insertion"})
"""Datasets whose `score_answer` calls ``eval(answer)`` (reasoning_gym 0.1.x)."""
EXPRESSION_SCORED = frozenset(
    {"countdown", "puzzle24", "polynomial_multiplication", "simple_integration", "intermediate_integration"}
)
"""Datasets whose `score_answer` calls sympy's ``parse_expr(answer)``, which evaluates Python."""
CODE_SCORED = LITERAL_SCORED | EXPRESSION_SCORED

MATH_FUNCTIONS = frozenset(
    [
        "sin",
        "cos",
        "tan",
        "cot",
        "sec",
        "csc",
        "asin",
        "acos",
        "atan",
        "sinh",
        "cosh",
        "tanh",
        "exp",
        "log",
        "ln",
        "sqrt",
        "Abs",
        "abs",
        "Rational",
    ]
)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_EXPRESSION_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Call, ast.Load)
_EXPRESSION_NODES += (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.UAdd, ast.USub)


def code_evaluating_datasets() -> list[str]:
    """The datasets whose scorers evaluate the answer as code (screened and sandboxed)."""
    return sorted(CODE_SCORED)


def screen_answer(answer: str, dataset: str) -> tuple[str, bool | str] | None:
    """What may be passed to ``dataset``'s scorer for ``answer``: (text, what the sandbox may compile),
    or None when the answer is Python code other than a literal (or arithmetic, for sympy's scorers).

    Other datasets' scorers may compile text of their own (number_sorting evals the entry's answer),
    never the answer (an audit hook over all 106 datasets of reasoning_gym 0.1.x found these nine)."""
    if dataset not in CODE_SCORED:
        return answer, True
    if dataset in LITERAL_SCORED and (literal := _literal_text(answer)) is not None:
        return literal, literal
    if dataset in EXPRESSION_SCORED and is_arithmetic(answer):
        return answer, True
    stripped = answer.strip()
    if _parses_as_python(stripped) and not _NAME.fullmatch(stripped):
        return None
    return answer, False


def _literal_text(answer: str) -> str | None:
    """The canonical text of a Python literal (``repr`` of its value), or None when it is not one."""
    try:
        return repr(ast.literal_eval(answer.strip()))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _parses_as_python(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def is_arithmetic(text: str) -> bool:
    """Whether ``text`` is arithmetic (+ - * / **) of numbers, names and calls of `MATH_FUNCTIONS`."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _EXPRESSION_NODES):
            return False
        if isinstance(node, ast.Constant) and type(node.value) not in (int, float):
            return False
        if isinstance(node, ast.Name) and (not _NAME.fullmatch(node.id) or "__" in node.id):
            return False
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in MATH_FUNCTIONS or node.keywords
        ):
            return False
    return True


def scorer(dataset: str, size: int, seed: int, options: dict[str, Any]) -> Any:
    """The sandboxed worker: ``score(entry, answer)`` with the dataset's own `score_answer`.

    Runs in the `SandboxProcess`. The entry comes pickled from the task (the trusted side: only
    JSON comes back), because regenerating it here could give another entry. Scores its first
    entry's answer once, so that the scorer's lazy imports happen before the sandbox's guard is armed."""
    import reasoning_gym

    data = reasoning_gym.create_dataset(dataset, size=size, seed=seed, **options)

    def score(entry: str, answer: str) -> float:
        return float(data.score_answer(answer, pickle.loads(base64.b64decode(entry))))

    data.score_answer(data[0]["answer"], data[0])
    return score


class ReasoningGym(Task):
    """A reasoning_gym dataset, e.g. ``ReasoningGym("chain_sum", size=500, min_terms=2, max_terms=3)``.

    Extra keyword arguments are the dataset's own options (`reasoning_gym.create_dataset`); they must be
    JSON-friendly, as the sandboxed scorer builds the same dataset. ``score_timeout_s`` bounds each score.
    ``format_reward`` (the seed recipe's: `RECIPE_FORMAT_REWARD`) is the part of the reward paid for finishing with
    an answer at all, the rest being the dataset's score, so that a model that cannot solve a question yet still
    learns the action format; success is still a full score from `score_answer`.
    """

    name = "ReasoningGym"
    description = "answer a reasoning_gym question with <finish>, scored by the dataset's score_answer"
    notes = (
        "answers are scored in a sandboxed process with a time-out; the scorers of "
        + ", ".join(code_evaluating_datasets())
        + " evaluate answers as code, so answers to those are screened first (Python literals, or arithmetic)",
    )
    budget = Budget(max_turns=4)

    def __init__(
        self,
        dataset: str = DEFAULT_DATASET,
        size: int = 1000,
        seed: int = 0,
        score_timeout_s: float = DEFAULT_SCORE_TIMEOUT_S,
        format_reward: float = 0.0,
        **dataset_kwargs: Any,
    ):
        in_range, bound = RANGES["fraction"]
        if not in_range(format_reward):  # also refuses NaN
            raise ValueError(f"format_reward {bound}, got {format_reward!r}")
        try:
            import reasoning_gym
        except ImportError as err:
            raise ImportError("the ReasoningGym task needs reasoning_gym: pip install agentic-slm[reasoning]") from err
        self.dataset_name = dataset
        self.format_reward = float(format_reward)
        self.dataset = reasoning_gym.create_dataset(dataset, size=size, seed=seed, **dataset_kwargs)
        self.scorer = SandboxProcess(
            f"{__name__}:scorer",
            {"dataset": dataset, "size": size, "seed": seed, "options": dataset_kwargs},
            timeout_s=score_timeout_s,
        )

    def sample(self, rng: random.Random) -> dict[str, Any]:
        index = rng.randrange(len(self.dataset))
        entry = self.dataset[index]
        return {
            "dataset": self.dataset_name,
            "index": index,
            "question": entry["question"].strip(),
            "answer": entry["answer"],
        }

    def split_keys(self, instance: dict[str, Any]) -> tuple[str, ...]:
        """The question, whatever its index in the dataset (datasets may repeat a question)."""
        return (instance["question"],)

    def question(self, instance: dict[str, Any]) -> str:
        return f"Task: {instance['question']}"

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        """``format_reward`` for a finished answer plus the rest times the dataset's `score_answer`, run in the
        sandbox; the answer's part is 0 for a refused, timed-out or failed score (the breakdown says which)."""
        if answer is None:
            return Score(0.0, {"score_answer": 0.0})
        answered = self._score_answer(instance, answer)
        total = self.format_reward + (1.0 - self.format_reward) * answered.total
        breakdown = answered.breakdown | ({"format": self.format_reward} if self.format_reward else {})
        return Score(total, breakdown, success=answered.success)

    def _score_answer(self, instance: dict[str, Any], answer: str) -> Score:
        """The dataset's own score of ``answer``, run in the sandbox."""
        entry = self.dataset[instance["index"]]
        screened = screen_answer(answer, (entry.get("metadata") or {}).get("source_dataset", self.dataset_name))
        if screened is None:
            return Score(0.0, {"score_answer": 0.0, "refused_as_code": 1.0})
        text, allow_compile = screened
        packed = base64.b64encode(pickle.dumps(entry)).decode("ascii")
        try:
            value = float(self.scorer.call(packed, text, allow_compile=allow_compile))
        except SandboxTimeout:
            return Score(0.0, {"score_answer": 0.0, "timed_out": 1.0})
        except (SandboxError, TypeError, ValueError):
            return Score(0.0, {"score_answer": 0.0, "scorer_failed": 1.0})
        value = value if math.isfinite(value) else 0.0
        return Score(value, {"score_answer": value}, success=value == 1.0)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        return finish(instance["answer"])

    def close(self) -> None:
        self.scorer.close()
