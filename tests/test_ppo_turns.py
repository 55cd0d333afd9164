"""Turn-level PPO end to end over several turns: `PPO.advantages` on a collated three-turn episode (ask, tool,
finish) against a hand computation of GAE over its turns, broadcast to each turn's agent tokens."""

from __future__ import annotations

import math

import pytest
import torch
from toy_yes_no import warmed_up_policy

from agentic.training.ppo import PPO, collate
from agentic.training.rl_config import PPOOptions
from agentic.trajectory import Trajectory, TurnRecord

pytestmark = pytest.mark.usefixtures("one_thread")
VALUE = 0.5


def three_turn_trajectory() -> Trajectory:
    """prompt (3) | ask (2) | user (2) | tool call (2) | result (2) | finish (3) | end (1): rewards 0, -0.1, 1."""
    mask = [0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0]
    ids = [5 + i for i in range(len(mask))]
    turns = [
        TurnRecord(3, 5, "a", "ask", "ask", 0.0, "u"),
        TurnRecord(7, 9, "b", "tool", "tool", -0.1, "r"),
        TurnRecord(11, 14, "c", "finish", "finish", 1.0, ""),
    ]
    logprobs = [-1.0 if bit else math.nan for bit in mask]
    return Trajectory("Toy", 0, {}, "p", ids, mask, logprobs, turns, terminated=True, success=True, score=1.0)


def test_ppo_targets_over_three_turns_match_a_hand_computation():
    policy = warmed_up_policy()
    options = PPOOptions(model="toy", gamma=0.9, lam=0.8, kl_coef=0.0, whiten_advantages=False, critic="shared")
    ppo = PPO(options, policy.model, None)
    with torch.no_grad():  # a critic that says VALUE at every decision point
        ppo.value_head.score.weight.zero_()
        ppo.value_head.score.bias.fill_(VALUE)
    targets = ppo.advantages(policy.model, collate([three_turn_trajectory()], policy.pad_id))
    # delta_t = r_t + 0.9 V_{t+1} - V_t, the last turn's V_{t+1} = 0: (-0.05, -0.15, 0.5)
    # A_t = delta_t + 0.9 * 0.8 * A_{t+1}: A_2 = 0.5, A_1 = -0.15 + 0.72 * 0.5 = 0.21, A_0 = -0.05 + 0.72 * 0.21 = 0.1012
    a0, a1, a2 = 0.1012, 0.21, 0.5
    assert targets.old_values.tolist() == [pytest.approx([VALUE] * 3)]
    assert targets.returns.tolist() == [pytest.approx([a0 + VALUE, a1 + VALUE, a2 + VALUE])]
    expected = [0, 0, 0, a0, a0, 0, 0, a1, a1, 0, 0, a2, a2, a2, 0]
    assert targets.token_advantages.tolist() == [pytest.approx(expected)]
