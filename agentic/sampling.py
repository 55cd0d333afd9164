"""How actions are drawn from a model's next-token logits: `Sampling` (the settings) and `sample` (one token per row).

Written by hand rather than with ``model.generate``'s logits processors because the rollout engine
needs, at every step, the log-prob of the drawn token under the exact distribution it was drawn
from (temperature and nucleus applied), which PPO's ratio and KL are taken against.

Logits must describe a distribution: ``-inf`` marks a token that cannot be drawn, but NaN or
``+inf`` (what a model whose weights or activations went non-finite gives; ``softmax`` of ``+inf``
is undefined) and a row with every token ``-inf`` stop sampling with a `ValueError` naming the rows.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agentic.options import check_options, option

MAX_NEW_TOKENS = 1 << 20
"""The most tokens one action may have: more than any model's context holds (a larger limit is a mistake)."""


@dataclass(frozen=True)
class Sampling:
    """How actions are drawn.

    ``temperature=0`` is greedy. The recorded log-prob of a token is under the distribution it
    was drawn from: ``softmax(logits / temperature)``, restricted to the ``top_p`` nucleus and
    renormalised (0.0 for greedy, a point mass). At the defaults (temperature 1, top_p 1) that
    is the policy's own log-prob, the quantity PPO's ratio and KL need. Bad values (NaN, out of
    range, a non-integer token count) are refused here, before any work starts.

    ``constrained``: the decoding batch sets the logit of every token outside the action grammar of its
    row's state to -inf before `sample` applies temperature and top-p (`agentic.constraint`), so the
    distribution drawn from, and the log-prob recorded, is the masked one renormalised.
    """

    temperature: float = option(1.0, "softmax temperature; 0 is greedy", bounds="non-negative")
    top_p: float = option(1.0, "nucleus: draw from the smallest set of tokens with this much mass", bounds="fraction")
    max_new_tokens: int = option(
        256, "the most tokens one action may have (the task's budget may allow fewer)", unit="tokens", bounds="positive"
    )
    seed: int = option(0, "seed of the sampler's random numbers (when temperature > 0)", bounds="non-negative")
    constrained: bool = option(False, "draw each action from the grammar of the valid actions (llguidance)")

    def __post_init__(self) -> None:
        problems = []
        if self.top_p <= 0:
            problems.append(f"top_p must be > 0 (an empty nucleus holds no token), got {self.top_p}")
        for name in ("max_new_tokens", "seed"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                problems.append(f"{name} must be a whole number, got {value!r}")
        if isinstance(self.max_new_tokens, numbers.Integral) and self.max_new_tokens > MAX_NEW_TOKENS:
            problems.append(f"max_new_tokens must be at most {MAX_NEW_TOKENS:,}, got {self.max_new_tokens:,}")
        check_options(self, problems)


def sample(
    logits: torch.Tensor, sampling: Sampling, generator: torch.Generator, rows: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of ``logits``, and its log-prob under the distribution it was drawn from.

    Draws by inverting each row's cumulative distribution at one uniform number (cheaper than
    `torch.multinomial`, which draws a random number per vocabulary entry); a token of
    probability zero is never drawn. Raises ValueError for rows with no distribution to draw
    from (NaN or ``+inf`` logits, or all ``-inf``), naming them as ``rows`` does (default: their positions).
    """
    if sampling.temperature == 0:
        chosen = logits.argmax(-1)  # a NaN in a row is its maximum
        _refuse_unusable(logits, ~torch.isfinite(logits.gather(1, chosen[:, None])).squeeze(1), sampling, rows)
        return chosen, torch.zeros(logits.shape[0])
    tempered = logits / sampling.temperature
    if sampling.top_p < 1:
        tempered = _nucleus(tempered, sampling.top_p)
    logp = torch.log_softmax(tempered, dim=-1)
    cumulative = logp.exp().cumsum(-1)
    total = cumulative[:, -1:].contiguous()
    _refuse_unusable(logits, total.isnan().squeeze(1), sampling, rows)
    uniform = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device) * total
    last_possible = torch.searchsorted(cumulative, total)  # should rounding put ``uniform`` at the total
    chosen = torch.minimum(torch.searchsorted(cumulative, uniform, right=True), last_possible).squeeze(1)
    return chosen, logp.gather(1, chosen[:, None]).squeeze(1)


def _refuse_unusable(
    logits: torch.Tensor, unusable: torch.Tensor, sampling: Sampling, rows: Sequence[int] | None
) -> None:
    """Raise ValueError naming the rows flagged ``unusable`` and what is wrong with each row's ``logits``."""
    if not unusable.any():
        return
    names = list(range(len(logits))) if rows is None else list(rows)
    found = []
    for position in unusable.nonzero().flatten().tolist():
        row = logits[position]
        if row.isnan().any():
            why = "NaN logits"
        elif (row == math.inf).any():
            why = "+inf logits"
        elif (row == -math.inf).all():
            why = "every logit -inf"
        else:
            why = f"logits overflow when divided by temperature {sampling.temperature:g}"
        found.append(f"row {names[position]} ({why})")
    raise ValueError(
        f"cannot sample a token for {', '.join(found)}: NaN or +inf logits mean the model's weights or "
        "activations are no longer finite"
    )


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``logits`` with everything outside the smallest set of tokens of probability mass >= ``top_p`` set to -inf."""
    ordered, order = logits.sort(dim=-1, descending=True)
    probs = ordered.softmax(-1)
    outside = probs.cumsum(-1) - probs >= top_p
    return logits.scatter(1, order, ordered.masked_fill(outside, -math.inf))
