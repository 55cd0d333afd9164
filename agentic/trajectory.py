"""`Trajectory`: one episode as tokens and turns, saved to and loaded from `datasets.Dataset` and JSONL.

The token ids are exactly those the policy saw and produced: the prompt, then per turn the
agent's tokens and the environment's reply, each segment encoded on its own and never
re-encoded. ``loss_mask`` is 1 on agent tokens and 0 on prompt and environment tokens.
``logprobs`` holds the sampling log-prob of each agent token (see `agentic.sampling.Sampling`)
and NaN wherever no token was sampled: prompt and environment tokens, and every token of an
oracle demonstration. In JSON and in a Dataset NaN is written as null.

``mode`` says how the episode was encoded (`agentic.encoding`): ``"raw"`` (the environment's text as it
is) or ``"chat"`` (the model's chat template). Files and datasets written before the field existed
load as raw text, which is what they hold.

Under constrained sampling (`agentic.constraint`) ``grammars`` holds each distinct action grammar once and
``turn_grammars[k]`` the index of turn ``k``'s (-1: sampled unconstrained); both are empty otherwise. The
per-position masks are replayed from them (`agentic.constraint.constrained_masks`), not stored.

JSONL and `datasets.Dataset` hold the same record (`Trajectory.to_dict`): the task-specific ``instance`` and
``breakdown`` as JSON text, so that trajectories of any tasks share one schema and a JSONL file of them loads
with ``datasets.load_dataset("json", ...)`` into `from_dataset`. Files written before (``breakdown`` an
object) still load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import datasets
import jsonschema
from rich.text import Text

from agentic.limits import ERROR_CHARS, cap
from agentic.run_dir import read_jsonl

MODES = ("chat", "raw")
"""How an episode's text became tokens (`agentic.encoding`): the model's chat template, or raw text."""

# Task-specific values (instance, breakdown) are stored as JSON text so that trajectories of any tasks share one schema.
_JSON_COLUMNS = ("instance", "breakdown")


@dataclass(frozen=True)
class TurnRecord:
    """One turn: the agent's tokens ``token_ids[start:end]``, its action text, and what the environment made of it.

    ``reply`` is the text the environment appended (its tokens follow the agent's), ``reward``
    the step's reward (shaping, plus the terminal score on the last turn).
    """

    start: int
    end: int
    action: str
    kind: str
    event: str
    reward: float
    reply: str

    @property
    def decision_index(self) -> int:
        """Position of the last context token before the agent's tokens: where a value head scores this turn."""
        return self.start - 1


@dataclass(eq=False)
class Trajectory:
    """One episode of a task from a seed, token by token. Equality compares the saved form (NaN equals NaN)."""

    task: str
    seed: int | None
    instance: Any
    prompt: str
    token_ids: list[int]
    loss_mask: list[int]
    logprobs: list[float]
    turns: list[TurnRecord] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False
    success: bool = False
    score: float = 0.0
    breakdown: dict[str, float] = field(default_factory=dict)
    truncation_reason: str | None = None
    mode: str = "raw"
    grammars: list[str] = field(default_factory=list)
    turn_grammars: list[int] = field(default_factory=list)

    @property
    def transcript(self) -> str:
        """The episode's text: prompt, then each action and reply. ``decode(token_ids)`` gives the same text."""
        return self.prompt + "".join(turn.action + turn.reply for turn in self.turns)

    @property
    def rewards(self) -> list[float]:
        return [turn.reward for turn in self.turns]

    def to_dict(self) -> dict[str, Any]:
        """The saved record: JSON-ready (NaN log-probs as None), ``instance`` and ``breakdown`` as JSON text, and
        the transcript added for readers (`from_dict` ignores it)."""
        record = asdict(self)
        record["logprobs"] = [None if math.isnan(x) else x for x in self.logprobs]
        for column in _JSON_COLUMNS:
            record[column] = json.dumps(record[column], ensure_ascii=False)
        record["transcript"] = self.transcript
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Trajectory:
        """The trajectory of a saved record: `to_dict`'s, a row of `to_dataset` or of ``load_dataset("json")`` over
        a JSONL file, or a record written before ``instance`` and ``breakdown`` were stored as JSON text."""
        values = {k: v for k, v in record.items() if k != "transcript"}
        if isinstance(record.get("breakdown"), str):  # JSON text; older records hold the objects themselves
            values |= {column: json.loads(record[column]) for column in _JSON_COLUMNS}
        values["logprobs"] = [math.nan if x is None else x for x in record["logprobs"]]
        values["turns"] = [TurnRecord(**turn) for turn in record["turns"]]
        return cls(**values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trajectory) and self.to_dict() == other.to_dict()


FEATURES = datasets.Features(
    {
        "task": datasets.Value("string"),
        "seed": datasets.Value("int64"),
        "instance": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "token_ids": [datasets.Value("int32")],
        "loss_mask": [datasets.Value("int8")],
        "logprobs": [datasets.Value("float64")],
        "turns": [
            {
                "start": datasets.Value("int32"),
                "end": datasets.Value("int32"),
                "action": datasets.Value("string"),
                "kind": datasets.Value("string"),
                "event": datasets.Value("string"),
                "reward": datasets.Value("float64"),
                "reply": datasets.Value("string"),
            }
        ],
        "terminated": datasets.Value("bool"),
        "truncated": datasets.Value("bool"),
        "success": datasets.Value("bool"),
        "score": datasets.Value("float64"),
        "breakdown": datasets.Value("string"),
        "truncation_reason": datasets.Value("string"),
        "mode": datasets.Value("string"),
        "transcript": datasets.Value("string"),
        "grammars": [datasets.Value("string")],
        "turn_grammars": [datasets.Value("int32")],
    }
)


def to_dataset(trajectories: Iterable[Trajectory]) -> datasets.Dataset:
    """One row per trajectory (columns as in `FEATURES`)."""
    return datasets.Dataset.from_list([trajectory.to_dict() for trajectory in trajectories], features=FEATURES)


def from_dataset(dataset: datasets.Dataset) -> list[Trajectory]:
    """The trajectories of a dataset of saved records: `to_dataset`'s, one saved to disk and loaded again, or
    ``load_dataset("json", data_files=...)`` over a JSONL file of them (e.g. a run's demos.jsonl)."""
    return [Trajectory.from_dict(dict(row)) for row in dataset]


_INTEGERS = {"type": "array", "items": {"type": "integer"}}
RECORD_SCHEMA = {
    "type": "object",
    "required": ["task", "seed", "instance", "prompt", "token_ids", "loss_mask", "logprobs"],
    "properties": {
        **{f.name: {} for f in fields(Trajectory)},  # every field is allowed; the ones below are typed
        "task": {"type": "string"},
        "seed": {"type": ["integer", "null"]},
        "prompt": {"type": "string"},
        "token_ids": _INTEGERS,
        "loss_mask": _INTEGERS,
        "logprobs": {"type": "array", "items": {"type": ["number", "null"]}},
        "turns": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [f.name for f in fields(TurnRecord)],
                "additionalProperties": False,
                "properties": {
                    "start": {"type": "integer"},
                    "end": {"type": "integer"},
                    "reward": {"type": "number"},
                    **{name: {"type": "string"} for name in ("action", "kind", "event", "reply")},
                },
            },
        },
        **{name: {"type": "boolean"} for name in ("terminated", "truncated", "success")},
        "score": {"type": "number"},
        "breakdown": {"type": ["string", "object"], "additionalProperties": {"type": "number"}},
        "truncation_reason": {"type": ["string", "null"]},
        "mode": {"enum": list(MODES)},
        "transcript": {"type": "string"},
        "grammars": {"type": "array", "items": {"type": "string"}},
        "turn_grammars": _INTEGERS,
    },
    "additionalProperties": False,
}
"""What `Trajectory.to_dict` writes, so that a file of other JSON lines is refused with a reason."""
_RECORD_VALIDATOR = jsonschema.Draft202012Validator(RECORD_SCHEMA)


