"""Task C (MultiHopKnowledge): Wikitext fact extraction, the wiki tools, scoring and the oracle."""

from __future__ import annotations

import json
import random
import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import agentic
from agentic import AgenticEnvironment, oracle_action, run_episode, tool_call
from agentic.tasks.data.make_wikitext103_standin import OUTPUT, standin_rows
from agentic.tasks.multihop import MultiHopKnowledge
from agentic.tools.wiki import Wiki, detokenize, entity_lookup, extract_facts

REAL_STYLE_LINES = [
    "",
    " = Port Aldery = \n",
    "",
    " Port Aldery is a town in Nova Scotia . It was founded in 1783 by Loyalists . \n",
    " As of 2011 , the town has a population of 12 @,@ 400 . \n",
    "",
    " = = Geography = = \n",
    "",
    " The town lies at an elevation of 1 @,@ 205 m above sea level . \n",
    "",
    " = Edith Marlowe = \n",
    "",
    " Edith Marlowe ( born 3 March 1902 – died 14 June 1970 ) was a Canadian poet from Port Aldery . \n",
    "",
    " = Port Aldery = \n",
    "",
    " A second article with this title was founded in 1999 . \n",
]


@pytest.fixture(scope="module")
def env() -> AgenticEnvironment:
    return AgenticEnvironment(MultiHopKnowledge())


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("wikitext") / "small.jsonl"
    path.write_text("".join(json.dumps({"text": line}) + "\n" for line in REAL_STYLE_LINES), encoding="utf-8")
    return str(path)


def call(env: AgenticEnvironment, tool: str, **arguments) -> str:
    return env.tools.call(tool, arguments, {"instance": env.instance, "state": {}, "env": env}).text


# -- fact extraction -------------------------------------------------------------------


def test_detokenize_undoes_wikitext_number_tokens():
    assert (
        detokenize(" a population of 12 @,@ 400 and 3 @.@ 5 km of two @-@ lane road \n")
        == "a population of 12,400 and 3.5 km of two-lane road"
    )


@pytest.mark.parametrize(
    "sentence, facts",
    [
        ("The club was founded in 1871 by miners .", {"founded": 1871}),
        ("The abbey was established in 960 .", {"founded": 960}),
        ("Smith ( born 1902 ) is a writer .", {"born": 1902}),
        ("She was born on 4 May 1902 and died in 1970 .", {"born": 1902, "died": 1970}),
        ("He was born March 12 , 1931 , and died on 2 July 1999 .", {"born": 1931, "died": 1999}),
        ("The bridge opened in 1933 .", {"opened": 1933}),
        ("The city has a population of approximately 1,250,000 .", {"population": 1250000}),
        ("It lies at an elevation of 2,310 metres and has a length of 45 km .", {"elevation": 2310, "length": 45}),
        ("In 1902 the town grew ; its 400 houses stand 30 metres apart .", {}),
    ],
)
def test_extract_facts_finds_simple_patterns(sentence, facts):
    assert extract_facts(sentence) == facts


def test_wiki_reads_articles_sections_and_facts_from_wikitext_lines():
    wiki = Wiki.from_lines(REAL_STYLE_LINES)
    assert wiki.facts == {
        "Port Aldery": {"founded": 1783, "population": 12400, "elevation": 1205},
        "Edith Marlowe": {"born": 1902, "died": 1970},
    }
    assert all(not p.text.startswith("=") for p in wiki.passages)
    assert [p.title for p in wiki.passages].count("Port Aldery") == 4


def test_a_corpus_without_articles_is_refused():
    with pytest.raises(ValueError, match="Title"):
        Wiki.from_lines(["just a line without a title\n"])


# -- tools -----------------------------------------------------------------------------


def test_search_passage_ranks_the_article_that_matches(env):
    env.reset(seed=0)
    title = sorted(env.task.wiki.facts)[0]
    lines = call(env, "search_passage", query=f"{title} history").splitlines()
    assert 1 <= len(lines) <= 3
    assert lines[0].startswith(f"{title}: ")
    assert all(len(line) < 200 for line in lines)


