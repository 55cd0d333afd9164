"""Trajectories as right-padded tensors: what the PPO and GRPO updates read."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from agentic.constraint import constrained_bitmasks, unpack
from agentic.trajectory import Trajectory

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Rows = TypeVar("Rows")
PER_TOKEN = {"per_token": True}  # field metadata: a ``[B, T]`` tensor, one value per position of the padded batch


def select_rows(value: Rows, index: Tensor, n_tokens: int | None = None) -> Rows:
    """A dataclass of per-trajectory tensors (a batch, an update's targets) cut down to the trajectories at ``index``,
    and with ``n_tokens`` its per-token fields (`PER_TOKEN`) to their first ``n_tokens`` positions; fields that are
    not tensors stay as they are."""

    def cut(name: str, per_token: bool) -> Tensor:
        rows = getattr(value, name)[index]
        return rows[:, :n_tokens] if per_token else rows  # [:, :None] keeps every position

    return replace(
        value,
        **{
            f.name: cut(f.name, bool(f.metadata.get("per_token")))
            for f in fields(value)
            if isinstance(getattr(value, f.name), Tensor)
        },
    )


@dataclass(frozen=True)
class TokenMasks:
    """The tokens each position of a batch could be drawn from, for trajectories sampled under the constraint
    (`agentic.constraint`): the masks replayed once per rollout batch, each distinct one stored once, packed.

    ``index[b, t]`` is the row of ``bits`` that holds position ``t``'s mask (-1: every token allowed, as outside
    constrained turns); ``bits`` holds llguidance's packed masks (32 tokens an int32 word). Positions share few
    distinct masks (a thought's free text, a JSON string's characters), so ``bits`` stays small even at a
    vocabulary of 50k tokens (6 KB a mask); the boolean masks exist only inside `apply`, a minibatch at a time.
    """

    index: Tensor  # [B, T] long
    bits: Tensor  # [U, ceil(vocab / 32)] int32

    def rows(self, index: Tensor, n_tokens: int | None = None) -> TokenMasks:
        return replace(self, index=self.index[index][:, :n_tokens])

    def after(self, n_tokens: int) -> TokenMasks:
        """The masks of every position from ``n_tokens`` on: those of a pass that ran the first ``n_tokens`` apart."""
        return replace(self, index=self.index[:, n_tokens:])

    def to(self, device: torch.device | str) -> TokenMasks:
        return TokenMasks(self.index.to(device), self.bits.to(device))

    def apply(self, logits: Tensor) -> Tensor:
        """``logits`` ``[B, T - 1, V]`` (``logits[:, t]`` predicting position ``t + 1``) with every token that could
        not be drawn set to -inf: log-softmax of the result is the masked, renormalised distribution sampled from."""
        index = self.index[:, 1:]
        constrained = index >= 0
        allowed = torch.ones_like(logits, dtype=torch.bool)
        allowed[constrained] = unpack(self.bits, logits.shape[-1])[index[constrained]]
        return logits.masked_fill(~allowed, -math.inf)


def token_masks(
    trajectories: Sequence[Trajectory], n_tokens: int, tokenizer: PreTrainedTokenizerBase | None
) -> TokenMasks | None:
    """The trajectories' constraint masks as a `TokenMasks` (None when none was sampled under the constraint), each
    replayed from its grammars by `agentic.constraint.constrained_bitmasks`."""
    if not any(t.turn_grammars for t in trajectories):
        return None
    if tokenizer is None:
        raise ValueError("trajectories sampled under the constraint need the tokenizer to replay their masks")
    index = torch.full((len(trajectories), n_tokens), -1, dtype=torch.long)
    rows, parts = [], []
    for row, trajectory in enumerate(trajectories):
        replayed = constrained_bitmasks(trajectory, tokenizer)
        if replayed is not None:
            rows += [(row, position) for position in replayed[0]]
            parts.append(replayed[1])
    bits, inverse = torch.from_numpy(np.concatenate(parts)).unique(dim=0, return_inverse=True)
    if rows:
        index[tuple(torch.tensor(rows).T)] = inverse
    return TokenMasks(index, bits)


@dataclass(frozen=True)
class LossCounts:
    """The denominators of a minibatch's means: its agent tokens (policy loss, entropy, per-token KL) and its turns
    (value loss). A micro-batch's loss taken over its minibatch's counts is its share of the minibatch's loss: the
    shares sum to the loss of the whole minibatch, exactly, so accumulating their gradients changes nothing but memory.
    """

    agent_tokens: Tensor
    turns: Tensor


@dataclass(frozen=True)
class TurnBatch:
    """``B`` trajectories, right-padded to ``T`` tokens and ``K`` turns.

    Right padding keeps each row's positions 0, 1, 2, ... as at sampling time, so one plain forward
    pass reproduces the sampling log-probs.
    """

    input_ids: Tensor = field(metadata=PER_TOKEN)  # [B, T] long, padded with the pad id
    attention_mask: Tensor = field(metadata=PER_TOKEN)  # [B, T] long, 1 on real tokens
    agent_mask: Tensor = field(metadata=PER_TOKEN)  # [B, T] bool, True on agent tokens (the loss mask)
    old_logprobs: Tensor = field(metadata=PER_TOKEN)  # [B, T] float, sampling log-probs on agent tokens, 0 elsewhere
    turn_index: Tensor = field(metadata=PER_TOKEN)  # [B, T] long, the turn each agent token belongs to, -1 elsewhere
    decision_positions: Tensor  # [B, K] long, each turn's decision point (`TurnRecord.decision_index`), 0 on padding
    turn_rewards: Tensor  # [B, K] float, the environment's reward per turn (shaping, plus the score on the last)
    turn_mask: Tensor  # [B, K] bool, True on real turns
    instances: Tensor  # [B] long, one id per task instance (task, seed), numbered in order of first appearance
    masks: TokenMasks | None = None  # under the constraint: the tokens each position could be drawn from
    temperature: float = 1.0  # the rollouts' sampling temperature: log-probs are recomputed under logits / temperature

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def episode_returns(self) -> Tensor:
        """``[B]``: each trajectory's undiscounted task return."""
        return self.turn_rewards.sum(1)

    def loss_counts(self) -> LossCounts:
        """This batch's agent tokens and turns (at least 1 each), the denominators of its loss's means."""
        return LossCounts(self.agent_mask.sum().clamp(min=1), self.turn_mask.sum().clamp(min=1))

    def rows(self, index: Tensor, n_tokens: int | None = None) -> TurnBatch:
        """The trajectories at ``index``, a minibatch; with ``n_tokens``, cut to their first ``n_tokens`` positions."""
        masks = None if self.masks is None else self.masks.rows(index, n_tokens)
        return replace(select_rows(self, index, n_tokens), masks=masks)

    def chunks(self, size: int) -> tuple[Tensor, ...]:
        """The batch's row indices in groups of ``size``, taken in order of length: each group's episodes of similar
        lengths, so that cut to its longest (`longest`) it carries little padding."""
        return self.attention_mask.sum(1).argsort(stable=True).split(size)

    def longest(self, index: Tensor) -> int:
        """The length of the longest of the trajectories at ``index``: a forward pass over them needs no position past
        it (right padding, masked out of every loss term), and its cost grows with the width it is given."""
        return int(self.attention_mask[index].sum(1).max())

    def to(self, device: torch.device | str) -> TurnBatch:
        moved: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{name: value.to(device) for name, value in moved.items() if hasattr(value, "to")})


