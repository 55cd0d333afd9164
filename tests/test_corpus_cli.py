"""`agentic corpus`: every subcommand has --help, bad input is one line with exit 2, and the chain runs from the CLI."""

import json

import pytest

from agentic import cli
from agentic.cli.corpus import COMMANDS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def agentic():
    """`agentic.cli.main`, which carries the corpus commands."""
    return cli.main


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(agentic, capsys, command):
    with pytest.raises(SystemExit) as exit_:
        agentic(["corpus", command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--model", "--corpus", "--standin", "--out", "--seed"))


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    return error


def test_an_unknown_corpus_is_one_line_and_exit_2(agentic, capsys, tmp_path):
    assert agentic(["corpus", "prepare", "--corpus", "bookcorpus", "--out-dir", str(tmp_path)]) == 2
    assert "unknown corpus 'bookcorpus'" in one_line_error(capsys)
    assert agentic(["corpus", "prepare", "--corpus", str(tmp_path / "missing.jsonl"), "--out-dir", str(tmp_path)]) == 2
    assert "does not exist" in one_line_error(capsys)
    assert not (tmp_path / "prepare").exists()


def test_a_bad_stage_setting_is_one_line_and_exit_2(agentic, capsys, tmp_path):
    assert agentic(["corpus", "ppo", "--reward-normalization", "zscore", "--out-dir", str(tmp_path)]) == 2
    assert "invalid choice: 'zscore'" in one_line_error(capsys)


def test_a_stage_run_before_the_stages_it_reads_is_refused(agentic, capsys, tmp_path):
    out = str(tmp_path / "run")
    assert agentic(["corpus", "reward", "--out-dir", out]) == 2
    assert f"has no `prepare` stage output: run `agentic corpus prepare --out-dir {out}` first" in one_line_error(
        capsys
    )
    prepare = [
        "corpus",
        "prepare",
        "--corpus",
        "cnn_dailymail",
        "--standin",
        "--out-dir",
        out,
        "--eval-size",
        "5",
        "--heldout-size",
        "6",
        "--train-size",
        "20",
    ]
    assert agentic(prepare) == 0
    capsys.readouterr()  # prepare's own output (a first run also shows datasets' progress bars)
    summary = json.loads((tmp_path / "run" / "prepare" / "summary.json").read_text())
    assert (summary["eval_examples"], summary["heldout_examples"], summary["train_examples"]) == (5, 6, 20)
    assert agentic(["corpus", "ppo", "--out-dir", out]) == 2
    assert "has no `sft` stage output" in one_line_error(capsys)


def test_the_chain_runs_from_the_cli_with_ppo_and_writes_the_table(agentic, capsys, tmp_path):
    out = tmp_path / "tiny-cnn"
    small = [
        "--eval-size",
        "8",
        "--heldout-size",
        "8",
        "--train-size",
        "24",
        "--max-prompt-words",
        "40",
        "--tiny-epochs",
        "1",
        "--sft-epochs",
        "1",
    ]
    small += [
        "--reward-epochs",
        "1",
        "--ppo-iterations",
        "2",
        "--ppo-prompts",
        "8",
        "--ppo-max-new-tokens",
        "8",
        "--eval-max-new-tokens",
        "8",
    ]
    assert agentic(["corpus", "run", "--corpus", "cnn_dailymail", "--standin", "--out", str(out), *small]) == 0
    metrics = [json.loads(line) for line in (out / "ppo" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and json.loads((out / "ppo" / "summary.json").read_text())["prompts"] == 24
    assert json.loads((out / "ppo" / "config.json").read_text())["episodes"] == 8
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(r["model"], r["corpus"], r["stage"]) for r in rows] == [
        ("tiny", "cnn_dailymail (stand-in)", s) for s in ("base", "sft", "ppo")
    ]
    assert rows[2]["win_rate"]["against"] == "sft" and rows[2]["win_rate"]["n"] == 8
    captured = capsys.readouterr()
    for old, new in (("--out", "--out-dir"), ("--ppo-prompts", "--ppo-episodes")):
        assert f"{old} is deprecated: use {new}" in captured.err, "old flags still work"
    printed = captured.out
    assert "held-out pairwise accuracy" in printed and "| tiny | cnn_dailymail (stand-in) | ppo |" in printed
