import json
import random
import sys
import time

import gymnasium
import pytest

from agentic import oracle_action, run_episode
from agentic.tasks.reasoning_gym import CODE_SCORED, LITERAL_SCORED, RECIPE_FORMAT_REWARD, ReasoningGym


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


def test_the_recipes_format_reward_pays_a_finished_answer_and_keeps_success_for_full_scores():
    plain = ReasoningGym("chain_sum", size=20)
    recipe = ReasoningGym("chain_sum", size=20, format_reward=RECIPE_FORMAT_REWARD)
    instance = recipe.sample(random.Random(0))
    wrong = str(int(instance["answer"]) + 1)
    assert plain.score(instance, wrong, []).total == 0.0
    scored = recipe.score(instance, wrong, [])
    assert scored.total == pytest.approx(0.15) and not scored.success
    right = recipe.score(instance, instance["answer"], [])
    assert right.total == pytest.approx(1.0) and right.success
    padded = f"the answer is {instance['answer']}"
    assert recipe.score(instance, padded, []).total == pytest.approx(
        0.15 + 0.85 * plain.score(instance, padded, []).total
    )
    assert recipe.score(instance, None, []).total == 0.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_format_reward_outside_zero_to_one_is_refused(bad):
    with pytest.raises(ValueError, match="format_reward"):
        ReasoningGym("chain_sum", size=5, format_reward=bad)


def test_the_format_reward_is_a_task_option_on_the_command_line():
    from agentic.registry import make_task

    assert make_task("ReasoningGym:dataset=chain_sum,size=5,format_reward=0.15").format_reward == 0.15


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


HOSTILE = [
    "__import__('os').system('touch {path}')",
    "[__import__('os').system('touch {path}')]",
    "  __import__('os').system('touch {path}')",
    "__import__('os').system('touch {path}') \\\n",
    "exec(\"import os; os.system('touch {path}')\")",
    "open('{path}', 'w')",
]


@pytest.fixture(scope="module", params=sorted(CODE_SCORED))
def code_scored_env(request):
    """One environment (so one scoring process) per dataset whose scorer evaluates answers as code."""
    env = gymnasium.make("agentic/ReasoningGym-v0", dataset=request.param, size=20).unwrapped
    yield env
    env.close()


def test_an_answer_that_is_code_never_runs(code_scored_env, tmp_path):
    target = tmp_path / "pwned"
    for hostile in HOSTILE:
        code_scored_env.reset(seed=0)
        *_, terminated, _, info = code_scored_env.step(f"<finish>{hostile.format(path=target)}</finish>")
        assert terminated and info["score"].total < 0.1 and not info["score"].success
        assert not target.exists(), hostile


def test_sandboxed_scores_equal_reasoning_gyms_own(code_scored_env):
    """Oracle answers, near misses and (for the eval datasets) the Python-list forms their scorers
    give partial credit for score exactly as the dataset's score_answer scores them in-process.
    (Python code refused as such scores 0, where countdown's and puzzle24's scorers give any failure 0.01.)"""
    task = code_scored_env.task
    for seed in range(3):
        instance = task.sample(random.Random(seed))
        entry = task.dataset[instance["index"]]
        answer = str(entry["answer"])
        candidates = [answer, answer + " 1", answer.replace(" ", ""), "", "no idea"]
        if task.dataset_name in LITERAL_SCORED:
            candidates += [repr(answer.split()), repr([row.split() for row in answer.splitlines()])]
        for candidate in candidates:
            expected = float(task.dataset.score_answer(candidate, entry))
            assert task.score(instance, candidate, []).total == pytest.approx(expected), candidate


def test_a_slow_score_is_cut_by_the_time_out():
    env = gymnasium.make("agentic/ReasoningGym-v0", dataset="countdown", size=20, score_timeout_s=1.0).unwrapped
    for answer in (None, "9**9**9**9", None):  # sympy would compute 9**(9**(9**9)) for ever
        env.reset(seed=0)
        start = time.monotonic()
        *_, info = env.step(oracle_action(env) if answer is None else f"<finish>{answer}</finish>")
        if answer is None:
            assert info["score"].success, "the scorer works before and after a time-out"
        else:
            assert time.monotonic() - start < 2.0
            assert info["score"].total == 0.0 and info["score"].breakdown["timed_out"] == 1.0
    env.close()


@pytest.mark.parametrize("dataset", ["knights_knaves", "number_sorting"])
def test_scorers_that_compile_or_unpickle_their_own_data_still_score_in_the_sandbox(dataset):
    """number_sorting evals the entry's own answer; knights_knaves' entries hold classes of its own."""
    task = ReasoningGym(dataset, size=20)
    for seed in range(3):
        instance = task.sample(random.Random(seed))
        entry = task.dataset[instance["index"]]
        for candidate in (str(entry["answer"]), str(entry["answer"]) + " 1"):
            expected = float(task.dataset.score_answer(candidate, entry))
            assert task.score(instance, candidate, []).total == pytest.approx(expected), candidate
    task.close()
