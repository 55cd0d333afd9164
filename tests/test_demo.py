"""`agentic demo` end to end at toy size: every stage runs and the report says what happened."""

from __future__ import annotations

import json

import pytest

from agentic.cli import main
from agentic.training.demo_config import DemoOptions

pytestmark = pytest.mark.usefixtures("one_thread")


def test_demo_writes_an_untrained_sft_rl_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--n-eval", "4", "--n-demos", "16", "--epochs", "1", "--rl-iterations", "1"]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "untrained" in printed and "after SFT" in printed and "after PPO" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["untrained"]["tool_calls"]["decision_points"] == 4
    assert report["sft"]["episodes"]["episodes"] == report["rl"]["episodes"]["episodes"] == 4
    assert report["rl_updates"] == 1 and report["sloppy_demos"] == DemoOptions().sft.sloppy_demos
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


def test_bad_demo_options_are_refused_before_any_work(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--sloppy-demos", "1.5"]) == 2
    assert "sloppy_demos must lie in [0, 1]" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path / "demo"), "--rl-iterations", "0"]) == 2
    assert "iterations must be positive" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
