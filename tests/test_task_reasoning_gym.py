import json
import random
import sys

import gymnasium
import pytest

from agentic import oracle_action, run_episode
from agentic.tasks.reasoning_gym import ReasoningGym


@pytest.mark.parametrize(
    "task_kwargs",
    [
        {},
        {"dataset": "chain_sum", "size": 50, "seed": 3, "min_terms": 2, "max_terms": 3},
        {"dataset": "leg_counting", "max_animals": 3},
    ],
    ids=["default", "chain_sum", "leg_counting"],
)
def test_oracle_answer_scores_one_through_the_environment(task_kwargs):
    env = gymnasium.make("agentic/ReasoningGym-v0", **task_kwargs).unwrapped
    for seed in range(30):
        info = run_episode(env, oracle_action, seed)[-1]
        assert info["event"] == "finish" and info["score"].success and info["score"].total == 1.0, env.context
        assert env.instance["question"] in env.context


def test_wrong_and_missing_answers_score_below_one():
    task = ReasoningGym("chain_sum", size=20)
    instance = task.sample(random.Random(0))
    wrong = task.score(instance, str(int(instance["answer"]) + 1), [])
    assert wrong.total < 1.0 and not wrong.success
    padded = task.score(instance, f"the answer is {instance['answer']}", [])
    assert 0.0 < padded.total < 1.0 and not padded.success
    assert task.score(instance, None, []).total == 0.0


def test_instances_are_json_and_score_after_a_round_trip():
    task = ReasoningGym("leg_counting", size=20)
    instance = json.loads(json.dumps(task.sample(random.Random(1))))
    assert task.score(instance, instance["answer"], []).success


def test_dataset_options_and_seed_reach_reasoning_gym():
    short = ReasoningGym("chain_sum", size=40, min_terms=2, max_terms=2)
    assert {short.dataset[i]["metadata"]["num_terms"] for i in range(40)} == {2}
    assert ReasoningGym(seed=1).dataset[0]["question"] != ReasoningGym(seed=2).dataset[0]["question"]


def test_episodes_are_deterministic_given_the_seed():
    env = gymnasium.make("agentic/ReasoningGym-v0").unwrapped
    questions = []
    for seed in (8, 8, 9):
        env.reset(seed=seed)
        questions.append(env.instance["question"])
    assert questions[0] == questions[1] != questions[2]


def test_missing_reasoning_gym_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    with pytest.raises(ImportError, match=r"pip install agentic-slm\[reasoning\]"):
        ReasoningGym()
