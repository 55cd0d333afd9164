"""`agentic bench parse`: parse_action against a regex parser in the style of the paper's, on the same inputs.

The inputs are the oracle's actions from every registered task plus hostile variants
(truncated, malformed, tags inside JSON strings, long thoughts). Besides speed, the
report counts the inputs where the regex parser's reading differs from the grammar's:
the price of its speed.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from typing import Any

from agentic.env import AgenticEnvironment, oracle_action, run_episode
from agentic.parsing import parse_action
from agentic.registry import task_names

_PAPER_TOOL = re.compile(r'<tool name="(.*?)">(.*?)</tool>', re.S)
_PAPER_ASK = re.compile(r"<ask>(.*?)</ask>", re.S)
_PAPER_FINISH = re.compile(r"<finish>(.*?)</finish>", re.S)


def regex_parse(text: str) -> tuple[str, Any]:
    """The paper's style: one regex per sentinel, tried in a fixed order, JSON decoded afterwards."""
    match = _PAPER_TOOL.search(text)
    if match:
        try:
            return "tool", (match.group(1), json.loads(match.group(2) or "{}"))
        except ValueError:
            return "invalid", None
    match = _PAPER_ASK.search(text)
    if match:
        return "ask", match.group(1).strip()
    match = _PAPER_FINISH.search(text)
    if match:
        return "finish", match.group(1).strip()
    return "text", text.strip()


def _grammar_reading(text: str) -> tuple[str, Any]:
    action = parse_action(text)
    if action.kind.value == "tool":
        return "tool", (action.tool, action.arguments)
    if action.kind.value in ("ask", "finish", "text"):
        return action.kind.value, action.content
    return "invalid", None


def oracle_actions(tasks: list[str], episodes_per_task: int, seed: int) -> tuple[list[str], int, float]:
    """The oracle's action texts over the tasks, and the environment steps taken and their time.

    Each oracle episode is played untimed (which also starts what a task starts lazily, e.g. ReasoningGym's
    scoring process), then its actions are replayed on the same seed with each ``env.step`` timed: the
    environment is deterministic, so the replay is the same episode, and the oracle's own time is left out."""
    actions, steps, seconds = [], 0, 0.0
    for name in tasks:
        env = AgenticEnvironment(name)
        for episode in range(episodes_per_task):
            played = [info["action"].raw for info in run_episode(env, oracle_action, seed + episode)]
            env.reset(seed=seed + episode)
            for action in played:
                start = time.perf_counter()
                env.step(action)
                seconds += time.perf_counter() - start
            actions += played
            steps += len(played)
        env.close()
    return actions, steps, seconds


def hostile_variants(actions: list[str], rng: random.Random) -> list[str]:
    """Each action cut short, with a tag hidden inside a string, and behind a long thought."""
    variants = []
    for text in actions:
        variants.append(text[: rng.randrange(1, max(2, len(text)))])
        variants.append(text.replace('{"', '{"note": "see </tool> and <ask>", "', 1))
        variants.append("Let me think step by step. " * 20 + text)
    return variants


def _rate(parse: Callable[[str], Any], inputs: list[str], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        for text in inputs:
            parse(text)
    return repeats * len(inputs) / (time.perf_counter() - start)


def bench_parse(
    tasks: list[str] | None = None, episodes_per_task: int = 20, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    actions, steps, env_seconds = oracle_actions(tasks or task_names(), episodes_per_task, seed)
    inputs = actions + hostile_variants(actions, random.Random(seed))
    lark_rate = _rate(parse_action, inputs, repeats)
    regex_rate = _rate(regex_parse, inputs, repeats)
    disagreements = sum(_grammar_reading(text) != regex_parse(text) for text in inputs)
    return {
        "inputs": len(inputs),
        "lark_actions_per_s": lark_rate,
        "regex_actions_per_s": regex_rate,
        "lark_over_regex": lark_rate / regex_rate,
        "regex_disagreements": disagreements,
        "env_steps": steps,
        "env_steps_per_s": steps / env_seconds,
    }
