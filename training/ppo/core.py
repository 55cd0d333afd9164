"""The mathematics of turn-level PPO, as pure tensor functions.

Shapes: ``B`` trajectories, ``T`` token positions, ``K`` turns (see `agentic.training.ppo.batch.TurnBatch`).
Token quantities are aligned with token positions: ``logprobs[:, t]`` is the log-prob of
``input_ids[:, t]`` given the tokens before it. Turn quantities live at turns: a turn's value is
read at its decision point (the last context token before its action), its reward is the task's
reward for the step, and its advantage is broadcast to the turn's agent tokens.

References: PPO (Schulman et al. 2017), GAE (Schulman et al. 2015), the KL penalty to a frozen
reference and its adaptive coefficient (Ziegler et al. 2019; Ouyang et al. 2022); reward normalisation with
running statistics (as TRL's running moments).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor, count: Tensor | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is true (0 when nothing is); values outside the mask may be anything, even NaN.

    ``count`` replaces the mask's own count as the denominator: a micro-batch's share of its minibatch's mean, so
    that the shares of a minibatch's micro-batches sum to the minibatch's mean exactly (`TurnBatch.loss_counts`)."""
    mask = mask.bool()
    return torch.where(mask, values, 0.0).sum() / (mask.sum().clamp(min=1) if count is None else count)


def masked_whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """``values`` shifted and scaled to mean 0 and variance 1 over ``mask``; 0 outside it."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    return torch.where(mask.bool(), (values - mean) * torch.rsqrt(variance + eps), 0.0)


def token_logprobs(
    logits: Tensor, input_ids: Tensor, mask: Callable[[Tensor], Tensor] | None = None, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Log-prob of each token under ``logits / temperature`` (float32 log-softmax, ``logits[:, :-1]`` predicting
    ``input_ids[:, 1:]``) and the entropy of the distribution it was drawn from, both ``[B, T]`` and 0 at position 0
    (nothing predicts it). ``temperature``: the rollouts' (`agentic.sampling.sample` divides by it before drawing), so
    that what is trained is the distribution sampled from, as TRL's trainers do.

    ``mask`` (under the constraint: `agentic.training.ppo.batch.TokenMasks.apply`) sets the logits of the tokens that
    could not be drawn to -inf first: the log-probs and entropy are then the masked, renormalised distribution's, the
    one sampled from. This is the one place training turns logits into log-probs, so the ratio, the reference's
    log-probs for the KL and the entropy all use the same masks.
    """
    logits = logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    if mask is not None:
        logits = mask(logits)
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    if mask is None:
        entropy = -(logp.exp() * logp).sum(-1)
    else:  # a token masked out has probability 0 and adds nothing (0 * -inf would be NaN)
        entropy = -(logp.exp() * logp.masked_fill(logp == -math.inf, 0.0)).sum(-1)
    first = chosen.new_zeros(chosen.shape[0], 1)
    return torch.cat([first, chosen], dim=1), torch.cat([first, entropy], dim=1)


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token KL estimate ``log p - log p_ref`` (k1): unbiased for KL(p || p_ref) on tokens sampled from ``p``,
    but negative on some tokens. This is the one the reward is penalised with, so the penalty's expectation is the true KL."""
    return logprobs - ref_logprobs


def kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token KL estimate ``r - 1 - log r`` with ``r = p_ref / p`` (k3, Schulman 2020): unbiased, never negative,
    lower variance. Logged beside k1, and GRPO's KL loss term (Shao et al. 2024)."""
    log_ratio = ref_logprobs - logprobs
    return torch.expm1(log_ratio) - log_ratio


def sum_over_turns(token_values: Tensor, turn_index: Tensor, n_turns: int) -> Tensor:
    """``[B, K]``: the sum of ``token_values`` over each turn's agent tokens (``turn_index`` -1 marks other tokens)."""
    agent = turn_index >= 0
    sums = token_values.new_zeros(token_values.shape[0], n_turns)
    return sums.scatter_add_(1, turn_index.clamp(min=0), torch.where(agent, token_values, 0.0))


def broadcast_to_tokens(turn_values: Tensor, turn_index: Tensor) -> Tensor:
    """``[B, T]``: each agent token gets its turn's value, every other token 0."""
    return torch.where(turn_index >= 0, turn_values.gather(1, turn_index.clamp(min=0)), 0.0)


def kl_penalized_rewards(turn_rewards: Tensor, token_kl: Tensor, turn_index: Tensor, kl_coef: float) -> Tensor:
    """Per-turn reward ``r_t = task reward of turn t - beta * (sum of turn t's token KLs)``.

    The per-token penalty of Ziegler et al. places ``-beta * kl`` on each token because their value
    function runs per token. Here values, and so GAE, run per turn: the turn is the unit of credit, and
    the sum of a turn's token KLs is the KL of that whole action given its context. Charging it to
    the turn keeps the penalty in the same reward stream as the task's reward and credits it with the
    same advantage; the undiscounted return is the same as with per-token placement.
    """
    return turn_rewards - kl_coef * sum_over_turns(token_kl, turn_index, turn_rewards.shape[1])


