"""Stage 1: split a corpus into eval / held-out / train parts FIRST, then build preference pairs per part.

The split is by group (story, article, page), seeded and deterministic. ``eval`` prompts and
references are used only by the evaluation; ``heldout`` measures the reward model's pairwise
accuracy; ``train`` feeds SFT, reward-model training and PPO prompts. Pairs are built inside
``train`` and inside ``heldout`` separately, so no evaluation text reaches the reward model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from agentic.run_dir import RunDir, timed, write_jsonl
from agentic.training.corpus.options import PrepareOptions
from agentic.training.corpus.pairs import preference_pairs
from agentic.training.corpus.specs import Example, Limits, load_examples


def examples_file(run_dir: str | Path, part: str) -> Path:
    """``train``, ``heldout`` or ``eval`` examples (prompt, reference, group) of a run."""
    return Path(run_dir) / "prepare" / f"{part}.jsonl"


def pairs_file(run_dir: str | Path, part: str) -> Path:
    """``train`` or ``heldout`` preference pairs (prompt, chosen, rejected, kind) of a run."""
    return Path(run_dir) / "prepare" / f"pairs_{part}.jsonl"


def split_by_group(examples: Sequence[Example], sizes: Sequence[int], seed: int) -> list[list[Example]]:
    """Parts of the given sizes (0: all that is left), made of whole groups in a seeded random order.

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
            if size and len(part) >= size:
                break
        parts.append(part[:size] if size else part)
    return parts


def prepare(run_dir: str | Path, options: PrepareOptions) -> dict:
    """Write the three example parts and the train / held-out preference pairs to ``RUN/prepare``."""
    stage = RunDir(run_dir).stage("prepare")
    with timed({}) as summary:
        limits = Limits(options.max_prompt_words, options.max_reference_words)
        examples = load_examples(options.corpus, standin=options.standin, max_rows=options.max_rows, limits=limits)
        sizes = (options.eval_size, options.heldout_size, options.train_size)
        evaluation, heldout, train = split_by_group(examples, sizes, options.seed)
        if not evaluation or not heldout or not train:
            raise ValueError(
                f"{options.corpus} gave {len(examples)} examples: too few for eval {options.eval_size} + held-out {options.heldout_size} + a train part"
            )
        for name, part in (("eval", evaluation), ("heldout", heldout), ("train", train)):
            write_jsonl(part, examples_file(run_dir, name))
            summary[f"{name}_examples"] = len(part)
        for name, part, offset in (("train", train, 1), ("heldout", heldout, 2)):
            pairs = preference_pairs(part, options.seed + offset, kinds=options.kinds, dropout=options.word_dropout)
            write_jsonl(pairs, pairs_file(run_dir, name))
            summary[f"{name}_pairs"] = len(pairs)
    stage.write_config(options)
    stage.write_json("summary.json", summary)
    return summary
