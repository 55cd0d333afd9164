"""GRPO (Shao et al. 2024): group-relative advantages instead of a critic, with PPO's token-level clipped loss.

The trainer samples G rollouts per task instance (each seed repeated G times in one `agentic.rollout.rollout`
call: the sampler's random stream runs on, so the G episodes differ) and collates them; a batch's ``instances``
are the groups. Each trajectory's advantage is its return normalised within its group,
``(R - mean_group) / (std_group + eps)``, broadcast to all of its agent tokens. The optional KL term
is the paper's: ``kl_coef`` times the k3 estimate of KL(policy || reference) per agent token, in the
loss rather than in the reward, each token's estimate capped at `K3_CAP`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from agentic.training.ppo.batch import PER_TOKEN, LossCounts, TurnBatch, select_rows
from agentic.training.ppo.core import KLController, clipped_policy_loss, kl_k3, masked_mean
from agentic.training.ppo.forward import policy_forward, reference_logprobs
from agentic.training.ppo.update import make_optimizer
from agentic.training.rl_config import GRPOOptions

EPS = 1e-4
K3_CAP = 10.0
"""The most one token's k3 estimate adds to the KL term (verl caps it alike). k3 = r - 1 - log r with r = p_ref / p
grows as e^(log r) where the policy has all but ruled out a token the reference still likes (a policy that learnt
never to give up, sampling a give-up); one such token made the term 20 nats a token and the gradient norm 34 in a
TwoHop run, and the momentum of that one step undid the policy over the next updates. Past the cap a token adds a
constant: no gradient."""


def group_advantages(returns: Tensor, groups: Tensor, eps: float = EPS) -> Tensor:
    """``(R - mean of R's group) / (std of R's group + eps)`` per trajectory; the std is the sample std
    (Bessel-corrected, as ``torch.std``), and a group whose returns are all equal gets advantage 0."""
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    mean = returns.new_zeros(len(counts)).index_add_(0, inverse, returns) / counts
    centred = returns - mean[inverse]
    variance = returns.new_zeros(len(counts)).index_add_(0, inverse, centred**2) / (counts - 1).clamp(min=1)
    return centred / (variance.sqrt()[inverse] + eps)


@dataclass(frozen=True)
class GRPOTargets:
    """A rollout scored before the update: advantages per agent token ``[B, T]``, the reference's log-probs ``[B, T]``
    (None without a KL term), and diagnostics."""

    token_advantages: Tensor = field(metadata=PER_TOKEN)
    ref_logprobs: Tensor | None = field(metadata=PER_TOKEN)
    stats: dict[str, float]

    def rows(self, index: Tensor, n_tokens: int | None = None) -> GRPOTargets:
        return select_rows(self, index, n_tokens)


class GRPO:
    """GRPO: no critic; owns the KL term's coefficient (``kl``, fixed). ``reference`` is read only when ``kl_coef`` > 0
    (None with a PEFT policy: its base model under disabled adapters). The constructor takes what `PPO`'s does;
    ``prepare`` goes unused, GRPO having no module of its own to train."""

    def __init__(
        self,
        options: GRPOOptions,
        model: nn.Module,
        reference: nn.Module | None,
        prepare: Callable[[nn.Module], nn.Module] = lambda module: module,
    ):
        self.options = options
        self.reference = reference if options.kl_coef else None
        self.kl = KLController(options.kl_coef)

    def optimizer(self, model: nn.Module, learning_rate: float) -> torch.optim.AdamW:
        return make_optimizer(model, lr=learning_rate)

    @torch.no_grad()
    def advantages(self, policy: nn.Module, batch: TurnBatch) -> GRPOTargets:
        """Each episode's return normalised within its group (``batch.instances``), on every agent token; the
        reference's log-probs when the KL term is on. ``no_signal_fraction``: the share of episodes in groups whose
        returns were all equal (advantage 0)."""
        returns = batch.episode_returns
        advantages = group_advantages(returns, batch.instances, EPS)
        token_advantages = torch.where(batch.agent_mask, advantages[:, None], 0.0)
        ref_logprobs = None
        if self.kl.coef > 0:
            ref_logprobs = reference_logprobs(
                policy, self.reference, batch, self.options.forward_batch_size, self.options.share_prefix
            )
        stats = {"reward": returns.mean().item(), "no_signal_fraction": (advantages == 0).float().mean().item()}
        return GRPOTargets(token_advantages, ref_logprobs, stats)

    def loss(
        self, policy: nn.Module, minibatch: TurnBatch, targets: GRPOTargets, counts: LossCounts | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """The clipped surrogate on agent tokens, minus ``entropy_coef`` times the entropy, plus ``kl_coef`` times the
        per-token k3 KL to the reference (each token's capped at `K3_CAP`); with diagnostics. ``counts``: the means'
        denominators when ``minibatch`` is a micro-batch of a larger minibatch (default: its own)."""
        agent_tokens = (counts or minibatch.loss_counts()).agent_tokens
        new = policy_forward(policy, minibatch, share_prefix=self.options.share_prefix)
        loss, stats = clipped_policy_loss(
            new.logprobs,
            minibatch.old_logprobs,
            targets.token_advantages,
            minibatch.agent_mask,
            self.options.clip_range,
            agent_tokens,
        )
        entropy = masked_mean(new.entropy, minibatch.agent_mask, agent_tokens)
        stats |= {"policy_loss": loss.item(), "entropy": entropy.item()}
        if self.options.entropy_coef:
            loss = loss - self.options.entropy_coef * entropy
        if targets.ref_logprobs is not None:
            token_kl = kl_k3(new.logprobs, targets.ref_logprobs).clamp(max=K3_CAP)
            kl = masked_mean(token_kl, minibatch.agent_mask, agent_tokens)
            loss = loss + self.kl.coef * kl
            stats["kl_per_token"] = kl.item()
        return loss, stats

    def state_dict(self) -> dict[str, Any]:
        return {"kl": self.kl.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kl.load_state_dict(state["kl"])
