"""Training passes that run the tokens every row of a batch begins with once per batch, not once per row.

Every episode of a task opens with the same tokens: the instructions and the tool manual, 50-60% of a TwoHop,
MultiHopKnowledge or Arithmetic transcript for the tiny model. A padded batch runs them through the model once per
row. `prefix_cache` runs the batch's shared beginning once, as a batch of one, and repeats its key/value cache along
the batch (transformers' `DynamicCache.batch_repeat_interleave`); the rest of every row then runs against that cache.
The gradient flows back through the repeated cache into the single prefix pass, so losses and gradients are those of
the plain forward, up to float rounding; only the compute differs. Two users: SFT (`SharedPrefixSFTTrainer`, TRL's
metrics included) and the RL update's forward passes (`agentic.training.ppo.forward`).

Written here because neither TRL nor transformers trains this way: TRL's packing and padding-free modes remove padding,
not repeated prefixes.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import DynamicCache
from trl import SFTTrainer

log = logging.getLogger(__name__)

MIN_SHARED_TOKENS = 16  # shorter prefixes (a mixture's first line) save little against a second forward call; not tuned
PLAIN_BATCH_KEYS = {"input_ids", "attention_mask", "labels"}


def shared_prefix_length(input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> int:
    """How many leading tokens of a right-padded batch can run once for all rows: tokens equal in every row, none of
    them padding, and no label on them or on the token after them (the output at the last shared position predicts
    that token, and the shared pass computes no outputs). At least one token is left to every row."""
    same = (input_ids == input_ids[:1]).all(0) & attention_mask.bool().all(0)
    common = int(same.int().cumprod(0).sum())
    labelled = (labels != -100).any(0).nonzero()
    first_label = int(labelled[0]) if len(labelled) else input_ids.shape[1]
    return max(0, min(common, first_label - 1, input_ids.shape[1] - 1))


def prefix_cache(model: nn.Module, input_ids: torch.Tensor, n_shared: int) -> DynamicCache | None:
    """The key/value cache of the first ``n_shared`` tokens of row 0, run once and repeated for every row of
    ``input_ids`` (the rows share them: `shared_prefix_length`); None, after a warning, for a model whose cache is not a
    `DynamicCache` (its rows must then run whole)."""
    cache = model(input_ids=input_ids[:1, :n_shared], use_cache=True, logits_to_keep=1).cache
    if not isinstance(cache, DynamicCache):
        log.warning("the model's cache is a %s, not a DynamicCache: training on whole rows", type(cache).__name__)
        return None
    cache.batch_repeat_interleave(len(input_ids))
    return cache


class SharedPrefixSFTTrainer(SFTTrainer):
    """TRL's `SFTTrainer` whose loss runs a batch's shared prefix (`shared_prefix_length`) once. It falls back to the
    plain forward for a batch that shares fewer than `MIN_SHARED_TOKENS`, one that is not exactly input ids, mask and
    labels, under gradient checkpointing (which recomputes without a cache), and for good on a model whose cache is
    not transformers' `DynamicCache` (whose sliding-window layers keep the window the rows still attend to)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sharing = not self.args.gradient_checkpointing
        self.shared_tokens = 0  # prefix tokens run once instead of once per row, over the whole run

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        shared = self._shareable(inputs)
        if shared < MIN_SHARED_TOKENS:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        input_ids = inputs["input_ids"]
        cache = prefix_cache(model, input_ids, shared)
        if cache is None:
            self.sharing = False
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        self.shared_tokens += shared * (len(input_ids) - 1)
        rest = {
            "input_ids": input_ids[:, shared:],
            "attention_mask": inputs["attention_mask"],  # prefix and rest: the rows attend to the shared tokens
            "labels": inputs["labels"][:, shared:],
            "cache": cache,
        }
        return super().compute_loss(model, rest, return_outputs, num_items_in_batch)

    def _shareable(self, inputs: dict[str, Any]) -> int:
        if not self.sharing or set(inputs) != PLAIN_BATCH_KEYS:
            return 0
        return shared_prefix_length(inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
