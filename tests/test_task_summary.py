"""Grounded summarisation: its tools, its score, its corpus and its oracle."""

from __future__ import annotations

import importlib.util
import json
import random

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import agentic
from agentic import ActionKind, ToolRegistry, Turn, parse_action, run_episode
from agentic.tasks.corpora import standin_path
from agentic.tasks.summary import GroundedSummary, key_word_query
from agentic.tooling import ToolResult
from agentic.tools.summary import (
    cite_check,
    coverage,
    coverage_check,
    judge_citations,
    retrieve,
    split_sentences,
)

ARTICLE = {
    "id": "hand-made",
    "sentences": [
        "The Millbrook council approved a $4 million plan on Tuesday to repair 12 old bridges.",
        "Several people spoke at the meeting, which lasted three hours.",
        "The work on the bridges will be paid for with new parking fees.",
        "Mayor Anna Chen said the repairs would begin in May.",
    ],
    "highlights": [
        "Millbrook council approves $4 million plan to repair 12 bridges.",
        "Bridge work paid for with parking fees.",
    ],
}
GOOD = "The Millbrook council approved a $4 million plan to repair 12 old bridges [1]. The work will be paid for with new parking fees [3]."


@pytest.fixture(scope="module")
def task() -> GroundedSummary:
    return GroundedSummary()


@pytest.fixture()
def registry() -> ToolRegistry:
    return ToolRegistry([retrieve, cite_check, coverage_check])


def call(registry: ToolRegistry, name: str, **arguments) -> ToolResult:
    return registry.call(name, arguments, {"instance": ARTICLE})


def test_sentences_split_at_full_stops_but_not_at_abbreviations_and_keep_trailing_citations():
    text = "Mr. Smith said the U.S. team won 3.5 points. [2] Then it rained [4]! what a day. The end"
    assert split_sentences(text) == [
        "Mr. Smith said the U.S. team won 3.5 points. [2]",
        "Then it rained [4]! what a day.",
        "The end",
    ]


def test_retrieve_ranks_matching_sentences_best_first_and_hides_the_instance(registry):
    result = call(registry, "retrieve", query="bridges parking fees", k=2)
    assert result.ok
    assert result.text.splitlines() == [f"[3] {ARTICLE['sentences'][2]}", f"[1] {ARTICLE['sentences'][0]}"]
    assert "instance" not in retrieve.parameters["properties"]
    assert call(registry, "retrieve", query="volcano eruption").text == "no sentence matches the query"


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        ({"query": "", "k": 2}, "error", "query is empty"),
        ({"query": "bridges " * 40}, "error", "longer than 200"),
        ({"query": "bridges", "k": 0}, "error", "k must be between 1 and 8"),
        ({"query": "bridges", "k": 10**9}, "error", "k must be between 1 and 8"),
        ({"query": ["bridges"]}, "invalid_arguments", "query"),
        ({"query": "bridges", "instance": {"sentences": ["forged"]}}, "invalid_arguments", "instance"),
        ({"query": "bridges", "k": 2.0}, "invalid_arguments", "2.0 is not of type 'integer'"),
    ],
)
def test_retrieve_refuses_hostile_arguments_with_a_readable_message(registry, arguments, status, message):
    result = registry.call("retrieve", arguments, {"instance": ARTICLE})
    assert result.status == status and message in result.text


def test_tools_outside_an_episode_say_they_need_an_article():
    result = ToolRegistry([cite_check]).call("cite_check", {"summary": GOOD})
    assert result.status == "error" and "no article" in result.text


def test_cite_check_gives_a_verdict_per_sentence(registry):
    summary = (
        "The council approved a plan to repair bridges [1]. "
        "Parking fees will pay for the work [2]. "
        "The mayor said repairs begin in May. "
        "Everyone cheered [9]."
    )
    assert call(registry, "cite_check", summary=summary).text.splitlines() == [
        "1. grounded [1] (1.00)",
        "2. not grounded [2] (0.00)",
        "3. no citation",
        "4. no sentence [9]",
        "grounded 1/4",
    ]


@pytest.mark.parametrize(
    "summary",
    ["[1]", "[99999] bridges.", "[[[[1]]]] " * 100, "桥梁 [1]. ÿ\x00 [2, 3]", "]" * 1400, "[1, " * 370 + "2]"],
)
def test_cite_check_survives_hostile_summaries(registry, summary):
    result = call(registry, "cite_check", summary=summary)
    assert result.ok and "grounded" in result.text.splitlines()[-1]


