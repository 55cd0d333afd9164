"""RL update throughput: the update with each forward pass's shared prefix run once (`RLOptions.share_prefix`) against
the same update with every episode run whole, the way TRL's PPO and GRPO trainers run their batches.

Both sides start from the same weights (a fresh copy of ``model_dir`` each time, its frozen copy the reference, the
critic from the same random state), read the same rollouts (sampled once, before any timing) and take the same
minibatch steps with the demo's RL settings (`agentic.training.demo_config.DEMO_RL`). Only the update is timed: the
reference's and critic's scoring passes, then the loss steps, as `agentic.training.rl` makes them. The sides take turns,
``repeats`` times each, and the best time of each side is compared. Their final weights are compared as well: the
change alters the compute, not the training.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Any

import torch

from agentic.policy import Policy
from agentic.registry import make_task
from agentic.rollout import rollout
from agentic.sampling import Sampling
from agentic.training.demo_config import DEMO_RL
from agentic.training.ppo import PPO, TurnBatch, collate
from agentic.training.rl import ALGORITHMS, TrainingState, derived_seed, optimize
from agentic.training.rl_config import OPTIONS_BY_ALGORITHM, RLOptions


def bench_rl_update(
    model_dir: str,
    task: str = "Arithmetic",
    *,
    algorithm: str = "ppo",
    updates: int = 8,
    repeats: int = 2,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Seconds of ``updates`` updates of ``algorithm`` with every episode run whole and with the shared prefix run
    once, on the same rollouts of ``task``; the ratio of the best times, and how far apart the final weights are."""
    policy = Policy.from_pretrained(model_dir)
    options = OPTIONS_BY_ALGORITHM[algorithm](model=str(model_dir), task=task, seed=seed, **DEMO_RL[algorithm])
    batches = _rollout_batches(policy, task, options, updates, max_new_tokens)
    times: dict[bool, list[float]] = {False: [], True: []}
    weights: dict[bool, list[torch.Tensor]] = {}
    for _ in range(repeats):
        for share in (False, True):
            seconds, weights[share] = _updates(policy.model, batches, options, share)
            times[share].append(seconds)
    whole, shared = min(times[False]), min(times[True])
    return {
        "task": task,
        "algorithm": algorithm,
        "model": str(model_dir),
        "updates": updates,
        "episodes": sum(len(batch) for batch in batches),
        "tokens": sum(int(batch.attention_mask.sum()) for batch in batches),
        "repeats": repeats,
        "whole_seconds": whole,
        "shared_seconds": shared,
        "speedup": whole / shared,
        "max_weight_difference": max((a - b).abs().max().item() for a, b in zip(weights[False], weights[True])),
    }


def _rollout_batches(
    policy: Policy, task: str, options: RLOptions, updates: int, max_new_tokens: int
) -> list[TurnBatch]:
    """The episodes of the first ``updates`` updates of a run with ``options``, sampled as `agentic.training.rl` does."""
    played = make_task(task)
    batches = []
    for iteration in range(updates):
        sampling = Sampling(max_new_tokens=max_new_tokens, seed=derived_seed(options.seed, iteration, 0))
        trajectories = rollout(policy, played, options.process_seeds(iteration, 0, 1), sampling)
        batches.append(collate(trajectories, policy.pad_id))
    return batches


def _updates(
    model: torch.nn.Module, batches: list[TurnBatch], options: RLOptions, share_prefix: bool
) -> tuple[float, list[torch.Tensor]]:
    """Seconds the updates over ``batches`` take from a fresh copy of ``model``, and the trained weights."""
    options = replace(options, share_prefix=share_prefix)
    policy, reference = copy.deepcopy(model).eval(), copy.deepcopy(model).eval()
    torch.manual_seed(options.seed)  # the same fresh critic on both sides
    algorithm = ALGORITHMS[type(options)](options, policy, reference)
    state = TrainingState(policy, algorithm, algorithm.optimizer(policy, options.learning_rate), options)
    start = time.perf_counter()
    for iteration, batch in enumerate(batches):
        targets = algorithm.advantages(policy, batch)
        optimize(policy, state, batch, targets, derived_seed(options.seed, iteration, 0))
    seconds = time.perf_counter() - start
    critic = [*algorithm.value_head.parameters()] if isinstance(algorithm, PPO) else []
    return seconds, [p.detach().clone() for p in [*policy.parameters(), *critic]]
