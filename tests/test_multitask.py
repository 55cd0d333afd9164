"""Several tasks, one policy: task lists on every command, interleaved instances that keep each task's own training
split, evaluation per task on its own held-out instances, provenance of every task; and the tiny model for every task.
"""

from __future__ import annotations

import json

import pytest
from test_splits import EVALUATION_SEEDS, HELD_OUT_TASKS, instances

from agentic import AgenticEnvironment, registry
from agentic.cli import main
from agentic.mixture import TaskMixture, played_task
from agentic.provenance import trained_tasks
from agentic.registry import make_task, split_task_specs
from agentic.rollout import oracle_trajectories, scripted_trajectories
from agentic.task import canonical_json
from agentic.training.demo_config import DemoOptions
from agentic.training.demos import GIVE_UP
from agentic.training.rl import run_rl
from agentic.training.rl_config import TRAIN_SEED_START, PPOOptions
from agentic.training.sft import run_sft
from agentic.training.sft_config import DEMO_SEED_START, SFTOptions
from agentic.training.tiny_model import build_tiny_model, train_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_task_list_splits_into_specs_whose_options_follow_them():
    assert split_task_specs("Arithmetic") == ["Arithmetic"]
    assert split_task_specs(" Arithmetic , TwoHop ") == ["Arithmetic", "TwoHop"]
    # the ambiguous case: a piece with `=` and no `:` is one more option of the spec before it
    assert split_task_specs("ReasoningGym:dataset=chain_sum,size=5,TwoHop") == [
        "ReasoningGym:dataset=chain_sum,size=5",
        "TwoHop",
    ]
    assert split_task_specs("TwoHop,ReasoningGym:dataset=chain_sum,size=5") == [
        "TwoHop",
        "ReasoningGym:dataset=chain_sum,size=5",
    ]
    for bad, message in (
        ("Arithmetic,,TwoHop", "empty task"),
        ("", "empty task"),
        ("size=5,Arithmetic", "comes before any task"),
    ):
        with pytest.raises(ValueError, match=message):
            split_task_specs(bad)


