"""Grounded summarisation (the paper's task B): summarise a news article, citing its sentences.

The agent sees only the article's first sentence; it reads the rest with ``retrieve``,
writes a short summary whose every sentence ends with the numbers of the sentences
that support it ("... [2]."), may check it with ``cite_check`` and ``coverage_check``,
and finishes with it. The score is measured with the same functions the tools use:
coverage of the highlights' content words, the fraction of grounded sentences, and
a length within a word range. Ungrounded sentences earn nothing: coverage counts the
grounded sentences' words only and the length credit is scaled by the grounded fraction,
so a string of the article's words without citations scores 0, not a third.

The corpus is CNN/DailyMail (``abisee/cnn_dailymail``) or any local file with its fields;
by default the shipped synthetic stand-in ``tasks/data/cnn_dailymail_standin.jsonl``.
Real articles are long, so each is cut to its first ``max_sentences`` sentences.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from agentic import Score, Task, ToolResult, Turn, finish, tool_call
from agentic.tasks.corpora import load_corpus, standin_path
from agentic.tools.summary import (
    COVERAGE_TARGET,
    DEFAULT_K,
    MAX_K,
    STOP_WORDS,
    citations,
    cite_check,
    content_words,
    coverage,
    coverage_check,
    judge_citations,
    retrieve,
    split_sentences,
    word_count,
)

MAX_SENTENCE_CHARS = 200
FIRST_RETRIEVAL_K = 5
QUERY_WORDS_PER_POINT = 4
MAX_QUERY_WORDS = 12
MIN_NEW_KEY_WORDS = 2
WEIGHTS = {"coverage": 0.5, "grounded": 0.3, "length": 0.2}
_RETRIEVED_LINE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)
_REPORTED = {"cite_check": re.compile(r"grounded (\d+)/(\d+)"), "coverage_check": re.compile(r"coverage (\d+\.\d+)")}


class GroundedSummary(Task):
    """Summarise a news article in a few cited sentences that cover its highlights."""

    name = "GroundedSummary"
    description = "read a news article with retrieve, then finish with a short summary citing its sentences as [n]"
    tools = (retrieve, cite_check, coverage_check)

    def __init__(
        self,
        corpus: str | None = None,
        split: str = "train",
        config: str = "3.0.0",
        limit: int | None = None,
        max_sentences: int = 8,
        min_words: int = 10,
        max_words: int = 60,
    ):
        self.rows = load_corpus(corpus or standin_path("cnn_dailymail"), split=split, config=config, limit=limit)
        missing = {"article", "highlights"} - set(self.rows.column_names)
        if missing or len(self.rows) == 0:
            raise ValueError(
                f"a summarisation corpus needs rows with 'article' and 'highlights'; got columns {self.rows.column_names}"
            )
        self.max_sentences = max_sentences
        self.min_words, self.max_words = min_words, max_words

    def sample(self, rng: random.Random) -> dict[str, Any]:
        start = rng.randrange(len(self.rows))
        for offset in range(len(self.rows)):
            index = (start + offset) % len(self.rows)
            instance = self._instance(index, self.rows[index])
            if instance is not None:
                return instance
        raise ValueError("no row of the corpus has both an article of two sentences or more and highlights")

    def _instance(self, index: int, row: dict[str, Any]) -> dict[str, Any] | None:
        sentences = [_compact(s) for s in split_sentences(row["article"] or "")[: self.max_sentences]]
        highlights = [h.strip() for h in (row["highlights"] or "").splitlines() if content_words(h)]
        if len(sentences) < 2 or not highlights:
            return None
        return {"id": str(row.get("id") or index), "sentences": sentences, "highlights": highlights}

    def split_keys(self, instance: dict[str, Any]) -> tuple[str, ...]:
        """The article (its sentences), whatever the row's id."""
        return (" ".join(instance["sentences"]),)

    def instructions(self, instance: dict[str, Any]) -> str:
        return (
            f"{self.tool_manual()}\n"
            f"Task: summarise the article in {self.min_words}-{self.max_words} words; end each sentence with its source, like [2]."
        )

    def question(self, instance: dict[str, Any]) -> str:
        return f"The article has {len(instance['sentences'])} sentences. [1] {instance['sentences'][0]}"

    def user(self, instance: dict[str, Any], question: str, state: dict[str, Any]) -> str:
        return f"Use retrieve to read the article, then write {self.min_words}-{self.max_words} words citing sentences like [2]."

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        if answer is None or not answer.strip():
            return Score(0.0, dict.fromkeys(WEIGHTS, 0.0), success=False)
        verdicts = judge_citations(answer, instance["sentences"])
        grounded = sum(v.grounded for v in verdicts) / len(verdicts) if verdicts else 0.0
        covered, _ = coverage(" ".join(v.sentence for v in verdicts if v.grounded), instance["highlights"])
        words = word_count(answer)
        length_ok = self.min_words <= words <= self.max_words
        length = 1.0 if length_ok else min(words / self.min_words, self.max_words / max(words, 1))
        breakdown = {"coverage": covered, "grounded": grounded, "length": length * grounded}
        total = sum(WEIGHTS[k] * v for k, v in breakdown.items())
        return Score(total, breakdown, success=covered >= COVERAGE_TARGET and grounded == 1.0 and length_ok)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        """Retrieve with the key points' words, draft from what came back, check it, then finish.

        An empty draft or a failed check (an ungrounded sentence, coverage under target) asks for
        all `MAX_K` sentences when the last retrieval may have been cut short, else finishes as is.
        """
        results = [t.tool_result for t in history if t.tool_result is not None and t.tool_result.ok]
        retrievals = [r for r in results if r.tool == "retrieve"]
        if not retrievals:
            return tool_call("retrieve", {"query": key_word_query(instance["highlights"]), "k": FIRST_RETRIEVAL_K})
        summary = self._draft(instance, retrievals)
        last = results[-1]
        if not summary or (last.tool != "retrieve" and not _check_passed(last)):
            asked = retrievals[-1].arguments.get("k", DEFAULT_K)
            if asked < MAX_K and len(_RETRIEVED_LINE.findall(retrievals[-1].text)) == asked:
                return tool_call("retrieve", {"query": key_word_query(instance["highlights"]), "k": MAX_K})
            return finish(summary)
        if last.tool == "retrieve":
            return tool_call("cite_check", {"summary": summary})
        if last.tool == "cite_check":
            return tool_call("coverage_check", {"summary": summary})
        return finish(summary)

    def _draft(self, instance: dict[str, Any], retrievals: Sequence[ToolResult]) -> str:
        """Retrieved sentences, chosen greedily by how many uncovered highlight words each adds, in article order."""
        retrieved = {int(n): text for r in retrievals for n, text in _RETRIEVED_LINE.findall(r.text)}
        key_words = set(content_words(" ".join(instance["highlights"])))
        chosen: dict[int, str] = {}
        while True:
            covered = set(content_words(" ".join(chosen.values())))
            gains = {
                n: len((set(content_words(s)) & key_words) - covered) for n, s in retrieved.items() if n not in chosen
            }
            fitting = {
                n: g for n, g in gains.items() if word_count(_cited(chosen | {n: retrieved[n]})) <= self.max_words
            }
            if not fitting or max(fitting.values()) < MIN_NEW_KEY_WORDS:
                return _cited(chosen)
            best = max(fitting, key=lambda n: (fitting[n], -n))
            chosen[best] = retrieved[best]

    def match_arguments(self, tool: str, predicted: dict[str, Any], expected: dict[str, Any]) -> bool:
        """Queries match when their content words overlap by half (Jaccard; k is ignored); summaries
        when their content words overlap by 80% and, for cite_check, they cite the same sentences."""
        if tool == "retrieve":
            return _jaccard(predicted.get("query"), expected.get("query")) >= 0.5
        same_words = _jaccard(predicted.get("summary"), expected.get("summary")) >= 0.8
        if tool == "cite_check":
            return same_words and set(citations(str(predicted.get("summary")))) == set(
                citations(str(expected.get("summary")))
            )
        return same_words


