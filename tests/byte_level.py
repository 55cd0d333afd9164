"""A small byte-level BPE tokenizer trained on arithmetic chatter, shared by tests: like a real model's, it splits
sentinels over several tokens (``</tool>`` is ``"}</`` + ``tool`` + ``>``) and merges digits."""

from __future__ import annotations

import json

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def byte_level_bpe() -> Tokenizer:
    """The tokenizer as the `tokenizers` library holds it (specials first)."""
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
    """Tokens (specials first) and merges, as a GGUF file lists them."""
    tokenizer = byte_level_bpe()
    vocab = tokenizer.get_vocab()
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return sorted(vocab, key=vocab.get), [merge if isinstance(merge, str) else " ".join(merge) for merge in merges]


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer as transformers loads a model's."""
    return PreTrainedTokenizerFast(
        tokenizer_object=byte_level_bpe(),
        eos_token=SPECIALS[0],
        pad_token=SPECIALS[0],
        clean_up_tokenization_spaces=False,
    )