def turn_gae(rewards: Tensor, values: Tensor, turn_mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over the turns of each trajectory: ``(advantages, returns)``, both ``[B, K]``.

    ``delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)``, with ``V = 0`` after the last turn (every trajectory
    ends: finished, or truncated and scored); ``A_t = sum_k (gamma * lam)^k delta_{t+k}``; returns
    ``= A + V`` are the value targets. Turns beyond a trajectory's last one get 0.
    """
    rewards, values = torch.where(turn_mask, rewards, 0.0), torch.where(turn_mask, values, 0.0)
    advantages = torch.zeros_like(rewards)
    next_value = next_advantage = rewards.new_zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = delta + gamma * lam * next_advantage
        next_value, next_advantage = values[:, t], advantages[:, t]
    return advantages, advantages + values


def clipped_policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_range: float,
    count: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO's clipped surrogate, token level: ``mean over masked tokens of max(-A * ratio, -A * clip(ratio, 1 +- eps))``,
    ``ratio = exp(logp - old_logp)``. Also returns diagnostics: ``approx_kl`` (k3 estimate of KL(old || new)) and
    ``clip_fraction`` (share of tokens whose ratio left the clip range). ``count``: the denominator of every mean
    (`masked_mean`)."""
    log_ratio = torch.where(mask.bool(), logprobs - old_logprobs, 0.0)
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip_range, 1 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask, count)
    with torch.no_grad():
        stats = {
            "approx_kl": masked_mean(ratio - 1 - log_ratio, mask, count).item(),
            "clip_fraction": masked_mean(((ratio - 1).abs() > clip_range).float(), mask, count).item(),
        }
    return loss, stats


def clipped_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float, count: Tensor | None = None
) -> Tensor:
    """``0.5 * mean of max((V - R)^2, (V_clipped - R)^2)`` over masked turns, ``V_clipped`` kept within ``clip_range``
    of the value at rollout time (PPO2 style); plain squared error when ``clip_range`` is 0. ``count``: the mean's
    denominator (`masked_mean`)."""
    loss = (values - returns) ** 2
    if clip_range:
        clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
        loss = torch.maximum(loss, (clipped - returns) ** 2)
    return 0.5 * masked_mean(loss, mask, count)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over masked turns: 1 is a perfect critic, 0 one no better than a constant; NaN when ``Var(R) = 0``."""
    returns_variance = masked_mean((returns - masked_mean(returns, mask)) ** 2, mask)
    errors = returns - values
    error_variance = masked_mean((errors - masked_mean(errors, mask)) ** 2, mask)
    return float("nan") if returns_variance == 0 else (1 - error_variance / returns_variance).item()


class KLController:
    """The KL penalty coefficient beta: fixed, or adaptive when ``target`` is set (Ziegler et al. 2019).

    The adaptive rule moves beta by a proportional error clipped to +-20%, scaled by the samples seen
    over ``horizon``: ``beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon``, with ``KL`` the mean
    per-trajectory KL of the last batch. ``target`` 0 keeps beta fixed.
    """

    def __init__(self, coef: float, target: float = 0.0, horizon: int = 10_000):
        self.coef, self.target, self.horizon = coef, target, horizon

    def update(self, kl: float, n_samples: int) -> None:
        if self.target:
            error = min(max(kl / self.target - 1, -0.2), 0.2)
            self.coef *= 1 + error * n_samples / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.coef = state["coef"]


class RewardNormalizer:
    """Rewards shifted and scaled to mean 0 and std 1, then clipped to ``+-clip`` (0: not clipped).

    ``running`` pools every batch seen so far, this one included (Chan et al.'s parallel mean and variance,
    as TRL's running moments); ``batch`` whitens each batch alone; ``none`` leaves the rewards as they are.
    """

    def __init__(self, mode: str = "none", clip: float = 0.0, eps: float = 1e-8):
        self.mode, self.clip, self.eps = mode, clip, eps
        self.count, self.mean, self.variance = 0, 0.0, 0.0

    @property
    def changes_rewards(self) -> bool:
        return self.mode != "none" or self.clip > 0

    def __call__(self, rewards: list[float]) -> list[float]:
        values = torch.tensor(rewards, dtype=torch.float64)
        if not torch.isfinite(values).all():
            raise ValueError("rewards to normalise must be finite")
        if self.mode == "running":
            self._pool(values)
            values = (values - self.mean) / math.sqrt(self.variance + self.eps)
        elif self.mode == "batch":
            values = (values - values.mean()) / math.sqrt(values.var(unbiased=False).item() + self.eps)
        return (values.clamp(-self.clip, self.clip) if self.clip else values).tolist()

    def _pool(self, values: Tensor) -> None:
        n, mean, variance = len(values), values.mean().item(), values.var(unbiased=False).item()
        total = self.count + n
        delta = mean - self.mean
        self.variance = (self.count * self.variance + n * variance + delta**2 * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "variance": self.variance}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.count, self.mean, self.variance = int(state["count"]), state["mean"], state["variance"]
