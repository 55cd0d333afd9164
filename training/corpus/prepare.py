"""Stage 1: split a corpus into eval / held-out / train parts FIRST, then build preference pairs per part.

The split is by group (story, article, page), seeded and deterministic. ``eval`` prompts and
references are used only by the evaluation; ``heldout`` measures the reward model's pairwise
accuracy; ``train`` feeds SFT, reward-model training and PPO prompts. Pairs are built inside
``train`` and inside ``heldout`` separately, so no evaluation text reaches the reward model.

With a preference dataset (``preferences``, e.g. for chat prompts, which have no reference to build pairs from) the
corpus is split into eval and train only, and the pairs, less any whose prompt is an evaluation prompt, into
held-out and train by prompt (`agentic.training.corpus.chat`). The summary records whether the pairs are
conversational (the reward model then reads chats) and whether the corpus has references (SFT needs them).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agentic.run_dir import Panel, RunDir, plot_title, timed, write_jsonl
from agentic.training.corpus import chat
from agentic.training.corpus.options import PrepareOptions
from agentic.training.corpus.pairs import preference_pairs
from agentic.training.corpus.specs import Example, Limits, load_examples

Item = TypeVar("Item")


def examples_file(run_dir: str | Path, part: str) -> Path:
    """``train``, ``heldout`` or ``eval`` examples (prompt, reference, group) of a run."""
    return Path(run_dir) / "prepare" / f"{part}.jsonl"


def pairs_file(run_dir: str | Path, part: str) -> Path:
    """``train`` or ``heldout`` preference pairs (prompt, chosen, rejected, kind) of a run."""
    return Path(run_dir) / "prepare" / f"pairs_{part}.jsonl"


def split_by_group(
    examples: Sequence[Item], sizes: Sequence[int], seed: int, group: Callable[[Item], str] = lambda e: e.group
) -> list[list[Item]]:
    """Parts of the given sizes (0: all that is left), made of whole groups in a seeded random order.

    A part takes groups until it has its size and is then cut to it; the examples cut off are
    dropped, never moved to a later part, so a group is never on two sides.
    """
    by_group: dict[str, list[Item]] = {}
    for example in examples:
        by_group.setdefault(group(example), []).append(example)
    groups = list(by_group)
    random.Random(seed).shuffle(groups)
    parts: list[list[Item]] = []
    queue = iter(groups)
    for size in sizes:
        part: list[Item] = []
        for group in queue:
            part.extend(by_group[group])
            if size and len(part) >= size:
                break
        parts.append(part[:size] if size else part)
    return parts


def given_pairs(options: PrepareOptions, evaluation: Sequence[Example]) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """The preference dataset's pairs split into ``heldout`` (``heldout_size`` pairs) and ``train`` by prompt, after
    leaving out every pair whose prompt is an evaluation prompt; and what the summary records of them."""
    rows = chat.preference_rows(options.preferences, standin=options.standin)
    pairs, conversational = chat.preference_pairs(rows)
    evaluation_prompts = {example.prompt.strip() for example in evaluation}
    kept = [pair for pair in pairs if pair["prompt"].strip() not in evaluation_prompts]
    heldout, train = split_by_group(kept, (options.heldout_size, 0), options.seed, group=lambda pair: pair["group"])
    if not heldout or not train:
        raise ValueError(
            f"{options.preferences} gave {len(kept)} usable pairs: too few for a held-out and a train part"
        )
    return {"train": train, "heldout": heldout}, {
        "preferences": options.preferences,
        "conversational": conversational,
        "pairs_dropped_for_eval_prompts": len(pairs) - len(kept),
    }


def built_pairs(
    options: PrepareOptions, heldout: Sequence[Example], train: Sequence[Example]
) -> dict[str, list[dict[str, str]]]:
    """Pairs built inside the train part and inside the held-out part (`preference_pairs`)."""
    if not train[0].has_reference:
        raise ValueError(f"{options.corpus} has prompts only: give the reward model's pairs as --preferences")
    return {
        name: preference_pairs(part, options.seed + offset, kinds=options.kinds, dropout=options.word_dropout)
        for name, part, offset in (("train", train, 1), ("heldout", heldout, 2))
    }


def prepare(run_dir: str | Path, options: PrepareOptions) -> dict:
    """Write the example parts and the train / held-out preference pairs to ``RUN/prepare``."""
    stage = RunDir(run_dir).stage("prepare")
    with timed({}) as summary:
        limits = Limits(options.max_prompt_words, options.max_reference_words)
        examples = load_examples(options.corpus, standin=options.standin, max_rows=options.max_rows, limits=limits)
        if options.preferences:  # no held-out examples: the held-out pairs come from the preference dataset
            evaluation, train = split_by_group(examples, (options.eval_size, options.train_size), options.seed)
            heldout: list[Example] = []
        else:
            sizes = (options.eval_size, options.heldout_size, options.train_size)
            evaluation, heldout, train = split_by_group(examples, sizes, options.seed)
        if not evaluation or not train or not (heldout or options.preferences):
            raise ValueError(
                f"{options.corpus} gave {len(examples)} examples: too few for eval {options.eval_size} + held-out {options.heldout_size} + a train part"
            )
        for name, part in (("eval", evaluation), ("heldout", heldout), ("train", train)):
            write_jsonl(part, examples_file(run_dir, name))
            summary[f"{name}_examples"] = len(part)
        summary["references"] = train[0].has_reference
        if options.preferences:
            pairs, given = given_pairs(options, evaluation)
            summary |= given
        else:
            pairs, summary["conversational"] = built_pairs(options, heldout, train), False
        for name, part_pairs in pairs.items():
            write_jsonl(part_pairs, pairs_file(run_dir, name))
            summary[f"{name}_pairs"] = len(part_pairs)
    stage.write_config(options)
    stage.write_json("summary.json", summary)
    return summary


def plot_trainer_log(run_dir: str | Path, stage: str, trainer: Any, algorithm: str, model: str, *panels: Panel) -> None:
    """``RUN/<stage>/plots/training.png``: a TRL ``trainer``'s logged curves, titled with the ``algorithm``, the
    corpus the run was prepared from, and the ``model`` it started from."""
    corpus = RunDir(run_dir).stage("prepare").read_json("config.json")["corpus"]
    title = plot_title(algorithm, corpus, model)
    RunDir(run_dir).stage(stage).plot(panels, records=trainer.state.log_history, title=title)
