"""The interactive story task (paper task A): its tools, user simulator, score, corpus and oracle."""

from __future__ import annotations

import json
import random
import time
import warnings
from importlib.metadata import entry_points

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import agentic
from agentic import ActionKind, AgenticEnvironment, ToolRegistry, oracle_action, parse_action, run_episode, tool_call
from agentic.tasks.corpora import standin_path
from agentic.tasks.data.make_tinystories_standin import stories
from agentic.tasks.story import REPLIES, InteractiveStory, draft, find_hero, is_prose, rename
from agentic.tools.story import (
    MAX_TEXT_CHARS,
    character_check,
    count_mentions,
    length_check,
    readability,
    reading_grade,
    reports_ok,
    split_sentences,
    words,
)

STORY = (
    "Once upon a time, there was a little dog named Max. Max loved to play with his red ball. "
    "One day, Max went to the park with his friend Sue. The wind took the ball away. "
    'Max was sad and began to cry. Sue smiled and said, "Do not worry, I will help you." '
    "Together they found the ball under a big tree."
)
INSTANCE = {"story": STORY, "hero": "Max", "name": "Lily", "min_words": 20, "max_words": 40, "max_grade": 3}
REVEALED = {"revealed": ["grade", "length", "name"]}


@pytest.fixture(scope="module")
def task() -> InteractiveStory:
    return InteractiveStory()


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry(InteractiveStory.tools)


def run_oracle(env: AgenticEnvironment, seed: int) -> dict:
    """The info of the oracle's last step."""
    return run_episode(env, oracle_action, seed)[-1]


# -- measures and tools ------------------------------------------------------------------


def test_measures_on_plain_text():
    text = 'Tom ran. He said, "Hi!" Then he didn\'t stop'
    assert words(text) == ["Tom", "ran", "He", "said", "Hi", "Then", "he", "didn't", "stop"]
    assert split_sentences(text) == ["Tom ran.", 'He said, "Hi!"', "Then he didn't stop"]
    assert (
        reading_grade("The cat sat. The dog ran.")
        < 2
        < reading_grade(
            "Unbelievably complicated administrative considerations necessitated extraordinary deliberation."
        )
    )


def test_measures_on_unicode_and_empty_text():
    assert words("Zoë ate crème brûlée — très bien!") == ["Zoë", "ate", "crème", "brûlée", "très", "bien"]
    assert count_mentions("Zoë smiled. ZOË ran. Zoëy hid.", "Zoë") == 2
    assert reading_grade("") is None and reading_grade("... !!! 😀") is None
    assert words("") == [] and split_sentences("") == []


def test_count_mentions_matches_whole_names_only():
    assert count_mentions("Tom and Tommy met tom. Tom's hat.", "Tom") == 3
    assert count_mentions("Mr   Brown waved at Mr Brown.", " Mr Brown ") == 2
    assert count_mentions("Lily and L.ly", "L.ly") == 1
    assert count_mentions("Lily", "(") == 0 and count_mentions("Lily", "") == 0


def test_length_check_judges_only_a_revealed_range():
    text = " ".join(["word"] * 30)
    assert length_check(text) == "words=30 (ask the user for the length)"
    assert (
        length_check(text, instance=INSTANCE, state={"revealed": ["name"]}) == "words=30 (ask the user for the length)"
    )
    assert length_check(text, instance=INSTANCE, state=REVEALED) == "words=30 ok (20-40)"
    assert length_check("word " * 10, instance=INSTANCE, state=REVEALED) == "words=10 too short (20-40)"
    assert length_check("word " * 41, instance=INSTANCE, state=REVEALED) == "words=41 too long (20-40)"


def test_character_check_verdicts():
    assert character_check("Lily ran. lily sat.", "Lily") == "Lily=2 (ask the user for the name)"
    assert character_check("Lily ran. lily sat.", "lily", instance=INSTANCE, state=REVEALED) == "lily=2 ok"
    assert character_check("Tom ran.", "Lily", instance=INSTANCE, state=REVEALED) == "Lily=0 missing"
    assert (
        character_check("Tom ran.", "Tom", instance=INSTANCE, state=REVEALED) == "Tom=1 not the name asked for (Lily)"
    )


