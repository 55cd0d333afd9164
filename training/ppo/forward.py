"""The forward passes an update makes: the policy's token log-probs and entropies (and a critic's values) over a
batch, with gradients for the loss or without, chunk by chunk, for scoring a rollout; and the frozen reference's
log-probs for the KL.

The policy and value head may come wrapped for data parallelism (`accelerate`'s DDP); attributes are read from the
wrapped module, forward passes that train go through the wrapper so that gradients are averaged across processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from agentic.training.ppo.batch import TurnBatch
from agentic.training.ppo.core import token_logprobs
from agentic.training.ppo.value import ValueHead


@dataclass(frozen=True)
class PolicyForward:
    """What one forward pass gives: per-token log-probs and entropies ``[B, T]``, per-turn values ``[B, K]`` (or None)."""

    logprobs: Tensor
    entropy: Tensor
    values: Tensor | None


def policy_forward(policy: nn.Module, batch: TurnBatch, value_head: ValueHead | None = None) -> PolicyForward:
    """One forward pass of the policy over the batch (plus the critic's own, when it has a trunk); the log-probs and
    entropies under the batch's constraint masks, if it has any."""
    shared = value_head is not None and extract_model_from_parallel(value_head).shared
    output = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=shared)
    logprobs, entropy = token_logprobs(
        output.logits, batch.input_ids, None if batch.masks is None else batch.masks.apply
    )
    values = None
    if value_head is not None:
        hidden = output.hidden_states[-1] if shared else None
        values = value_head(batch.input_ids, batch.attention_mask, hidden).gather(1, batch.decision_positions)
    return PolicyForward(logprobs, entropy, values)


@torch.no_grad()
def forward_in_chunks(
    model: nn.Module, batch: TurnBatch, chunk_size: int, value_head: ValueHead | None = None
) -> PolicyForward:
    """`policy_forward` without gradients, ``chunk_size`` rows at a time: a whole rollout batch scored in a minibatch's
    memory. Chunks are taken in order of length (`TurnBatch.chunks`), each cut to its longest row; the outputs come
    back in the batch's row order, per-token ones padded back with zeros."""
    groups = batch.chunks(chunk_size)
    parts = [policy_forward(model, batch.rows(rows, batch.longest(rows)), value_head) for rows in groups]
    width, order = batch.input_ids.shape[1], torch.cat(groups).argsort()

    def padded(name: str) -> Tensor:
        return torch.cat(
            [nn.functional.pad(getattr(part, name), (0, width - getattr(part, name).shape[1])) for part in parts]
        )[order]

    values = None if value_head is None else torch.cat([part.values for part in parts])[order]
    return PolicyForward(padded("logprobs"), padded("entropy"), values)


def has_reference(policy: nn.Module, reference: nn.Module | None) -> bool:
    """Whether a frozen reference exists: given, or the base model under a PEFT policy's adapters."""
    from peft import PeftModel

    return reference is not None or isinstance(extract_model_from_parallel(policy), PeftModel)


def reference_logprobs(policy: nn.Module, reference: nn.Module | None, batch: TurnBatch, chunk_size: int) -> Tensor:
    """``[B, T]`` log-probs of the batch's tokens under the frozen reference: ``reference``, or, when it is None and the
    policy is a PEFT model, the policy's base model with its adapters disabled."""
    if reference is not None:
        return forward_in_chunks(reference, batch, chunk_size).logprobs
    if not has_reference(policy, None):
        raise ValueError("a KL penalty needs a reference model: pass reference=, or train a PEFT (LoRA) policy")
    model = extract_model_from_parallel(policy)
    with model.disable_adapter():
        return forward_in_chunks(model, batch, chunk_size).logprobs
