"""Trajectories: exact round trips through datasets.Dataset and JSONL, and a renderer that tells agent from environment."""

import json
import math
from dataclasses import replace

import pytest
import torch

from agentic.policy import Policy
from agentic.rollout import oracle_trajectories, rollout
from agentic.run_dir import write_jsonl
from agentic.sampling import Sampling
from agentic.training.tiny_model import build_tiny_model
from agentic.trajectory import (
    AGENT_STYLE,
    ENVIRONMENT_STYLE,
    Trajectory,
    TurnRecord,
    from_dataset,
    read_trajectories,
    render_trajectory,
    to_dataset,
    visible,
)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return Policy.from_pretrained(build_tiny_model(["Arithmetic"], tmp_path_factory.mktemp("tiny"), seeds=range(20)))


@pytest.fixture(scope="module")
def trajectories(policy):
    """Sampled episodes (finite log-probs) and oracle demonstrations (NaN log-probs) together."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sampled = rollout(policy, "Arithmetic", [0, 1, 2], Sampling(max_new_tokens=8))
    torch.set_num_threads(threads)
    return sampled + oracle_trajectories("Arithmetic", [3, 4], policy.tokenizer)


def test_round_trip_through_a_dataset_is_exact(trajectories):
    dataset = to_dataset(trajectories)
    assert len(dataset) == len(trajectories)
    assert dataset[0]["transcript"] == trajectories[0].transcript
    loaded = from_dataset(dataset)
    assert loaded == trajectories
    assert [t.logprobs[-1] for t in loaded[:3]] == [t.logprobs[-1] for t in trajectories[:3]]
    assert all(math.isnan(x) for x in loaded[-1].logprobs)
    assert loaded[-1].instance == trajectories[-1].instance and isinstance(loaded[-1].turns[0].reward, float)


def test_round_trip_through_jsonl_is_exact_and_strict_json(trajectories, tmp_path):
    path = write_jsonl(trajectories, tmp_path / "episodes.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(trajectories)
    assert all("NaN" not in line for line in lines)
    assert json.loads(lines[-1])["logprobs"][0] is None
    assert read_trajectories(path) == trajectories


def test_the_mode_is_saved_and_files_written_before_it_load_as_raw_text(trajectories, tmp_path):
    chat = [replace(t, mode="chat") for t in trajectories[:2]]
    assert [t.mode for t in trajectories] == ["raw"] * len(trajectories) and chat[0] != trajectories[0]
    assert read_trajectories(write_jsonl(chat, tmp_path / "chat.jsonl")) == chat
    assert from_dataset(to_dataset(chat)) == chat
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps({k: v for k, v in t.to_dict().items() if k != "mode"}) + "\n" for t in chat))
    assert [t.mode for t in read_trajectories(old)] == ["raw", "raw"]
    assert [t.mode for t in from_dataset(to_dataset(chat).remove_columns("mode"))] == ["raw", "raw"]
    old.write_text(json.dumps({**chat[0].to_dict(), "mode": "text"}) + "\n")
    with pytest.raises(
        ValueError, match="line 1: not a trajectory \\(mode: 'text' is not one of \\['chat', 'raw'\\]\\)"
    ):
        read_trajectories(old)


def test_equality_sees_every_field(trajectories):
    changed = Trajectory.from_dict(trajectories[0].to_dict())
    assert changed == trajectories[0]
    changed.logprobs[-1] = changed.logprobs[-1] + 1e-3 if not math.isnan(changed.logprobs[-1]) else 0.0
    assert changed != trajectories[0]


def test_render_shows_control_characters_escaped():
    trajectory = Trajectory("Arithmetic", 0, {}, "Task.\n", [], [], [])
    trajectory.turns.append(TurnRecord(0, 1, "a\x0bb\x1b[2Jc\td", "text", "text", 0.0, "\n<sys>ok</sys>\n"))
    plain = render_trajectory(trajectory).plain
    assert "a\\x0bb\\x1b[2Jc\td\n<sys>ok</sys>\n" in plain and "\x1b" not in plain


def test_render_tells_agent_from_environment_text(trajectories):
    for trajectory in trajectories:
        text = render_trajectory(trajectory)
        episode_start = text.plain.index(visible(trajectory.transcript))
        styled = {AGENT_STYLE: "", ENVIRONMENT_STYLE: ""}
        for span in text.spans:
            if span.style in styled and span.start >= episode_start:
                styled[span.style] += text.plain[span.start : span.end]
        assert styled[AGENT_STYLE] == visible("".join(turn.action for turn in trajectory.turns))
        assert styled[ENVIRONMENT_STYLE] == visible("".join(turn.reply for turn in trajectory.turns))
        assert f"turn {len(trajectory.turns)}:" in text.plain


def _load_json(path) -> list[Trajectory]:
    """A JSONL file through `datasets.load_dataset("json", ...)`, as a user of the Hugging Face stack loads it."""
    import datasets

    return from_dataset(datasets.load_dataset("json", data_files=str(path), split="train"))


def assert_same_but_float_reading(loaded: list[Trajectory], expected: list[Trajectory]) -> None:
    """Equal in every field; log-probs to 1e-12 (load_dataset's JSON reader re-encodes with ujson, which may read
    a float one unit in its last place off), NaN in the same places."""
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected):
        assert replace(got, logprobs=[]) == replace(want, logprobs=[])
        assert [math.isnan(x) for x in got.logprobs] == [math.isnan(x) for x in want.logprobs]
        assert got.logprobs == pytest.approx(want.logprobs, rel=1e-12, nan_ok=True)


def test_a_jsonl_file_of_several_tasks_loads_through_load_dataset(trajectories, policy, tmp_path):
    """Instances and breakdowns of different shapes share one file: they are JSON text in every record."""
    others = oracle_trajectories("TwoHop", [7], policy.tokenizer)
    mixed = trajectories + others + [replace(trajectories[0], instance=[1, "two", None], breakdown={"x": 0.5})]
    path = write_jsonl(mixed, tmp_path / "mixed.jsonl")
    assert isinstance(json.loads(path.read_text().splitlines()[0])["instance"], str)
    assert read_trajectories(path) == mixed
    assert_same_but_float_reading(_load_json(path), mixed)
    assert from_dataset(to_dataset(mixed)) == mixed


def test_files_written_before_instances_were_json_text_still_load(trajectories, tmp_path):
    old = tmp_path / "old.jsonl"
    records = []
    for trajectory in trajectories:
        record = trajectory.to_dict()
        records.append({**record, "instance": trajectory.instance, "breakdown": trajectory.breakdown})
    old.write_text("".join(json.dumps(record) + "\n" for record in records))
    assert read_trajectories(old) == trajectories
    assert_same_but_float_reading(_load_json(old), trajectories)


def test_a_record_whose_instance_text_is_not_json_is_refused_with_its_line(trajectories, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**trajectories[0].to_dict(), "instance": "{not json"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl, line 1: not a trajectory"):
        read_trajectories(bad)
