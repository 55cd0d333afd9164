"""Every registered task: Gymnasium's checker passes, and its oracle succeeds through the real environment."""

from __future__ import annotations

import json
import warnings

import gymnasium
import pytest
from gymnasium.utils.env_checker import check_env

import agentic
from agentic import ActionKind

TASKS = agentic.task_names()
SEEDS = range(200)
ORACLE_TASKS = [name for name in TASKS if not name.startswith("BFCL-")]
"""BFCL's oracles are tested in test_bfcl_tasks.py: a few evaluation entries' ground truth contradicts its own
documentation, so no oracle solves every seed."""


def test_builtin_tasks_are_registered():
    assert {
        "Arithmetic",
        "MissingQuantity",
        "TwoHop",
        "InteractiveStory",
        "GroundedSummary",
        "MultiHopKnowledge",
        "ReasoningGym",
    } <= set(TASKS)


@pytest.mark.parametrize("name", TASKS)
def test_check_env_passes_without_warnings(name):
    env = gymnasium.make(agentic.gym_id(name))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


def run_oracle(env: agentic.AgenticEnvironment, seed: int) -> tuple[list, dict]:
    infos = agentic.run_episode(env, agentic.oracle_action, seed)
    return infos, infos[-1]


@pytest.mark.parametrize("name", ORACLE_TASKS)
def test_oracle_succeeds_on_200_consecutive_seeds(name):
    env = agentic.AgenticEnvironment(name)
    failures = []
    kinds_used = set()
    for seed in SEEDS:
        infos, last = run_oracle(env, seed)
        kinds_used |= {info["action"].kind for info in infos}
        bad_steps = [info["event"] for info in infos if info["event"] not in ("tool", "ask", "finish")]
        if not (last["event"] == "finish" and last["score"].success) or bad_steps:
            failures.append((seed, last["event"], bad_steps))
    assert failures == []
    assert ActionKind.FINISH in kinds_used and ActionKind.INVALID not in kinds_used


def test_built_in_tasks_together_use_every_sentinel():
    kinds = set()
    for name in ("Arithmetic", "MissingQuantity", "TwoHop"):
        env = agentic.AgenticEnvironment(name)
        infos, _ = run_oracle(env, 0)
        kinds |= {info["action"].kind for info in infos}
    assert kinds == {ActionKind.TOOL, ActionKind.ASK, ActionKind.FINISH}


@pytest.mark.parametrize("name", TASKS)
def test_episodes_are_deterministic_given_the_seed(name):
    first, second = agentic.AgenticEnvironment(name), agentic.AgenticEnvironment(name)
    for seed in (3, 17):
        run_oracle(first, seed)
        run_oracle(second, seed)
        assert first.context == second.context
    instances = set()
    for seed in range(10):
        first.reset(seed=seed)
        instances.add(json.dumps(first.instance, sort_keys=True, default=str))
    assert len(instances) > 1, "different seeds give different instances"
