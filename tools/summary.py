"""Tools for grounded summarisation: find article sentences, check citations, measure coverage.

Text is compared as *content words*: ROUGE's tokenizer (lower-cased ASCII words, Porter
stems) without stop words, so "approved" matches "approves" and "the" matches nothing.
A summary sentence cites the article sentences it rests on as ``[n]`` (or ``[2, 5]``);
it is *grounded* when at least `SUPPORT_THRESHOLD` of its content words occur in the
cited sentences. *Coverage* is the fraction of the highlights' content words that the
summary contains. The task's score uses the same functions, so the tools tell the
agent exactly what the judge will measure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rank_bm25 import BM25Plus
from rouge_score.tokenizers import DefaultTokenizer

from agentic import tool

SUPPORT_THRESHOLD = 0.6
COVERAGE_TARGET = 0.6
MAX_QUERY_CHARS = 200
MAX_SUMMARY_CHARS = 1500
DEFAULT_K = 3
MAX_K = 8

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "into",
        "about",
        "after",
        "before",
        "over",
        "under",
        "than",
        "then",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
        "will",
        "would",
        "shall",
        "should",
        "can",
        "could",
        "may",
        "might",
        "must",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "he",
        "she",
        "they",
        "them",
        "his",
        "her",
        "their",
        "we",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "not",
        "no",
        "so",
        "also",
        "very",
        "just",
        "who",
        "whom",
        "which",
        "what",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "each",
        "more",
        "most",
        "some",
        "such",
    ]
)
_TOKENIZER = DefaultTokenizer(use_stemmer=True)
CITATION = re.compile(r"\[\s*(\d{1,4}(?:\s*,\s*\d{1,4})*)\s*\]")
_LEADING_CITATIONS = re.compile(r"^(?:\s*\[\s*\d{1,4}(?:\s*,\s*\d{1,4})*\s*\])+")
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)]*\s+")
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "jr",
        "sr",
        "prof",
        "gen",
        "gov",
        "sen",
        "rep",
        "col",
        "lt",
        "sgt",
        "capt",
        "no",
        "vs",
        "inc",
        "co",
        "ltd",
        "u.s",
        "u.k",
    ]
)


def content_words(text: str) -> list[str]:
    """Stemmed, lower-cased content words of ``text``; citation marks are not words."""
    return [w for w in _TOKENIZER.tokenize(CITATION.sub(" ", text)) if w not in STOP_WORDS]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after . ! ? unless an abbreviation ("Mr.") or a lower-case word follows.

    Citations written after the full stop ("... rose. [2] Then ...") stay with the sentence they close.
    """
    pieces, start = [], 0
    for end in _SENTENCE_END.finditer(text):
        word = text[text.rfind(" ", start, end.start()) + 1 : end.start()].lower().strip("\"'(")
        following = text[end.end() : end.end() + 1]
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()) or following.islower():
            continue
        pieces.append(text[start : end.end()])
        start = end.end()
    pieces.append(text[start:])
    sentences: list[str] = []
    for piece in pieces:
        leading = _LEADING_CITATIONS.match(piece)
        if leading and sentences:
            sentences[-1] = f"{sentences[-1].rstrip()} {leading.group().strip()}"
            piece = piece[leading.end() :]
        if any(c.isalnum() for c in piece):
            sentences.append(piece.strip())
    return sentences


def citations(sentence: str) -> list[int]:
    """The article sentence numbers cited in ``sentence``, in order, without repeats."""
    numbers = (int(n) for group in CITATION.findall(sentence) for n in group.split(","))
    return list(dict.fromkeys(numbers))


def word_count(summary: str) -> int:
    """Words of the summary: whitespace-separated pieces with a letter or digit, citation marks excluded."""
    return sum(any(c.isalnum() for c in piece) for piece in CITATION.sub(" ", summary).split())


@dataclass(frozen=True)
class Verdict:
    """How one summary sentence is grounded: what it cites and how much of it the citations support."""

    sentence: str
    cited: tuple[int, ...]
    support: float
    problem: str | None  # None when grounded

    @property
    def grounded(self) -> bool:
        return self.problem is None


