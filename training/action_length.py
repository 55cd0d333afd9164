"""How long a task's actions run, measured on its oracle's training episodes with the policy's tokenizer.

Two defaults depend on it: the longest action RL samples (a story cut at 64 tokens can never score, and RL then learns
only that giving up beats trying) and the demo's KL coefficient (a per-token KL penalty summed over 100-token actions
outweighs a score in [0, 1], where a three-token give-up costs almost none).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentic.constraint import admits, task_grammar, tools_left_out
from agentic.rollout import oracle_trajectories
from agentic.task import Task
from agentic.training.sft_config import DEMO_SEED_START

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

ACTION_FLOOR = 64  # tokens: the shortest default action limit, enough for every short-action task's tool calls
ORACLE_EPISODES = 200  # the first SFT demonstration seeds' episodes, per task


@dataclass(frozen=True)
class OracleActions:
    """A task's oracle actions over its `ORACLE_EPISODES` first demonstration episodes: their token counts, and each
    action as played, ``(task, instance, text)``."""

    longest: int
    mean: float
    played: tuple[tuple[Task, Any, str], ...] = field(repr=False, compare=False)

    @property
    def limit(self) -> int:
        """The longest oracle action plus a quarter, at least `ACTION_FLOOR` tokens."""
        return max(ACTION_FLOOR, math.ceil(1.25 * self.longest))


def oracle_actions(tasks: Sequence[Task], tokenizer: PreTrainedTokenizerBase) -> OracleActions | None:
    """The oracle's actions of every task of ``tasks``, counted in ``tokenizer``'s tokens; None when a task has no
    oracle (its answers are scored, not known)."""
    seeds = range(DEMO_SEED_START, DEMO_SEED_START + ORACLE_EPISODES)
    try:
        turns = [
            (task, t.instance, turn)
            for task in tasks
            for t in oracle_trajectories(task, seeds, tokenizer)
            for turn in t.turns
        ]
    except NotImplementedError:
        return None
    if not turns:
        return None
    lengths = [turn.end - turn.start for _, _, turn in turns]
    played = tuple((task, instance, turn.action) for task, instance, turn in turns)
    return OracleActions(max(lengths), statistics.fmean(lengths), played)


def default_action_limit(
    tasks: Sequence[Task], tokenizer: PreTrainedTokenizerBase, *, constrained: bool = False
) -> int:
    """The longest action to sample where none is asked for: `OracleActions.limit`, or `ACTION_FLOOR` without an
    oracle; under the constraint at least `constrained_action_limit`."""
    actions = oracle_actions(tasks, tokenizer)
    if constrained:
        return constrained_action_limit(tasks, tokenizer, actions)
    return ACTION_FLOOR if actions is None else actions.limit


def constrained_action_limit(
    tasks: Sequence[Task], tokenizer: PreTrainedTokenizerBase, actions: OracleActions | None
) -> int:
    """The shortest action limit from ``actions.limit`` (`ACTION_FLOOR` without an oracle) up to the tasks' budget
    whose grammar (every tool offered) leaves no tool out and admits every one of the oracle's ``actions``; the budget
    where none does. The grammar bounds each string by its worst case, 4 bytes a character, so a limit that holds
    the oracle's tokens can still cut its strings short: at 130 tokens MultiHopKnowledge's entity names to 4
    characters, and no held-out question could then be answered."""
    played = actions.played if actions is not None else ()

    def admitted(limit: int) -> bool:
        return not any(tools_left_out(task.tools, limit) for task in tasks) and all(
            admits(task_grammar(task, instance, limit), tokenizer, action) for task, instance, action in played
        )

    at_least = ACTION_FLOOR if actions is None else actions.limit
    low, high = at_least, max(at_least, min(task.budget.max_action_tokens for task in tasks))
    while low < high:  # admitting is monotone in the limit: a longer action leaves every string more room
        middle = (low + high) // 2
        low, high = (low, middle) if admitted(middle) else (middle + 1, high)
    if not admitted(low):
        log.warning(
            "under the constraint no action limit up to %d tokens admits every oracle action of %s: long strings "
            "(drafts, answers) are cut to what the limit holds at 4 bytes a character",
            low,
            ", ".join(task.name for task in tasks),
        )
    return low
