"""Writes `tinystories_standin.jsonl`: short TinyStories-like stories made from templates.

A stand-in for ``roneneldan/TinyStories`` (the hub is unreachable here). Each story has
one hero introduced as "named <Name>", a friend, a thing and a place, told in simple
sentences of 50-100 words. Run ``python -m agentic.tasks.data.make_tinystories_standin`` to
regenerate the shipped file; the output depends only on ``seed`` and ``count``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

GIRLS = ("Lily", "Mia", "Sue", "Anna", "Lucy", "Emma", "Zoe", "Rose", "Kate", "Amy")
BOYS = ("Tom", "Ben", "Max", "Sam", "Tim", "Jack", "Leo", "Bob", "Dan", "Joe")
ANIMALS = ("dog", "cat", "bunny", "bird", "bear", "fox")
THINGS = ("red ball", "big kite", "shiny rock", "little boat", "blue hat", "toy car", "soft teddy", "yellow bucket")
PLACES = ("park", "garden", "beach", "forest", "yard", "farm", "hill", "pond")

OPENINGS = (
    "Once upon a time, there was a little {kind} named {hero}.",
    "One day, a happy {kind} named {hero} woke up early.",
    "There once was a small {kind} named {hero} who lived in a cozy house.",
)
LIKES = (
    "{He} loved to play with {his} {thing}.",
    "{He} had a {thing} that {he} loved very much.",
    "Every day, {he} took {his} {thing} everywhere.",
)
SCENERY = (
    "The sun was warm and the sky was blue.",
    "Birds sang in the tall green trees.",
    "The wind was soft and the flowers smelled sweet.",
)
OUTINGS = (
    "One day, {hero} went to the {place} with {his} friend {friend}.",
    "{hero} and {his} friend {friend} walked to the {place} to play.",
    "After lunch, {hero} ran to the {place} to meet {friend}.",
)
PROBLEMS = (
    "Suddenly, a big gust of wind took the {thing} away.",
    "{friend} wanted to play with the {thing} too, but {hero} said no.",
    "Oh no! The {thing} fell into a deep, dark hole.",
    "Then it began to rain, and the {thing} got lost in the mud.",
)
FEELINGS = (
    "{hero} was very sad and began to cry.",
    "{hero} did not know what to do.",
    "{hero} felt a little scared and sat down on the grass.",
)
HELP = (
    '{friend} smiled and said, "Do not worry, I will help you."',
    "Then {hero} had a good idea.",
    "A kind old man saw them and came to help.",
    "A friendly frog hopped over and showed them the way.",
)
ENDINGS = (
    "Together they found the {thing} under a big tree.",
    "They looked and looked until they found the {thing} again.",
    "Soon the {thing} was safe, and they shared it all day.",
)
JOYS = (
    '{hero} hugged {friend} and said, "Thank you!"',
    "They laughed and played until the sun went down.",
    "{hero} was happy again, and so was {friend}.",
)
MORALS = (
    "From that day on, {hero} knew that sharing is good.",
    "{hero} learned that friends always help each other.",
    "",
)
# (sentence choices, whether the slot may be left out)
SLOTS = (
    (OPENINGS, False),
    (LIKES, False),
    (SCENERY, True),
    (OUTINGS, False),
    (PROBLEMS, False),
    (FEELINGS, True),
    (HELP, False),
    (ENDINGS, False),
    (JOYS, True),
    (MORALS, False),
)


def story(rng: random.Random) -> str:
    """One story: the template slots in order, some optional, filled with one cast."""
    girl = rng.random() < 0.5
    hero = rng.choice(GIRLS if girl else BOYS)
    friend = rng.choice([n for n in GIRLS + BOYS if n != hero])
    cast = {
        "hero": hero,
        "friend": friend,
        "kind": rng.choice(("girl" if girl else "boy",) + ANIMALS),
        "thing": rng.choice(THINGS),
        "place": rng.choice(PLACES),
        "He": "She" if girl else "He",
        "he": "she" if girl else "he",
        "his": "her" if girl else "his",
    }
    sentences = [rng.choice(slot) for slot, optional in SLOTS if not optional or rng.random() < 0.6]
    return " ".join(s.format(**cast) for s in sentences if s)


def stories(count: int = 200, seed: int = 0) -> list[str]:
    """``count`` distinct stories, the same for the same seed."""
    rng = random.Random(seed)
    unique: dict[str, None] = {}
    while len(unique) < count:
        unique[story(rng)] = None
    return list(unique)


OUTPUT = Path(__file__).with_name("tinystories_standin.jsonl")


def main(path: Path = OUTPUT) -> None:
    with path.open("w", encoding="utf-8") as out:
        for text in stories():
            out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
