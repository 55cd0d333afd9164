"""BFCL's categories as tasks, through the real environment: schemas, seeds, oracles, scoring, training entries."""

from __future__ import annotations

import json

import gymnasium
import jsonschema
import pytest
from chat_model import chat_tokenizer

pytest.importorskip("bfcl_eval", reason="needs bfcl-eval: pip install --no-deps bfcl-eval==2026.3.23")

import agentic  # noqa: E402
from agentic import AgenticEnvironment, finish, oracle_action, run_episode, tool_call  # noqa: E402
from agentic.encoding import prompt_messages  # noqa: E402
from agentic.rollout import oracle_trajectories  # noqa: E402
from agentic.tasks.bfcl import data  # noqa: E402
from agentic.tasks.bfcl.backends import backends, parse_call, routes  # noqa: E402
from agentic.tasks.bfcl.data import family  # noqa: E402
from agentic.tasks.bfcl.schema import function_schema, json_schema  # noqa: E402
from agentic.tasks.bfcl.tasks import INSTRUCTIONS, contaminated, render_turn  # noqa: E402

SAMPLE = 24
"""Entries per category whose oracle episodes run in the suite (spread over the category)."""


def sample_seeds(category: str) -> list[int]:
    n = len(data.entries(category))
    return sorted(set(range(0, n, max(1, n // SAMPLE))))


def valid(schema: dict, value) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


# -- the parameter dialect as JSON Schema ---------------------------------------------------------


def test_the_dialect_maps_to_json_schema():
    spec = {
        "type": "dict",
        "properties": {
            "ratio": {"type": "float", "description": "a ratio", "default": 0.5},
            "point": {"type": "tuple", "items": {"type": "integer"}},
            "anything": {"type": "any"},
            "unit": {"type": "string", "enum": ["km", "mi"]},
            "tags": {"type": "array", "items": {"type": "string"}, "enum": ["a", "b"]},
            "nested": {
                "type": "dict",
                "properties": {"name": {"type": "string", "required": True}},
                "required": ["name"],
            },
        },
        "required": ["ratio"],
    }
    schema = function_schema({"name": "f", "parameters": spec})
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False and schema["required"] == ["ratio"]
    assert schema["properties"]["ratio"] == {"type": "number", "description": "a ratio", "default": 0.5}
    assert valid(schema, {"ratio": 2}), "an integer passes a float parameter, as BFCL accepts it"
    assert valid(schema, {"ratio": 0.5, "point": [1, 2], "anything": {"x": [1]}, "unit": "km", "tags": ["a"]})
    assert not valid(schema, {"ratio": "0.5"})
    assert not valid(schema, {"ratio": 1, "unit": "miles"})
    assert not valid(schema, {"ratio": 1, "tags": ["c"]}), "an enum on an array constrains its items"
    assert not valid(schema, {"ratio": 1, "point": [1.5]})
    assert not valid(schema, {"ratio": 1, "nested": {}}) and valid(schema, {"ratio": 1, "nested": {"name": "x"}})
    assert not valid(schema, {"ratio": 1, "other": 1})
    assert not valid(schema, {})


def test_an_unknown_type_is_refused_by_name():
    with pytest.raises(ValueError, match="'HashMap'"):
        json_schema({"type": "HashMap"})


@pytest.mark.parametrize("category", list(data.CATEGORIES))
def test_every_sampled_entrys_functions_are_valid_json_schema(category):
    task = agentic.make_task(f"BFCL-{category}")
    for seed in sample_seeds(category):
        for t in task.instance_tools(data.entries(category)[seed]):
            jsonschema.Draft202012Validator.check_schema(t.parameters)


# -- the oracle through the real environment ------------------------------------------------------


@pytest.mark.parametrize("category", list(data.CATEGORIES))
def test_the_oracle_scores_1_on_every_consistent_sampled_entry(category):
    """On entries whose ground truth fits its own documentation the oracle's episode is clean and correct.

    Where it does not (BFCL's ground truth sometimes contradicts its schema), the environment refuses the oracle's
    call: such entries are few and are left out of training."""
    env = AgenticEnvironment(f"BFCL-{category}")
    inconsistent = []
    for seed in sample_seeds(category):
        infos = run_episode(env, oracle_action, seed)
        clean = all(info["event"] in ("tool", "user_turn", "finish") for info in infos)
        solved = infos[-1]["event"] == "finish" and infos[-1]["score"].success
        if env.task.consistent(env.instance):
            assert clean and solved, (seed, [info["delta"][:200] for info in infos])
        else:
            inconsistent.append(seed)
    assert len(inconsistent) <= 2, inconsistent


def test_the_registry_takes_dotted_function_names():
    env = gymnasium.make("agentic/BFCL-simple_python-v0").unwrapped
    env.reset(seed=1)
    assert env.instance["id"] == "simple_python_1" and "math.factorial" in env.tools
    _, _, terminated, _, info = env.step('<tool name="math.factorial">{"number": 5}</tool>')
    assert info["event"] == "tool" and info["delta"] == "\n<result>recorded</result>\n" and not terminated
    *_, terminated, _, info = env.step(finish("done"))
    assert terminated and info["score"].success


def test_seeds_are_entries_in_order_and_training_seeds_are_training_entries():
    task = agentic.make_task("BFCL-live_simple")
    env = AgenticEnvironment(task)
    entries = data.entries("live_simple")
    for seed in (0, 5, len(entries) - 1):
        env.reset(seed=seed)
        assert env.instance is entries[seed]
    training = {e["id"] for e in task.training_entries}
    drawn = set()
    for seed in range(10_000, 10_000 + len(training)):
        env.reset(seed=seed)
        drawn.add(env.instance["id"])
    assert drawn == training and len(training) < len(entries)


@pytest.mark.parametrize("category", list(data.CATEGORIES))
def test_training_entries_share_no_question_with_another_family(category):
    """Held out by content: no user message of a training entry occurs in any category of another family."""
    task = agentic.make_task(f"BFCL-{category}")
    others = set().union(*(data.user_texts(c) for c in data.ALL_CATEGORIES if family(c) != family(category)))
    shared = [e["id"] for e in task.training_entries if others & set(data.entry_user_texts(e))]
    assert shared == []
    assert all(task.consistent(e) for e in task.training_entries[::50])


def test_families_contaminate_each_other_within_only():
    assert contaminated(["live_multiple", "simple_python", "multi_turn_base"], ["BFCL-live_simple", "Arithmetic"]) == {
        "live_multiple": "BFCL-live_simple"
    }
    assert contaminated(["multiple"], ["BFCL-simple_python"]) == {"multiple": "BFCL-simple_python"}
    assert contaminated(["simple_python"], []) == {}


@pytest.mark.parametrize("category", ["simple_python", "live_multiple", "multi_turn_base"])
def test_a_chat_episode_offers_the_entrys_functions_in_its_system_message(category):
    """The entry's functions are its episode's instructions (the template's system message), its first request the
    user message, as later requests arrive (``<user>…</user>``); the raw prompt is the two joined, as before."""
    tokenizer = chat_tokenizer()
    task, seed = agentic.make_task(f"BFCL-{category}"), 3
    entry = data.entries(category)[seed]
    system, user = prompt_messages(task, entry)
    assert system["role"] == "system" and system["content"].startswith(INSTRUCTIONS.split("\n")[0])
    assert all(json.dumps(f["name"]) in system["content"] for f in task.functions(entry))
    assert user == {"role": "user", "content": render_turn(entry["question"][0]).strip()}
    assert user["content"].startswith("<user>") and user["content"] not in system["content"]
    demo = oracle_trajectories(task, [seed], tokenizer, mode="chat")[0]
    assert demo.success and demo.prompt == tokenizer.apply_chat_template(
        [system, user], tokenize=False, add_generation_prompt=True
    )
    raw = AgenticEnvironment(task).reset(seed=seed)[0]
    assert raw == f"{system['content']}\n{user['content']}\n"
    assert raw.endswith(render_turn(entry["question"][0])) and "Here is a list of functions in JSON format" in raw


# -- scoring as the leaderboard scores ------------------------------------------------------------


def play(category: str, seed: int, actions: list[str]) -> dict:
    env = AgenticEnvironment(f"BFCL-{category}")
    env.reset(seed=seed)
    for action in actions:
        *_, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return info
    raise AssertionError("the episode did not end")


def oracle_actions(category: str, seed: int) -> list[str]:
    env = AgenticEnvironment(f"BFCL-{category}")
    return [info["action"].raw for info in run_episode(env, oracle_action, seed)]


def test_parallel_calls_count_in_any_order():
    calls = oracle_actions("parallel", 0)[:-1]
    assert len(calls) >= 2
    assert play("parallel", 0, [*reversed(calls), finish("done")])["score"].success
    assert not play("parallel", 0, [*calls[:-1], finish("done")])["score"].success


def test_irrelevance_is_correct_when_the_agent_calls_nothing():
    assert play("irrelevance", 0, [finish("none of these functions fits")])["score"].success
    name = data.entries("irrelevance")[0]["function"][0]["name"]
    assert not play("irrelevance", 0, [tool_call(name, {}), finish("done")])["score"].success


def test_a_refused_call_still_counts_as_a_call():
    """BFCL judges the whole response: a call the schema refuses, then a right one, is two calls and wrong."""
    right = oracle_actions("simple_python", 1)[0]
    info = play("simple_python", 1, ['<tool name="math.factorial">{}</tool>', right, finish("done")])
    assert not info["score"].success
    assert play("simple_python", 1, [right, finish("done")])["score"].success


def test_an_episode_without_finish_scores_0():
    right = oracle_actions("simple_python", 0)[0]
    info = play("simple_python", 0, [right, "no", "sentinel", "here"])
    assert info["truncation_reason"] and info["score"].total == 0.0


def test_multi_turn_requests_arrive_one_finish_at_a_time():
    entry = data.entries("multi_turn_base")[0]
    env = AgenticEnvironment("BFCL-multi_turn_base")
    infos = run_episode(env, oracle_action, 0)
    handovers = [info for info in infos if info["event"] == "user_turn"]
    assert len(handovers) == len(entry["question"]) - 1
    assert handovers[0]["delta"] == f"\n<user>{entry['question'][1][0]['content']}</user>\n"
    assert infos[-1]["event"] == "finish" and infos[-1]["score"].success
    skipped = [finish("done")] * len(entry["question"])
    assert not play("multi_turn_base", 0, skipped)["score"].success


@pytest.mark.parametrize("seed", [0, 37, 90, 147, 199])
def test_the_multi_turn_oracle_reaches_the_ground_truths_state(seed):
    """After the oracle's episode the environment's own back-ends equal BFCL's ground truth executed on fresh ones,
    and the verdict, which replays the episode's calls, agrees. In entries 90 and 147 a later call changes a list an
    earlier call passed to a back-end: calls must not share argument objects with the episode's history."""
    env = AgenticEnvironment("BFCL-multi_turn_base")
    run_episode(env, oracle_action, seed)
    expected, route = backends(env.instance), routes(env.instance["involved_classes"])
    for call in [c for turn in env.instance["ground_truth"] for c in turn]:
        name, args, kwargs = parse_call(call)
        getattr(expected[route[name]], name)(*args, **kwargs)
    for name, instance in expected.items():
        public = {k: v for k, v in vars(instance).items() if not k.startswith("_")}
        assert public == {k: getattr(env.state["backends"][name], k) for k in public}, name
    assert env.history and env.task.verdict(env.instance, [(t.event, t.action) for t in env.history], True).valid


def test_a_multi_turn_call_with_another_argument_fails_the_state_check():
    actions = oracle_actions("multi_turn_base", 0)
    changed = [a.replace('{"dir_name": "temp"}', '{"dir_name": "tmp"}') for a in actions]
    assert changed != actions
    env = AgenticEnvironment("BFCL-multi_turn_base")
    env.reset(seed=0)
    for action in changed:
        *_, terminated, truncated, info = env.step(action)
    assert terminated and not info["score"].success
    verdict = env.task.verdict(env.instance, [(turn.event, turn.action) for turn in env.history], True)
    assert verdict.error_type == "multi_turn:instance_state_mismatch"
