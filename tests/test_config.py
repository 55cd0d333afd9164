"""Configuration files: ``--config FILE`` (YAML or JSON) for the training commands, flags over the file, one-line
errors for what the file gets wrong; ``--resume`` reads the run's saved config."""

from __future__ import annotations

import json

import pytest
from toy_yes_no import YesOrNo, warmed_up_policy

from agentic.cli import build_parser, main
from agentic.cli.command import options_from
from agentic.registry import register_task
from agentic.training.corpus.options import PipelineOptions
from agentic.training.demo_config import DemoOptions
from agentic.training.rl_config import GRPOOptions, PPOOptions
from agentic.training.sft_config import SFTOptions
from agentic.training.tiny_model import build_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def parsed(argv: list[str]):
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize(
    "command, options_class, key, value, flag",
    [
        (["sft"], SFTOptions, "learning_rate", 0.01, "--learning-rate"),
        (["ppo"], PPOOptions, "kl_coef", 0.2, "--kl-coef"),
        (["grpo"], GRPOOptions, "group_size", 6, "--group-size"),
        (["demo"], DemoOptions, "algorithm", "grpo", "--algorithm"),
        (["corpus", "run"], PipelineOptions, "seed", 3, "--seed"),
    ],
)
def test_every_training_command_reads_a_config_file_and_its_flags_win(
    tmp_path, command, options_class, key, value, flag
):
    config = tmp_path / "config.yaml"
    needs_model = "model: m\n" if command[0] in ("ppo", "grpo") else ""
    config.write_text(f"{key.replace('_', '-')}: {value}\nout_dir: {tmp_path / 'from-file'}\n{needs_model}")
    options = options_from(options_class, parsed([*command, "--config", str(config)]))
    assert getattr(options, key) == value and options.out_dir == str(tmp_path / "from-file")
    given = options_from(options_class, parsed([*command, "--out-dir", "flag-dir", "--config", str(config)]))
    assert given.out_dir == "flag-dir" and getattr(given, key) == value, "a flag overrides the file wherever it stands"
    default = getattr(options_class(**({"model": "m"} if command[0] in ("ppo", "grpo") else {})), key)
    assert getattr(
        options_from(options_class, parsed([*command, flag, str(default), "--config", str(config)])), key
    ) == (default), "a flag given with its default value still wins"


def test_json_files_and_yaml_numbers_are_read_as_the_flags_read_them(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"learning_rate": 1, "max_steps": 3, "progress": False, "task": "TwoHop"}))
    options = options_from(SFTOptions, parsed(["sft", "--config", str(config)]))
    assert (options.learning_rate, options.max_steps, options.progress, options.task) == (1.0, 3, False, "TwoHop")
    assert isinstance(options.learning_rate, float)
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text("learning_rate: 3e-4\n")  # YAML 1.1 reads this as text: the flag's own type reads it
    assert options_from(SFTOptions, parsed(["sft", "--config", str(yaml_file)])).learning_rate == 3e-4


@pytest.mark.parametrize(
    "text, message",
    [
        ("lerning_rate: 0.1\n", "unknown option 'lerning_rate'; did you mean learning_rate?"),
        ("frobnicate: 1\n", "unknown option 'frobnicate' (see agentic sft --help)"),
        ("max_steps: 2.5\n", "max_steps: invalid literal for int() with base 10: '2.5'"),
        ("learning_rate: .nan\n", "learning_rate: nan is not a finite number"),
        ("progress: maybe\n", "progress: must be true or false, got 'maybe'"),
        ("model: null\n", "model: must be a single text, got None"),
        ("n_demos: [1, 2]\n", "n_demos: must be a single number, got [1, 2]"),
        ("- a\n- b\n", "must hold a mapping of flag names to values, not list"),
        ("a: [1, 2\n", "is not YAML or JSON (line 2)"),
        ("n_demos: -4\n", "n_demos must be positive, got -4"),
    ],
)
def test_what_a_config_file_gets_wrong_is_one_line_and_no_work_starts(tmp_path, capsys, text, message):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    assert main(["sft", "--config", str(config), "--out-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "run").exists()


def test_a_choice_outside_the_flag_choices_and_a_missing_file_are_refused(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("critic: shareable\n")
    assert main(["ppo", "--config", str(config)]) == 2
    assert "critic: must be one of shared, separate, reward-model, got 'shareable'" in capsys.readouterr().err
    assert main(["sft", "--config", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


def test_an_sft_run_from_a_config_file_records_the_file_and_the_flags(tmp_path):
    model = build_tiny_model(["Arithmetic"], tmp_path / "base", seeds=range(8), hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64)  # fmt: skip
    config = tmp_path / "sft.yaml"
    config.write_text(f"model: {model}\nn_demos: 8\nmax_steps: 2\nbatch_size: 4\nprogress: false\nlog_every: 1\n")
    assert main(["sft", "--config", str(config), "--out-dir", str(tmp_path / "run"), "--max-steps", "3"]) == 0
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["n_demos"], saved["max_steps"], saved["batch_size"]) == (8, 3, 4)


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> str:
    register_task(YesOrNo)
    policy = warmed_up_policy()
    path = tmp_path_factory.mktemp("toy") / "model"
    policy.model.save_pretrained(path)
    policy.tokenizer.save_pretrained(path)
    return str(path)


def test_resume_reads_the_saved_config_and_refuses_a_flag_that_disagrees(toy_model, tmp_path, capsys):
    out_dir = str(tmp_path / "run")
    first = ["--model", toy_model, "--task", "YesOrNo", "--out-dir", out_dir, "--groups", "4", "--group-size", "2"]
    first += ["--report-to", "none", "--no-progress"]
    assert main(["grpo", *first, "--iterations", "1", "--n-eval", "0", "--checkpoint-every", "1"]) == 0
    capsys.readouterr()
    assert main(["grpo", "--resume", "--out-dir", out_dir, "--iterations", "2"]) == 0
    assert "GRPO 2 updates (completed)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["groups"], saved["group_size"], saved["iterations"], saved["progress"]) == (4, 2, 2, False)
    assert saved["report_to"] == "none" and not (tmp_path / "run" / "tensorboard").exists()

    assert main(["grpo", "--resume", "--out-dir", out_dir, "--learning-rate", "0.5", "--iterations", "3"]) == 2
    error = capsys.readouterr().err
    assert "cannot resume" in error and "learning_rate (0.5 here" in error and len(error.strip().splitlines()) == 1
    assert main(["grpo", "--resume", "--out-dir", str(tmp_path / "none")]) == 2
    assert "--resume: " in capsys.readouterr().err
