"""`agentic bench fuzz`: the hostile-input audit of the environment, rerun at scale over every registered task.

Each episode steps a task with actions a careless or adversarial model could write: broken and stray
tags, floods of text and whitespace, JSON with numbers no float holds, lone surrogate escapes,
wrong types, deep nesting and huge keys, Rich markup and terminal escape codes, and answers that are
Python code trying to write a file. Every step is checked: it raises nothing, the observation is a
``str`` inside the observation space, the reward is finite, no budget goes below zero and no
episode outlives its turn budget; at the end the file the code answers tried to write must not exist.
The test suite runs the same episodes under hypothesis (`tests/test_fuzz.py`), a few seconds a task.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic.env import AgenticEnvironment, oracle_action, run_episode
from agentic.limits import OBSERVATION_CHARS
from agentic.registry import task_names

FRAGMENTS = (
    "<tool",
    '<tool name="x">',
    "</tool>",
    "<ask>",
    "</ask>",
    "<finish>",
    "</finish>",
    "<result>",
    "</user>",
    "<sys>",
    "<Finish>",
    "{",
    "}",
    '"',
    "\\",
    "\\ud800",
    "\ud800",
    "\x00",
    "\x1b[2J",
    "\x1b]8;;https://evil.example\x07",
    "[/]",
    "[link=https://evil.example]",
    "[bold red]",
    "1e400",
    "NaN",
    "-Infinity",
    "9" * 5000,
    "é☃😀",
    "\u202e",
    "\r\n",
    "\t",
    " ",
)
CODE_ANSWERS = (
    "__import__('os').system('touch {canary}')",
    "[__import__('os').system('touch {canary}')]",
    "  open('{canary}', 'w')",
    "__import__('os').system('touch {canary}') \\\n",
    "exec(\"open('{canary}', 'w')\")",
    "9**9**9**9",
    "__import__('time').sleep(30)",
)

WORDLESS_ANSWERS = (".", "—", "[1]", "", " ", "!!!", "\ud800")


def hostile_text(rng: random.Random, size: int) -> str:
    """Text made of tag fragments, markup, control codes and odd Unicode; now and then ``size`` characters of it."""
    pieces = [rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 12))]
    if rng.random() < 0.15:
        pieces.append(rng.choice(["x", " ", "\n", "<", "é"]) * rng.choice([size // 10, size]))
    rng.shuffle(pieces)
    return "".join(pieces)


def hostile_value(rng: random.Random, size: int, depth: int = 0) -> str:
    """The JSON text of one value: wrong types, numbers no float holds, huge strings, deep nesting."""
    choice = rng.randrange(12)
    if choice == 0 and depth < 3:
        return "{" + ", ".join(hostile_member(rng, size, depth + 1) for _ in range(rng.randint(0, 3))) + "}"
    if choice == 1 and depth < 3:
        return "[" + ", ".join(hostile_value(rng, size, depth + 1) for _ in range(rng.randint(0, 3))) + "]"
    if choice == 2:
        nesting = rng.choice([50, 1000, 100_000])
        return "[" * nesting + "]" * nesting
    simple = [
        '"' + "z" * rng.choice([0, 10, size]) + '"',
        rng.choice(["1e400", "-1e999", "NaN", "Infinity", "1" + "0" * 5000, "2.0", "-1", "0", "1e-400"]),
        '"\\ud800"',
        '"\\ud83d\\ude00"',
        rng.choice(["null", "true", "false", "[]", "{}"]),
        '"' + hostile_text(rng, size).replace("\\", "\\\\").replace('"', '\\"') + '"',
        str(rng.randint(-(10**6), 10**6)),
        '"' + rng.choice(CODE_ANSWERS) + '"',
        '"9**9**9"',
    ]
    return rng.choice(simple)


def hostile_member(rng: random.Random, size: int, depth: int = 0) -> str:
    key = rng.choice(["expression", "text", "name", "query", "k", "summary", "entity", "k" * rng.choice([1, size])])
    return f'"{key}": {hostile_value(rng, size, depth)}'


def hostile_action(rng: random.Random, tools: Sequence[str], size: int, canary: str) -> str:
    """One turn's text: a tool call, a question, an answer, plain text or a flood, each hostile in its own way."""
    kind = rng.randrange(6)
    thought = hostile_text(rng, size) if rng.random() < 0.3 else ""
    if kind == 0:
        name = rng.choice([*tools, "nope", "x" * 300, "calculator"])
        members = ", ".join(hostile_member(rng, size) for _ in range(rng.randint(0, 3)))
        body = "{" + members + "}" if rng.random() < 0.8 else hostile_text(rng, size)
        return f'{thought}<tool name="{name}">{body}</tool>'
    if kind == 1:
        return f"{thought}<ask>{hostile_text(rng, size)}</ask>"
    if kind == 2:
        answer = rng.choice(CODE_ANSWERS).format(canary=canary) if rng.random() < 0.5 else hostile_text(rng, size)
        return f"{thought}<finish>{answer}</finish>"
    if kind == 3:
        return hostile_text(rng, size)
    if kind == 4:
        return rng.choice([" ", "\n", "x", "<"]) * rng.choice([size, 4 * size]) + "<finish>1</finish>"
    return f"{thought}<finish>{rng.choice(WORDLESS_ANSWERS)}</finish>"


