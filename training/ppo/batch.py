"""Trajectories as right-padded tensors: what the PPO and GRPO updates read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TypeVar

import torch
from torch import Tensor

from agentic.trajectory import Trajectory

Rows = TypeVar("Rows")


def select_rows(value: Rows, index: Tensor) -> Rows:
    """A dataclass of per-trajectory tensors (a batch, an update's targets) cut down to the trajectories at ``index``;
    fields that are not tensors stay as they are."""
    return replace(
        value,
        **{f.name: getattr(value, f.name)[index] for f in fields(value) if isinstance(getattr(value, f.name), Tensor)},
    )


@dataclass(frozen=True)
class TurnBatch:
    """``B`` trajectories, right-padded to ``T`` tokens and ``K`` turns.

    Right padding keeps each row's positions 0, 1, 2, ... as at sampling time, so one plain forward
    pass reproduces the sampling log-probs.
    """

    input_ids: Tensor  # [B, T] long, padded with the pad id
    attention_mask: Tensor  # [B, T] long, 1 on real tokens
    agent_mask: Tensor  # [B, T] bool, True on agent tokens (the loss mask)
    old_logprobs: Tensor  # [B, T] float, the sampling log-probs on agent tokens, 0 elsewhere
    turn_index: Tensor  # [B, T] long, the turn each agent token belongs to, -1 elsewhere
    decision_positions: Tensor  # [B, K] long, each turn's decision point (`TurnRecord.decision_index`), 0 on padding
    turn_rewards: Tensor  # [B, K] float, the environment's reward per turn (shaping, plus the score on the last)
    turn_mask: Tensor  # [B, K] bool, True on real turns
    instances: Tensor  # [B] long, one id per task instance (task, seed), numbered in order of first appearance

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def episode_returns(self) -> Tensor:
        """``[B]``: each trajectory's undiscounted task return."""
        return self.turn_rewards.sum(1)

    def rows(self, index: Tensor) -> TurnBatch:
        """The trajectories at ``index``, a minibatch."""
        return select_rows(self, index)

    def to(self, device: torch.device | str) -> TurnBatch:
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def collate(trajectories: Sequence[Trajectory], pad_id: int) -> TurnBatch:
    """Pad ``trajectories`` into one `TurnBatch`.

    Every agent token must carry its sampling log-prob (trajectories from `agentic.rollout.rollout`;
    oracle demonstrations have none), and every turn a decision point (a non-empty prompt).
    """
    if not trajectories:
        raise ValueError("no trajectories to collate")
    n_tokens = max(len(t.token_ids) for t in trajectories)
    n_turns = max(max(len(t.turns) for t in trajectories), 1)
    batch = {
        "input_ids": torch.full((len(trajectories), n_tokens), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros(len(trajectories), n_tokens, dtype=torch.long),
        "agent_mask": torch.zeros(len(trajectories), n_tokens, dtype=torch.bool),
        "old_logprobs": torch.zeros(len(trajectories), n_tokens),
        "turn_index": torch.full((len(trajectories), n_tokens), -1, dtype=torch.long),
        "decision_positions": torch.zeros(len(trajectories), n_turns, dtype=torch.long),
        "turn_rewards": torch.zeros(len(trajectories), n_turns),
        "turn_mask": torch.zeros(len(trajectories), n_turns, dtype=torch.bool),
        "instances": instance_ids(trajectories),
    }
    for row, trajectory in enumerate(trajectories):
        n = len(trajectory.token_ids)
        agent = torch.tensor(trajectory.loss_mask, dtype=torch.bool)
        logprobs = torch.tensor(trajectory.logprobs, dtype=torch.float32)
        if logprobs[agent].isnan().any():
            raise ValueError(
                f"trajectory {row} ({trajectory.task}, seed {trajectory.seed}) has agent tokens without sampling log-probs: "
                "PPO and GRPO need trajectories sampled by `agentic.rollout.rollout`, not oracle demonstrations"
            )
        batch["input_ids"][row, :n] = torch.tensor(trajectory.token_ids)
        batch["attention_mask"][row, :n] = 1
        batch["agent_mask"][row, :n] = agent
        batch["old_logprobs"][row, :n] = torch.where(agent, logprobs, 0.0)
        for k, turn in enumerate(trajectory.turns):
            if turn.decision_index < 0:
                raise ValueError(
                    f"trajectory {row} ({trajectory.task}, seed {trajectory.seed}) has a turn with no context before it"
                )
            batch["turn_index"][row, turn.start : turn.end] = k
            batch["decision_positions"][row, k] = turn.decision_index
            batch["turn_rewards"][row, k] = turn.reward
            batch["turn_mask"][row, k] = True
    return TurnBatch(**batch)


def instance_ids(trajectories: Sequence[Trajectory]) -> Tensor:
    """``[B]``: one id per task instance, numbered in order of first appearance; an instance is a (task, seed) pair
    (GRPO's groups are the rollouts of one instance)."""
    ids: dict[tuple[str, int | None], int] = {}
    return torch.tensor([ids.setdefault((t.task, t.seed), len(ids)) for t in trajectories], dtype=torch.long)