def test_oversized_summaries_are_refused(registry):
    for name in ("cite_check", "coverage_check"):
        result = call(registry, name, summary="bridges [1]. " * 200)
        assert result.status == "error" and "longer than 1500" in result.text


def test_several_citations_ground_a_sentence_together():
    (verdict,) = judge_citations(
        "The council plan to repair bridges is paid with parking fees [1, 3].", ARTICLE["sentences"]
    )
    assert verdict.grounded and verdict.cited == (1, 3)


def test_coverage_counts_stemmed_highlight_words(registry):
    overall, points = coverage(GOOD, ARTICLE["highlights"])
    assert points == [1.0, 1.0] and overall == 1.0
    text = call(registry, "coverage_check", summary="The council approved a plan [1].").text
    assert text == "coverage 0.23 (target 0.60); points 0.33 0.00"  # 3 of 13 key words; 3 of 9


def test_score_of_a_grounded_covering_summary(task):
    score = task.score(ARTICLE, GOOD, [])
    assert score.success and score.breakdown == {"coverage": 1.0, "grounded": 1.0, "length": 1.0} and score.total == 1.0


MAYOR = " The mayor said the repairs would begin in May [4]."  # 9 words, grounded


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        (GOOD.replace("[3]", "[2]"), {"coverage": 9 / 13, "grounded": 0.5, "length": 0.5}),
        (GOOD.replace(" [1]", "").replace(" [3]", ""), {"coverage": 0.0, "grounded": 0.0, "length": 0.0}),
        (GOOD + MAYOR * 5, {"coverage": 1.0, "grounded": 1.0, "length": 60 / (23 + 5 * 9)}),
        ("Bridges [1].", {"coverage": 1 / 13, "grounded": 1.0, "length": 1 / 10}),
    ],
    ids=["ungrounded-citation", "no-citation", "too-long", "too-short"],
)
def test_score_breakdown_of_flawed_summaries(task, summary, expected):
    """Ungrounded sentences earn nothing: coverage counts the grounded sentences' words only (the first sentence of
    "ungrounded-citation" covers 9 of the 13 key words), and the length credit is scaled by the grounded fraction."""
    score = task.score(ARTICLE, summary, [])
    assert not score.success
    assert score.breakdown == pytest.approx(expected)
    assert score.total == pytest.approx(
        0.5 * expected["coverage"] + 0.3 * expected["grounded"] + 0.2 * expected["length"]
    )


@pytest.mark.parametrize(
    "answer",
    [
        "I don't know.",
        "Millbrook council approves $4 million plan to repair 12 bridges, paid with parking fees.",
        "I don't council million bridges parking fees Millbrook repair plan",
    ],
)
def test_uncited_answers_score_zero(task, answer):
    """Giving up, or a string of the article's key words without a citation (what PPO learnt to write when these
    words were paid for), scores nothing."""
    assert task.score(ARTICLE, answer, []).total == 0.0


def test_no_answer_scores_zero(task):
    assert task.score(ARTICLE, None, []) == agentic.Score(0.0, {"coverage": 0.0, "grounded": 0.0, "length": 0.0}, False)


def test_local_corpus_is_cut_to_short_sentences_and_skips_unusable_rows(tmp_path):
    long_sentence = "word " * 80 + "end."
    rows = [
        {"id": "empty", "article": "Only one sentence.", "highlights": "A point."},
        {
            "id": "a1",
            "article": " ".join(f"Sentence number {i} is here.\n" for i in range(1, 20)) + long_sentence,
            "highlights": "First point.\n\nSecond point.",
        },
    ]
    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task = GroundedSummary(corpus=str(path), max_sentences=5)
    instance = task.sample(random.Random(0))
    assert instance["id"] == "a1" and instance["highlights"] == ["First point.", "Second point."]
    assert instance["sentences"] == [f"Sentence number {i} is here." for i in range(1, 6)]
    assert len(GroundedSummary(corpus=str(path), max_sentences=30).sample(random.Random(0))["sentences"][-1]) <= 202


