"""What constrained sampling costs and guarantees: the rollout engine with and without `agentic.constraint`.

Both sides roll out the same episodes (model, seeds, temperature 1, per-turn token limit) in the same process,
each timed after a warm-up run, several times in turn; each side's best time counts. Constrained and free
episodes differ in what the model writes (a constrained action is complete sooner, or later, than a free one),
so episodes/s compares behaviour as much as cost; the cost itself is the time the engine spends in the
constraint (building the matchers, llguidance's bitmasks, the mask applied to the logits, advancing the
matchers), measured inside the constrained runs and given as a share of the rest of their time. The
constrained runs' actions are also judged: every one valid, every tool call well-formed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from agentic.bench import throughput
from agentic.constraint import Grammars
from agentic.models import resolve_model
from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.sampling import Sampling
from agentic.task import INVALID_EVENTS
from agentic.trajectory import Trajectory


def action_validity(trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """Invalid actions (per turn), tool calls and how many of them were well-formed, actions cut by the token limit."""
    turns = [turn for trajectory in trajectories for turn in trajectory.turns]
    tool_calls = [turn for turn in turns if turn.kind == "tool"]
    return {
        "turns": len(turns),
        "invalid_actions": sum(turn.event in INVALID_EVENTS for turn in turns),
        "invalid_action_rate": sum(turn.event in INVALID_EVENTS for turn in turns) / max(len(turns), 1),
        "tool_calls": len(tool_calls),
        "valid_tool_calls": sum(turn.event not in INVALID_EVENTS for turn in tool_calls),
        "kinds": {kind: sum(turn.kind == kind for turn in turns) for kind in sorted({turn.kind for turn in turns})},
    }


def bench_constrained(
    model_dir: str,
    task: str = "Arithmetic",
    n_episodes: int = 64,
    *,
    max_new_tokens: int = 256,
    seed: int = 0,
    device: str | None = None,
    repeats: int = 3,
    mode: str = "auto",
) -> dict[str, Any]:
    """Episodes/s and agent tokens/s of `rollout` with and without the constraint, the constraint's share of the
    constrained time, and the validity of the constrained actions (over every timed run)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    policy = Policy.from_pretrained(resolve_model(model_dir), device=device, mode=mode)
    seeds = list(range(seed, seed + n_episodes))
    samplings = {
        "free": Sampling(max_new_tokens=max_new_tokens, seed=seed),
        "constrained": Sampling(max_new_tokens=max_new_tokens, seed=seed, constrained=True),
    }
    grammars = Grammars.of(policy.tokenizer)
    times: dict[str, list[float]] = {side: [] for side in samplings}
    tokens: dict[str, int] = {}
    constraint_seconds: list[float] = []
    judged: list[Trajectory] = []
    for sampling in samplings.values():
        rollout(policy, task, seeds, sampling)  # warm-up: first-call allocations, grammars compiled
    for _ in range(repeats):
        for side, sampling in samplings.items():
            spent = grammars.seconds
            start = time.perf_counter()
            trajectories = rollout(policy, task, seeds, sampling)
            times[side].append(time.perf_counter() - start)
            tokens[side] = sum(sum(t.loss_mask) for t in trajectories)
            if sampling.constrained:
                constraint_seconds.append(grammars.seconds - spent)
                judged += trajectories
    sides = {side: throughput(seconds, n_episodes, tokens[side]) for side, seconds in times.items()}
    best = times["constrained"].index(min(times["constrained"]))
    return {
        "task": task,
        "model": str(model_dir),
        "device": str(policy.device),
        "threads": torch.get_num_threads(),
        "episodes": n_episodes,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        **sides,
        "constraint_seconds": constraint_seconds[best],
        "constraint_overhead": constraint_seconds[best] / (min(times["constrained"]) - constraint_seconds[best]),
        "validity": action_validity(judged),
    }