@pytest.mark.parametrize("command", ["sft", "ppo", "grpo", "demo"])
@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ("Arithmetic,Nope", "unknown task 'Nope'"),
        ("Arithmetic,,TwoHop", "empty task in 'Arithmetic,,TwoHop'"),
        ("size=5,Arithmetic", "comes before any task"),
        ("Arithmetic,Arithmetic", "named twice"),
        ("Arithmetic:size=5,TwoHop", "task Arithmetic: got an unexpected keyword argument 'size'"),
    ],
)
def test_every_command_refuses_a_bad_task_list_in_one_line(command, tasks, message, tmp_path, capsys):
    out = tmp_path / "run"
    model = [] if command in ("sft", "demo") else ["--model", "tiny"]
    assert main([command, "--task", tasks, "--out-dir", str(out), *model]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error
    assert not out.exists()


def _tokenizer():
    return train_tokenizer(["0123456789 abc"], vocab_size=300)


def test_a_mixture_interleaves_its_tasks_each_on_its_own_seeds():
    mixture = played_task("Arithmetic,TwoHop,MissingQuantity")
    assert isinstance(mixture, TaskMixture) and mixture.labels == ("Arithmetic", "TwoHop", "MissingQuantity")
    seeds = range(DEMO_SEED_START, DEMO_SEED_START + 9)
    demos = oracle_trajectories(mixture, seeds, _tokenizer())
    played = [t.task for t in demos]
    assert all(sorted(played[i : i + 3]) == sorted(mixture.labels) for i in range(0, 9, 3)), played
    assert played == [mixture.labels[seed % 3] for seed in seeds]
    assert all(t.success for t in demos), "each demonstration is its own task's oracle, scored by its own task"
    for demo in demos:  # each task draws the instance it draws alone for that seed
        alone = AgenticEnvironment(demo.task)
        alone.reset(seed=demo.seed, options={"split": "training"})
        assert canonical_json(alone.instance) == canonical_json(demo.instance)


def test_no_evaluation_instance_of_any_task_occurs_in_the_mixtures_training():
    mixture = played_task(HELD_OUT_TASKS)
    k = len(HELD_OUT_TASKS)
    seeds = [*range(DEMO_SEED_START, DEMO_SEED_START + 60 * k), *range(TRAIN_SEED_START, TRAIN_SEED_START + 60 * k)]
    # the SFT and RL paths draw their episodes alike (`Episode` on the training split); a one-turn script is cheap
    training = scripted_trajectories(mixture, seeds, _tokenizer(), lambda env: GIVE_UP)
    assert {t.task for t in training} == set(HELD_OUT_TASKS)
    for name in HELD_OUT_TASKS:
        env = AgenticEnvironment(name)
        held_out = {canonical_json(i) for i in instances(env, EVALUATION_SEEDS, "evaluation")}
        drawn = {canonical_json(t.instance) for t in training if t.task == name}
        assert len(drawn) > 20 or name == "ReasoningGym", name
        assert not held_out & drawn, f"{len(held_out & drawn)} evaluation instances of {name} occur in training"


@pytest.fixture(scope="module")
def mixture_sft(tmp_path_factory):
    out = tmp_path_factory.mktemp("mixture") / "sft"
    options = SFTOptions(
        task="Arithmetic,TwoHop", out_dir=str(out), n_demos=8, max_steps=1, n_eval=2, progress=False, report_to="none"
    )
    return run_sft(options)


def test_sft_on_several_tasks_learns_a_tokenizer_of_all_and_evaluates_each(mixture_sft):
    demos = [json.loads(line) for line in (mixture_sft.run_dir / "demos.jsonl").read_text().splitlines()]
    assert [d["task"] for d in demos] == ["Arithmetic", "TwoHop"] * 4
    evaluation = json.loads((mixture_sft.run_dir / "eval.json").read_text())
    assert set(evaluation["tasks"]) == {"Arithmetic", "TwoHop"}
    for name, report in evaluation["tasks"].items():
        assert report["task"] == name and report["seeds"] == [0, 1] and report["episodes"]["episodes"] == 2
    metrics = mixture_sft.report["evaluation"]
    assert metrics["success"] == pytest.approx((metrics["Arithmetic/success"] + metrics["TwoHop/success"]) / 2)
    vocabulary = set(json.loads((mixture_sft.run_dir / "base" / "tokenizer.json").read_text())["model"]["vocab"])
    assert {"kb", "lookup", "calculator"} <= {piece.lstrip("Ġ") for piece in vocabulary}, "learnt from both tasks"
    assert set(trained_tasks(mixture_sft.model_dir)) == {"Arithmetic", "TwoHop"}


def test_rl_on_several_tasks_logs_each_tasks_evaluation_and_their_mean(mixture_sft, tmp_path):
    out = tmp_path / "ppo"
    options = PPOOptions(
        model=str(mixture_sft.model_dir),
        task="Arithmetic,TwoHop",
        out_dir=str(out),
        iterations=1,
        episodes=4,
        minibatch_size=4,
        epochs=1,
        n_eval=2,
        progress=False,
        report_to="none",
    )
    result = run_rl(options)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evaluated = [row for row in rows if "eval/success" in row]
    assert [row["step"] for row in evaluated] == [0, 1]
    for row in evaluated:
        for name in ("Arithmetic", "TwoHop"):
            assert 0 <= row[f"eval/{name}/success"] <= 1 and f"eval/{name}/success_low" in row
        assert row["eval/success"] == pytest.approx((row["eval/Arithmetic/success"] + row["eval/TwoHop/success"]) / 2)
    samples = [json.loads(line) for line in (out / "samples" / "update-000001.jsonl").read_text().splitlines()]
    assert [s["task"] for s in samples][:4] == ["Arithmetic", "TwoHop"] * 2
    assert "Arithmetic: success" in (out / "report.md").read_text()
    assert set(trained_tasks(result.model_dir)) == {"Arithmetic", "TwoHop"}


def test_provenance_lists_every_task_of_a_list_with_options(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"task": "ReasoningGym:dataset=chain_sum,size=5,BFCL-simple"}))
    assert set(trained_tasks(run / "model")) == {"ReasoningGym:dataset=chain_sum,size=5", "BFCL-simple"}


def _demo_flags(out) -> list[str]:
    return [
        "--out-dir",
        str(out),
        "--n-eval",
        "2",
        "--n-demos",
        "8",
        "--epochs",
        "1",
        "--rl-iterations",
        "1",
        "--rl-instances",
        "4",
        "--no-progress",
        "--report-to",
        "none",
    ]


