"""The corpora of the single-turn pipeline and how each becomes (prompt, reference) examples.

- ``tinystories``: prompt = the story's opening sentences, reference = the rest of the story;
- ``cnn_dailymail``: prompt = the article (first words) and a ``Summary:`` cue, reference = the highlights;
- ``wikitext103``: prompt = a paragraph's first sentences, reference = its continuation;
- ``chat``: chat prompts (`agentic.training.corpus.chat`), prompt = a user message, no reference;
- a local file or a hub id: rows with ``prompt``/``reference``, ``article``/``highlights`` or ``text`` columns, or
  chat prompts (a ``messages`` column, or ``prompt`` without ``reference``).

Each named corpus reads its hub id for real runs, or with ``standin=True`` the small stand-in
shipped in ``tasks/data/`` (offline runs and tests). Every example carries a ``group`` (story,
article, Wikipedia page): the train/eval split is made by group, so two paragraphs of one page
never land on both sides.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets

from agentic.tasks.corpora import load_corpus, standin_path
from agentic.training.corpus.chat import CHAT_PROMPTS_HUB, chat_prompts, is_chat_prompts
from agentic.training.corpus.options import CORPUS_NAMES, LOCAL_SUFFIXES

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class Example:
    """One prompt and the text a good model would continue it with (it starts with a space)."""

    prompt: str
    reference: str
    group: str

    @property
    def has_reference(self) -> bool:
        """False for a chat prompt: nothing to fine-tune on or compare with, only a reward model's judgement."""
        return bool(self.reference)


@dataclass(frozen=True)
class Limits:
    """Word caps that keep prompts and references short enough for small models' contexts."""

    max_prompt_words: int = 128
    max_reference_words: int = 64


RowsToExamples = Callable[[datasets.Dataset, Limits], Iterator[Example]]


@dataclass(frozen=True)
class CorpusSpec:
    """Where a named corpus lives on the hub and how its rows become examples."""

    hub_id: str
    hub_config: str | None
    to_examples: RowsToExamples
    hub_split: str = "train"


def words(text: str) -> list[str]:
    return text.split()


def continuation(text: str, limits: Limits) -> tuple[str, str] | None:
    """Split ``text`` after its first third of sentences (at least one); None for a single sentence.

    A long opening keeps its last ``max_prompt_words`` words, so the reference still continues it.
    """
    sentences = _SENTENCE_END.split(text.strip())
    if len(sentences) < 2:
        return None
    cut = math.ceil(len(sentences) / 3)
    prompt = words(" ".join(sentences[:cut]))[-limits.max_prompt_words :]
    reference = words(" ".join(sentences[cut:]))[: limits.max_reference_words]
    return " ".join(prompt), " " + " ".join(reference)


def _stories(rows: datasets.Dataset, limits: Limits) -> Iterator[Example]:
    for index, row in enumerate(rows):
        split = continuation(row["text"], limits)
        if split:
            yield Example(*split, group=f"story-{index}")


def _articles(rows: datasets.Dataset, limits: Limits) -> Iterator[Example]:
    for index, row in enumerate(rows):
        article = " ".join(words(row["article"])[: limits.max_prompt_words])
        highlights = " ".join(words(row["highlights"])[: limits.max_reference_words])
        yield Example(f"{article}\nSummary:", " " + highlights, group=str(row.get("id", f"article-{index}")))


def _wikitext(rows: datasets.Dataset, limits: Limits) -> Iterator[Example]:
    """Wikitext rows are lines: ``= Title =`` opens a page, ``= = Section = =`` a section, other lines are paragraphs."""
    page = -1
    for row in rows:
        line = row["text"].strip()
        if line.startswith("=") and line.endswith("="):
            page += not line.startswith("= =")
            continue
        split = continuation(row["text"], limits)
        if split:
            yield Example(*split, group=f"page-{page}")


def _chat(rows: datasets.Dataset, limits: Limits) -> Iterator[Example]:
    for prompt in chat_prompts(rows):
        yield Example(" ".join(words(prompt)[: limits.max_prompt_words]), "", group=prompt)


def _by_columns(rows: datasets.Dataset, limits: Limits) -> Iterator[Example]:
    columns = set(rows.column_names)
    if is_chat_prompts(columns):
        yield from _chat(rows, limits)
    elif {"prompt", "reference"} <= columns:
        for index, row in enumerate(rows):
            yield Example(row["prompt"], " " + " ".join(words(row["reference"])), group=f"row-{index}")
    elif {"article", "highlights"} <= columns:
        yield from _articles(rows, limits)
    elif "text" in columns:
        yield from _stories(rows, limits)
    else:
        raise ValueError(
            "a corpus file or hub dataset needs prompt/reference, article/highlights, text or chat prompt/messages "
            f"columns, got {sorted(columns)}"
        )


CORPORA = dict(
    zip(
        CORPUS_NAMES,
        (
            CorpusSpec("roneneldan/TinyStories", None, _stories),
            CorpusSpec("abisee/cnn_dailymail", "3.0.0", _articles),
            CorpusSpec("Salesforce/wikitext", "wikitext-103-raw-v1", _wikitext),
            CorpusSpec(CHAT_PROMPTS_HUB[0], None, _chat, hub_split=CHAT_PROMPTS_HUB[1]),
        ),
        strict=True,
    )
)


def load_examples(corpus: str, *, standin: bool = False, max_rows: int = 0, limits: Limits = Limits()) -> list[Example]:
    """The examples of a named corpus (hub, or its stand-in), of a local file or of a hub dataset (its ``train``
    split), in source order, deduplicated; ``max_rows`` 0 reads every row.

    A prompt or reference seen before drops the later example, so no text can be on both
    sides of a split by appearing twice in the source.
    """
    if corpus in CORPORA:
        spec = CORPORA[corpus]
        source, config = (standin_path(corpus), None) if standin else (spec.hub_id, spec.hub_config)
        split = "train" if standin else spec.hub_split
        rows = load_corpus(source, split=split, config=config, limit=max_rows or None)
        to_examples = spec.to_examples
    elif Path(corpus).suffix in LOCAL_SUFFIXES or "/" in corpus:
        rows = load_corpus(corpus, limit=max_rows or None)
        to_examples = _by_columns
    else:
        raise ValueError(f"unknown corpus {corpus!r}: use one of {sorted(CORPORA)}, a local file or a hub id")
    seen: set[str] = set()
    examples = []
    for example in to_examples(rows, limits):
        if example.prompt not in seen and (not example.has_reference or example.reference not in seen):
            seen.update((example.prompt, example.reference) if example.has_reference else (example.prompt,))
            examples.append(example)
    return examples
