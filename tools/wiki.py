"""Wikipedia tools for task C: passage search (BM25), fact lookup and fact checking.

A `Wiki` is built from Wikitext-103 lines (``" = Title = "`` starts an article,
``" = = Section = = "`` a section, other lines are paragraphs). Each paragraph becomes a
searchable passage, and a few simple sentence patterns ("was founded in 1871", "has a
population of 12 @,@ 400", "born on 4 May 1902") become a fact table keyed by article
title. The patterns are written for real Wikitext; on it they find fewer facts than on
the shipped stand-in, which is fine.

The tools reach the corpus through the injected environment: ``env.task.wiki``.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi

from agentic import tool
from agentic.tools.calculator import format_number

_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+)"
_DATE_BEFORE_YEAR = r"(?:on |in )?(?:\d{1,2} )?(?:[A-Z][a-z]+ )?(?:\d{1,2} , )?"
FACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "founded": re.compile(r"\b(?:founded|established) in (\d{3,4})\b"),
    "born": re.compile(rf"\bborn {_DATE_BEFORE_YEAR}(\d{{4}})\b"),
    "died": re.compile(rf"\bdied {_DATE_BEFORE_YEAR}(\d{{4}})\b"),
    "opened": re.compile(r"\bopened in (\d{4})\b"),
    "population": re.compile(rf"\bpopulation of (?:about |approximately |around )?{_NUMBER}\b"),
    "elevation": re.compile(rf"\belevation of {_NUMBER} (?:metres|meters|m)\b"),
    "length": re.compile(rf"\blength of {_NUMBER} (?:kilometres|kilometers|km)\b"),
}
HEADING = re.compile(r"^(=(?: =)*) (.+?) \1$")
WIKITEXT_SEPARATOR = re.compile(r" @([,.\-])@ ")
WORD = re.compile(r"\w+")

SEARCH_RESULTS = 3
MAX_QUERY_WORDS = 32
MAX_NAME_CHARS = 200
SNIPPET_CHARS = 120


def detokenize(line: str) -> str:
    """Undo Wikitext's number and hyphen tokenization (``12 @,@ 400`` -> ``12,400``) and trim."""
    return WIKITEXT_SEPARATOR.sub(r"\1", line).strip()


def extract_facts(text: str) -> dict[str, int]:
    """The first value of each fact pattern found in an article's (detokenized) text."""
    facts = {}
    for attribute, pattern in FACT_PATTERNS.items():
        match = pattern.search(text)
        if match:
            facts[attribute] = int(match.group(1).replace(",", ""))
    return facts


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


class Wiki:
    """Passages with a BM25 index, and the fact table extracted from them."""

    def __init__(self, passages: list[Passage], facts: dict[str, dict[str, int]]):
        if not passages:
            raise ValueError("the corpus has no Wikitext paragraphs under a ' = Title = ' line")
        self.passages = passages
        self.facts = facts
        self._titles = {_key(title): title for title in facts}
        self._index = BM25Okapi([_words(f"{p.title} {p.text}") for p in passages])

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Wiki:
        """Read Wikitext-103 rows. A title seen again adds paragraphs to the same entity; each attribute takes its first match."""
        passages: list[Passage] = []
        texts: dict[str, list[str]] = {}
        title = None
        for raw in lines:
            line = raw.strip()
            heading = HEADING.match(line)
            if heading and heading.group(1) == "=":
                title = detokenize(heading.group(2))
                texts.setdefault(title, [])
            elif title is not None and line and not heading:
                passages.append(Passage(title, detokenize(line)))
                texts[title].append(passages[-1].text)
        facts = {t: found for t, paragraphs in texts.items() if (found := extract_facts(" ".join(paragraphs)))}
        return cls(passages, facts)

    def search(self, query: str, k: int = SEARCH_RESULTS) -> list[Passage]:
        """The ``k`` passages BM25 ranks highest for ``query``, only those sharing a word with it."""
        words = _words(query)[:MAX_QUERY_WORDS]
        if not words:
            return []
        ranked = np.argsort(-self._index.get_scores(words), kind="stable")
        shared = (i for i in ranked if any(w in self._index.doc_freqs[i] for w in words))
        return [self.passages[i] for i in itertools.islice(shared, k)]

    def entity(self, name: str) -> str | None:
        """The article title ``name`` refers to, ignoring case and spacing."""
        return self._titles.get(_key(name))

    def close_matches(self, name: str) -> list[str]:
        keys = difflib.get_close_matches(_key(name), list(self._titles), n=3, cutoff=0.6)
        return [self._titles[k] for k in keys]

    def why_unknown(self, entity: str, attribute: str) -> str | None:
        """Why ``entity``/``attribute`` is not in the fact table, or None when it is."""
        name = " ".join(entity.split())
        if not name:
            return "error: the entity name is empty"
        if len(name) > MAX_NAME_CHARS:
            return f"error: the entity name is longer than {MAX_NAME_CHARS} characters"
        title = self.entity(name)
        if title is None:
            close = self.close_matches(name)
            return f"unknown entity {name!r}" + (f"; close matches: {', '.join(close)}" if close else "")
        if _key(attribute) not in FACT_PATTERNS:
            return f"unknown attribute; use one of: {', '.join(FACT_PATTERNS)}"
        if _key(attribute) not in self.facts[title]:
            return f"no {_key(attribute)} for {title}; known: {', '.join(self.facts[title])}"
        return None

    def fact(self, entity: str, attribute: str) -> int:
        return self.facts[self.entity(entity)][_key(attribute)]


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def _snippet(passage: Passage, query: str) -> str:
    """The passage's sentence sharing most words with the query, cut to `SNIPPET_CHARS`."""
    words = set(_words(query))
    sentences = [s.strip() for s in passage.text.split(" . ") if s.strip()]
    best = max(sentences, key=lambda s: len(words & set(_words(s))))
    return best if len(best) <= SNIPPET_CHARS else best[: SNIPPET_CHARS - 1] + "…"


def wiki_of(env: Any) -> Wiki:
    """The corpus of the environment's task; tools fail clearly outside such a task."""
    wiki = getattr(getattr(env, "task", None), "wiki", None)
    if not isinstance(wiki, Wiki):
        raise RuntimeError("this tool needs a task with a Wikitext corpus (`task.wiki`), such as MultiHopKnowledge")
    return wiki


@tool
def search_passage(query: str, env: Any) -> str:
    """Search Wikipedia passages; returns up to 3 lines "Title: best sentence".

    Args:
        query: Words to look for, e.g. an entity name and an attribute.
    """
    found = wiki_of(env).search(query)
    if not found:
        return "no passage matches"
    return "\n".join(f"{p.title}: {_snippet(p, query)}" for p in found)


@tool
def entity_lookup(entity: str, attribute: str, env: Any) -> str:
    """A number about an article's subject: founded, born, died, opened, population, elevation or length.

    Args:
        entity: The article title, e.g. "Keackstead".
        attribute: One of founded, born, died, opened, population, elevation (metres), length (kilometres).
    """
    wiki = wiki_of(env)
    return wiki.why_unknown(entity, attribute) or format_number(wiki.fact(entity, attribute))


@tool
def verify_fact(entity: str, attribute: str, value: float, env: Any) -> str:
    """Check a fact; returns "true" or "false".

    Args:
        entity: The article title.
        attribute: The attribute name, as for entity_lookup.
        value: The value to check.
    """
    wiki = wiki_of(env)
    problem = wiki.why_unknown(entity, attribute)
    if problem:
        return problem
    return "true" if math.isfinite(value) and wiki.fact(entity, attribute) == value else "false"