def _not_a_trajectory(record: Any) -> str | None:
    """Why a JSON record is not what `Trajectory.to_dict` writes, or None."""
    problem = jsonschema.exceptions.best_match(_RECORD_VALIDATOR.iter_errors(record))
    if problem is None:
        try:
            Trajectory.from_dict(record)
        except (ValueError, TypeError) as error:  # e.g. instance or breakdown JSON text that is not JSON
            return "not a trajectory (" + cap(str(error), ERROR_CHARS) + ")"
        return None
    where = "/".join(str(p) for p in problem.absolute_path) or "the line"
    return "not a trajectory (" + cap(f"{where}: {problem.message}", ERROR_CHARS) + ")"


def read_trajectories(path: str | Path) -> list[Trajectory]:
    """The trajectories of a JSONL file (`agentic.run_dir.write_jsonl` writes them); a line that is not one raises
    ValueError naming the line and why."""
    return [Trajectory.from_dict(record) for record in read_jsonl(path, check=_not_a_trajectory)]


AGENT_STYLE = "bold green"
ENVIRONMENT_STYLE = "cyan"
PROMPT_STYLE = "dim"
_ESCAPED_CONTROLS = {code: f"\\x{code:02x}" for code in [*range(32), 127] if chr(code) not in "\n\t"}


def visible(text: str) -> str:
    """``text`` with control characters (other than newline and tab) written as ``\\xNN``: a terminal would
    drop or obey them (rich strips some, an escape sequence could clear the screen), hiding what the model wrote."""
    return text.translate(_ESCAPED_CONTROLS)


def render_trajectory(trajectory: Trajectory) -> Text:
    """The episode for a terminal: agent text in green, environment text in cyan, the prompt dimmed, a summary per turn.

    Control characters are shown escaped (`visible`).
    """
    outcome = "success" if trajectory.success else "truncated" if trajectory.truncated else "failure"
    text = Text(f"{trajectory.task} seed={trajectory.seed}: {outcome}, score {trajectory.score:.3f}\n", style="bold")
    text.append("legend: ").append("agent", AGENT_STYLE).append(" / ").append("environment", ENVIRONMENT_STYLE)
    text.append(" / ").append("prompt", PROMPT_STYLE).append("\n\n")
    text.append(visible(trajectory.prompt), PROMPT_STYLE)
    for turn in trajectory.turns:
        text.append(visible(turn.action), AGENT_STYLE)
        text.append(visible(turn.reply), ENVIRONMENT_STYLE)
    text.append("\n\n")
    for number, turn in enumerate(trajectory.turns, 1):
        text.append(
            f"turn {number}: {turn.kind} -> {turn.event}, reward {turn.reward:+.3f}, agent tokens {turn.end - turn.start}\n",
            "dim",
        )
    if trajectory.truncation_reason:
        text.append(f"truncated: {trajectory.truncation_reason}\n", "yellow")
    return text