@pytest.mark.parametrize("query", ["", "   ", "?!. ,", "zzzqqq unknownword", "<tool>"])
def test_search_passage_without_matching_words_says_so(env, query):
    env.reset(seed=0)
    assert call(env, "search_passage", query=query) == "no passage matches"


def test_search_passage_survives_a_huge_unicode_query(env):
    env.reset(seed=0)
    result = env.tools.call("search_passage", {"query": "population ünïcödé 🚀 " * 20_000}, {"env": env})
    assert result.ok and len(result.text) < 1000


def test_entity_lookup_returns_the_extracted_number(env):
    env.reset(seed=0)
    title, table = sorted(env.task.wiki.facts.items())[0]
    attribute, value = next(iter(table.items()))
    assert call(env, "entity_lookup", entity=title, attribute=attribute) == str(value)
    assert call(env, "entity_lookup", entity=f"  {title.upper()} ", attribute=attribute.upper()) == str(value)


def test_entity_lookup_explains_unknown_entities_and_attributes(env):
    env.reset(seed=0)
    title, table = sorted(env.task.wiki.facts.items())[0]
    misspelt = title[:-1] + ("x" if title[-1] != "x" else "y")
    assert call(env, "entity_lookup", entity=misspelt, attribute="born").startswith(
        f"unknown entity {misspelt!r}; close matches: "
    )
    assert title in call(env, "entity_lookup", entity=misspelt, attribute="born")
    assert call(env, "entity_lookup", entity=title, attribute="colour").startswith(
        "unknown attribute; use one of: founded"
    )
    missing = next(
        a for a in ("founded", "born", "died", "opened", "population", "elevation", "length") if a not in table
    )
    assert (
        call(env, "entity_lookup", entity=title, attribute=missing)
        == f"no {missing} for {title}; known: {', '.join(table)}"
    )
    assert call(env, "entity_lookup", entity=" \n", attribute="born") == "error: the entity name is empty"
    assert "longer than" in call(env, "entity_lookup", entity="A" * 100_000, attribute="born")


def test_verify_fact_says_true_only_for_the_extracted_value(env):
    env.reset(seed=0)
    title, table = sorted(env.task.wiki.facts.items())[0]
    attribute, value = next(iter(table.items()))
    assert call(env, "verify_fact", entity=title, attribute=attribute, value=value) == "true"
    assert call(env, "verify_fact", entity=title, attribute=attribute, value=float(value)) == "true"
    assert call(env, "verify_fact", entity=title, attribute=attribute, value=value + 1) == "false"
    assert call(env, "verify_fact", entity="Nowhere At All", attribute=attribute, value=value).startswith(
        "unknown entity"
    )


def test_tool_arguments_of_the_wrong_type_are_refused_before_the_call(env):
    env.reset(seed=0)
    result = env.tools.call("verify_fact", {"entity": "x", "attribute": "born", "value": "1900"}, {"env": env})
    assert result.status == "invalid_arguments" and "value" in result.text


def test_wiki_tools_fail_clearly_outside_a_wiki_task():
    result = agentic.ToolRegistry([entity_lookup]).call("entity_lookup", {"entity": "x", "attribute": "born"})
    assert result.status == "error" and "Wikitext corpus" in result.text


# -- task ------------------------------------------------------------------------------


def test_instances_are_questions_over_two_extracted_facts():
    task = MultiHopKnowledge()
    rng = random.Random(7)
    for _ in range(50):
        instance = task.sample(rng)
        json.dumps(instance)
        (e1, a1, v1), (e2, a2, v2) = instance["facts"]
        assert task.wiki.facts[e1][a1] == v1 and task.wiki.facts[e2][a2] == v2
        assert (e1, a1) != (e2, a2)
        assert e1 in instance["question"] and e2 in instance["question"]
        expected = v1 + v2 if instance["operator"] == "+" else v1 - v2
        assert float(instance["answer"]) == expected > 0


