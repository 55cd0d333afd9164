"""Plots say what they show: titled with the algorithm, task and model, whole-number update ticks, labelled sign
conventions, evaluation curves with their Wilson bands. Read from the figure `metrics_figure` builds (the one
`RunDir.plot` saves) and from the PNGs real runs write."""

import math

import pytest
import torch
from PIL import Image
from test_python_api import SayYes, rl_options
from toy_yes_no import warmed_up_policy

from agentic.run_dir import Panel, RunDir, metrics_figure, plot_title
from agentic.training.rl import run_rl
from agentic.training.rl_run import EVAL_PLOT, KL_PANELS

pytestmark = pytest.mark.usefixtures("one_thread")

RECORDS = [
    {"step": 1, "reward": 0.2, "kl": -0.01, "kl_k3": 0.002},
    {"step": 2, "reward": 0.4, "kl": 0.03, "kl_k3": 0.004},
    {"step": 2, "eval/success": 0.5, "eval/success_low": 0.3, "eval/success_high": 0.7},
    {"step": 3, "reward": 0.5, "kl": 0.05, "kl_k3": 0.006},
    {"step": 4, "eval/success": 0.75, "eval/success_low": 0.5, "eval/success_high": 0.9},
]


def bands(axis) -> list:
    """The filled areas (``fill_between``) drawn on ``axis``."""
    return [c for c in axis.collections if type(c).__name__.endswith("PolyCollection")]


def test_a_figure_is_titled_and_counts_updates_in_whole_numbers():
    title = plot_title("PPO", "Arithmetic", "/runs/demo/sft/model")
    assert title == "PPO on Arithmetic — sft/model"
    figure = metrics_figure(RECORDS, ["reward", KL_PANELS["ppo"], "never_logged"], title=title, x_label="update")
    assert figure.get_suptitle() == title
    axes = figure.axes
    assert len(axes) == 2, "a panel whose metric was never logged is left out"
    for axis in axes:
        ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert axes[-1].get_xlabel() == "update"


def test_the_kl_panel_says_which_estimator_and_what_a_negative_value_means():
    figure = metrics_figure(RECORDS, [KL_PANELS["ppo"]])
    (axis,) = figure.axes
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend[0].startswith("k1 = log π − log π_ref") and "< 0 when" in legend[0]
    assert legend[1].startswith("k3, never < 0")
    assert [line.get_ydata().tolist() for line in axis.get_lines()] == [[-0.01, 0.03, 0.05], [0.002, 0.004, 0.006]]
    assert "nats per episode" in axis.get_title(loc="left")
    assert "k3" in KL_PANELS["grpo"].label and "per token" in KL_PANELS["grpo"].label


def test_an_evaluation_curve_carries_its_wilson_band():
    figure = metrics_figure(RECORDS, [Panel(("eval/success",), "held-out success")])
    (axis,) = figure.axes
    (band,) = bands(axis)
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert (low, high) == (0.3, 0.9)
    assert axis.get_lines()[0].get_xdata().tolist() == [2, 4]
    assert not bands(metrics_figure(RECORDS, ["reward"]).axes[0]), "no interval logged, no band"


def test_nothing_logged_draws_nothing(tmp_path):
    assert metrics_figure([], ["reward"]) is None
    assert RunDir(tmp_path).plot(["reward"]) is None and not (tmp_path / "plots").exists()


def test_a_ppo_run_writes_titled_plots_whose_evaluation_has_bands(tmp_path):
    torch.manual_seed(0)
    toy = warmed_up_policy()
    options = rl_options(tmp_path, iterations=3, eval_every=1, checkpoint_every=0)
    run_rl(options, SayYes(), model=toy.model, tokenizer=toy.tokenizer)
    titles = {name: Image.open(tmp_path / "plots" / name).info["Title"] for name in ("training.png", "eval.png")}
    assert titles == {
        "training.png": "PPO on SayYes — a model object",
        "eval.png": "PPO on SayYes — a model object: held-out evaluation",
    }
    records = RunDir(tmp_path).metrics()
    evaluations = [r for r in records if "eval/success" in r]
    assert [r["step"] for r in evaluations] == [0, 1, 2, 3]
    assert all(r["eval/success_low"] <= r["eval/success"] <= r["eval/success_high"] for r in evaluations)
    figure = metrics_figure(records, EVAL_PLOT, title=titles["eval.png"])
    assert bands(figure.axes[0]) and not math.isnan(figure.axes[0].get_lines()[0].get_ydata()[0])
