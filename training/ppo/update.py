"""One turn-level PPO update, readable top to bottom (after CleanRL's ``ppo.py``), and the loop it shares with GRPO.

A trainer's iteration is: sample trajectories with `agentic.rollout.rollout` (temperature 1, top_p 1,
so the recorded log-probs are the policy's own), `collate` them, call `ppo_update`. The update

1. scores the rollout without gradients (`ppo_targets`): reference log-probs, the per-token KL
   penalty summed into each turn's reward, values at each turn's decision point, GAE over turns,
   the advantage broadcast to the turn's agent tokens and whitened over the batch's agent tokens;
2. runs ``epochs`` passes of shuffled minibatches (`optimize`): clipped surrogate on agent tokens,
   clipped value loss at decision points, entropy bonus, gradient clipping, the NaN/Inf guard;
3. updates the KL coefficient (fixed or adaptive) from the batch's KL.

Models should be in eval mode (no dropout, as `agentic.policy.Policy` leaves them), so that the
ratio is exactly 1 on the first minibatch. The policy and value head may come wrapped for data
parallelism (`accelerate`'s DDP); attributes are read from the wrapped module, forward passes that
train go through the wrapper so that gradients are averaged across processes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from agentic.training.ppo.batch import TurnBatch
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
    token_logprobs,
    turn_gae,
)
from agentic.training.ppo.guard import NonFiniteGuard
from agentic.training.ppo.value import ValueHead


@dataclass(frozen=True)
class UpdateConfig:
    """The optimisation loop shared by PPO and GRPO: ``epochs`` passes over the batch in shuffled minibatches
    of ``minibatch_size`` trajectories, the ratio clipped to ``1 +- clip_range``, gradients to norm ``max_grad_norm``."""

    epochs: int = 4
    minibatch_size: int = 8
    clip_range: float = 0.2
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        names = ("epochs", "minibatch_size", "clip_range", "max_grad_norm")
        problems = [
            f"{name} must be positive, got {getattr(self, name)}" for name in names if not getattr(self, name) > 0
        ]
        if problems:
            raise ValueError("bad update config: " + "; ".join(problems))


@dataclass(frozen=True)
class PPOConfig(UpdateConfig):
    """Turn-level PPO. ``gamma`` discounts per turn (1: episodes are short and rewards mostly terminal),
    ``lam`` is GAE's lambda; ``value_clip_range`` None turns value clipping off."""

    gamma: float = 1.0
    lam: float = 0.95
    value_coef: float = 0.5
    value_clip_range: float | None = 0.2
    entropy_coef: float = 0.0
    whiten_advantages: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"bad PPO config: gamma and lam must lie in [0, 1], got {self.gamma} and {self.lam}")
        if (
            self.value_coef < 0
            or self.entropy_coef < 0
            or (self.value_clip_range is not None and self.value_clip_range <= 0)
        ):
            raise ValueError(
                "bad PPO config: value_coef and entropy_coef must be >= 0, value_clip_range positive or None"
            )


@dataclass(frozen=True)
class PolicyForward:
    """What one forward pass gives: per-token log-probs and entropies ``[B, T]``, per-turn values ``[B, K]`` (or None)."""

    logprobs: Tensor
    entropy: Tensor
    values: Tensor | None


def policy_forward(policy: nn.Module, batch: TurnBatch, value_head: ValueHead | None = None) -> PolicyForward:
    """One forward pass of the policy over the batch (plus the critic's own, when it has a trunk)."""
    shared = value_head is not None and extract_model_from_parallel(value_head).shared
    output = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=shared)
    logprobs, entropy = token_logprobs(output.logits, batch.input_ids)
    values = None
    if value_head is not None:
        hidden = output.hidden_states[-1] if shared else None
        values = value_head(batch.input_ids, batch.attention_mask, hidden).gather(1, batch.decision_positions)
    return PolicyForward(logprobs, entropy, values)


@torch.no_grad()
def forward_in_chunks(
    model: nn.Module, batch: TurnBatch, chunk_size: int, value_head: ValueHead | None = None
) -> PolicyForward:
    """`policy_forward` without gradients, ``chunk_size`` rows at a time: a whole rollout batch scored in a minibatch's memory."""
    parts = [policy_forward(model, batch.rows(rows), value_head) for rows in torch.arange(len(batch)).split(chunk_size)]
    values = None if value_head is None else torch.cat([part.values for part in parts])
    return PolicyForward(
        torch.cat([part.logprobs for part in parts]), torch.cat([part.entropy for part in parts]), values
    )


def has_reference(policy: nn.Module, reference: nn.Module | None) -> bool:
    """Whether a frozen reference exists: given, or the base model under a PEFT policy's adapters."""
    from peft import PeftModel

    return reference is not None or isinstance(extract_model_from_parallel(policy), PeftModel)


def reference_logprobs(policy: nn.Module, reference: nn.Module | None, batch: TurnBatch, chunk_size: int) -> Tensor:
    """``[B, T]`` log-probs under the frozen reference: ``reference``, or, when it is None and the policy is a PEFT
    model, the policy's base model with its adapters disabled."""
    if reference is not None:
        return forward_in_chunks(reference, batch, chunk_size).logprobs
    if not has_reference(policy, None):
        raise ValueError("a KL penalty needs a reference model: pass reference=, or train a PEFT (LoRA) policy")
    model = extract_model_from_parallel(policy)
    with model.disable_adapter():
        return forward_in_chunks(model, batch, chunk_size).logprobs


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


