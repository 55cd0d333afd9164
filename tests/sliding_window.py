"""A small model with a sliding-window layer, shared by tests: the rollout engine decodes it through its own cache
(`agentic.decoding.PaddedBatch`), every row fed at every step."""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from agentic.policy import Policy


def sliding_window_policy(tokenizer: PreTrainedTokenizerBase) -> Policy:
    """A two-layer Qwen2 (seeded weights): the first layer attends to the whole context, the second only to the
    last 16 tokens."""
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        use_sliding_window=True,
        sliding_window=16,
        layer_types=["full_attention", "sliding_attention"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config)
    return Policy(model, tokenizer)