def test_readability_verdicts():
    assert readability("") == "grade=none (no words)"
    assert readability("The cat sat.") == "grade=0.0 (ask the user for the grade)"
    assert readability("The cat sat.", instance=INSTANCE, state=REVEALED) == "grade=0.0 ok (max 3)"
    hard = "Extraordinarily sophisticated institutional arrangements necessitated comprehensive reconsideration."
    assert readability(hard, instance=INSTANCE, state=REVEALED).endswith("too hard (max 3)")


@pytest.mark.parametrize(
    "result, ok",
    [
        ("words=30 ok (20-40)", True),
        ("Lily=2 ok", True),
        ("grade=1.5 ok (max 3)", True),
        ("Ok=0 missing", False),
        ("words=10 too short (20-40)", False),
        ("Tom=1 not the name asked for (Lily)", False),
        ("words=3 (ask the user for the length)", False),
    ],
)
def test_reports_ok_reads_the_verdict(result, ok):
    assert reports_ok(result) is ok


def test_tools_in_the_registry_survive_hostile_input(registry):
    context = {"instance": INSTANCE, "state": REVEALED}
    huge = "Lily ran. " * 100_000
    started = time.perf_counter()
    calls = [
        ("length_check", {"text": huge}),
        ("readability", {"text": huge}),
        ("character_check", {"text": huge, "name": "Lily"}),
    ]
    for name, arguments in calls:
        result = registry.call(name, arguments, context)
        assert result.status == "error" and f"longer than {MAX_TEXT_CHARS}" in result.text
    assert time.perf_counter() - started < 1
    assert registry.call("character_check", {"text": "Lily", "name": "  "}, context).status == "error"
    assert registry.call("character_check", {"text": "Lily", "name": "x" * 41}, context).status == "error"
    assert registry.call("length_check", {"text": 5}, context).status == "invalid_arguments"
    assert registry.call("length_check", {"text": "a", "state": {}}, context).status == "invalid_arguments"
    assert registry.call("length_check", {"text": "\x00 😀 ✓ <result>"}, context).text == "words=1 too short (20-40)"


def test_tool_schemas_hide_injected_parameters():
    assert set(length_check.parameters["properties"]) == {"text"}
    assert set(readability.parameters["properties"]) == {"text"}
    assert set(character_check.parameters["properties"]) == {"text", "name"}


def test_tools_and_task_are_registered_by_entry_point():
    tools = {ep.name: ep for ep in entry_points(group="agentic.tools")}
    assert [tools[t.name].load() for t in InteractiveStory.tools] == [length_check, character_check, readability]
    assert {ep.name: ep for ep in entry_points(group="agentic.tasks")}["InteractiveStory"].load() is InteractiveStory


# -- stories, drafts and the score -------------------------------------------------------


def test_hero_rename_and_draft():
    assert find_hero(STORY) == "Max" and find_hero("A dog ran.") is None
    renamed = rename(STORY, "Max", "Lily")
    assert count_mentions(renamed, "Max") == 0 and count_mentions(renamed, "Lily") == 4
    opening = draft(renamed, 25)
    assert opening == "Once upon a time, there was a little dog named Lily. Lily loved to play with his red ball."
    assert draft(renamed, 3) == split_sentences(renamed)[0]
    assert draft(renamed, 1000) == renamed
    quoted = 'Tom ran. Sue said, "Wait. I will help." Then they hid.'
    assert draft(quoted, 7) == "Tom ran." and draft(quoted, 8) == 'Tom ran. Sue said, "Wait. I will help."'


