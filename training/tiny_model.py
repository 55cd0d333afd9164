"""The embedded default model: a tiny GPT-NeoX (Pythia architecture) with a BPE tokenizer trained on the tasks' own text.

Nothing is downloaded. The tokenizer is learnt offline with `tokenizers` from oracle episodes run
through the real environment, so its merges fit the prompts, tool calls and replies the model will
see. Four choices help a model of a few million parameters:

- every sentinel tag (``<tool name="``, ``</tool>``, ``<result>``, ...) is one token, added as an
  ordinary (not special) token so it decodes verbatim; an action then ends on exactly one token;
- digits are split one per token, so copying a number is copying digits, not arbitrary merges;
- a space before a capital letter is a token of its own, so a name (``Ines Takdru``) has the same
  tokens after a space in a question, after ``<result>`` and after ``"`` in a tool's JSON: copying an
  entity is copying its tokens, not re-spelling it with other merges;
- optionally (``spell_names``), a capitalised word is spelt one letter per token, as digits are: a name never
  seen in training (MultiHopKnowledge's held-out entities) is then made of tokens every training name trains,
  where BPE would cut it into rare merges whose embeddings few examples have taught to be copied;
- byte-level BPE: any text encodes, and decoding is lossless and compositional,
  ``decode(a + b) == decode(a) + decode(b)``, wherever the split does not cut a multi-byte
  UTF-8 character in two (such a half decodes to U+FFFD, as with every byte-level tokenizer).

The result is a directory that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load like any hub model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

from agentic.env import AgenticEnvironment, oracle_action, run_episode
from agentic.task import Task

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
SENTINEL_TOKENS = (
    "</tool>",
    "</ask>",
    "</finish>",
    "<ask>",
    "<finish>",
    '<tool name="',
    "<result>",
    "</result>",
    "<user>",
    "</user>",
    "<sys>",
    "</sys>",
)
_SENTINEL_SPLIT = re.compile("|".join(re.escape(s) for s in SENTINEL_TOKENS))
# Each letter of a capitalised word (a capital followed by lower-case letters, the first 32 of them), for
# `train_tokenizer(spell_names=True)`. One fixed-width look-behind per position, not `{0,31}`: llguidance's regex
# engine, which reads the pre-tokenizer for constrained decoding, refuses look-behinds of variable width.
_NAME_LETTER = "[A-Z](?=[a-z])|" + "|".join(f"(?<=[A-Z][a-z]{{{k}}})[a-z]" for k in range(32))


def task_corpus(task_names: Iterable[str | Task], seeds: Iterable[int]) -> list[str]:
    """Full transcripts (prompt, actions, replies) of the tasks' oracles (task specs or task objects) on ``seeds``, run
    through the real environment."""
    seeds = list(seeds)
    texts = []
    for name in task_names:
        env = AgenticEnvironment(name)
        for seed in seeds:
            run_episode(env, oracle_action, seed)
            texts.append(env.context)
    return texts


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 1024, *, spell_names: bool = False
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer learnt from ``texts``, with single-token sentinels, eos and pad.

    ``vocab_size`` bounds the learnt vocabulary (eos and pad included); the 12 sentinels come on top.
    ``spell_names``: capitalised words one letter per token, for agents that copy names into tool calls (the corpus
    pipeline's free text keeps its merges).

    Sentinels are cut out of the training text first, so no merges are spent on pieces of them.
    Training is deterministic: the same texts give the same tokenizer.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(" (?=[A-Z])"), behavior="isolated"),
            *([pre_tokenizers.Split(Regex(_NAME_LETTER), behavior="isolated")] if spell_names else []),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    pieces = (piece for text in texts for piece in _SENTINEL_SPLIT.split(text) if piece)
    tokenizer.train_from_iterator(pieces, trainer)
    tokenizer.add_tokens([AddedToken(s, special=False, normalized=False) for s in SENTINEL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, clean_up_tokenization_spaces=False
    )


def tiny_config(tokenizer: PreTrainedTokenizerFast, **overrides: Any) -> GPTNeoXConfig:
    """A Pythia-style GPT-NeoX of about 0.9M parameters (hidden 128, 4 layers, 16 heads of 8, context 1024).

    Unlike Pythia (rotary on a quarter of each head), rotary embeddings cover the whole head: an
    agent mostly copies (numbers from the task into tool arguments, results into answers), and a
    model this small learns to find what to copy by relative position several times faster so.
    Many narrow heads beat few wide ones for the same reason (16 heads learnt in 875 steps what 8 had
    not), and depth beats width.
    """
    settings: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": 128,
        "num_hidden_layers": 4,
        "num_attention_heads": 16,
        "intermediate_size": 512,
        "rotary_pct": 1.0,
        "max_position_embeddings": 1024,
        "bos_token_id": tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    settings.update(overrides)
    return GPTNeoXConfig(**settings)


def build_tiny_model(
    task_names: Sequence[str | Task],
    out_dir: str | Path,
    *,
    seeds: Iterable[int] = range(10_000, 10_200),
    seed: int = 0,
    vocab_size: int = 1024,
    spell_names: bool = False,
    **config_overrides: Any,
) -> Path:
    """Train the tokenizer on the tasks' oracle transcripts, initialise the model from ``seed`` and save both to ``out_dir``.

    ``spell_names``: capitalised words one letter per token (`train_tokenizer`). Off by default: it lengthens every
    transcript (12% for Arithmetic, 39% for TwoHop) and changes what each task's measured warm-up learns, so the
    tables measured without it would have to be measured again first.

    The default ``seeds`` lie among the training seeds (10000 and up), away from the evaluation seeds (0-199).

    Deterministic: the same arguments write the same tokenizer and weights. The global torch
    random state is left as it was.
    """
    out = Path(out_dir)
    tokenizer = train_tokenizer(task_corpus(task_names, seeds), vocab_size=vocab_size, spell_names=spell_names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPTNeoXForCausalLM(tiny_config(tokenizer, **config_overrides))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
