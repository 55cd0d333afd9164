"""Generate `wikitext103_standin.jsonl`: a small, fictional stand-in for Wikitext-103.

The hub is unreachable on the project's machines, so task C (MultiHopKnowledge) ships 2,100 short
procedurally generated articles about invented towns, people, rivers and bridges. Every article says
"fictional". The pool is large (about 1,700 training entities) so that a name recurs in few training
episodes: a model must learn to copy names from the question, not memorise them. Rows copy
Wikitext-103's raw line format (``{"text": " = Title = \\n"}``, empty rows between blocks, sections
as ``" = = Section = = "``, numbers tokenized as ``12 @,@ 400``), so the fact extraction written for
the stand-in runs unchanged on the real corpus.

Run ``python tasks/data/make_wikitext103_standin.py`` to rewrite the file; the seed is
fixed, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 103
OUTPUT = Path(__file__).with_name("wikitext103_standin.jsonl")
ARTICLE_COUNTS = {"town": 800, "person": 700, "river": 300, "bridge": 300}

_ONSETS = ["B", "D", "F", "G", "H", "K", "L", "M", "N", "R", "S", "T", "V", "W", "Br", "Dr", "Gl", "Kr", "St", "Th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
_CODAS = ["n", "r", "l", "m", "s", "th", "nd", "rk", "ll", "ck"]
_TOWN_ENDINGS = ["ford", "mere", "wick", "holm", "by", "ton", "stead", "dale"]
_FIRST_NAMES = {
    "she": ["Ada", "Orla", "Mira", "Lena", "Ines", "Tova", "Greta", "Nadia", "Elsa", "Ruth"],
    "he": ["Emil", "Tomas", "Arvid", "Oskar", "Pavel", "Jonas", "Felix", "Anton", "Hugo", "Milo"],
}
_PROFESSIONS = ["engineer", "painter", "botanist", "composer", "architect", "cartographer", "novelist", "chemist"]
_PROVINCES = ["Varnland", "Eastmark", "Tollen", "Sarvia"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_INDUSTRIES = ["wool", "timber", "salt", "glass", "cheese", "iron"]
_BRIDGE_KINDS = ["stone arch", "steel truss", "suspension", "cantilever"]


def wikitext_number(value: int) -> str:
    """A number as Wikitext-103 tokenizes it: 12400 -> ``12 @,@ 400``."""
    return f"{value:,}".replace(",", " @,@ ")


def _word(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _unique(rng: random.Random, make, taken: set[str]) -> str:
    while (name := make(rng)) in taken:
        pass
    taken.add(name)
    return name


def _town(rng: random.Random, name: str, rivers: list[str]) -> list[tuple[str, str]]:
    founded, population = rng.randint(1100, 1900), rng.randrange(800, 250_000, 50)
    summary = (
        f"{name} is a fictional market town in the province of {rng.choice(_PROVINCES)} . "
        f"It was founded in {founded} by {rng.choice(_INDUSTRIES)} traders . "
        f"The town has a population of {wikitext_number(population)}"
    )
    if rng.random() < 0.75:
        summary += f" and lies at an elevation of {wikitext_number(rng.randint(5, 2400))} metres"
    history = (
        f"{name} grew around a crossing on the {rng.choice(rivers)} River . "
        f"In {rng.randint(1840, 1960)} a railway line reached the town , and its {rng.choice(_INDUSTRIES)} trade expanded ."
    )
    return [("", summary + " ."), ("History", history)]


def _person(rng: random.Random, name: str, pronoun: str, towns: list[str]) -> list[tuple[str, str]]:
    born = rng.randint(1820, 1990)
    died = born + rng.randint(35, 95)
    day, month = rng.randint(1, 28), rng.choice(_MONTHS)
    life = f"{pronoun.capitalize()} was born on {day} {month} {born} in {rng.choice(towns)}"
    life += f" and died in {died} ." if died < 2020 else " ."
    summary = (
        f"{name} was a fictional {rng.choice(_PROFESSIONS)} from the province of {rng.choice(_PROVINCES)} . {life}"
    )
    possessive = "her" if pronoun == "she" else "his"
    career = f"{pronoun.capitalize()} worked in {rng.choice(towns)} for {rng.randint(3, 30)} years and is remembered for {possessive} early work ."
    return [("", summary), ("Career", career)]


def _river(rng: random.Random, name: str, towns: list[str]) -> list[tuple[str, str]]:
    length = rng.randint(12, 1400)
    summary = (
        f"The {name} River is a fictional river in {rng.choice(_PROVINCES)} with a length of {wikitext_number(length)} kilometres . "
        f"It rises near {rng.choice(towns)} and flows into the {rng.choice(['North', 'Grey', 'Amber'])} Sea ."
    )
    return [("", summary)]


def _bridge(rng: random.Random, name: str, rivers: list[str]) -> list[tuple[str, str]]:
    summary = (
        f"The {name} Bridge is a fictional {rng.choice(_BRIDGE_KINDS)} bridge over the {rng.choice(rivers)} River . "
        f"It was opened in {rng.randint(1850, 2015)} and carries {rng.choice(['a road', 'a railway', 'pedestrians'])} ."
    )
    return [("", summary)]


def _rows(title: str, blocks: list[tuple[str, str]]) -> list[str]:
    rows = [f" = {title} = \n", ""]
    for section, text in blocks:
        if section:
            rows += [f" = = {section} = = \n", ""]
        rows += [f" {text} \n", ""]
    return rows


def standin_rows(seed: int = SEED) -> list[str]:
    """The stand-in corpus as Wikitext-103 rows (the ``text`` field of each line)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    towns = [_unique(rng, lambda r: _word(r) + r.choice(_TOWN_ENDINGS), taken) for _ in range(ARTICLE_COUNTS["town"])]
    rivers = [_unique(rng, _word, taken) for _ in range(ARTICLE_COUNTS["river"])]
    bridges = [_unique(rng, _word, taken) for _ in range(ARTICLE_COUNTS["bridge"])]
    people = []
    for _ in range(ARTICLE_COUNTS["person"]):
        pronoun = rng.choice(["she", "he"])
        people.append(
            (_unique(rng, lambda r, pronoun=pronoun: f"{r.choice(_FIRST_NAMES[pronoun])} {_word(r)}", taken), pronoun)
        )
    articles = [(town, _town(rng, town, rivers)) for town in towns]
    articles += [(name, _person(rng, name, pronoun, towns)) for name, pronoun in people]
    articles += [(f"{river} River", _river(rng, river, towns)) for river in rivers]
    articles += [(f"{bridge} Bridge", _bridge(rng, bridge, rivers)) for bridge in bridges]
    rng.shuffle(articles)
    return ["", *(row for title, blocks in articles for row in _rows(title, blocks))]


def write_standin(path: Path = OUTPUT) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in standin_rows():
            out.write(json.dumps({"text": row}) + "\n")


if __name__ == "__main__":
    write_standin()
