"""How long a task's actions run, measured on its oracle's training episodes with the policy's tokenizer.

Two defaults depend on it: the longest action RL samples (a story cut at 64 tokens can never score, and RL then learns
only that giving up beats trying) and the demo's KL coefficient (a per-token KL penalty summed over 100-token actions
outweighs a score in [0, 1], where a three-token give-up costs almost none).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentic.rollout import oracle_trajectories
from agentic.task import Task
from agentic.training.sft_config import DEMO_SEED_START

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ACTION_FLOOR = 64  # tokens: the shortest default action limit, enough for every short-action task's tool calls
ORACLE_EPISODES = 200  # the first SFT demonstration seeds' episodes, per task


@dataclass(frozen=True)
class OracleActions:
    """Token counts of a task's oracle actions over its `ORACLE_EPISODES` first demonstration episodes."""

    longest: int
    mean: float

    @property
    def limit(self) -> int:
        """The longest oracle action plus a quarter, at least `ACTION_FLOOR` tokens."""
        return max(ACTION_FLOOR, math.ceil(1.25 * self.longest))


def oracle_actions(tasks: Sequence[Task], tokenizer: PreTrainedTokenizerBase) -> OracleActions | None:
    """The oracle's actions of every task of ``tasks``, counted in ``tokenizer``'s tokens; None when a task has no
    oracle (its answers are scored, not known)."""
    seeds = range(DEMO_SEED_START, DEMO_SEED_START + ORACLE_EPISODES)
    try:
        lengths = [
            turn.end - turn.start
            for task in tasks
            for t in oracle_trajectories(task, seeds, tokenizer)
            for turn in t.turns
        ]
    except NotImplementedError:
        return None
    return OracleActions(max(lengths), statistics.fmean(lengths)) if lengths else None


def default_action_limit(tasks: Sequence[Task], tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest action to sample where none is asked for: `OracleActions.limit`, or `ACTION_FLOOR` without an
    oracle."""
    actions = oracle_actions(tasks, tokenizer)
    return ACTION_FLOOR if actions is None else actions.limit
