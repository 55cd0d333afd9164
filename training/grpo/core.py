"""GRPO (Shao et al. 2024): group-relative advantages instead of a critic, with PPO's token-level clipped loss.

A trainer samples G rollouts per task instance (each seed repeated G times in one `agentic.rollout.rollout`
call: the sampler's random stream runs on, so the G episodes differ), `collate`s them and calls
`grpo_update`. Each trajectory's advantage is its return normalised within its group,
``(R - mean_group) / (std_group + eps)``, broadcast to all of its agent tokens. The optional KL term
is the paper's: ``kl_coef`` times the k3 estimate of KL(policy || reference) per agent token, in the
loss rather than in the reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from agentic.training.ppo.batch import TurnBatch
from agentic.training.ppo.core import clipped_policy_loss, kl_k3, masked_mean
from agentic.training.ppo.guard import NonFiniteGuard
from agentic.training.ppo.update import (
    UpdateConfig,
    optimize,
    policy_forward,
    reference_logprobs,
)
from agentic.trajectory import Trajectory


@dataclass(frozen=True)
class GRPOConfig(UpdateConfig):
    """GRPO's settings: one pass over each batch by default (the ratio is then 1 on every token, as in the paper's
    usual setting), ``kl_coef`` 0 for no KL term and no reference forward pass, ``eps`` in the normalisation."""

    epochs: int = 1
    kl_coef: float = 0.0
    eps: float = 1e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kl_coef < 0 or self.eps <= 0:
            raise ValueError(
                f"bad GRPO config: kl_coef must be >= 0 and eps positive, got {self.kl_coef} and {self.eps}"
            )


def group_ids(trajectories: Sequence[Trajectory]) -> Tensor:
    """``[B]``: one id per task instance, numbered in order of first appearance; an instance is a (task, seed) pair."""
    ids: dict[tuple[str, int | None], int] = {}
    return torch.tensor([ids.setdefault((t.task, t.seed), len(ids)) for t in trajectories])


def group_advantages(returns: Tensor, groups: Tensor, eps: float = 1e-4) -> Tensor:
    """``(R - mean of R's group) / (std of R's group + eps)`` per trajectory; the std is the sample std
    (Bessel-corrected, as ``torch.std``), and a group whose returns are all equal gets advantage 0."""
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    mean = returns.new_zeros(len(counts)).index_add_(0, inverse, returns) / counts
    centred = returns - mean[inverse]
    variance = returns.new_zeros(len(counts)).index_add_(0, inverse, centred**2) / (counts - 1).clamp(min=1)
    return centred / (variance.sqrt()[inverse] + eps)


def grpo_update(
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: TurnBatch,
    groups: Tensor,
    config: GRPOConfig,
    guard: NonFiniteGuard,
    *,
    reference: nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One GRPO update on a batch of sampled trajectories grouped by ``groups`` (`group_ids`); returns its diagnostics,
    ``no_signal_fraction`` the share of trajectories in groups whose returns were all equal (advantage 0).

    ``reference`` is needed when ``config.kl_coef`` > 0, except for a PEFT policy (its base model).
    """
    batch = batch.to(next(policy.parameters()).device)
    returns = batch.episode_returns
    advantages = group_advantages(returns, groups.to(returns.device), config.eps)
    token_advantages = torch.where(batch.agent_mask, advantages[:, None], 0.0)
    ref_logprobs = reference_logprobs(policy, reference, batch, config.minibatch_size) if config.kl_coef > 0 else None

    def minibatch_loss(rows: Tensor) -> tuple[Tensor, dict[str, float]]:
        minibatch = batch.rows(rows)
        new = policy_forward(policy, minibatch)
        loss, stats = clipped_policy_loss(
            new.logprobs, minibatch.old_logprobs, token_advantages[rows], minibatch.agent_mask, config.clip_range
        )
        stats |= {"policy_loss": loss.item(), "entropy": masked_mean(new.entropy, minibatch.agent_mask).item()}
        if ref_logprobs is not None:
            kl = masked_mean(kl_k3(new.logprobs, ref_logprobs[rows]), minibatch.agent_mask)
            loss = loss + config.kl_coef * kl
            stats["kl_per_token"] = kl.item()
        return loss, stats

    stats = optimize(optimizer, len(batch), config, minibatch_loss, guard, generator)
    return {"reward": returns.mean().item(), "no_signal_fraction": (advantages == 0).float().mean().item()} | stats
