"""Held-out evaluation by construction: no evaluation instance occurs in SFT demonstrations or RL rollouts, by content.

Instances are drawn as the trainers and the evaluator draw them: through the environment's
``reset(seed=..., options={"split": ...})`` on the default seeds (evaluation 0-199, SFT demonstrations from
`DEMO_SEED_START`, RL rollouts from `TRAIN_SEED_START`). To stay fast the training sets are sampled: every
`TRAINING_STRIDE`-th seed of the 4000 SFT seeds (10 000-13 999) and of the 3200 RL seeds (1 000 000-1 003 199).
"""

from __future__ import annotations

import random

import pytest

from agentic import AgenticEnvironment, Task
from agentic.registry import make_task, task_names
from agentic.task import EVALUATION_SHARE, canonical_json, key_split
from agentic.training.rl_config import TRAIN_SEED_START
from agentic.training.sft_config import DEMO_SEED_START

EVALUATION_SEEDS = range(200)
TRAINING_STRIDE = 4
TRAINING_SEEDS = [
    *range(DEMO_SEED_START, DEMO_SEED_START + 4000, TRAINING_STRIDE),
    *range(TRAIN_SEED_START, TRAIN_SEED_START + 3200, TRAINING_STRIDE),
]
HELD_OUT_TASKS = [name for name in task_names() if not name.startswith("BFCL-")]


def instances(env: AgenticEnvironment, seeds, split: str) -> list:
    drawn = []
    for seed in seeds:
        _, info = env.reset(seed=seed, options={"split": split})
        assert info["split"] == split
        drawn.append(env.instance)
    return drawn


@pytest.mark.parametrize("name", HELD_OUT_TASKS)
def test_no_evaluation_instance_occurs_in_training(name):
    env = AgenticEnvironment(name)
    try:
        task = env.task
        assert task.held_out
        evaluation = instances(env, EVALUATION_SEEDS, "evaluation")
        training = instances(env, TRAINING_SEEDS, "training")
    finally:
        env.close()
    shared = {canonical_json(i) for i in evaluation} & {canonical_json(i) for i in training}
    assert not shared, f"{len(shared)} evaluation instances of {name} occur in training"
    evaluation_keys = {key for i in evaluation for key in task.split_keys(i)}
    training_keys = {key for i in training for key in task.split_keys(i)}
    assert not evaluation_keys & training_keys, f"{name}: evaluation and training share a source"
    assert len({canonical_json(i) for i in evaluation}) > 20, f"{name}: too few distinct evaluation instances"


def test_bfcl_tasks_say_how_they_are_held_out():
    for task in [make_task(name) for name in task_names() if name.startswith("BFCL-")]:
        assert not task.held_out
        assert any("not held out" in note for note in task.notes)


def test_a_fixed_share_of_keys_belongs_to_evaluation():
    keys = [f"instance {i}" for i in range(20_000)]
    share = sum(key_split(key) == "evaluation" for key in keys) / len(keys)
    assert share == pytest.approx(EVALUATION_SHARE, abs=0.01)
    assert key_split("instance 7") == key_split("instance 7")


class Die(Task):
    """Twenty instances, the faces of a die: a few of them (by the hash of their content) are evaluation's."""

    name = "Die"

    def sample(self, rng):
        return {"face": rng.randint(1, 20)}

    def question(self, instance):
        return "Task: roll."


def test_each_split_draws_only_its_own_instances():
    task = Die()
    faces = {}
    for split in ("training", "evaluation"):
        faces[split] = {task.instance_for(seed, random.Random(seed), split)["face"] for seed in range(200)}
        assert all(key_split(canonical_json({"face": face})) == split for face in faces[split])
    assert not faces["training"] & faces["evaluation"]
    assert len(faces["training"]) + len(faces["evaluation"]) == 20


def test_a_task_too_small_to_split_says_so():
    class OneSided(Die):
        def sample(self, rng):
            return {"face": 1}

    task = OneSided()
    other = "training" if task.split_of({"face": 1}) == "evaluation" else "evaluation"
    with pytest.raises(ValueError, match=f"belongs to the {other} split; its instances are too few"):
        task.instance_for(0, random.Random(0), other)


def test_a_task_not_held_out_draws_any_instance_for_either_split():
    class Toy(Die):
        held_out = False

    faces = {Toy().instance_for(seed, random.Random(seed), "evaluation")["face"] for seed in range(200)}
    assert len(faces) == 20


def test_an_unknown_split_is_refused_in_one_line():
    env = AgenticEnvironment("Arithmetic")
    with pytest.raises(ValueError, match="unknown split 'test'; one of training, evaluation"):
        env.reset(seed=0, options={"split": "test"})
