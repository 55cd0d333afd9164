"""The `Task` contract: what a task supplies to the environment, the trainer and the evaluator."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentic.actions import Action
from agentic.tooling import Tool, ToolResult

SPLITS = ("training", "evaluation")
"""The splits a task draws instances for: SFT demonstrations and RL rollouts use "training", evaluation "evaluation"."""
EVALUATION_SHARE = 0.2
"""The fraction of split keys (`Task.split_keys`) that belong to evaluation, by a hash of their content."""
MAX_SPLIT_DRAWS = 1000
"""How many instances `Task.instance_for` draws before it gives up finding one of the split asked for."""

INVALID_EVENTS = frozenset({"invalid", "text", "bad_tool_call"})
"""Events of turns that count against the invalid-action budget: unparseable or over-long
actions, plain text with no sentinel, and tool calls refused for an unknown tool or bad arguments."""


@dataclass(frozen=True)
class Budget:
    """Per-episode limits. Running out of any truncates the episode (see `AgenticEnvironment`)."""

    max_turns: int = 8
    max_tool_calls: int = 6
    max_invalid: int = 3
    max_action_tokens: int = 256


@dataclass(frozen=True)
class Score:
    """A terminal score: the reward, its named parts and whether the task was solved."""

    total: float
    breakdown: dict[str, float] = field(default_factory=dict)
    success: bool = False


@dataclass(frozen=True)
class Turn:
    """One step of an episode as the task sees it: what the agent did and what came back."""

    action: Action
    event: str
    observation: str
    tool_result: ToolResult | None = None
    reward: float = 0.0


class Task:
    """Base class of a task. Subclasses set ``name`` and ``tools`` and implement `sample`,
    `question` (or `prompt`), `score` and `oracle`; the other methods have sensible defaults.

    The prompt comes in two parts, so that a chat model can get them as its template's system and
    user messages (`agentic.encoding`): `instructions`, how to act and the tools the instance offers
    (the same for every episode of most tasks; a task whose instances bring their own tools lists them
    there), and `question`, this instance's task. In raw text `prompt` joins them. A task that
    overrides only `prompt` still works: a chat model then gets the whole prompt as one user message.

    Instances should be JSON-friendly (dicts or dataclasses of plain values) so that
    trajectories can be saved with them.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    tools: ClassVar[Sequence[Tool]] = ()
    budget: ClassVar[Budget] = Budget()
    invalid_penalty: ClassVar[float] = 0.1
    allows_ask: ClassVar[bool] = False
    """Whether the agent may need ``<ask>`` here: constrained sampling (`agentic.constraint`) offers it only then."""
    held_out: ClassVar[bool] = True
    """Whether evaluation instances never occur in training by content (`instance_for`). False: any instance for any
    split, for a task with too few instances to split (a toy) or one that overrides `instance_for` without keeping
    the promise; such a task says in ``notes`` how it is evaluated."""
    notes: ClassVar[tuple[str, ...]] = ()
    """Caveats `agentic tasks` prints under the task (e.g. how its answers are scored)."""
    free_text: ClassVar[bool] = False
    """True for a single-turn free-text task (e.g. text scored by a reward model): the agent's whole reply is its
    answer, with no action grammar; the episode ends with that one turn (give it a one-turn budget, which ends it
    too when the reply is over the token budget); a policy samples it until eos or its length limit, not until a
    sentinel."""

    def sample(self, rng: random.Random) -> Any:
        """A new instance drawn with ``rng`` (the environment seeds it from ``reset(seed=...)``)."""
        raise NotImplementedError

    def instance_for(self, seed: int | None, rng: random.Random, split: str = "training") -> Any:
        """The instance of ``reset(seed=seed, options={"split": split})``: the first instance `sample` draws with
        ``rng`` (itself drawn from ``seed``) that belongs to ``split`` (`split_of`), so that no evaluation
        instance ever occurs in training, by content, whatever the seeds (any instance when ``held_out`` is False).

        A task over a fixed list of instances (a benchmark) may override this to return its ``seed``-th entry, so
        that seeds 0..n-1 cover the list once, in order, as a leaderboard does; it then sets ``held_out`` False
        unless it keeps the splits apart itself.
        """
        check_split(split)
        if not self.held_out:
            return self.sample(rng)
        for _ in range(MAX_SPLIT_DRAWS):
            instance = self.sample(rng)
            if self.split_of(instance) == split:
                return instance
        raise ValueError(
            f"{self.name}: none of {MAX_SPLIT_DRAWS} instances drawn belongs to the {split} split; "
            "its instances are too few to split (set held_out = False to draw any instance for any split)"
        )

    def split_keys(self, instance: Any) -> tuple[str, ...]:
        """The contents that identify ``instance`` for leakage: by default its canonical JSON. A task whose
        instances share a source (a corpus row, a story, a pool entry) returns that source instead, so that
        instances made from it stay on one side; an instance made from several sources returns each."""
        return (canonical_json(instance),)

    def split_of(self, instance: Any) -> str | None:
        """The split ``instance`` belongs to: "evaluation" when every one of its keys does (`key_split`), else
        "training" when every one does, else neither (None: an instance that mixes the two is never drawn)."""
        splits = {key_split(key) for key in self.split_keys(instance)}
        return splits.pop() if len(splits) == 1 else None

    def instance_tools(self, instance: Any) -> Sequence[Tool]:
        """The tools offered in ``instance``'s episode: by default the task's ``tools``. A task whose instances
        each bring their own functions (BFCL) returns those; the environment builds its registry from them."""
        return self.tools

    def instructions(self, instance: Any) -> str:
        """What ``instance``'s episode starts with: how to act and the tools it offers (a chat model's system
        message); by default the manual of `instance_tools`."""
        return self.tool_manual(self.instance_tools(instance))

    def question(self, instance: Any) -> str:
        """This instance's task, one or more lines without a final newline (a chat model's user message)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither question() nor prompt()")

    def prompt(self, instance: Any) -> str:
        """The raw-text prompt the agent starts from: the instructions, then the question, each ending a line."""
        return f"{self.instructions(instance)}\n{self.question(instance)}\n"

    def initial_state(self, instance: Any) -> dict[str, Any]:
        """Mutable per-episode state, passed to tools that take a ``state`` parameter."""
        return {}

    def user(self, instance: Any, question: str, state: dict[str, Any]) -> str:
        """The simulated user's reply to ``<ask>``."""
        return "I have nothing to add; please go on with what you know."

    def next_user_turn(self, instance: Any, answer: str, history: Sequence[Turn]) -> str | None:
        """The user's next request after the agent's ``<finish>``, or None to end the episode (the default).

        A conversation of several requests (e.g. BFCL multi-turn) returns each next one: the environment
        appends it as ``<user>…</user>`` (event ``"user_turn"``) and the episode goes on; ``<finish>`` is
        scored only once this returns None. ``history`` is the episode before this ``<finish>``.
        """
        return None

    def shaping(self, instance: Any, turn: Turn, state: dict[str, Any]) -> float:
        """Reward for one non-final turn; by default ``-invalid_penalty`` for an invalid one."""
        return -self.invalid_penalty if turn.event in INVALID_EVENTS else 0.0

    def score(self, instance: Any, answer: str | None, history: Sequence[Turn]) -> Score:
        """Terminal score of ``answer`` (None when the episode was truncated)."""
        raise NotImplementedError

    def oracle(self, instance: Any, history: Sequence[Turn]) -> str:
        """The next action text of a policy that solves the instance, given the episode so far."""
        raise NotImplementedError

    def match_arguments(self, tool: str, predicted: dict[str, Any], expected: dict[str, Any]) -> bool:
        """Whether a predicted tool call's arguments count as the expected ones (tool-call accuracy)."""
        return _canonical(predicted) == _canonical(expected)

    def close(self) -> None:
        """Release what the task holds (e.g. a scoring process); called by the environment's ``close``."""

    def tool_manual(self, tools: Sequence[Tool] | None = None) -> str:
        """A compact description of the actions and ``tools`` (by default the task's), for prompts."""
        tools = self.tools if tools is None else tools
        if not tools:
            return "Act with <ask>question</ask> or <finish>answer</finish>."
        lines = ['Act with <tool name="NAME">{json arguments}</tool>, <ask>question</ask> or <finish>answer</finish>.']
        lines += [f"- {t.signature()}: {t.description.splitlines()[0] if t.description else ''}" for t in tools]
        return "\n".join(lines)


def check_split(split: str) -> str:
    """``split`` when it is one of `SPLITS`, else a one-line ValueError."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    return split


def key_split(key: str) -> str:
    """The split of a split key: a fixed `EVALUATION_SHARE` of keys, chosen by a hash of the key's text
    (BLAKE2b, so the same on every machine and Python run), belongs to evaluation."""
    digest = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")
    return "evaluation" if digest < EVALUATION_SHARE * 2**64 else "training"


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces (dataclasses as dicts): equal content, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return repr(value)


def _canonical(value: Any) -> Any:
    """Arguments compared loosely: strings stripped and case-folded, numbers by value."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and math.isfinite(value):
        return round(float(value), 9)
    return value