@pytest.mark.parametrize("name", HELD_OUT_TASKS)
def test_the_demo_runs_on_every_task_with_the_tiny_model(name, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--task", name, *_demo_flags(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == name and report["rl_updates"] == 1
    assert report["sft"]["episodes"]["episodes"] == report["rl"]["episodes"]["episodes"] == 2
    table = (out / "report.md").read_text()
    assert "| metric | untrained | after SFT | after PPO |" in table and "| success | — |" in table
    assert "| mean score | — |" in table and report["rl"]["episodes"]["mean_score"]["n"] == 2
    assert trained_tasks(out / "ppo" / "model").keys() == {name}


def test_the_demo_on_two_tasks_reports_each_alone_and_the_multi_task_policy(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--task", "Arithmetic,TwoHop", *_demo_flags(out)]) == 0
    printed = capsys.readouterr().out
    assert "agentic demo: Arithmetic,TwoHop on 2 held-out seeds each" in printed and "report.md" in printed
    report = json.loads((out / "report.json").read_text())
    assert set(report["tasks"]) == set(report["multi_task"]["rl"]) == {"Arithmetic", "TwoHop"}
    table = (out / "report.md").read_text().splitlines()
    for name in ("Arithmetic", "TwoHop"):
        rows = [line.split(" | ")[1] for line in table if line.startswith(f"| {name} | ")]
        assert rows == ["untrained", "SFT", "PPO", "multi-task PPO"], table
        assert report["tasks"][name]["sft"]["episodes"]["episodes"] == 2
        assert report["multi_task"]["rl"][name]["episodes"]["episodes"] == 2
        assert trained_tasks(out / name / "ppo" / "model").keys() == {name}
    assert trained_tasks(out / "multi-task" / "ppo" / "model").keys() == {"Arithmetic", "TwoHop"}


def test_grpo_trains_one_tiny_model_on_every_task_at_once(tmp_path):
    model = build_tiny_model(HELD_OUT_TASKS, tmp_path / "tiny", seeds=range(DEMO_SEED_START, DEMO_SEED_START + 20))
    out = tmp_path / "grpo"
    k = len(HELD_OUT_TASKS)
    flags = ["--model", str(model), "--task", ",".join(HELD_OUT_TASKS), "--out-dir", str(out), "--iterations", "1"]
    flags += ["--groups", str(k), "--group-size", "2", "--minibatch-size", "8", "--epochs", "1", "--n-eval", "1"]
    assert main(["grpo", *flags, "--samples-per-update", str(2 * k), "--no-progress", "--report-to", "none"]) == 0
    samples = [json.loads(line) for line in (out / "samples" / "update-000001.jsonl").read_text().splitlines()]
    assert {s["task"] for s in samples} == set(HELD_OUT_TASKS) and len(samples) == 2 * k, "a group of each task"
    assert all(s["task"] == HELD_OUT_TASKS[s["seed"] % k] for s in samples)
    evaluation = json.loads((out / "eval" / "update-000001.json").read_text())
    assert set(evaluation["tasks"]) == set(HELD_OUT_TASKS)
    assert set(trained_tasks(out / "model")) == set(HELD_OUT_TASKS)


def test_demo_all_means_every_task_but_bfcls():
    options = DemoOptions(task="all")
    assert options.task_specs == HELD_OUT_TASKS and "BFCL-simple_python" not in options.task_specs
    assert options.sft_options("model").task == options.rl_options("model").task == ",".join(HELD_OUT_TASKS)


def test_run_sft_takes_a_list_of_task_objects_and_names(tmp_path):
    out = tmp_path / "sft"
    options = SFTOptions(out_dir=str(out), n_demos=4, max_steps=1, progress=False, report_to="none")
    result = run_sft(options, [make_task("MissingQuantity"), "TwoHop"])
    demos = [json.loads(line) for line in (out / "demos.jsonl").read_text().splitlines()]
    assert [d["task"] for d in demos] == ["MissingQuantity", "TwoHop"] * 2
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "MissingQuantity,TwoHop" and config["task_object"] == "agentic.mixture.TaskMixture"
    assert set(trained_tasks(result.model_dir)) == {"MissingQuantity", "TwoHop"}


def test_demo_all_leaves_out_tasks_registered_at_run_time(monkeypatch):
    monkeypatch.setitem(registry._task_factories, "ArithmeticAgain", lambda: make_task("Arithmetic"))
    assert "ArithmeticAgain" in registry.task_names()
    assert "ArithmeticAgain" not in DemoOptions(task="all").task_specs, "all: the installed tasks, in every process"
