import random

import gymnasium
import pytest

from agentic import (
    ToolRegistry,
    ToolResult,
    Turn,
    oracle_action,
    parse_action,
    run_episode,
)
from agentic.tasks.two_hop import CHAINS, RELATIONS, TwoHop, generate_kb
from agentic.tools.knowledge_base import UnknownFact, kb_lookup, lookup

KB = {"Zentrix": {"founded_by": "Alma Voss"}, "Alma Voss": {"born_in": "Kelda"}, "Kelda": {"located_in": "Varnia"}}


@pytest.fixture
def task():
    return TwoHop()


def test_lookup_ignores_case_and_spaces_in_names():
    assert lookup(KB, "zentrix", "Founded_By") == "Alma Voss"
    assert lookup(KB, "  alma   voss ", "born in") == "Kelda"


def test_unknown_entity_and_relation_name_the_valid_relations():
    with pytest.raises(UnknownFact, match="born_in, founded_by, located_in"):
        lookup(KB, "Nowhere Inc", "founded_by")
    with pytest.raises(UnknownFact, match="its relations: founded_by"):
        lookup(KB, "Zentrix", "born_in")


def test_kb_lookup_through_the_registry_reads_the_injected_instance():
    registry = ToolRegistry([kb_lookup])
    assert "instance" not in kb_lookup.parameters["properties"]
    ok = registry.call("kb_lookup", {"entity": "Kelda", "relation": "located_in"}, {"instance": {"kb": KB}})
    assert ok.ok and ok.text == "Varnia"
    failed = registry.call("kb_lookup", {"entity": "Atlantis", "relation": "capital"}, {"instance": {"kb": KB}})
    assert failed.status == "error" and "UnknownFact" in failed.text and "located_in" in failed.text


def test_generated_kb_is_closed_and_every_chain_resolves():
    for seed in range(50):
        kb, names = generate_kb(random.Random(seed))
        all_names = [n for kind in names.values() for n in kind]
        assert len(set(all_names)) == len(all_names) == len(kb)
        assert all(value in kb for facts in kb.values() for value in facts.values())
        assert {r for facts in kb.values() for r in facts} == set(RELATIONS)
        for first, second, _ in CHAINS:
            assert all(second in kb[facts[first]] for facts in kb.values() if first in facts)


def test_score_is_case_insensitive_exact_match(task):
    instance = task.sample(random.Random(1))
    answer = instance["answer"]
    assert task.score(instance, f"  {answer.upper()} ", []).success
    assert task.score(instance, answer + "x", []).total == 0.0
    assert task.score(instance, None, []).total == 0.0


def test_oracle_chains_the_first_result_it_read(task):
    instance = task.sample(random.Random(2))
    first = parse_action(task.oracle(instance, []))
    assert first.arguments == {"entity": instance["subject"], "relation": instance["relations"][0]}
    result = ToolResult("kb_lookup", first.arguments, "ok", "Someone Else")
    second = parse_action(task.oracle(instance, [Turn(first, "tool", "", result)]))
    assert second.arguments == {"entity": "Someone Else", "relation": instance["relations"][1]}


def test_oracle_succeeds_with_two_lookups_on_many_seeds():
    env = gymnasium.make("agentic/TwoHop-v0").unwrapped
    for seed in range(100):
        info = run_episode(env, oracle_action, seed)[-1]
        assert info["event"] == "finish" and info["score"].success, env.context
        assert [t.event for t in env.history] == ["tool", "tool", "finish"]


def test_each_episode_has_its_own_deterministic_kb():
    env = gymnasium.make("agentic/TwoHop-v0").unwrapped
    kbs = []
    for seed in (4, 4, 5):
        env.reset(seed=seed)
        kbs.append(env.instance["kb"])
    assert kbs[0] == kbs[1] != kbs[2]


def test_calls_match_when_they_look_up_the_same_fact(task):
    expected = {"entity": "Alma Voss", "relation": "born_in"}
    assert task.match_arguments("kb_lookup", {"entity": "alma voss", "relation": "born in"}, expected)
    assert not task.match_arguments("kb_lookup", {"entity": "Alma", "relation": "born_in"}, expected)
    assert not task.match_arguments("kb_lookup", {**expected, "extra": 1}, expected)


def test_oracle_calls_pass_the_schema(task):
    instance = task.sample(random.Random(3))
    call = parse_action(task.oracle(instance, []))
    assert ToolRegistry(task.tools).validate(call.tool, call.arguments) is None
