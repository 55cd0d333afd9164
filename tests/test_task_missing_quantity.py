import random

import gymnasium
import pytest

import agentic
from agentic import AgenticEnvironment, Turn, oracle_action, parse_action, run_episode
from agentic.tasks.missing_quantity import MISSING_RANGE, UNHELPFUL, MissingQuantity
from agentic.tools.calculator import evaluate


@pytest.fixture
def task():
    return MissingQuantity()


@pytest.fixture
def instance(task):
    return task.sample(random.Random(7))


def test_user_reveals_the_missing_number_only_when_asked_about_it(task, instance):
    noun = instance["nouns"][-1]
    for question in (f"How many {noun}?", f"HOW MANY {noun.upper()} ARE THERE", "What is the missing number?"):
        reply = task.user(instance, question, {})
        assert str(instance["missing"]) in reply
    for question in ("What is the weather like?", "How many are left?", ""):
        assert task.user(instance, question, {}) == UNHELPFUL


def test_score_right_wrong_and_truncated_answers(task, instance):
    assert task.score(instance, instance["answer"], []).success
    assert task.score(instance, f" {instance['answer']} ", []).total == 1.0
    wrong = task.score(instance, str(int(instance["answer"]) + 1), [])
    assert wrong.total == 0.0 and not wrong.success
    assert task.score(instance, None, []).total == 0.0
    assert task.score(instance, "many", []).total == 0.0


def test_answer_depends_on_the_missing_number_so_guessing_rarely_pays(task):
    rng = random.Random(0)
    guess = sum(MISSING_RANGE) // 2
    instances = [task.sample(rng) for _ in range(500)]
    lucky = sum(evaluate(i["expression"].replace("x", str(guess))) == float(i["answer"]) for i in instances)
    assert lucky / len(instances) < 0.05


def test_oracle_asks_computes_and_finishes_on_many_seeds():
    env = gymnasium.make("agentic/MissingQuantity-v0").unwrapped
    for seed in range(100):
        info = run_episode(env, oracle_action, seed)[-1]
        assert info["event"] == "finish" and info["score"].success, env.context
        assert [t.event for t in env.history] == ["ask", "tool", "finish"]


def test_oracle_uses_the_number_the_user_actually_gave(task):
    env = AgenticEnvironment(task, user=lambda instance, question, state: "It is 1000.")
    env.reset(seed=3)
    env.step(task.oracle(env.instance, env.history))
    call = parse_action(task.oracle(env.instance, env.history))
    assert call.tool == "calculator" and "1000" in call.arguments["expression"]


def test_oracle_asks_again_after_an_unhelpful_reply(task, instance):
    shrug = Turn(parse_action(agentic.ask("Is it sunny?")), "ask", f"\n<user>{UNHELPFUL}</user>\n")
    assert parse_action(task.oracle(instance, [shrug])).kind == "ask"


def test_episodes_are_deterministic_given_the_seed():
    env = gymnasium.make("agentic/MissingQuantity-v0").unwrapped
    contexts = []
    for seed in (5, 5, 6):
        run_episode(env, oracle_action, seed)
        contexts.append(env.context)
    assert contexts[0] == contexts[1] != contexts[2]


def test_calculator_calls_match_by_value(task):
    assert task.match_arguments("calculator", {"expression": "4 * 3 + 1"}, {"expression": "13"})
    assert not task.match_arguments("calculator", {"expression": "4 * 3"}, {"expression": "13"})