def key_word_query(highlights: Sequence[str]) -> str:
    """The first few content words of each highlight, as written: a retrieval query for the key points."""
    query: list[str] = []
    for point in highlights:
        words = [w for w in re.findall(r"[A-Za-z0-9]+", point) if w.lower() not in STOP_WORDS and w not in query]
        query += words[:QUERY_WORDS_PER_POINT]
    return " ".join(query[:MAX_QUERY_WORDS])


def _cited(sentences: dict[int, str]) -> str:
    """Sentences in article order, each ending with its citation: "Text [n]." """
    return " ".join(f"{sentences[n].rstrip(' .')} [{n}]." for n in sorted(sentences))


def _check_passed(result: ToolResult) -> bool:
    reported = _REPORTED[result.tool].search(result.text)
    if reported is None:
        return False
    if result.tool == "cite_check":
        return reported.group(1) == reported.group(2)
    return float(reported.group(1)) >= COVERAGE_TARGET


def _compact(sentence: str) -> str:
    """One line of at most about `MAX_SENTENCE_CHARS` characters, so tool outputs stay short and line-based."""
    sentence = " ".join(sentence.split())
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    return sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + " …"


def _jaccard(a: Any, b: Any) -> float:
    left, right = set(content_words(str(a or ""))), set(content_words(str(b or "")))
    return len(left & right) / len(left | right) if left | right else 1.0