@pytest.mark.parametrize(
    "answer, failed",
    [
        (draft(rename(STORY, "Max", "Lily"), 40), set()),
        (draft(rename(STORY, "Max", "Tom"), 40), {"character"}),
        ("Lily had a red ball. She lost it in the park. Then she found it.", {"length"}),
        (rename(STORY, "Max", "Lily"), {"length"}),
        (
            "Lily considered extraordinarily sophisticated institutional arrangements. Professional administrators "
            "evaluated complicated international regulations. Numerous organizations investigated unbelievable "
            "environmental consequences. Eventually everybody understood Lily's revolutionary contributions.",
            {"readability"},
        ),
        ("Lily ran. " * 15, {"prose", "readability"}),
        ("Lily ran to the big red ball. " * 5, {"prose", "readability"}),
        ("I don't know.", {"length", "character", "readability", "prose"}),
        ("", {"length", "character", "readability", "prose"}),
        (None, {"length", "character", "readability", "prose"}),
    ],
)
def test_score_breakdown_names_each_failed_constraint(task, answer, failed):
    score = task.score(INSTANCE, answer, [])
    assert {k for k, v in score.breakdown.items() if v == 0.0} == failed
    assert set(score.breakdown) == {"length", "character", "readability", "prose"}
    assert score.total == pytest.approx(1 - len(failed) / 4)
    assert score.success is (not failed)


def test_is_prose_accepts_every_standin_opening():
    assert all(is_prose(draft(s, high)) for s in stories() for high in (50, 60, 70, 80))


# -- the user simulator ------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, topics",
    [
        ("How long should it be?", ["length"]),
        ("Who is the main character?", ["name"]),
        ("Which reading grade?", ["grade"]),
        ("What name and how many words?", ["length", "name"]),
        ("Anything else?", ["grade", "length", "name"]),
    ],
)
def test_user_reveals_what_is_asked(task, question, topics):
    state = task.initial_state(INSTANCE)
    reply = task.user(INSTANCE, question, state)
    assert state["revealed"] == topics
    assert reply == " ".join(REPLIES[t].format(**INSTANCE) for t in REPLIES if t in topics)


def test_user_reveals_cumulatively(task):
    state = task.initial_state(INSTANCE)
    task.user(INSTANCE, "What name?", state)
    task.user(INSTANCE, "How long?", state)
    assert state["revealed"] == ["length", "name"]
    assert task.user(INSTANCE, "Anything else?", state) == (
        "The main character is Lily. Use 20-40 words. Keep the reading grade at most 3."
    )


# -- corpora -----------------------------------------------------------------------------


def test_standin_is_small_reproducible_and_usable():
    path = standin_path("tinystories")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == stories()
    assert 100 <= len(rows) <= 300 and path.stat().st_size < 300_000
    assert all(find_hero(row["text"]) for row in rows)