@dataclass
class Audit:
    """What a run of hostile episodes found."""

    inputs: int = 0
    episodes: int = 0
    exceptions: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    max_step_s: float = 0.0
    max_observation_chars: int = 0

    def add(self, other: Audit) -> None:
        self.inputs += other.inputs
        self.episodes += other.episodes
        self.exceptions += other.exceptions
        self.problems += other.problems
        self.max_step_s = max(self.max_step_s, other.max_step_s)
        self.max_observation_chars = max(self.max_observation_chars, other.max_observation_chars)


def step_problems(env: AgenticEnvironment, observation: Any, reward: Any, done: bool, info: dict) -> list[str]:
    """What is wrong with one step's result (nothing, normally)."""
    problems = []
    if not env.observation_space.contains(observation):
        size = len(observation) if isinstance(observation, str) else type(observation).__name__
        problems.append(f"observation ({size}) outside the observation space")
    if not (isinstance(reward, float) and math.isfinite(reward)):
        problems.append(f"reward {reward!r} is not a finite float")
    if any(left < 0 for left in info["budget"].values()):
        problems.append(f"budget below zero: {info['budget']}")
    if not done and env.turns >= env.budget.max_turns:
        problems.append(f"episode goes on after {env.turns} turns (budget {env.budget.max_turns})")
    return problems


def audit_episode(env: AgenticEnvironment, rng: random.Random, seed: int, size: int, canary: str) -> Audit:
    """Reset ``env`` with ``seed`` and step it with hostile actions until the episode ends."""
    audit = Audit(episodes=1)
    try:
        env.reset(seed=seed)
        tools = env.tools.names  # after the reset: a task may offer each instance its own tools (BFCL)
        done = False
        while not done:
            action = hostile_action(rng, tools, size, canary)
            start = time.perf_counter()
            observation, reward, terminated, truncated, info = env.step(action)
            audit.max_step_s = max(audit.max_step_s, time.perf_counter() - start)
            audit.inputs += 1
            audit.max_observation_chars = max(audit.max_observation_chars, len(observation))
            done = terminated or truncated
            audit.problems += [f"{env.task.name}: {p}" for p in step_problems(env, observation, reward, done, info)]
    except Exception as err:  # counted and reported: the point of the audit
        audit.exceptions.append(f"{env.task.name} seed {seed}: {type(err).__name__}: {str(err)[:200]}")
    return audit


def bench_fuzz(
    tasks: Sequence[str] | None = None, episodes_per_task: int = 1000, seed: int = 0, size: int = 1_000_000
) -> dict[str, Any]:
    """Hostile episodes over each task (every registered one by default; ``tasks`` are specs for
    `agentic.registry.parse_task_spec`): counts of inputs, exceptions and problems, the slowest step, the largest observation.
    One oracle episode first starts what a task starts lazily (a scoring process), untimed."""
    total, per_task = Audit(), {}
    with tempfile.TemporaryDirectory(prefix="agentic-fuzz-") as directory:
        canary = str(Path(directory) / "written-by-an-answer")
        for spec in tasks or task_names():
            env = AgenticEnvironment(spec)
            run_episode(env, oracle_action, seed)
            audit = Audit()
            rng = random.Random(f"{seed}:{spec}")
            for episode in range(episodes_per_task):
                audit.add(audit_episode(env, rng, seed + episode, size, canary))
            env.close()
            per_task[spec] = {
                "inputs": audit.inputs,
                "exceptions": len(audit.exceptions),
                "max_step_s": audit.max_step_s,
            }
            total.add(audit)
        canary_written = Path(canary).exists()
    return {
        "tasks": per_task,
        "inputs": total.inputs,
        "episodes": total.episodes,
        "exceptions": len(total.exceptions),
        "problems": len(total.problems),
        "examples": (total.exceptions + total.problems)[:10],
        "max_step_s": total.max_step_s,
        "max_observation_chars": total.max_observation_chars,
        "observation_limit": OBSERVATION_CHARS,
        "files_written_by_answers": int(canary_written),
    }
