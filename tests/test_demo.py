"""`agentic demo` end to end at toy size: every stage runs and the report says what happened."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from agentic.cli import main
from agentic.constraint import tools_left_out
from agentic.registry import make_task
from agentic.rollout import oracle_trajectories
from agentic.training.demo import action_settings, compute_line
from agentic.training.demo_config import DemoOptions
from agentic.training.tiny_model import task_corpus, train_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_writes_an_untrained_sft_rl_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--n-eval", "4", "--n-demos", "16", "--epochs", "1", "--rl-iterations", "1"]
        + ["--micro-batches", "2", "--sft-learning-rate", "0.002", "--spell-names"]
    )
    captured = capsys.readouterr()
    printed = captured.out
    assert "--out is deprecated: use --out-dir" in captured.err, "the old flag still works, and says what replaced it"
    assert code == 0 and "untrained" in printed and "after SFT" in printed and "after PPO" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["untrained"]["tool_calls"]["decision_points"] == 4
    assert report["sft"]["episodes"]["episodes"] == report["rl"]["episodes"]["episodes"] == 4
    assert report["rl_updates"] == 1 and report["sloppy_demos"] == DemoOptions().sloppy_demos
    sft_report = json.loads((out / "sft" / "report.json").read_text())
    assert report["compute"] == {
        "sft_steps": 1,
        "sft_tokens": sft_report["tokens_seen"],
        "rl_updates": 1,
        "rl_episodes": DemoOptions().rl_options("model").episodes_per_update,
    }
    assert sft_report["tokens_seen"] > 0
    sft_config = json.loads((out / "sft" / "config.json").read_text())
    assert (sft_config["micro_batches"], sft_config["learning_rate"]) == (2, 0.002), "SFT took the demo's flags"
    assert AutoTokenizer.from_pretrained(out / "tiny-model").tokenize("Relwick") == list("Relwick"), "names spelt"
    assert f"Compute: SFT 1 steps, {sft_report['tokens_seen']:,} tokens; PPO 1 updates" in printed
    assert "WARNING" not in printed
    rl_report = json.loads((out / "ppo" / "report.json").read_text())
    assert rl_report["start_model"] == str(out / "sft" / "model"), "RL starts from the SFT model"
    assert (out / "report.md").read_text().startswith("# agentic demo: Arithmetic")
    for path in (
        "tiny-model/config.json",
        "sft/model/config.json",
        "sft/demos.jsonl",
        "ppo/model/config.json",
        "ppo/plots/training.png",
    ):
        assert (out / path).exists(), path


def test_a_constrained_demo_decodes_every_stage_under_the_action_grammar(tmp_path, capsys):
    """`--constrained`: the evaluations and the RL rollouts sample from the grammar of valid actions, so even a model
    trained for one step writes no malformed action."""
    out = tmp_path / "demo"
    flags = ["--n-eval", "4", "--n-demos", "16", "--epochs", "1", "--rl-iterations", "1", "--constrained"]
    assert main(["demo", "--out-dir", str(out), *flags]) == 0
    assert "greedy decoding under the action grammar" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["constrained"]
    for stage in ("sft", "rl"):
        assert report[stage]["episodes"]["invalid_action_rate"]["value"] == 0.0, stage
    assert json.loads((out / "ppo" / "config.json").read_text())["constrained"], "the rollouts were constrained too"
    assert "under the action grammar" in (out / "report.md").read_text()


@pytest.mark.parametrize("name, longer", [("Arithmetic", False), ("InteractiveStory", True), ("GroundedSummary", True)])
def test_the_demo_samples_and_prices_actions_as_long_as_the_held_out_oracles(name, longer):
    """A story or a summary cut at 64 tokens can never score: the demo's action limit covers every action the oracle
    writes on held-out instances, and stays at 64 where the oracle's actions are short. Its KL coefficient, a
    per-token penalty summed over each action, shrinks for long actions and stays the demo's 0.02 for short ones."""
    task = make_task(name)
    tokenizer = train_tokenizer(task_corpus([task], range(10_000, 10_050)))
    limit, kl_coef = action_settings(DemoOptions(), [task], tokenizer)
    held_out = oracle_trajectories(task, range(100), tokenizer, split="evaluation")
    lengths = [turn.end - turn.start for t in held_out for turn in t.turns]
    assert max(lengths) <= limit
    assert (limit > 64) == longer
    assert kl_coef == pytest.approx(0.02 * min(1.0, 16 / (sum(lengths) / len(lengths))), rel=0.15)
    assert (kl_coef < 0.02) == longer
    assert action_settings(DemoOptions(max_new_tokens=32, kl_coef=0.1), [task], tokenizer) == (32, 0.1)
    constrained_limit, _ = action_settings(DemoOptions(constrained=True), [task], tokenizer)
    assert constrained_limit >= limit and not tools_left_out(task.tools, constrained_limit), (
        "the grammar keeps each tool"
    )
    rl = DemoOptions(rl_temperature=0.7).rl_options("model", max_new_tokens=limit, kl_coef=kl_coef)
    assert (rl.max_new_tokens, rl.kl_coef, rl.temperature, rl.learning_rate) == (limit, kl_coef, 0.7, 3e-4)
    assert DemoOptions(algorithm="grpo", rl_learning_rate=1e-4).rl_options("model").learning_rate == 1e-4


def test_the_demo_says_when_its_safety_net_cut_the_rl_stage():
    report = {
        "algorithm": "ppo",
        "rl_updates_planned": 60,
        "rl_stop_reason": "time limit of 1800 s",
        "compute": {"sft_steps": 437, "sft_tokens": 1_234_567, "rl_updates": 41, "rl_episodes": 1312},
    }
    line = compute_line(report)
    assert line.startswith("Compute: SFT 437 steps, 1,234,567 tokens; PPO 41 updates, 1,312 episodes.")
    assert "WARNING: time limit of 1800 s cut the RL stage at 41 of 60 updates" in line
    assert "WARNING" not in compute_line({**report, "compute": {**report["compute"], "rl_updates": 60}})


def test_bad_demo_options_are_refused_before_any_work(tmp_path, capsys):
    out = ["--out-dir", str(tmp_path / "demo")]
    for flags, message in (
        (["--sloppy-demos", "1.5"], "sloppy_demos must lie in [0, 1]"),
        (["--rl-iterations", "0"], "rl_iterations must be positive"),
        (["--epochs", "nan"], "argument --epochs: nan is not a finite number"),
        (["--rl-seconds", "inf"], "argument --rl-seconds: inf is not a finite number"),
        (["--algorithm", "a2c"], "invalid choice: 'a2c'"),
        (["--micro-batches", "5"], "batch_size (32) must be a multiple of micro_batches (5)"),
    ):
        assert main(["demo", *out, *flags]) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "demo").exists()
