"""How actions are drawn from a model's next-token logits: `Sampling` (the settings) and `sample` (one token per row).

Written by hand rather than with ``model.generate``'s logits processors because the rollout engine
needs, at every step, the log-prob of the drawn token under the exact distribution it was drawn
from (temperature and nucleus applied), which PPO's ratio and KL are taken against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """How actions are drawn.

    ``temperature=0`` is greedy. The recorded log-prob of a token is under the distribution it
    was drawn from: ``softmax(logits / temperature)``, restricted to the ``top_p`` nucleus and
    renormalised (0.0 for greedy, a point mass). At the defaults (temperature 1, top_p 1) that
    is the policy's own log-prob, the quantity PPO's ratio and KL need.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError(f"need temperature >= 0, 0 < top_p <= 1 and max_new_tokens >= 1, got {self}")


def sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of ``logits``, and its log-prob under the distribution it was drawn from.

    Draws by inverting each row's cumulative distribution at one uniform number (cheaper than
    `torch.multinomial`, which draws a random number per vocabulary entry); a token of
    probability zero is never drawn.
    """
    if sampling.temperature == 0:
        return logits.argmax(-1), torch.zeros(logits.shape[0])
    logits = logits / sampling.temperature
    if sampling.top_p < 1:
        logits = _nucleus(logits, sampling.top_p)
    logp = torch.log_softmax(logits, dim=-1)
    cumulative = logp.exp().cumsum(-1)
    total = cumulative[:, -1:].contiguous()
    uniform = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device) * total
    last_possible = torch.searchsorted(cumulative, total)  # should rounding put ``uniform`` at the total
    chosen = torch.minimum(torch.searchsorted(cumulative, uniform, right=True), last_possible).squeeze(1)
    return chosen, logp.gather(1, chosen[:, None]).squeeze(1)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``logits`` with everything outside the smallest set of tokens of probability mass >= ``top_p`` set to -inf."""
    ordered, order = logits.sort(dim=-1, descending=True)
    probs = ordered.softmax(-1)
    outside = probs.cumsum(-1) - probs >= top_p
    return logits.scatter(1, order, ordered.masked_fill(outside, -math.inf))