def collate(
    trajectories: Sequence[Trajectory],
    pad_id: int,
    tokenizer: PreTrainedTokenizerBase | None = None,
    temperature: float = 1.0,
) -> TurnBatch:
    """Pad ``trajectories``, sampled at ``temperature``, into one `TurnBatch`.

    Every agent token must carry its sampling log-prob (trajectories from `agentic.rollout.rollout`;
    oracle demonstrations have none), and every turn a decision point (a non-empty prompt). Trajectories
    sampled under the constraint have their masks replayed here, once per rollout batch (`token_masks`),
    which needs the ``tokenizer`` they were sampled with.
    """
    if not trajectories:
        raise ValueError("no trajectories to collate")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"trajectories sampled at temperature {temperature} cannot be trained on: it must be > 0")
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
        "masks": token_masks(trajectories, n_tokens, tokenizer),
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
    return TurnBatch(**batch, temperature=temperature)


def instance_ids(trajectories: Sequence[Trajectory]) -> Tensor:
    """``[B]``: one id per task instance, numbered in order of first appearance; an instance is a (task, seed) pair
    (GRPO's groups are the rollouts of one instance)."""
    ids: dict[tuple[str, int | None], int] = {}
    return torch.tensor([ids.setdefault((t.task, t.seed), len(ids)) for t in trajectories], dtype=torch.long)
