"""Writes `chat_standin.jsonl` (chat prompts) and `chat_preferences_standin.jsonl` (preference pairs).

Stand-ins for a chat-prompt dataset (e.g. ``HuggingFaceH4/ultrachat_200k``) and a preference dataset (e.g.
``trl-lib/ultrafeedback_binarized``) for offline chat-RLHF runs (the hub is unreachable here). They sit beside the
other corpus stand-ins because `agentic corpus` reads them the same way (`agentic.tasks.corpora.standin_path`).

- prompts: a user message asking about one subject (``{"messages": [{"role": "user", "content": ...}]}``), from a
  handful of question templates over everyday subjects, each with facts;
- preferences, in TRL's conversational format with an explicit prompt (``prompt``: the user message, ``chosen`` /
  ``rejected``: one assistant message each): chosen is a short, friendly answer that states a fact about the
  subject; rejected is one of ``off_topic`` (a fact about another subject), ``repetitive`` (a phrase looping),
  ``refusal`` (no help) or ``terse`` (a bare word). So a reward model learns helpful, on-topic, fluent answers.

Run ``python -m agentic.tasks.data.make_chat_standin`` to regenerate both files; they depend only on ``seed``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SUBJECTS = {
    "cats": ("sleep for most of the day", "clean their fur with their tongues", "can see well in dim light"),
    "dogs": ("have a very good sense of smell", "wag their tails when they are happy", "like to play fetch"),
    "bees": ("make honey from nectar", "help flowers grow by carrying pollen", "live together in hives"),
    "the moon": ("goes around the Earth about once a month", "has no air to breathe", "reflects light from the Sun"),
    "the sun": ("is a star at the centre of our solar system", "gives the Earth light and warmth", "is very hot"),
    "rain": ("falls from clouds when water drops get heavy", "helps plants grow", "fills rivers and lakes"),
    "apples": ("grow on trees", "can be red, green or yellow", "are a healthy snack"),
    "bread": ("is baked from flour, water and yeast", "is eaten all over the world", "tastes good when toasted"),
    "bicycles": ("have two wheels and pedals", "are a clean way to travel", "need air in their tyres"),
    "trains": ("run on rails", "can carry many people at once", "stop at stations along the way"),
    "the ocean": ("covers most of the Earth", "is full of salt water", "is home to whales and fish"),
    "trees": ("make oxygen from sunlight", "can live for hundreds of years", "give shade on hot days"),
    "snow": ("is made of tiny ice crystals", "falls when it is very cold", "is fun for building snowmen"),
    "music": ("can make people feel happy or calm", "is made with voices and instruments", "has rhythm and melody"),
    "books": ("let us learn about new places", "are made of pages", "can be borrowed from a library"),
    "water": ("is needed by every living thing", "boils at one hundred degrees Celsius", "freezes into ice"),
    "sleep": ("helps the body rest and grow", "is important for memory", "is easier in a dark, quiet room"),
    "exercise": ("keeps the heart strong", "can improve your mood", "is easier with a friend"),
    "gardens": ("need sunlight and water", "can grow flowers and vegetables", "attract birds and butterflies"),
    "owls": ("hunt at night", "can turn their heads very far", "have soft feathers for silent flight"),
    "elephants": ("are the largest land animals", "use their trunks to drink", "have very good memories"),
    "volcanoes": ("are openings where hot rock comes out", "can form new islands", "are found on many continents"),
    "clouds": ("are made of tiny water drops", "float high in the sky", "can bring rain or snow"),
    "tea": ("is made by soaking leaves in hot water", "is drunk all over the world", "can be green or black"),
    "computers": ("follow instructions called programs", "store information in memory", "help people work"),
    "maps": ("show where places are", "use symbols for roads and rivers", "help travellers find their way"),
    "birds": ("have feathers and wings", "lay eggs", "sing to talk to each other"),
    "rivers": ("flow from high ground to the sea", "carry fresh water", "are home to many fish"),
    "stars": ("are huge balls of hot gas", "look small because they are far away", "shine at night"),
    "frogs": ("start life as tadpoles", "can live in water and on land", "catch insects with their tongues"),
    "honey": ("is made by bees", "never really goes bad", "is sweet and sticky"),
    "chess": ("is played on a board of sixty-four squares", "has kings, queens and pawns", "trains careful thinking"),
    "soup": ("is a warm dish made in a pot", "can be made from vegetables or meat", "is nice on a cold day"),
    "the wind": ("is moving air", "can turn windmills", "helps sailboats move"),
    "butterflies": ("start life as caterpillars", "have colourful wings", "drink nectar from flowers"),
    "mountains": ("are very high land", "are colder at the top", "are fun to climb"),
    "lemons": ("are sour yellow fruit", "are full of vitamin C", "make good lemonade"),
    "pianos": ("have black and white keys", "make sound with small hammers and strings", "are played in concerts"),
    "libraries": ("lend books for free", "are quiet places to read", "often have computers too"),
    "penguins": ("are birds that cannot fly", "swim very well", "live mostly in cold southern places"),
}
QUESTIONS = (
    "Tell me something about {s}.",
    "What do you know about {s}?",
    "Can you share a fact about {s}?",
    "I am curious about {s}. What is interesting about them?",
    "Give me a short explanation of {s}.",
    "Why are {s} interesting?",
)
ANSWERS = (
    "Sure! {S} {fact}.",
    "Good question. {S} {fact}, which is quite interesting.",
    "Here is a fact: {S} {fact}.",
    "{S} {fact}. I hope that helps!",
)
REFUSALS = ("I don't know.", "I cannot help with that.", "No.", "Ask someone else.")
REJECTION_KINDS = ("off_topic", "repetitive", "refusal", "terse")


def capital(subject: str) -> str:
    return subject[0].upper() + subject[1:]


def question(subject: str, rng: random.Random) -> str:
    return rng.choice(QUESTIONS).format(s=subject)


def answer(subject: str, rng: random.Random) -> str:
    return rng.choice(ANSWERS).format(S=capital(subject), fact=rng.choice(SUBJECTS[subject]))


def rejected(kind: str, subject: str, rng: random.Random) -> str:
    if kind == "off_topic":
        return answer(rng.choice([other for other in SUBJECTS if other != subject]), rng)
    if kind == "repetitive":
        return " ".join([f"{capital(subject)} are are"] * rng.randint(3, 6))
    if kind == "refusal":
        return rng.choice(REFUSALS)
    return capital(subject.split()[-1]) + "."


def prompts(seed: int = 0) -> list[dict]:
    """Every (subject, question template) once, shuffled: ``{"messages": [user message]}`` rows."""
    rows = [{"messages": [{"role": "user", "content": q.format(s=s)}]} for s in SUBJECTS for q in QUESTIONS]
    random.Random(seed).shuffle(rows)
    return rows


def preferences(count: int = 480, seed: int = 1) -> list[dict]:
    """``count`` pairs: a random subject's question, a chosen answer and a rejection of a kind taken in turn."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        subject = rng.choice(list(SUBJECTS))
        kind = REJECTION_KINDS[index % len(REJECTION_KINDS)]
        rows.append(
            {
                "prompt": [{"role": "user", "content": question(subject, rng)}],
                "chosen": [{"role": "assistant", "content": answer(subject, rng)}],
                "rejected": [{"role": "assistant", "content": rejected(kind, subject, rng)}],
                "kind": kind,
            }
        )
    return rows


DATA = Path(__file__).parent


def main() -> None:
    for name, rows in (("chat_standin.jsonl", prompts()), ("chat_preferences_standin.jsonl", preferences())):
        with (DATA / name).open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    main()