def test_a_local_jsonl_corpus_is_used(small_corpus):
    task = MultiHopKnowledge(corpus=small_corpus)
    asked = {(i := task.sample(random.Random(seed)))["question"]: i["answer"] for seed in range(30)}
    assert asked == {
        "How many years passed from when Port Aldery was founded to when Edith Marlowe was born?": "119",
        "How many years passed from when Port Aldery was founded to when Edith Marlowe died?": "187",
        "How many years passed from when Edith Marlowe was born to when Edith Marlowe died?": "68",
    }


def test_a_corpus_with_too_few_facts_is_refused(small_corpus):
    with pytest.raises(ValueError, match="too few facts"):
        MultiHopKnowledge(corpus=small_corpus, limit=8)


@pytest.mark.parametrize(
    "answer, success",
    [
        ("260350", True),
        (" 260,350 ", True),
        ("260350.0", True),
        ("260351", False),
        ("260350 people", False),
        ("", False),
        (None, False),
    ],
)
def test_score_is_exact_match_of_the_number(answer, success):
    instance = {
        "question": "q",
        "facts": [["A", "population", 232800], ["B", "population", 27550]],
        "operator": "+",
        "answer": "260350",
    }
    score = MultiHopKnowledge().score(instance, answer, [])
    assert score.success is success
    assert score.total == score.breakdown["exact_match"] == float(success)
    assert score.breakdown["facts_found"] == 0.0


def test_match_arguments_ignores_case_and_compares_expressions_by_value():
    task = MultiHopKnowledge()
    assert task.match_arguments(
        "entity_lookup",
        {"entity": "port  ALDERY", "attribute": "Population"},
        {"entity": "Port Aldery", "attribute": "population"},
    )
    assert not task.match_arguments(
        "entity_lookup",
        {"entity": "Port Aldery", "attribute": "founded"},
        {"entity": "Port Aldery", "attribute": "population"},
    )
    assert task.match_arguments("arithmetic", {"expression": "27550+232800"}, {"expression": "232800 + 27550"})
    assert not task.match_arguments("arithmetic", {"expression": "232800 - 27550"}, {"expression": "232800 + 27550"})
    assert not task.match_arguments("arithmetic", {"expression": "9**9**9"}, {"expression": "1 + 1"})


def test_the_user_names_the_facts_needed(env):
    env.reset(seed=1)
    observation, *_ = env.step("<ask>what do I need?</ask>")
    (e1, a1, _), (e2, a2, _) = env.instance["facts"]
    assert observation.endswith(f"<user>You need the {a1} of {e1} and the {a2} of {e2}.</user>\n")


def test_the_environment_passes_gymnasiums_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gymnasium.make("agentic/MultiHopKnowledge-v0").unwrapped)


def run_oracle(env: AgenticEnvironment, seed: int) -> tuple[dict, str]:
    """The oracle's episode: every action a tool call that passed its schema and ran, then a finish."""
    infos = run_episode(env, oracle_action, seed)
    assert [info["event"] for info in infos[:-1]] == ["tool"] * (len(infos) - 1) and infos[-1]["event"] == "finish"
    return infos[-1], env.context


def test_the_oracle_solves_200_consecutive_seeds_deterministically(env):
    for seed in range(200):
        info, context = run_oracle(env, seed)
        assert info["score"].success and info["score"].breakdown["facts_found"] == 1.0, context
        assert env.turns <= env.budget.max_turns and env.tool_calls == 3
    assert run_oracle(env, 5)[1] == run_oracle(env, 5)[1]


def test_the_oracle_recovers_after_a_bad_lookup(env):
    env.reset(seed=2)
    entity, attribute, _ = env.instance["facts"][0]
    env.step(tool_call("entity_lookup", {"entity": entity + "zz", "attribute": attribute}))
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(env.task.oracle(env.instance, env.history))
        done = terminated or truncated
    assert terminated and info["score"].success and len(env.history) == 5


def test_the_shipped_standin_is_what_the_generator_writes():
    shipped = [json.loads(line)["text"] for line in OUTPUT.read_text(encoding="utf-8").splitlines()]
    assert shipped == standin_rows()
    assert OUTPUT.stat().st_size < 800_000
