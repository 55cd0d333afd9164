"""Generate ``cnn_dailymail_standin.jsonl``: a small synthetic stand-in for CNN/DailyMail.

Each row has CNN/DailyMail's fields (``id``, ``article``, ``highlights``): a made-up
news story of 5-8 short sentences and 2-3 newline-separated highlights. Every
highlight restates one *key* sentence (the lead and one or two facts); the other
sentences are background a summary can leave out. The names, places and numbers
are invented. Run ``python tasks/data/make_cnn_dailymail_standin.py`` to rewrite the file;
the seed is fixed, so the output is byte-for-byte reproducible.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUTPUT = Path(__file__).with_name("cnn_dailymail_standin.jsonl")
SEED = 0
ROWS = 160

TOWNS = (
    "Harbor City",
    "Millbrook",
    "Eastwick",
    "Northvale",
    "Riverton",
    "Oakridge",
    "Stonebridge",
    "Clearwater",
    "Westfield",
    "Ashford",
    "Pinecrest",
    "Lakemont",
)
FIRST = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Frank",
    "Grace",
    "Henry",
    "Iris",
    "James",
    "Laura",
    "Omar",
    "Priya",
    "Tom",
)
LAST = (
    "Baker",
    "Chen",
    "Diaz",
    "Evans",
    "Fischer",
    "Green",
    "Hughes",
    "Ito",
    "Kumar",
    "Lopez",
    "Moreau",
    "Novak",
    "Owens",
    "Patel",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
COMPANIES = ("Brightline", "Nordica", "Volta Works", "Kestrel Group", "Meridian", "Tandem Motors")
MONTHS = ("March", "April", "May", "June", "July", "September", "October")

# Each story: (lead, highlight), two further (key fact, highlight) pairs, and background sentences.
STORIES = (
    {
        "key": (
            (
                "The {town} council approved a ${n1} million plan on {day} to repair {n2} old bridges.",
                "{town} council approves ${n1} million plan to repair {n2} bridges.",
            ),
            (
                "The work on the bridges will be paid for with new parking fees.",
                "Bridge work will be paid for with new parking fees.",
            ),
            (
                "Mayor {name} said the repairs would begin in {month} and take two years.",
                "Mayor {name} says repairs begin in {month}.",
            ),
        ),
        "background": (
            "{other}, who runs a bakery near the river, said she was pleased.",
            "Several people spoke at the meeting, which lasted three hours.",
            "Some members had asked for a smaller budget.",
            "The last big repairs in the area took place in the 1990s.",
            "Traffic was slow on the main road all afternoon.",
        ),
    },
    {
        "key": (
            (
                "A storm with winds of {n3} miles per hour hit {town} on {day}, cutting power to {n4} homes.",
                "Storm with {n3} mph winds cuts power to {n4} homes in {town}.",
            ),
            (
                "Emergency crews said power should return to most homes within two days.",
                "Crews expect power to return within two days.",
            ),
            (
                "Officials opened {n2} shelters for families who left the coast.",
                "{n2} shelters opened for families who left the coast.",
            ),
        ),
        "background": (
            "Forecasters had warned of heavy rain for most of the week.",
            "{other} said the wind sounded like a passing train.",
            "Many trees fell across roads near the harbor.",
            "Schools in the region stayed closed as a precaution.",
            "Some shops stayed open by candlelight.",
        ),
    },
    {
        "key": (
            (
                "{town} United beat {town2} Rovers {n5}-1 on {day} to reach the final of the county cup.",
                "{town} United beat {town2} Rovers {n5}-1 to reach county cup final.",
            ),
            ("Striker {name} scored twice in the second half.", "{name} scored twice in the second half."),
            (
                "{town} United will play the holders in the final next month.",
                "{town} United will play the holders in the final.",
            ),
        ),
        "background": (
            "The crowd of about {n4} fans sang for most of the evening.",
            "It was a cold night with light rain before kick-off.",
            "{other}, the visiting coach, said his players were tired.",
            "Tickets for the match had sold out within a week.",
            "Both teams wore their usual colours.",
        ),
    },
    {
        "key": (
            (
                "Scientists at the University of {town} have found a new species of frog in a mountain forest.",
                "Scientists at the University of {town} find a new frog species.",
            ),
            (
                "The frog is about {n2} centimetres long and lives under wet leaves.",
                "The frog is {n2} centimetres long and lives under wet leaves.",
            ),
            (
                "Lead researcher Dr {name} said the species may already be at risk.",
                "Dr {name} says the new species may be at risk.",
            ),
        ),
        "background": (
            "The team spent {n2} weeks camping in the area last year.",
            "{other}, a local guide, helped the researchers find the site.",
            "The findings were published in a journal on {day}.",
            "Heavy rain made the work slow and difficult.",
            "Photographs of the site were shared online.",
        ),
    },
    {
        "key": (
            (
                "{company} said on {day} that it would open a new factory in {town}, creating {n4} jobs.",
                "{company} to open a factory in {town}, creating {n4} jobs.",
            ),
            (
                "The factory will make electric bicycles and should open in {month}.",
                "The factory will make electric bicycles from {month}.",
            ),
            (
                "Chief executive {name} said demand for electric bicycles had doubled in two years.",
                "{name} says demand for electric bicycles has doubled.",
            ),
        ),
        "background": (
            "Shares in the firm rose slightly after the news.",
            "{other}, a local shop owner, said the town needed the work.",
            "The site was used as a car park for many years.",
            "The firm was founded by two brothers in 1985.",
            "Local officials welcomed the decision.",
        ),
    },
    {
        "key": (
            (
                "Rescue teams saved {n2} hikers who were trapped on Mount {town2} for {n5} hours.",
                "{n2} hikers rescued after {n5} hours trapped on Mount {town2}.",
            ),
            (
                "The hikers got lost in thick fog after a mountain path collapsed.",
                "Hikers got lost in thick fog after a path collapsed.",
            ),
            (
                "All of them were taken to hospital in {town} with minor injuries.",
                "All were taken to hospital in {town} with minor injuries.",
            ),
        ),
        "background": (
            "A helicopter joined the search early in the morning.",
            "{other} said the group had planned a short walk.",
            "The weather had been calm when they set off.",
            "Rescue workers asked walkers to check the forecast.",
            "Volunteers brought hot drinks to the base camp.",
        ),
    },
    {
        "key": (
            (
                "{name} won the race for mayor of {town} on {day} with {n6} percent of the vote.",
                "{name} wins {town} mayor race with {n6} percent of the vote.",
            ),
            (
                "{last} promised to build {n4} new homes and cut bus fares.",
                "{last} promised {n4} new homes and cheaper bus fares.",
            ),
            ("Turnout was the highest in twenty years, officials said.", "Turnout was the highest in twenty years."),
        ),
        "background": (
            "Counting went on until late in the night.",
            "{other}, who lost the race, thanked the voters.",
            "Rain kept some people at home in the morning.",
            "Three candidates took part in a debate last week.",
            "Posters still covered walls across the centre.",
        ),
    },
    {
        "key": (
            (
                "The {town} museum will return {n4} ancient coins to Greece after a long dispute.",
                "{town} museum will return {n4} ancient coins to Greece.",
            ),
            (
                "The coins were found by farmers in 19{n6} and later sold to the museum.",
                "Coins were found by farmers in 19{n6}.",
            ),
            (
                "Museum director {name} said returning the coins was the right decision.",
                "Director {name} says returning the coins is the right decision.",
            ),
        ),
        "background": (
            "The museum opened more than a century ago.",
            "{other}, a visitor, said she had seen the display as a child.",
            "Experts will pack the items with great care.",
            "A new exhibition will open in the same room.",
            "School groups often visit the gallery.",
        ),
    },
)


def _slots(rng: random.Random) -> dict[str, str]:
    town, town2 = rng.sample(TOWNS, 2)
    first, other_first = rng.sample(FIRST, 2)
    last, other_last = rng.sample(LAST, 2)
    return {
        "town": town,
        "town2": town2,
        "name": f"{first} {last}",
        "last": last,
        "other": f"{other_first} {other_last}",
        "company": rng.choice(COMPANIES),
        "day": rng.choice(DAYS),
        "month": rng.choice(MONTHS),
        "n1": str(rng.randint(2, 9)),
        "n2": str(rng.randint(3, 14)),
        "n3": str(rng.randint(60, 110)),
        "n4": str(rng.randint(2, 40) * 100),
        "n5": str(rng.randint(2, 6)),
        "n6": str(rng.randint(51, 79)),
    }


def generate_row(index: int, rng: random.Random) -> dict[str, str]:
    """One story: the lead first, the other key facts and 2-5 background sentences in random order."""
    story = STORIES[index % len(STORIES)]
    slots = _slots(rng)
    (lead, lead_highlight), *facts = story["key"]
    facts = facts if rng.random() < 0.5 else [rng.choice(facts)]
    background = rng.sample(story["background"], rng.randint(4 - len(facts), len(story["background"])))
    body = [fact for fact, _ in facts] + background
    rng.shuffle(body)
    highlights = [lead_highlight] + [h for _, h in facts]
    return {
        "id": f"standin-{index:04d}",
        "article": " ".join(s.format(**slots) for s in [lead, *body]),
        "highlights": "\n".join(h.format(**slots) for h in highlights),
    }


def standin_rows(rows: int = ROWS, seed: int = SEED) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [generate_row(i, rng) for i in range(rows)]


def write_standin(path: Path = OUTPUT) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in standin_rows())


if __name__ == "__main__":
    write_standin()
