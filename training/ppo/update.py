"""Turn-level PPO's update, the two halves the training loop (`agentic.training.rl`) calls: `PPO.advantages` scores a
rollout once, `PPO.loss` is one minibatch's loss.

1. advantages (no gradients): the reference's log-probs, the per-token KL summed into each turn's reward
   (`kl_penalized_rewards`, coefficient from `KLController`), values at each turn's decision point, GAE over
   turns, each turn's advantage broadcast to its agent tokens and whitened over the batch's agent tokens;
2. loss: the clipped surrogate on agent tokens, the clipped value loss at decision points, the entropy bonus.

Models should be in eval mode (no dropout, as `agentic.policy.Policy` leaves them), so that the ratio is exactly 1
on the first minibatch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from agentic.training.ppo.batch import PER_TOKEN, LossCounts, TurnBatch, select_rows
from agentic.training.ppo.core import (
    KLController,
    broadcast_to_tokens,
    clipped_policy_loss,
    clipped_value_loss,
    explained_variance,
    kl_k1,
    kl_k3,
    kl_penalized_rewards,
    masked_mean,
    masked_whiten,
    sum_over_turns,
    turn_gae,
)
from agentic.training.ppo.forward import forward_in_chunks, has_reference, policy_forward, reference_logprobs
from agentic.training.ppo.value import ValueHead, reward_model_critic, separate_critic, shared_value_head
from agentic.training.rl_checkpoint import non_finite
from agentic.training.rl_config import PPOOptions


def make_optimizer(
    policy: nn.Module,
    value_head: ValueHead | None = None,
    *,
    lr: float = 1e-5,
    value_lr: float = 1e-4,
    weight_decay: float = 0.0,
) -> torch.optim.AdamW:
    """AdamW (eps 1e-5, as CleanRL) over the policy's trainable parameters at ``lr`` and the value head's (with a
    separate critic's trunk) at ``value_lr``: a fresh head needs a larger step than a pretrained policy."""
    groups = [{"params": [p for p in policy.parameters() if p.requires_grad], "lr": lr}]
    if value_head is not None:
        groups.append({"params": [p for p in value_head.parameters() if p.requires_grad], "lr": value_lr})
    return torch.optim.AdamW(groups, eps=1e-5, weight_decay=weight_decay)


@dataclass(frozen=True)
class PPOTargets:
    """A rollout scored before the update: advantages per agent token ``[B, T]``, value targets and rollout-time
    values per turn ``[B, K]``, and diagnostics."""

    token_advantages: Tensor = field(metadata=PER_TOKEN)
    returns: Tensor
    old_values: Tensor
    stats: dict[str, float]

    def rows(self, index: Tensor, n_tokens: int | None = None) -> PPOTargets:
        return select_rows(self, index, n_tokens)


def build_critic(options: PPOOptions, model: nn.Module) -> ValueHead:
    """The critic ``options.critic`` names: a head on the policy's trunk, a copy of the policy's trunk with a fresh
    head, or the reward model ``options.critic_model`` (its trunk and head)."""
    if options.critic == "shared":
        return shared_value_head(model)
    if options.critic == "separate":
        return separate_critic(model)
    if not options.critic_model:
        raise ValueError("critic reward-model needs critic_model: the reward model's directory or hub id")
    return reward_model_critic(options.critic_model, model)


class PPO:
    """Turn-level PPO: owns the critic (``value_head``) and the KL coefficient (``kl``).

    ``reference`` is the frozen model the KL is taken to (None with a PEFT policy: its base model under disabled
    adapters). ``prepare`` wraps the critic for training (e.g. `accelerate`'s ``prepare_model`` for DDP).
    """

    def __init__(
        self,
        options: PPOOptions,
        model: nn.Module,
        reference: nn.Module | None,
        prepare: Callable[[nn.Module], nn.Module] = lambda module: module,
    ):
        self.options = options
        self.reference = reference
        self.value_head = build_critic(options, model)
        self.trained_head = prepare(self.value_head)
        self.kl = KLController(options.kl_coef, options.kl_target, options.kl_horizon)

    def optimizer(self, model: nn.Module, learning_rate: float) -> torch.optim.AdamW:
        """AdamW over the policy and the critic (`make_optimizer`)."""
        return make_optimizer(model, self.value_head, lr=learning_rate, value_lr=self.options.value_learning_rate)

    @torch.no_grad()
    def advantages(self, policy: nn.Module, batch: TurnBatch) -> PPOTargets:
        """KL-penalised per-turn rewards, values at decision points, GAE over turns, advantages broadcast and whitened.

        The KL is k1 of the sampling log-probs against the reference (`kl_penalized_rewards`); k3 is logged
        beside it. Without a reference (and ``kl_coef`` 0) the rewards are the task's alone.
        """
        options, kl_coef = self.options, self.kl.coef
        values = forward_in_chunks(
            policy, batch, options.forward_batch_size, self.trained_head, options.share_prefix
        ).values
        rewards = batch.turn_rewards
        stats = {"reward": batch.episode_returns.mean().item(), "kl_coef": kl_coef}
        if kl_coef > 0 or has_reference(policy, self.reference):
            ref_logprobs = reference_logprobs(
                policy, self.reference, batch, options.forward_batch_size, options.share_prefix
            )
            token_kl = kl_k1(batch.old_logprobs, ref_logprobs)
            rewards = kl_penalized_rewards(rewards, token_kl, batch.turn_index, kl_coef)
            n_turns = rewards.shape[1]
            stats["kl"] = sum_over_turns(token_kl, batch.turn_index, n_turns).sum(1).mean().item()
            stats["kl_k3"] = (
                sum_over_turns(kl_k3(batch.old_logprobs, ref_logprobs), batch.turn_index, n_turns).sum(1).mean().item()
            )
        advantages, returns = turn_gae(rewards, values, batch.turn_mask, options.gamma, options.lam)
        token_advantages = broadcast_to_tokens(advantages, batch.turn_index)
        if options.whiten_advantages:
            token_advantages = masked_whiten(token_advantages, batch.agent_mask)
        stats |= {
            "value": masked_mean(values, batch.turn_mask).item(),
            "return": masked_mean(returns, batch.turn_mask).item(),
            "explained_variance": explained_variance(values, returns, batch.turn_mask),
        }
        return PPOTargets(token_advantages, returns, values, stats)

    def loss(
        self, policy: nn.Module, minibatch: TurnBatch, targets: PPOTargets, counts: LossCounts | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The clipped surrogate on agent tokens, plus ``value_coef`` times the clipped value loss at decision points,
        minus ``entropy_coef`` times the mean entropy on agent tokens; with diagnostics. ``counts``: the means'
        denominators when ``minibatch`` is a micro-batch of a larger minibatch (default: its own)."""
        options, counts = self.options, counts or minibatch.loss_counts()
        new = policy_forward(policy, minibatch, self.trained_head, options.share_prefix)
        policy_loss, stats = clipped_policy_loss(
            new.logprobs,
            minibatch.old_logprobs,
            targets.token_advantages,
            minibatch.agent_mask,
            options.clip_range,
            counts.agent_tokens,
        )
        value_loss = clipped_value_loss(
            new.values, targets.old_values, targets.returns, minibatch.turn_mask, options.value_clip_range, counts.turns
        )
        entropy = masked_mean(new.entropy, minibatch.agent_mask, counts.agent_tokens)
        loss = policy_loss + options.value_coef * value_loss - options.entropy_coef * entropy
        return loss, stats | {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy.item(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"value_head": self.value_head.state_dict(), "kl": self.kl.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The critic and KL coefficient of a checkpoint; a critic whose weights are not finite is refused."""
        self.value_head.load_state_dict(state["value_head"])
        self.kl.load_state_dict(state["kl"])
        bad = non_finite(self.value_head.named_parameters())
        if bad:
            raise ValueError(f"its critic's weights are not finite (NaN or Inf in {bad})")
