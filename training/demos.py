"""SFT demonstrations: the task oracle's episodes, optionally made imperfect on purpose.

A perfect demonstrator leaves reinforcement learning nothing to fix. A *sloppy* one, in a chosen
fraction of episodes, gives up at once: it finishes with `GIVE_UP` without trying the tools. Imitation
copies the habit; only the reward can correct it. The habit is a fixed answer, not a wrong number,
so it teaches nothing false about copying numbers, which the demonstrations that do try still teach.
Every episode, sloppy or not, runs through the real environment and is scored by it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from agentic.mixture import TaskMixture
from agentic.rollout import oracle_trajectories, scripted_trajectories
from agentic.task import Task
from agentic.trajectory import Trajectory

GIVE_UP = "<finish>I don't know.</finish>"


def demonstrations(
    task: str | Task | TaskMixture,
    seeds: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    *,
    sloppy_rate: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> list[Trajectory]:
    """Oracle episodes on ``seeds``, of which about ``sloppy_rate`` (drawn with ``seed``) give up at once instead.

    Raises RuntimeError when the oracle itself fails on a seed: demonstrations must come from a task that works.
    """
    if not 0 <= sloppy_rate <= 1:
        raise ValueError(f"sloppy_rate must lie in [0, 1], got {sloppy_rate}")
    oracle = oracle_trajectories(task, seeds, tokenizer, progress=progress)
    failed = [t.seed for t in oracle if not t.success]
    if failed:
        raise RuntimeError(
            f"the {oracle[0].task} oracle failed on demonstration seeds {failed[:10]}: fix the task's oracle"
        )
    rng = random.Random(seed)
    sloppy = [rng.random() < sloppy_rate for _ in oracle]
    given_up = iter(
        scripted_trajectories(task, [demo.seed for demo, s in zip(oracle, sloppy) if s], tokenizer, lambda env: GIVE_UP)
    )
    return [next(given_up) if s else demo for demo, s in zip(oracle, sloppy)]
