"""Story checks for the interactive story task: word count, a character's name, reading grade.

The measures (`words`, `split_sentences`, `count_mentions`, `reading_grade`) are
plain functions the task's score uses too, so a tool never disagrees with the judge.
The tools compare a draft with the user's constraints (from the injected ``instance``)
only once the user has revealed them (the topics listed in ``state["revealed"]``);
before that they report the measure alone and say what to ask. Called without an
environment they report the measure alone.
"""

from __future__ import annotations

import re
from typing import Any

from agentic import tool

MAX_TEXT_CHARS = 4000
MAX_NAME_CHARS = 40

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+[\"”’']?|$)")
_VOWEL_GROUP = re.compile(r"[aeiouyàáâäèéêëìíîïòóôöùúûü]+")


def words(text: str) -> list[str]:
    """Words: runs of letters or digits, with inner apostrophes and hyphens ("don't", "well-known")."""
    return _WORD.findall(text)


def split_sentences(text: str) -> list[str]:
    """Sentences ending at . ! or ? (and a closing quote); a final unterminated one counts too."""
    return [s.strip() for s in _SENTENCE.findall(text) if _WORD.search(s)]


def count_mentions(text: str, name: str) -> int:
    """How often ``name`` occurs as a whole word or phrase, ignoring case and spacing."""
    words = name.split()
    if not words:
        return 0
    pattern = r"\s+".join(re.escape(w) for w in words)
    return len(re.findall(rf"(?<!\w){pattern}(?!\w)", text, flags=re.IGNORECASE))


def reading_grade(text: str) -> float | None:
    """Flesch-Kincaid grade level, at least 0, one decimal; None for text without words.

    Syllables are vowel groups, less a silent final "e" (a common approximation).
    """
    found = words(text)
    if not found:
        return None
    sentences = max(1, len(split_sentences(text)))
    syllables = sum(_syllables(w) for w in found)
    grade = 0.39 * len(found) / sentences + 11.8 * syllables / len(found) - 15.59
    return round(max(0.0, grade), 1)


def _syllables(word: str) -> int:
    word = word.casefold()
    count = len(_VOWEL_GROUP.findall(word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(1, count)


def reports_ok(result: str) -> bool:
    """Whether a check's output says the draft meets the user's constraint ("words=52 ok (40-60)")."""
    return re.search(r"=\S+ ok(?: |$)", result) is not None


def _revealed(instance: Any, state: Any, topic: str) -> bool:
    return isinstance(instance, dict) and isinstance(state, dict) and topic in state.get("revealed", ())


def _bounded(text: str) -> str:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text is longer than {MAX_TEXT_CHARS} characters")
    return text


@tool
def length_check(text: str, instance: Any = None, state: Any = None) -> str:
    """Count the words of a draft and compare them with the user's length range.

    Args:
        text: The draft story.
    """
    count = len(words(_bounded(text)))
    if not _revealed(instance, state, "length"):
        return f"words={count} (ask the user for the length)"
    low, high = instance["min_words"], instance["max_words"]
    verdict = "ok" if low <= count <= high else "too short" if count < low else "too long"
    return f"words={count} {verdict} ({low}-{high})"


@tool
def character_check(text: str, name: str, instance: Any = None, state: Any = None) -> str:
    """Count how often a character's name appears in a draft.

    Args:
        text: The draft story.
        name: The character's name, e.g. "Lily".
    """
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME_CHARS:
        raise ValueError(f"name must have 1 to {MAX_NAME_CHARS} characters")
    mentions = count_mentions(_bounded(text), name)
    if not _revealed(instance, state, "name"):
        return f"{name}={mentions} (ask the user for the name)"
    wanted = instance["name"]
    if mentions == 0:
        return f"{name}=0 missing"
    if name.casefold() != wanted.casefold():
        return f"{name}={mentions} not the name asked for ({wanted})"
    return f"{name}={mentions} ok"


@tool
def readability(text: str, instance: Any = None, state: Any = None) -> str:
    """Reading grade (Flesch-Kincaid) of a draft, compared with the user's limit.

    Args:
        text: The draft story.
    """
    grade = reading_grade(_bounded(text))
    if grade is None:
        return "grade=none (no words)"
    if not _revealed(instance, state, "grade"):
        return f"grade={grade} (ask the user for the grade)"
    limit = instance["max_grade"]
    return f"grade={grade} {'ok' if grade <= limit else 'too hard'} (max {limit})"
