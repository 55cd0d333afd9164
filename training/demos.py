"""SFT demonstrations: the task oracle's episodes, optionally made imperfect on purpose.

A perfect demonstrator leaves reinforcement learning nothing to fix. A *sloppy* one, in a chosen
fraction of episodes, skips the tools and finishes at once with the answer it gave the episode
before (another instance's answer, remembered instead of worked out): a habit that imitation copies
and that only the reward can correct. Every episode, sloppy or not, runs through the real
environment and is scored by it.
"""

from __future__ import annotations

import random
from typing import Sequence

from transformers import PreTrainedTokenizerBase

from agentic.rollout import oracle_trajectories, scripted_trajectories
from agentic.tasks import Task
from agentic.trajectory import Trajectory


def demonstrations(
    task: str | Task,
    seeds: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    *,
    sloppy_rate: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> list[Trajectory]:
    """Oracle episodes on ``seeds``, of which about ``sloppy_rate`` (drawn with ``seed``; never the first) answer from memory.

    Raises RuntimeError when the oracle itself fails on a seed: demonstrations must come from a task that works.
    """
    if not 0 <= sloppy_rate <= 1:
        raise ValueError(f"sloppy_rate must lie in [0, 1], got {sloppy_rate}")
    oracle = oracle_trajectories(task, seeds, tokenizer, progress=progress)
    failed = [t.seed for t in oracle if not t.success]
    if failed:
        raise RuntimeError(f"the {oracle[0].task} oracle failed on demonstration seeds {failed[:10]}: fix the task's oracle")
    rng = random.Random(seed)
    demos = oracle[:1]
    for previous, demo in zip(oracle, oracle[1:]):
        if rng.random() < sloppy_rate:
            remembered = previous.turns[-1].action
            demo = scripted_trajectories(task, [demo.seed], tokenizer, lambda env, answer=remembered: answer)[0]
        demos.append(demo)
    return demos
