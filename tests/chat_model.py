"""A chat model built locally for tests: a byte-level BPE tokenizer like a pretrained model's, and a small Llama.

The tokenizer is trained by `tokenizers` on a little arithmetic chatter, so it splits text the way a real
model's does and the tiny model's does not: ``</tool>`` is several tokens and its first one also holds the
end of the JSON arguments (``"}</`` ``tool`` ``>``), ``<ask>`` is five, and some numbers are one token
(``12``, ``42``) where others are a digit each. Its chat template is ChatML-style with ``<|im_end|>`` closing
every message (the tokenizer's end-of-sequence token, as in SmolLM2). `chat_llama` is a Llama with
grouped-query attention (9 query heads over 3 key/value heads, as SmolLM2 has). `tests/test_models.py`
writes the same vocabulary and template into a GGUF file.
"""

from __future__ import annotations

import json

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_byte_level_bpe() -> Tokenizer:
    """A byte-level BPE of 313 tokens (the specials first) trained on arithmetic chatter and a tool call."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    text = ["What is 12 + 30? The answer is 42.", '<tool name="calculator">{"expression": "2+2"}</tool>'] * 50
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(text, trainer)
    return tokenizer


def byte_level_vocabulary() -> tuple[list[str], list[str]]:
    """The tokens (in id order) and merges of `train_byte_level_bpe`, as a GGUF file stores them."""
    tokenizer = train_byte_level_bpe()
    vocab = tokenizer.get_vocab()
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return sorted(vocab, key=vocab.get), [merge if isinstance(merge, str) else " ".join(merge) for merge in merges]


def chat_tokenizer() -> PreTrainedTokenizerFast:
    """`train_byte_level_bpe` with the ChatML-style template; ``<|im_end|>`` ends a sequence, ``<|endoftext|>`` pads."""
    return PreTrainedTokenizerFast(
        tokenizer_object=train_byte_level_bpe(),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )


def chat_llama(
    tokenizer: PreTrainedTokenizerFast, *, heads: int = 9, key_value_heads: int = 3, head_dim: int = 8, seed: int = 0
) -> LlamaForCausalLM:
    """A two-layer Llama over ``tokenizer`` with grouped-query attention, its weights drawn from ``seed``."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=heads * head_dim,
        intermediate_size=4 * heads * head_dim,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=key_value_heads,
        head_dim=head_dim,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config).eval()
