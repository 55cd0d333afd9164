"""The `agentic` command line: listing, interactive play, benchmarks, and one-line errors with exit status 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from agentic.cli import build_parser, main
from agentic.cli.model_args import sampling_from
from agentic.sampling import Sampling
from agentic.tasks.reasoning_gym import CODE_SCORED


def run(argv: list[str], capsys, stdin: str = "", monkeypatch=None) -> tuple[int, str, str]:
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_tasks_lists_every_task_with_its_gym_id_and_tools(capsys):
    code, out, _ = run(["tasks"], capsys)
    assert code == 0
    assert "Arithmetic  (agentic/Arithmetic-v0)" in out and "calculator(expression: string)" in out
    assert all(dataset in out for dataset in CODE_SCORED), "the datasets whose scorers evaluate answers as code"


def test_tools_json_lists_schemas(capsys):
    code, out, _ = run(["tools", "--json"], capsys)
    names = {schema["function"]["name"] for schema in json.loads(out)}
    assert code == 0 and {"calculator", "kb_lookup"} <= names


def test_play_with_the_oracle(capsys):
    code, out, _ = run(["play", "--task", "MissingQuantity", "--policy", "oracle", "--seed", "4"], capsys)
    assert (
        code == 0 and "<ask>" in out and "<user>" in out and "finished after 3 turns" in out and "success True" in out
    )


def test_play_as_a_human_agent_and_user(capsys, monkeypatch):
    lines = "<ask>How many?</ask>\n7\nnot an action\n<finish>1</finish>\n"
    code, out, _ = run(
        ["play", "--task", "MissingQuantity", "--seed", "0", "--user", "human"], capsys, lines, monkeypatch
    )
    assert code == 0
    assert "<user>7</user>" in out and "<sys>no action" in out and "finished after 3 turns" in out


def test_a_question_is_shown_as_text_never_as_markup_or_terminal_codes(capsys, monkeypatch):
    question = "[/] [link=https://evil.example]click[/link] [bold red]x \x1b[2J\x1b]8;;https://evil.example\x07?"
    lines = f"<ask>{question}</ask>\n7\n<finish>1</finish>\n"
    code, out, _ = run(
        ["play", "--task", "MissingQuantity", "--seed", "0", "--user", "human"], capsys, lines, monkeypatch
    )
    assert code == 0 and "finished after 2 turns" in out
    assert "user (asked: [/] [link=https://evil.example]click[/link] [bold red]x \\x1b[2J\\x1b]8;;" in out
    assert "\x1b" not in out


@pytest.mark.parametrize(
    "line",
    [
        "[]",
        "1",
        "{}",
        '{"task": "Arithmetic"}',
        '"text"',
        "not json",
        '{"task": "A", "seed": -1, "instance": {}, '
        '"prompt": "p", "token_ids": [1], "loss_mask": [1], "logprobs": [0.0], "turns": [{"start": "x"}]}',
    ],
)
def test_show_refuses_json_lines_that_are_not_trajectories_in_one_line(capsys, tmp_path, line):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    code, _, err = run(["show", str(path)], capsys)
    assert code == 2 and "line 1" in err and len(err.strip().splitlines()) == 1


def test_play_ends_cleanly_when_input_runs_out(capsys, monkeypatch):
    code, _, err = run(["play", "--task", "Arithmetic"], capsys, "", monkeypatch)
    assert code == 130 and "interrupted" in err


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["play"], "the following arguments are required: --task"),
        (["play", "--task", "Nope"], "unknown task 'Nope'"),
        (["play", "--task", "Arithmetic", "--seed", "x"], "--seed: 'x' is not an integer"),
        (["bench", "everything"], "invalid choice: 'everything'"),
        (["launch"], "invalid choice: 'launch'"),
        (["play", "--task", "Arithmetic", "--seed", "-1"], "--seed: -1 is not a non-negative integer"),
        (["eval", "--model", "m", "--task", "Arithmetic", "--seed-start", "-5"], "--seed-start: -5 is not a non-neg"),
        (["eval", "--model", "m", "--task", "Arithmetic", "--n", "0"], "--n: 0 is not a positive integer"),
        (["eval", "--model", "m", "--task", "Arithmetic", "--temperature", "nan"], "nan is not a finite number"),
        (["play", "--task", "Arithmetic", "--model", "m", "--temperature", "nan"], "nan is not a finite number"),
        (["play", "--task", "Arithmetic", "--model", "m", "--top-p", "inf"], "inf is not a finite number"),
        (["bench", "parse", "--episodes", "-1"], "--episodes: -1 is not a positive integer"),
        (["bench", "fuzz", "--seed", "-3"], "--seed: -3 is not a non-negative integer"),
        (["eval", "--model", "m", "--task", "Arithmetic", "--seed", "-2"], "seed must be >= 0, got -2"),
        (["bfcl", "--oracle", "--max-new-tokens", "0"], "max_new_tokens must be positive, got 0"),
        (["bfcl", "--oracle", "--batch-size", "0"], "--batch-size: 0 is not a positive integer"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, fragment):
    code, _, err = run(argv, capsys)
    assert code == 2
    assert fragment in err and len(err.strip().splitlines()) == 1


def test_bench_parse_reports_a_ratio_and_env_steps(capsys):
    code, out, _ = run(["bench", "parse", "--task", "Arithmetic", "--episodes", "5", "--json"], capsys)
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and "ratio Lark/regex" in out
    assert result["inputs"] == 40 and result["lark_actions_per_s"] > 0 and result["regex_disagreements"] > 0


def test_console_script_is_installed():
    """The installed distribution declares the ``agentic`` script as `agentic.cli.main`, which ``python -m agentic.cli``
    also runs (found through this interpreter, not PATH: the tests need not run in an activated virtualenv)."""
    (script,) = entry_points(group="console_scripts", name="agentic")
    assert script.load() is main
    completed = subprocess.run(
        [sys.executable, "-m", "agentic.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0 and "play" in completed.stdout


def test_only_the_corpus_command_loads_the_training_stack():
    """Building the corpus subcommands imports trl, transformers and datasets (seconds); other commands do without."""
    code = (
        "import sys; from agentic.cli import build_parser; build_parser(['tasks']).parse_args(['tasks']); "
        "print(sorted(m for m in ('trl', 'transformers', 'datasets') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
    completed = subprocess.run(
        [sys.executable, "-m", "agentic.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert "corpus" in completed.stdout, "still listed"


SAMPLED = [["eval", "--model", "m", "--task", "Arithmetic"], ["play", "--task", "Arithmetic"], ["bfcl", "--oracle"]]


@pytest.mark.parametrize("argv", SAMPLED)
def test_sampling_flags_are_sampling_s_fields(argv):
    """One flag per `Sampling` field, generated from it, in every command that samples (play's --seed is its
    instance's, which seeds sampling too)."""
    flags = ["--temperature", "0.5", "--top-p", "0.9", "--max-new-tokens", "7", "--constrained", "--seed", "3"]
    args = build_parser(argv).parse_args([*argv, *flags])
    assert sampling_from(args) == Sampling(temperature=0.5, top_p=0.9, max_new_tokens=7, seed=3, constrained=True)
    assert sampling_from(build_parser(argv).parse_args(argv)) == Sampling(temperature=0.0)


@pytest.mark.parametrize("argv", [*SAMPLED[::2], ["models", "get", "SmolLM2-135M-Instruct"]])
def test_out_is_now_out_dir_and_still_read_with_a_deprecation_message(argv, capsys):
    assert build_parser(argv).parse_args([*argv, "--out-dir", "here"]).out_dir == "here"
    assert build_parser(argv).parse_args([*argv, "--out", "there"]).out_dir == "there"
    assert "agentic: --out is deprecated: use --out-dir" in capsys.readouterr().err
