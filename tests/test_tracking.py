"""Where a run's output goes: `--report-to` trackers (refused in one line when not installed), Python logging with
`-v` / `-q` on the `agentic` command, and `--no-progress` silencing every bar, datasets' included."""

from __future__ import annotations

import importlib.util

import pytest

from agentic.cli import main
from agentic.training.options import TRACKERS
from agentic.training.tiny_model import build_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")
MISSING = [name for name in TRACKERS if importlib.util.find_spec(name) is None]


@pytest.fixture(scope="module")
def sft_flags(tmp_path_factory) -> list[str]:
    model = build_tiny_model(["Arithmetic"], tmp_path_factory.mktemp("base"), seeds=range(8), hidden_size=32,
                             num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)  # fmt: skip
    return ["--model", str(model), "--n-demos", "8", "--max-steps", "2", "--batch-size", "4"]


@pytest.mark.parametrize("command", [["sft"], ["ppo", "--model", "m"], ["grpo", "--model", "m"], ["demo"]])
def test_a_tracker_that_is_not_installed_or_unknown_is_refused_in_one_line(command, capsys):
    if not MISSING:
        pytest.skip("every tracker is installed here")
    assert main([*command, "--report-to", f"tensorboard,{MISSING[0]}"]) == 2
    error = capsys.readouterr().err
    assert f"report_to: {MISSING[0]} is not installed (pip install {MISSING[0]})" in error
    assert len(error.strip().splitlines()) == 1
    assert main([*command, "--report-to", "tensorbored"]) == 2
    assert "unknown tracker 'tensorbored'; use none or tensorboard" in capsys.readouterr().err


def test_verbose_logs_what_the_run_does_and_no_progress_shows_no_bar(sft_flags, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["-v", "sft", *sft_flags, "--out-dir", str(run), "--report-to", "none", "--no-progress"]) == 0
    error = capsys.readouterr().err
    assert f"INFO agentic.training.sft: 8 demonstrations of Arithmetic from {run / 'base'}" not in error
    assert "INFO agentic.training.sft: 8 demonstrations of Arithmetic" in error
    assert "INFO agentic.training.sft: trained 2 steps" in error
    assert "it/s]" not in error and "examples/s]" not in error, error
    assert (run / "metrics.jsonl").is_file() and not (run / "tensorboard").exists(), "report_to none: no events"


def test_bars_show_without_no_progress_and_quiet_logs_nothing_but_errors(sft_flags, tmp_path, capsys):
    assert main(["-q", "sft", *sft_flags, "--out-dir", str(tmp_path / "run")]) == 0
    error = capsys.readouterr().err
    assert "INFO" not in error and "WARNING" not in error
    assert "examples/s]" in error, "datasets' bars, which --no-progress removes"
    assert (tmp_path / "run" / "tensorboard").is_dir(), "TensorBoard is the default tracker"


def test_a_command_run_in_process_leaves_the_callers_logging_as_it_was(caplog):
    import logging

    logger = logging.getLogger("agentic")
    before = (list(logger.handlers), logger.propagate, logger.level)
    assert main(["-v", "tasks"]) == 0
    assert (list(logger.handlers), logger.propagate, logger.level) == before
    with caplog.at_level(logging.WARNING):
        logging.getLogger("agentic.tasks").warning("a record after the command")
    assert "a record after the command" in caplog.text
