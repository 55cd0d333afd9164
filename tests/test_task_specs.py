"""Task specs: ``NAME:key=value,...`` chooses a task's options wherever a task is named (commands, environments)."""

from __future__ import annotations

import json

import pytest

from agentic import AgenticEnvironment
from agentic.cli import main
from agentic.registry import make_task, parse_task_spec
from agentic.trajectory import read_trajectories

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_spec_names_the_task_and_its_options():
    assert parse_task_spec("Arithmetic") == ("Arithmetic", {})
    assert parse_task_spec("ReasoningGym:dataset=chain_sum, size=50,seed=3") == (
        "ReasoningGym",
        {"dataset": "chain_sum", "size": 50, "seed": 3},
    )
    assert parse_task_spec("T:rate=0.5,flag=true,name=007x") == ("T", {"rate": 0.5, "flag": True, "name": "007x"})


def test_an_environment_takes_a_spec():
    env = AgenticEnvironment("ReasoningGym:dataset=chain_sum,size=20")
    try:
        env.reset(seed=0)
        assert env.instance["dataset"] == "chain_sum" and len(env.task.dataset) == 20
    finally:
        env.close()


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("Arithmetic:size", ValueError, "bad task option 'size' in 'Arithmetic:size': write NAME:key=value,key=value"),
        ("Arithmetic:size=3", ValueError, "task Arithmetic: got an unexpected keyword argument 'size'"),
        ("Nope:size=3", KeyError, "unknown task 'Nope'"),
    ],
)
def test_a_bad_spec_is_refused_in_one_line(spec, error, message):
    with pytest.raises(error, match=message):
        make_task(spec)


def test_sft_trains_on_the_task_the_spec_chooses(tmp_path, capsys):
    out_dir = tmp_path / "sft"
    flags = ["--task", "ReasoningGym:dataset=chain_sum,size=50", "--out-dir", str(out_dir), "--no-progress"]
    assert main(["sft", *flags, "--n-demos", "8", "--max-steps", "1"]) == 0
    demos = read_trajectories(out_dir / "demos.jsonl")
    assert len(demos) == 8 and {d.instance["dataset"] for d in demos} == {"chain_sum"}
    assert json.loads((out_dir / "config.json").read_text())["task"] == "ReasoningGym:dataset=chain_sum,size=50"


@pytest.mark.parametrize("command, extra", [("sft", []), ("demo", [])])
def test_a_bad_spec_stops_a_command_before_any_work(tmp_path, capsys, command, extra):
    out_dir = tmp_path / command
    assert main([command, "--task", "Arithmetic:digits=3", "--out-dir", str(out_dir), *extra]) == 2
    error = capsys.readouterr().err
    assert "task Arithmetic: got an unexpected keyword argument 'digits'" in error, error
    assert len(error.strip().splitlines()) == 1 and not out_dir.exists()
