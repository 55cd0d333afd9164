"""The forward passes an update makes: the policy's token log-probs and entropies (and a critic's values) over a
batch, with gradients for the loss or without, chunk by chunk, for scoring a rollout; and the frozen reference's
log-probs for the KL.

With ``share_prefix`` the tokens every episode of a pass begins with (the instructions and tool manual) run once for
the pass, not once per episode (`agentic.training.shared_prefix`): the same log-probs, values and gradients up to float
rounding, for less compute.

The policy and value head may come wrapped for data parallelism (`accelerate`'s DDP); attributes are read from the
wrapped module, forward passes that train go through the wrapper so that gradients are averaged across processes.
A wrapped policy runs every episode whole: DDP expects one forward pass per backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from agentic.training.ppo.batch import TurnBatch
from agentic.training.ppo.core import token_logprobs
from agentic.training.ppo.value import ValueHead
from agentic.training.shared_prefix import MIN_SHARED_TOKENS, prefix_cache, shared_prefix_length


@dataclass(frozen=True)
class PolicyForward:
    """What one forward pass gives: per-token log-probs and entropies ``[B, T]``, per-turn values ``[B, K]`` (or None)."""

    logprobs: Tensor
    entropy: Tensor
    values: Tensor | None


def policy_forward(
    policy: nn.Module, batch: TurnBatch, value_head: ValueHead | None = None, share_prefix: bool = False
) -> PolicyForward:
    """One forward pass of the policy over the batch (plus the critic's own, when it has a trunk); the log-probs and
    entropies at the batch's sampling temperature and under its constraint masks, if it has any. With
    ``share_prefix`` the policy runs the batch's shared prefix (`update_prefix_length`) once (a critic's own trunk
    still runs whole episodes); positions in it get log-prob and entropy 0, as position 0 does."""
    shared_head = value_head is not None and extract_model_from_parallel(value_head).shared
    n_shared = update_prefix_length(batch) if share_prefix and extract_model_from_parallel(policy) is policy else 0
    cache = prefix_cache(policy, batch.input_ids, n_shared) if n_shared >= MIN_SHARED_TOKENS else None
    n_shared = n_shared if cache is not None else 0
    input_ids = batch.input_ids[:, n_shared:]
    output = policy(
        input_ids=input_ids,
        attention_mask=batch.attention_mask,  # the prefix's positions and the rest's
        output_hidden_states=shared_head,
        **({"cache": cache} if cache is not None else {}),
    )
    masks = None if batch.masks is None else batch.masks.after(n_shared)
    logprobs, entropy = token_logprobs(
        output.logits, input_ids, None if masks is None else masks.apply, batch.temperature
    )
    values = None
    if value_head is not None:
        hidden = output.hidden_states[-1] if shared_head else None
        values = value_head(batch.input_ids, batch.attention_mask, hidden)
        values = _pad_left(values, batch.input_ids.shape[1] - values.shape[1]).gather(1, batch.decision_positions)
    return PolicyForward(_pad_left(logprobs, n_shared), _pad_left(entropy, n_shared), values)


def update_prefix_length(batch: TurnBatch) -> int:
    """How many leading tokens of the batch can run once for every episode (`shared_prefix_length`): none of them an
    agent token or the token before one (its output predicts the agent token), nor a turn's decision point (the critic
    reads its output). 0 for a single episode: nothing to share."""
    if len(batch) < 2:
        return 0
    needed = batch.agent_mask.clone()  # positions whose token an output must predict
    rows, turns = batch.turn_mask.nonzero(as_tuple=True)
    needed[rows, batch.decision_positions[rows, turns] + 1] = True  # a decision point's own output is read
    labels = batch.input_ids.masked_fill(~needed, -100)
    return shared_prefix_length(batch.input_ids, batch.attention_mask, labels)


def _pad_left(values: Tensor, n: int) -> Tensor:
    """``values`` ``[B, T']`` with ``n`` zeros before each row: back to the batch's positions."""
    return nn.functional.pad(values, (n, 0)) if n else values


@torch.no_grad()
def forward_in_chunks(
    model: nn.Module,
    batch: TurnBatch,
    chunk_size: int,
    value_head: ValueHead | None = None,
    share_prefix: bool = False,
) -> PolicyForward:
    """`policy_forward` without gradients, ``chunk_size`` rows at a time: a whole rollout batch scored in a minibatch's
    memory. Chunks are taken in order of length (`TurnBatch.chunks`), each cut to its longest row; the outputs come
    back in the batch's row order, per-token ones padded back with zeros."""
    groups = batch.chunks(chunk_size)
    parts = [policy_forward(model, batch.rows(rows, batch.longest(rows)), value_head, share_prefix) for rows in groups]
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


def reference_logprobs(
    policy: nn.Module, reference: nn.Module | None, batch: TurnBatch, chunk_size: int, share_prefix: bool = False
) -> Tensor:
    """``[B, T]`` log-probs of the batch's tokens under the frozen reference: ``reference``, or, when it is None and the
    policy is a PEFT model, the policy's base model with its adapters disabled."""
    if reference is not None:
        return forward_in_chunks(reference, batch, chunk_size, share_prefix=share_prefix).logprobs
    if not has_reference(policy, None):
        raise ValueError("a KL penalty needs a reference model: pass reference=, or train a PEFT (LoRA) policy")
    model = extract_model_from_parallel(policy)
    with model.disable_adapter():
        return forward_in_chunks(model, batch, chunk_size, share_prefix=share_prefix).logprobs