def optimize(
    optimizer: torch.optim.Optimizer,
    n_rows: int,
    config: UpdateConfig,
    minibatch_loss: Callable[[Tensor], tuple[Tensor, dict[str, float]]],
    guard: NonFiniteGuard,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """``config.epochs`` passes over ``n_rows`` rows in shuffled minibatches: loss, backward, clip, step.

    ``minibatch_loss(rows)`` gives a minibatch's loss and diagnostics. A non-finite loss or gradient
    norm rolls the whole update back (`NonFiniteGuard`) and ends it, returning ``{"skipped": 1.0}``.
    Otherwise the result is each diagnostic averaged over the minibatch steps, with ``skipped`` 0.
    """
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    guard.snapshot()
    history: dict[str, list[float]] = defaultdict(list)
    for _ in range(config.epochs):
        for rows in torch.randperm(n_rows, generator=generator).split(config.minibatch_size):
            loss, stats = minibatch_loss(rows)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
            if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                guard.rollback(f"loss {loss.item()}, gradient norm {grad_norm.item()}")
                return {"skipped": 1.0}
            optimizer.step()
            for name, value in (stats | {"loss": loss.item(), "grad_norm": grad_norm.item()}).items():
                history[name].append(value)
    guard.passed()
    return {name: fmean(values) for name, values in history.items()} | {"skipped": 0.0}


@dataclass(frozen=True)
class PPOTargets:
    """The rollout scored before the update: advantages per agent token ``[B, T]``, value targets and rollout-time
    values per turn ``[B, K]``, and diagnostics."""

    token_advantages: Tensor
    returns: Tensor
    old_values: Tensor
    stats: dict[str, float]


@torch.no_grad()
def ppo_targets(
    policy: nn.Module,
    value_head: ValueHead,
    batch: TurnBatch,
    config: PPOConfig,
    kl_coef: float,
    reference: nn.Module | None = None,
) -> PPOTargets:
    """KL-penalised per-turn rewards, values at decision points, GAE over turns, advantages broadcast and whitened.

    The KL is k1 of the sampling log-probs against the reference (`kl_penalized_rewards`); k3 is logged
    beside it. Without a reference (and ``kl_coef`` 0) the rewards are the task's alone.
    """
    values = forward_in_chunks(policy, batch, config.minibatch_size, value_head).values
    rewards = batch.turn_rewards
    stats = {"reward": batch.episode_returns.mean().item(), "kl_coef": kl_coef}
    if kl_coef > 0 or has_reference(policy, reference):
        ref_logprobs = reference_logprobs(policy, reference, batch, config.minibatch_size)
        token_kl = kl_k1(batch.old_logprobs, ref_logprobs)
        rewards = kl_penalized_rewards(rewards, token_kl, batch.turn_index, kl_coef)
        n_turns = rewards.shape[1]
        stats["kl"] = sum_over_turns(token_kl, batch.turn_index, n_turns).sum(1).mean().item()
        stats["kl_k3"] = (
            sum_over_turns(kl_k3(batch.old_logprobs, ref_logprobs), batch.turn_index, n_turns).sum(1).mean().item()
        )
    advantages, returns = turn_gae(rewards, values, batch.turn_mask, config.gamma, config.lam)
    token_advantages = broadcast_to_tokens(advantages, batch.turn_index)
    if config.whiten_advantages:
        token_advantages = masked_whiten(token_advantages, batch.agent_mask)
    stats |= {
        "value": masked_mean(values, batch.turn_mask).item(),
        "return": masked_mean(returns, batch.turn_mask).item(),
        "explained_variance": explained_variance(values, returns, batch.turn_mask),
    }
    return PPOTargets(token_advantages, returns, values, stats)


def ppo_update(
    policy: nn.Module,
    value_head: ValueHead,
    optimizer: torch.optim.Optimizer,
    batch: TurnBatch,
    config: PPOConfig,
    guard: NonFiniteGuard,
    *,
    kl: KLController | None = None,
    reference: nn.Module | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One PPO update on a batch of sampled trajectories; returns its diagnostics.

    From scoring the rollout (`ppo_targets`): ``reward`` (mean task return), ``kl_coef``, ``kl`` and ``kl_k3``
    (mean per-trajectory KL to the reference, k1 and k3; absent without a reference), ``value``, ``return``,
    ``explained_variance``. From the minibatch steps, averaged (`optimize`): ``policy_loss``, ``value_loss``,
    ``entropy``, ``approx_kl``, ``clip_fraction``, ``loss``, ``grad_norm``; and ``skipped`` (1 when rolled back).

    ``reference`` is the frozen reference model for the KL penalty (None with a PEFT policy: its base
    model). ``kl`` holds the penalty's coefficient (None: no penalty) and is updated in place after a
    successful update; ``generator`` shuffles the minibatches.
    """
    batch = batch.to(next(policy.parameters()).device)
    targets = ppo_targets(policy, value_head, batch, config, kl.coef if kl is not None else 0.0, reference)

    def minibatch_loss(rows: Tensor) -> tuple[Tensor, dict[str, float]]:
        minibatch = batch.rows(rows)
        new = policy_forward(policy, minibatch, value_head)
        policy_loss, stats = clipped_policy_loss(
            new.logprobs,
            minibatch.old_logprobs,
            targets.token_advantages[rows],
            minibatch.agent_mask,
            config.clip_range,
        )
        value_loss = clipped_value_loss(
            new.values, targets.old_values[rows], targets.returns[rows], minibatch.turn_mask, config.value_clip_range
        )
        entropy = masked_mean(new.entropy, minibatch.agent_mask)
        loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
        return loss, stats | {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy.item(),
        }

    stats = optimize(optimizer, len(batch), config, minibatch_loss, guard, generator)
    if kl is not None and not stats["skipped"] and "kl" in targets.stats:
        kl.update(targets.stats["kl"], len(batch))
    return targets.stats | stats