def test_a_corpus_without_the_fields_is_refused(tmp_path):
    path = tmp_path / "stories.jsonl"
    path.write_text('{"text": "Once upon a time."}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="'article' and 'highlights'"):
        GroundedSummary(corpus=str(path))


def test_standin_is_small_reproducible_and_shaped_like_cnn_dailymail(task):
    path = standin_path("cnn_dailymail")
    spec = importlib.util.spec_from_file_location("make_standin", path.with_name("make_cnn_dailymail_standin.py"))
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    shipped = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert shipped == generator.standin_rows()
    assert path.stat().st_size < 400_000 and 100 <= len(shipped) <= 200
    for row in shipped:
        assert set(row) == {"id", "article", "highlights"}
        assert 5 <= len(split_sentences(row["article"])) <= 8 and 2 <= len(row["highlights"].splitlines()) <= 3


def test_prompt_is_short_and_shows_only_the_lead(task):
    instance = task.sample(random.Random(1))
    prompt = task.prompt(instance)
    assert f"[1] {instance['sentences'][0]}" in prompt and "[2]" not in prompt.replace("like [2]", "")
    assert len(prompt) < 900


def test_oracle_solves_200_seeds_through_the_environment_deterministically():
    env = gymnasium.make("agentic/GroundedSummary-v0").unwrapped
    registry = ToolRegistry(env.task.tools)
    transcripts = []
    for seed in range(200):
        infos = run_episode(env, agentic.oracle_action, seed)
        for info in infos:
            parsed = info["action"]
            assert parsed.kind in (ActionKind.TOOL, ActionKind.FINISH)
            if parsed.kind is ActionKind.TOOL:
                assert registry.validate(parsed.tool, parsed.arguments) is None
        assert infos[-1]["event"] == "finish" and infos[-1]["score"].success, env.context
        transcripts.append(env.context)
    run_episode(env, agentic.oracle_action, 7)
    assert env.context == transcripts[7]


def test_environment_passes_gymnasium_checks():
    check_env(gymnasium.make("agentic/GroundedSummary-v0").unwrapped)


def tool_turn(name: str, arguments: dict, text: str) -> Turn:
    action = parse_action(agentic.tool_call(name, arguments))
    return Turn(action, "tool", f"\n<result>{text}</result>\n", ToolResult(name, arguments, "ok", text))


def test_oracle_reads_the_checks_and_retrieves_more_when_one_fails(task):
    query = key_word_query(ARTICLE["highlights"])
    full = tool_turn("retrieve", {"query": query, "k": 2}, retrieve(query, 2, instance=ARTICLE))
    draft = parse_action(task.oracle(ARTICLE, [full])).arguments["summary"]
    assert (
        draft
        == "The Millbrook council approved a $4 million plan on Tuesday to repair 12 old bridges [1]. The work on the bridges will be paid for with new parking fees [3]."
    )
    low = tool_turn("coverage_check", {"summary": draft}, "coverage 0.40 (target 0.60); points 0.50 0.30")
    assert parse_action(task.oracle(ARTICLE, [full, low])).arguments == {"query": query, "k": 8}
    ungrounded = tool_turn(
        "cite_check", {"summary": draft}, "1. grounded [1] (1.00)\n2. not grounded [3] (0.10)\ngrounded 1/2"
    )
    assert parse_action(task.oracle(ARTICLE, [full, ungrounded])).tool == "retrieve"
    high = tool_turn("coverage_check", {"summary": draft}, "coverage 0.90 (target 0.60); points 1.00 0.80")
    assert parse_action(task.oracle(ARTICLE, [full, high])).kind is ActionKind.FINISH
    short = tool_turn("retrieve", {"query": query, "k": 5}, retrieve(query, 5, instance=ARTICLE))
    assert parse_action(task.oracle(ARTICLE, [short, low])).kind is ActionKind.FINISH, "nothing more to retrieve"


def test_match_arguments_compares_content_words(task):
    assert task.match_arguments(
        "retrieve", {"query": "Bridge repairs council"}, {"query": "council approves bridge repair plan", "k": 5}
    )
    assert not task.match_arguments("retrieve", {"query": "weather today"}, {"query": "council bridge repair"})
    assert task.match_arguments("coverage_check", {"summary": GOOD.lower()}, {"summary": GOOD})
    assert not task.match_arguments("cite_check", {"summary": GOOD.replace("[3]", "[2]")}, {"summary": GOOD})
    assert not task.match_arguments("coverage_check", {"summary": "Bridges [1]."}, {"summary": GOOD})
    assert not task.match_arguments("cite_check", {"summary": 42}, {"summary": GOOD})


@pytest.mark.parametrize("answer", [".", "—", "[1]", "[1] [2].", "!!!"])
def test_an_answer_without_words_scores_zero_length_instead_of_crashing(answer):
    env = gymnasium.make("agentic/GroundedSummary-v0").unwrapped
    env.reset(seed=0)
    *_, terminated, _, info = env.step(f"<finish>{answer}</finish>")
    assert terminated and info["score"].breakdown["length"] == 0.0 and 0.0 <= info["score"].total < 0.5