def judge_citations(summary: str, article: Sequence[str]) -> list[Verdict]:
    """A verdict for every sentence of ``summary`` against the numbered ``article`` sentences (1-based)."""
    verdicts = []
    for sentence in split_sentences(summary):
        cited = tuple(citations(sentence))
        claim = set(content_words(sentence))
        missing = [n for n in cited if not 1 <= n <= len(article)]
        support = 0.0
        if not cited:
            problem = "no citation"
        elif missing:
            problem = f"no sentence [{missing[0]}]"
        elif not claim:
            problem = "nothing to ground"
        else:
            sources = {w for n in cited for w in content_words(article[n - 1])}
            support = len(claim & sources) / len(claim)
            problem = None if support >= SUPPORT_THRESHOLD else "not grounded"
        verdicts.append(Verdict(sentence, cited, support, problem))
    return verdicts


def coverage(summary: str, highlights: Sequence[str]) -> tuple[float, list[float]]:
    """Fraction of all highlight content words in the summary, and the same per highlight."""
    said = set(content_words(summary))
    points = [set(content_words(h)) for h in highlights]
    key_words = set().union(*points)
    overall = len(key_words & said) / len(key_words) if key_words else 0.0
    return overall, [len(p & said) / len(p) if p else 1.0 for p in points]


def _article(instance: dict[str, Any] | None) -> dict[str, Any]:
    if not instance or "sentences" not in instance:
        raise ValueError("no article: this tool works inside a GroundedSummary episode")
    return instance


def _bounded(text: str, what: str, limit: int) -> str:
    if not text.strip():
        raise ValueError(f"the {what} is empty")
    if len(text) > limit:
        raise ValueError(f"the {what} is longer than {limit} characters")
    return text


@tool
def retrieve(query: str, k: int = DEFAULT_K, *, instance: dict[str, Any]) -> str:
    """Find the article sentences most relevant to a query (BM25), best first, as "[n] sentence" lines.

    Args:
        query: A few key words, e.g. "council budget bridges".
        k: How many sentences to return, 1 to 8.
    """
    sentences = _article(instance)["sentences"]
    query_words = content_words(_bounded(query, "query", MAX_QUERY_CHARS))
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}")
    documents = [content_words(s) for s in sentences]
    matching = [i for i, words in enumerate(documents) if set(query_words) & set(words)]
    if not matching:
        return "no sentence matches the query"
    scores = BM25Plus(documents).get_scores(query_words)
    best = sorted(matching, key=lambda i: (-scores[i], i))[:k]
    return "\n".join(f"[{i + 1}] {sentences[i]}" for i in best)


@tool
def cite_check(summary: str, *, instance: dict[str, Any]) -> str:
    """Check that every summary sentence cites [n] article sentences that support it.

    Args:
        summary: The summary, each sentence ending with its citation, e.g. "Prices rose [2]."
    """
    verdicts = judge_citations(_bounded(summary, "summary", MAX_SUMMARY_CHARS), _article(instance)["sentences"])
    lines = []
    for number, v in enumerate(verdicts, 1):
        cited = "".join(f"[{n}]" for n in v.cited)
        if v.problem in (None, "not grounded"):
            lines.append(f"{number}. {'grounded' if v.grounded else 'not grounded'} {cited} ({v.support:.2f})")
        else:
            lines.append(f"{number}. {v.problem}")
    lines.append(f"grounded {sum(v.grounded for v in verdicts)}/{len(verdicts)}")
    return "\n".join(lines)


@tool
def coverage_check(summary: str, *, instance: dict[str, Any]) -> str:
    """Measure how much of the article's key points the summary covers.

    Args:
        summary: The summary to measure.
    """
    overall, points = coverage(_bounded(summary, "summary", MAX_SUMMARY_CHARS), _article(instance)["highlights"])
    per_point = " ".join(f"{p:.2f}" for p in points)
    return f"coverage {overall:.2f} (target {COVERAGE_TARGET:.2f}); points {per_point}"
