"""Preference pairs for the reward model: chosen = the real reference, rejected = a corrupted or foreign one.

- ``mismatch``: the reference of another example (another story's ending, another article's
  highlights), so the reward must depend on the prompt;
- ``shuffle``: the reference's words in a random order (fluency);
- ``dropout``: the reference with each word dropped with probability ``dropout`` (completeness).

Pairs are built from one part of the split at a time, so a rejected text never comes from another part.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from agentic.training.corpus.options import REJECTION_KINDS
from agentic.training.corpus.specs import Example, words


def shuffled(text: str, rng: random.Random) -> str | None:
    """The words of ``text`` in another order; None when every order reads the same."""
    tokens = words(text)
    if len(set(tokens)) < 2:
        return None
    order = list(tokens)
    while order == tokens:
        rng.shuffle(order)
    return " " + " ".join(order)


def dropped(text: str, rng: random.Random, dropout: float) -> str | None:
    """``text`` missing some words (at least one dropped, at least one kept); None for a single word."""
    tokens = words(text)
    if len(tokens) < 2:
        return None
    keep = [rng.random() >= dropout for _ in tokens]
    if all(keep):
        keep[rng.randrange(len(tokens))] = False
    if not any(keep):
        keep[rng.randrange(len(tokens))] = True
    return " " + " ".join(token for token, kept in zip(tokens, keep) if kept)


def mismatched(example: Example, others: Sequence[Example], rng: random.Random) -> str | None:
    """The reference of a random example from another group; None when there is none."""
    candidates = [other for other in others if other.group != example.group and other.reference != example.reference]
    return rng.choice(candidates).reference if candidates else None


def preference_pairs(
    examples: Sequence[Example], seed: int, *, kinds: Sequence[str] = REJECTION_KINDS, dropout: float = 0.3
) -> list[dict[str, str]]:
    """One pair per example and kind (``prompt``, ``chosen``, ``rejected``, ``kind``), deterministic given ``seed``."""
    unknown = set(kinds) - set(REJECTION_KINDS)
    if unknown:
        raise ValueError(f"unknown rejection kinds {sorted(unknown)}: use {list(REJECTION_KINDS)}")
    rng = random.Random(seed)
    pairs = []
    for example in examples:
        for kind in kinds:
            if kind == "mismatch":
                rejected = mismatched(example, examples, rng)
            elif kind == "shuffle":
                rejected = shuffled(example.reference, rng)
            else:
                rejected = dropped(example.reference, rng, dropout)
            if rejected is not None:
                pairs.append(
                    {"prompt": example.prompt, "chosen": example.reference, "rejected": rejected, "kind": kind}
                )
    return pairs