def test_local_jsonl_corpus_skips_unusable_stories(tmp_path):
    path = tmp_path / "stories.jsonl"
    rows = [{"text": "A dog ran. " * 20}, {"text": STORY}, {"text": "Once there was a cat named Tom. He sat."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task = InteractiveStory(str(path))
    instances = [task.sample(random.Random(seed)) for seed in range(20)]
    assert {i["story"] for i in instances} == {" ".join(STORY.split())}
    assert all(i["hero"] == "Max" and i["name"] not in ("Max", "Sue") for i in instances)
    assert all(i["min_words"] <= len(words(draft(rename(STORY, "Max", i["name"]), i["max_words"]))) for i in instances)
    assert InteractiveStory(str(path), limit=1).stories.num_rows == 1


def test_unusable_corpora_fail_clearly(tmp_path):
    wrong_field = tmp_path / "wrong.jsonl"
    wrong_field.write_text(json.dumps({"story": STORY}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'text' field"):
        InteractiveStory(str(wrong_field))
    no_hero = tmp_path / "no_hero.jsonl"
    no_hero.write_text(json.dumps({"text": "A dog ran. " * 20}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no usable story"):
        InteractiveStory(str(no_hero)).sample(random.Random(0))
    with pytest.raises(FileNotFoundError):
        InteractiveStory(str(tmp_path / "missing.jsonl"))


# -- the environment and the oracle ------------------------------------------------------


def test_env_checker_passes_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gymnasium.make(agentic.gym_id("InteractiveStory")).unwrapped)


def test_oracle_succeeds_on_200_seeds_through_the_environment():
    env = gymnasium.make(agentic.gym_id("InteractiveStory")).unwrapped
    for seed in range(200):
        info = run_oracle(env, seed)
        assert info["event"] == "finish" and info["score"].success, (seed, env.context)
        assert [t.event for t in env.history] == ["ask", "tool", "tool", "tool", "finish"]


def test_oracle_actions_parse_and_pass_the_schema(registry):
    env = gymnasium.make(agentic.gym_id("InteractiveStory")).unwrapped
    actions = [info["action"] for info in run_episode(env, oracle_action, 7)]
    assert [a.kind for a in actions] == [
        ActionKind.ASK,
        ActionKind.TOOL,
        ActionKind.TOOL,
        ActionKind.TOOL,
        ActionKind.FINISH,
    ]
    assert all(registry.validate(a.tool, a.arguments) is None for a in actions if a.kind is ActionKind.TOOL)
    assert env.history[-1].action.thought == "All checks ok."


def test_episodes_are_deterministic_given_the_seed():
    env = gymnasium.make(agentic.gym_id("InteractiveStory")).unwrapped
    contexts = []
    for _ in range(2):
        run_oracle(env, 11)
        contexts.append(env.context)
    assert contexts[0] == contexts[1]
    run_oracle(env, 12)
    assert env.context != contexts[0]


def test_oracle_asks_again_for_what_the_user_left_out(task):
    env = AgenticEnvironment(task, user=lambda instance, question, state: REPLIES["name"].format(**instance))
    env.reset(seed=0)
    env.step(task.oracle(env.instance, env.history))
    follow_up = parse_action(task.oracle(env.instance, env.history))
    assert follow_up.kind is ActionKind.ASK
    assert follow_up.content == "What length and reading grade should the story have?"
    state = task.initial_state(env.instance)
    task.user(env.instance, follow_up.content, state)
    assert state["revealed"] == ["grade", "length"]


def test_oracle_reports_checks_that_failed(task):
    """A user who asks for another length than the judge's: the oracle reads the failing check and says so."""

    def misleading_user(instance, question, state):
        state["revealed"] = ["grade", "length", "name"]
        return "The main character is {name}. Use 10-20 words. Keep the reading grade at most {max_grade}.".format(
            **instance
        )

    env = AgenticEnvironment(task, user=misleading_user)
    info = run_oracle(env, 0)
    assert env.history[-1].action.thought.startswith("Failed: length_check")
    assert info["score"].breakdown["length"] == 0.0


def test_match_arguments(task):
    expected = {"text": STORY, "name": "Lily"}
    assert task.match_arguments("length_check", {"text": "Another draft."}, {"text": STORY})
    assert not task.match_arguments("length_check", {"text": "  "}, {"text": STORY})
    assert task.match_arguments("character_check", {"text": "x", "name": " lily "}, expected)
    assert not task.match_arguments("character_check", {"text": "x", "name": "Tom"}, expected)


def test_a_lone_surrogate_for_a_name_never_reaches_the_tokenizer():
    """A JSON escape "\\ud800" is refused as an action; a raw one is replaced; the context always encodes."""
    from agentic.training.tiny_model import task_corpus, train_tokenizer

    tokenizer = train_tokenizer(task_corpus(["InteractiveStory"], range(3)), vocab_size=300)
    env = gymnasium.make("agentic/InteractiveStory-v0").unwrapped
    env.reset(seed=0)
    for action in (
        '<tool name="character_check">{"text": "Lily ran.", "name": "\\ud800"}</tool>',
        tool_call("character_check", {"text": "Lily ran.", "name": "Li\ud800ly"}),
    ):
        obs, *_, info = env.step(action)
        tokenizer(info["delta"])
        tokenizer(obs)
    assert env.history[0].event == "invalid" and "surrogate" in env.history[0].observation
    assert env.history[1].event == "tool" and "\ufffd" in env.history[1].observation
