"""Stage 1: split a corpus into eval / held-out / train parts FIRST, then build preference pairs per part.

The split is by group (story, article, page), seeded and deterministic. ``eval`` prompts and
references are used only by the evaluation; ``heldout`` measures the reward model's pairwise
accuracy; ``train`` feeds SFT, reward-model training and PPO prompts. Pairs are built inside
``train`` and inside ``heldout`` separately, so no evaluation text reaches the reward model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agentic.training.corpus.pairs import REJECTION_KINDS, preference_pairs
from agentic.training.corpus.rundir import CorpusRun, timed, write_jsonl
from agentic.training.corpus.specs import Example, Limits, load_examples


@dataclass(frozen=True)
class PrepareSettings:
    corpus: str
    standin: bool = False
    seed: int = 0
    eval_size: int = 32
    heldout_size: int = 32
    train_size: int | None = None
    max_rows: int | None = None
    max_prompt_words: int = 128
    max_reference_words: int = 64
    rejection_kinds: tuple[str, ...] = REJECTION_KINDS
    dropout: float = 0.3


def split_by_group(examples: Sequence[Example], sizes: Sequence[int | None], seed: int) -> list[list[Example]]:
    """Parts of the given sizes (None: all that is left), made of whole groups in a seeded random order.

    A part takes groups until it has its size and is then cut to it; the examples cut off are
    dropped, never moved to a later part, so a group is never on two sides.
    """
    by_group: dict[str, list[Example]] = {}
    for example in examples:
        by_group.setdefault(example.group, []).append(example)
    groups = list(by_group)
    random.Random(seed).shuffle(groups)
    parts: list[list[Example]] = []
    queue = iter(groups)
    for size in sizes:
        part: list[Example] = []
        for group in queue:
            part.extend(by_group[group])
            if size is not None and len(part) >= size:
                break
        parts.append(part if size is None else part[:size])
    return parts


def prepare(run_dir: str | Path, settings: PrepareSettings) -> dict:
    """Write the three example parts and the train / held-out preference pairs to ``RUN/prepare``."""
    run = CorpusRun(run_dir)
    with timed({}) as summary:
        limits = Limits(settings.max_prompt_words, settings.max_reference_words)
        examples = load_examples(settings.corpus, standin=settings.standin, max_rows=settings.max_rows, limits=limits)
        sizes = (settings.eval_size, settings.heldout_size, settings.train_size)
        evaluation, heldout, train = split_by_group(examples, sizes, settings.seed)
        if not evaluation or not heldout or not train:
            raise ValueError(
                f"{settings.corpus} gave {len(examples)} examples: too few for eval {settings.eval_size} + held-out {settings.heldout_size} + a train part"
            )
        for name, part in (("eval", evaluation), ("heldout", heldout), ("train", train)):
            write_jsonl([asdict(example) for example in part], run.examples(name))
            summary[f"{name}_examples"] = len(part)
        for name, part, offset in (("train", train, 1), ("heldout", heldout, 2)):
            pairs = preference_pairs(
                part, settings.seed + offset, kinds=settings.rejection_kinds, dropout=settings.dropout
            )
            write_jsonl(pairs, run.pairs(name))
            summary[f"{name}_pairs"] = len(pairs)
    run.write("prepare", "config", settings)
    run.write("prepare", "summary", summary)
    return summary
