"""Interactive story writing on TinyStories (the paper's task A).

The agent writes a short story for a user whose wishes are hidden until asked: the
main character's name, a length range in words and a highest reading grade. Each
instance starts from a corpus story whose hero is introduced as "named <Name>"; the
constraints are chosen so that a sentence prefix of that story, with the hero renamed,
meets them all, so every instance is solvable. The score is constraint satisfaction:
the mean of "length", "character", "readability" and "prose" (a floor of 3+ sentences
and varied words, so that RL cannot game the checks with "Tom. Tom. Tom."); readability
counts for prose only, so that giving up ("I don't know.", simple enough for any grade)
scores 0; success needs all four.

The user simulator answers by topic: a question about the name ("name", "character",
"who"...), the length ("long", "words"...) or the reading grade ("grade", "read",
"simple"...) reveals that constraint; a question naming none reveals all three. The
tools (`agentic.tools.story`) judge a draft against a constraint only once it is revealed.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from typing import Any

from agentic import Score, Task, Turn, ask, finish, tool_call
from agentic.tasks.corpora import load_corpus, standin_path
from agentic.tools.story import (
    character_check,
    count_mentions,
    length_check,
    readability,
    reading_grade,
    reports_ok,
    split_sentences,
    words,
)

NAMES = (
    "Lily",
    "Tom",
    "Mia",
    "Ben",
    "Sue",
    "Max",
    "Anna",
    "Sam",
    "Tim",
    "Lucy",
    "Jack",
    "Emma",
    "Leo",
    "Zoe",
    "Kim",
    "Ned",
    "Ella",
    "Finn",
    "Ruby",
    "Ivy",
    "Noah",
    "Owen",
    "Pip",
    "Rosa",
)
LENGTH_RANGES = ((30, 50), (40, 60), (50, 70), (60, 80))
MAX_SAMPLING_ATTEMPTS = 1000

# What the user says about each topic, how the oracle reads it back, and which words in a question ask for it.
REPLIES = {
    "name": "The main character is {name}.",
    "length": "Use {min_words}-{max_words} words.",
    "grade": "Keep the reading grade at most {max_grade}.",
}
REPLY_PATTERNS = {
    "name": re.compile(r"main character is ([^\W\d_]+)"),
    "length": re.compile(r"Use (\d+)-(\d+) words"),
    "grade": re.compile(r"grade at most (\d+)"),
}
QUESTION_WORDS = {
    "name": re.compile(r"\b(?:name|character|who|hero|call)", re.IGNORECASE),
    "length": re.compile(r"\b(?:length|long|short|word|size)", re.IGNORECASE),
    "grade": re.compile(r"\b(?:grade|read|level|easy|simple|hard|age)", re.IGNORECASE),
}
TOPIC_PHRASES = {"name": "name", "length": "length", "grade": "reading grade"}
_HERO = re.compile(r"\bnamed ([A-Z][a-z]+)\b")


def find_hero(story: str) -> str | None:
    """The first character introduced as "named <Name>", as TinyStories does."""
    match = _HERO.search(story)
    return match.group(1) if match else None


def rename(story: str, old: str, new: str) -> str:
    return re.sub(rf"(?<!\w){re.escape(old)}(?!\w)", new, story)


def draft(story: str, max_words: int) -> str:
    """The longest opening of whole sentences with at most ``max_words`` words that leaves no quotation open
    (at least the first sentence)."""
    sentences = split_sentences(story)
    best, count, quotes = sentences[:1], 0, 0
    for end, sentence in enumerate(sentences, start=1):
        count += len(words(sentence))
        quotes += sentence.count('"') + sentence.count("“") + sentence.count("”")
        if count > max_words:
            break
        if quotes % 2 == 0:
            best = sentences[:end]
    return " ".join(best)


def is_prose(text: str) -> bool:
    """A floor against degenerate answers ("Tom. Tom. Tom."): 3+ sentences of 4+ words on average, 40%+ distinct words."""
    found = [w.casefold() for w in words(text)]
    sentences = split_sentences(text)
    return len(sentences) >= 3 and len(found) >= 4 * len(sentences) and len(set(found)) >= 0.4 * len(found)


class InteractiveStory(Task):
    """Write a short story that meets the user's name, length and reading-grade wishes."""

    name = "InteractiveStory"
    description = "ask the user what story they want, check drafts with the story tools, finish with the story"
    tools = (length_check, character_check, readability)
    allows_ask = True

    def __init__(self, corpus: str | None = None, split: str = "train", limit: int | None = None):
        """``corpus``: a hub id (e.g. "roneneldan/TinyStories") or a local file with a "text" field; default: the stand-in."""
        self.stories = load_corpus(corpus or standin_path("tinystories"), split=split, limit=limit)
        if "text" not in self.stories.column_names:
            raise ValueError(f"the story corpus needs a 'text' field; it has {self.stories.column_names}")
        if len(self.stories) == 0:
            raise ValueError("the story corpus is empty")

    def sample(self, rng: random.Random) -> dict[str, Any]:
        for _ in range(MAX_SAMPLING_ATTEMPTS):
            instance = self._instance(self.stories[rng.randrange(len(self.stories))]["text"], rng)
            if instance is not None:
                return instance
        raise ValueError(
            f"no usable story (a hero 'named <Name>', an opening of {LENGTH_RANGES[0][0]}+ words in 3+ sentences) "
            f"in {MAX_SAMPLING_ATTEMPTS} draws"
        )

    def _instance(self, text: Any, rng: random.Random) -> dict[str, Any] | None:
        """Constraints met by some renamed opening of ``text``, or None when the story cannot serve."""
        story = " ".join(str(text).split())
        hero = find_hero(story)
        names = [n for n in NAMES if count_mentions(story, n) == 0]
        if hero is None or not names:
            return None
        name = rng.choice(names)
        renamed = rename(story, hero, name)
        ranges = [(low, high) for low, high in LENGTH_RANGES if _solves(draft(renamed, high), low)]
        if not ranges:
            return None
        low, high = rng.choice(ranges)
        grade = reading_grade(draft(renamed, high))
        max_grade = max(1, math.ceil(grade)) + rng.randint(0, 1)
        return {"story": story, "hero": hero, "name": name, "min_words": low, "max_words": high, "max_grade": max_grade}

    def split_keys(self, instance: dict[str, Any]) -> tuple[str, ...]:
        """The corpus story: every instance made from it (another name, other constraints) stays on one side."""
        return (instance["story"],)

    def question(self, instance: dict[str, Any]) -> str:
        return (
            "Task: write a short story for the user. Ask what they want, check your draft, then finish with the story."
        )

    def initial_state(self, instance: dict[str, Any]) -> dict[str, Any]:
        return {"revealed": []}

    def user(self, instance: dict[str, Any], question: str, state: dict[str, Any]) -> str:
        topics = [t for t, pattern in QUESTION_WORDS.items() if pattern.search(question)] or list(REPLIES)
        state["revealed"] = sorted(set(state.get("revealed", [])) | set(topics))
        return " ".join(REPLIES[t].format(**instance) for t in topics)

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        text = answer or ""
        grade, prose = reading_grade(text), is_prose(text)
        parts = {
            "length": instance["min_words"] <= len(words(text)) <= instance["max_words"],
            "character": count_mentions(text, instance["name"]) > 0,
            "readability": prose and grade is not None and grade <= instance["max_grade"],
            "prose": prose,
        }
        breakdown = {k: float(v) for k, v in parts.items()}
        return Score(sum(breakdown.values()) / len(breakdown), breakdown, success=all(parts.values()))

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        """Ask until the user has told every wish, draft from the corpus story, run the three checks, finish."""
        wishes = _wishes(history)
        missing = [t for t in REPLIES if t not in wishes]
        if missing:
            return ask(f"What {_and([TOPIC_PHRASES[t] for t in missing])} should the story have?")
        (name,), (_, max_words) = wishes["name"], wishes["length"]
        text = draft(rename(instance["story"], instance["hero"], name), int(max_words))
        checks = [
            ("length_check", {"text": text}),
            ("character_check", {"text": text, "name": name}),
            ("readability", {"text": text}),
        ]
        results = {
            _call_key(t.action.tool, t.action.arguments): t.tool_result.text
            for t in history
            if t.tool_result is not None
        }
        for tool, arguments in checks:
            if _call_key(tool, arguments) not in results:
                return tool_call(tool, arguments)
        failed = [tool for tool, arguments in checks if not reports_ok(results[_call_key(tool, arguments)])]
        return finish(text, thought=f"Failed: {', '.join(failed)}. Best draft:" if failed else "All checks ok.")

    def match_arguments(self, tool: str, predicted: dict[str, Any], expected: dict[str, Any]) -> bool:
        """Any non-empty draft counts as the text (drafts differ); a character check must name the same character."""
        if not str(predicted.get("text", "")).strip():
            return False
        predicted_name = " ".join(str(predicted.get("name", "")).split())
        return tool != "character_check" or predicted_name.casefold() == expected["name"].casefold()


def _solves(opening: str, min_words: int) -> bool:
    """Whether an opening (already within the upper bound) meets the lower bound and reads as prose."""
    return len(words(opening)) >= min_words and is_prose(opening)


def _wishes(history: Sequence[Turn]) -> dict[str, Any]:
    """The constraints the user has stated so far, by topic, as the groups of `REPLY_PATTERNS` in the ``<user>`` replies."""
    found: dict[str, Any] = {}
    for turn in history:
        if turn.event != "ask":
            continue
        for topic, pattern in REPLY_PATTERNS.items():
            match = pattern.search(turn.observation)
            if match:
                found[topic] = match.groups()
    return found


def _call_key(tool: str | None, arguments: dict[str, Any]) -> str:
    return json.dumps([tool, arguments], sort_keys=True, ensure_ascii=False)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
