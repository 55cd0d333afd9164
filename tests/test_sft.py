"""Agentic SFT on a very small GPT-NeoX: loss on agent tokens only, a working run directory, LoRA adapters, reproducibility."""

import json
import shutil
from dataclasses import replace

import datasets
import pytest
import torch
from forward_calls import input_shapes
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentic.cli import main
from agentic.policy import Policy
from agentic.rollout import oracle_trajectories
from agentic.training.bench_sft import bench_sft
from agentic.training.demos import demonstrations
from agentic.training.sft import demo_dataset, run_sft, sft_trainer
from agentic.training.sft_config import DEMO_SEED_START, SFTOptions
from agentic.trajectory import from_dataset, read_trajectories

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_dir(small_arithmetic_model) -> str:
    return small_arithmetic_model


def options(model_dir, out_dir, **overrides) -> SFTOptions:
    settings = dict(
        model=model_dir,
        out_dir=str(out_dir),
        n_demos=32,
        max_steps=12,
        batch_size=8,
        learning_rate=1e-2,
        log_every=2,
        progress=False,
    )
    return SFTOptions(**settings | overrides)


@pytest.fixture(scope="module")
def full_run(model_dir, tmp_path_factory):
    return run_sft(options(model_dir, tmp_path_factory.mktemp("full")))


def test_labels_are_the_agent_tokens_and_nothing_else(model_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    demos = oracle_trajectories("Arithmetic", range(DEMO_SEED_START, DEMO_SEED_START + 8), tokenizer)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = sft_trainer(
        model, tokenizer, demo_dataset(demos), options(model_dir, tmp_path), train_sampling_strategy="sequential"
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 8 and batch["input_ids"].shape[1] == max(len(d.token_ids) for d in demos)
    for row, demo in enumerate(demos):
        labels = batch["labels"][row].tolist()
        n = len(demo.token_ids)
        assert batch["input_ids"][row, :n].tolist() == demo.token_ids
        assert labels[:n] == [t if m else -100 for t, m in zip(demo.token_ids, demo.loss_mask)]
        assert labels[n:] == [-100] * (len(labels) - n), "padding carries no loss"
        trained_text = tokenizer.decode([t for t in labels if t != -100])
        assert trained_text == "".join(turn.action for turn in demo.turns), (
            "the loss covers exactly the agent's actions"
        )
        assert "<result>" not in trained_text and "Task:" not in trained_text


def test_micro_batches_of_similar_lengths_take_the_one_batch_step_over_less_padding(model_dir, tmp_path):
    """One step over 16 demonstrations of which half give up at once (two lengths): split into 4 micro-batches of
    similar lengths, it leaves the weights exactly where one padded batch of 16 does, and runs over fewer positions."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    demos = demonstrations("Arithmetic", range(DEMO_SEED_START, DEMO_SEED_START + 16), tokenizer, sloppy_rate=0.5)
    lengths = [len(d.token_ids) for d in demos]
    assert len(set(lengths)) > 1
    steps = {}
    for micro_batches in (1, 4):
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        shapes = input_shapes(model)
        settings = options(
            model_dir, tmp_path / str(micro_batches), batch_size=16, max_steps=1, warmup_ratio=0.0, share_prefix=False
        )  # every row run whole: the positions counted are the padded batch's
        sft_trainer(model, tokenizer, demo_dataset(demos), replace(settings, micro_batches=micro_batches)).train()
        steps[micro_batches] = (
            sum(shape.numel() for shape in shapes),
            {name: p.detach().clone() for name, p in model.named_parameters()},
        )
    (padded, whole), (balanced, micro) = steps[1], steps[4]
    assert padded == 16 * max(lengths) and balanced < padded
    start = AutoModelForCausalLM.from_pretrained(model_dir).state_dict()
    assert not torch.equal(whole["gpt_neox.embed_in.weight"], start["gpt_neox.embed_in.weight"]), "a step was taken"
    assert all(torch.allclose(whole[name], micro[name], atol=1e-5) for name in whole)


def test_a_short_run_lowers_the_loss(full_run):
    first, last = full_run.loss_curve[0][1], full_run.final_loss
    assert last < 0.7 * first, full_run.loss_curve
    assert full_run.steps == 12 and [step for step, _ in full_run.loss_curve] == [2, 4, 6, 8, 10, 12]


def test_without_progress_the_trainer_prints_no_log_dicts(model_dir, tmp_path, capsys):
    run_sft(options(model_dir, tmp_path, n_demos=8, max_steps=2, log_every=1))
    assert "'loss'" not in capsys.readouterr().out, "the run directory keeps the logs"
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) >= 2


def test_the_run_directory_has_config_demos_metrics_report_plot_and_model(full_run):
    run = full_run.run_dir
    config = json.loads((run / "config.json").read_text())
    assert config["n_demos"] == 32 and config["base_model"]
    demos = read_trajectories(run / "demos.jsonl")
    assert len(demos) == 32 and all(d.success for d in demos)
    assert from_dataset(datasets.load_dataset("json", data_files=str(run / "demos.jsonl"), split="train")) == demos
    assert [d.seed for d in demos] == list(range(DEMO_SEED_START, DEMO_SEED_START + 32)), (
        "demo seeds never meet evaluation seeds"
    )
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert datasets.load_dataset("json", data_files=str(run / "metrics.jsonl"), split="train").num_rows == len(metrics)
    logged = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in logged] == [2, 4, 6, 8, 10, 12]
    assert all({"learning_rate", "grad_norm", "num_input_tokens_seen"} <= m.keys() for m in logged)
    report = json.loads((run / "report.json").read_text())
    assert (
        report["steps"] == 12 and report["demos"] == 32 and report["final_loss"] == pytest.approx(full_run.final_loss)
    )
    assert report["tokens_seen"] > report["shared_prefix_tokens"] > 0, "each batch ran its instructions once"
    assert report["tokens_per_second"] > 0
    assert "final loss" in (run / "report.md").read_text()
    assert (run / "plots" / "training.png").is_file()
    assert any((run / "tensorboard").iterdir())
    model = AutoModelForCausalLM.from_pretrained(full_run.model_dir)
    assert AutoTokenizer.from_pretrained(full_run.model_dir).pad_token is not None
    base = AutoModelForCausalLM.from_pretrained(config["base_model"])
    assert not torch.equal(model.gpt_neox.embed_in.weight, base.gpt_neox.embed_in.weight), (
        "the saved model is the trained one"
    )


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not(model_dir, full_run, tmp_path):
    again = run_sft(options(model_dir, tmp_path / "again"))
    assert again.loss_curve == full_run.loss_curve
    other = run_sft(options(model_dir, tmp_path / "other", seed=1))
    assert other.loss_curve != full_run.loss_curve


def test_lora_writes_an_adapter_that_policy_loads(model_dir, tmp_path):
    result = run_sft(options(model_dir, tmp_path, lora_rank=4, lora_alpha=8, max_steps=4))
    assert (result.model_dir / "adapter_config.json").is_file()
    assert not (result.model_dir / "model.safetensors").exists(), "only the adapter is saved"
    assert result.report["trainable_parameters"] < result.report["parameters"]
    policy = Policy.from_pretrained(result.model_dir)
    assert isinstance(policy.model, PeftModel)
    generation = policy.generate([policy.encode("Task: compute 2 + 3.\n")])[0]
    assert generation.token_ids


def test_a_time_limit_stops_training_early(model_dir, tmp_path):
    result = run_sft(options(model_dir, tmp_path, max_steps=1000, max_seconds=0.5))
    assert result.steps < 1000 and result.report["stopped_by_time_limit"]


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(n_demos=0), "n_demos must be positive"),
        (dict(learning_rate=-1.0), "learning_rate must be positive"),
        (dict(max_steps=0, epochs=0.0), "epochs must be positive when max_steps is 0"),
        (dict(warmup_ratio=1.0), "warmup_ratio must be below 1"),
        (dict(weight_decay=float("nan")), "weight_decay must be a finite number"),
        (dict(batch_size=10, micro_batches=4), r"batch_size \(10\) must be a multiple of micro_batches \(4\)"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=f"bad SFTOptions: .*{message}"):
        SFTOptions(**bad)


@pytest.mark.parametrize(
    "flag, value",
    [("--weight-decay", "nan"), ("--epochs", "nan"), ("--learning-rate", "inf"), ("--max-seconds", "nan")],
)
def test_the_cli_refuses_non_finite_numbers_before_any_work(tmp_path, capsys, flag, value):
    """NaN and infinities are refused when the command line is read: no demonstrations, no run directory."""
    out_dir = tmp_path / "sft"
    assert main(["sft", "--out-dir", str(out_dir), flag, value]) == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: {value} is not a finite number" in error and len(error.strip().splitlines()) == 1
    assert not out_dir.exists()


def test_the_old_lora_switch_still_works_and_says_what_replaced_it(model_dir, tmp_path, capsys):
    out_dir = tmp_path / "lora"
    flags = ["--model", model_dir, "--out-dir", str(out_dir), "--n-demos", "8", "--max-steps", "1", "--no-progress"]
    assert main(["sft", *flags, "--lora"]) == 0
    assert "--lora is deprecated: use --lora-rank 8" in capsys.readouterr().err
    assert json.loads((out_dir / "config.json").read_text())["lora_rank"] == 8
    assert (out_dir / "model" / "adapter_config.json").is_file()


def test_bench_compares_the_trainer_with_a_bare_loop_on_the_same_batches(model_dir):
    result = bench_sft(model_dir, steps=4, batch_size=4)
    assert result["trl"]["tokens_per_s"] > 0 and result["bare"]["tokens_per_s"] > 0
    assert result["overhead"] == pytest.approx(result["trl"]["seconds"] / result["bare"]["seconds"])
    assert result["trl"]["mean_loss"] == pytest.approx(result["bare"]["mean_loss"], rel=1e-4), (
        "same model, batches, masking and steps"
    )


@pytest.mark.parametrize(
    ("flags", "change"),
    [(["--micro-batches", "4"], {"micro_batches": 4}), (["--shared-prefix"], {"share_prefix": True})],
    ids=["micro-batches", "shared-prefix"],
)
def test_bench_compares_plain_batches_with_a_change_on_the_same_demonstrations(model_dir, flags, change, capsys):
    assert main(["bench", "sft", "--model", model_dir, *flags, "--episodes", "2", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "one padded batch per step, every row run whole" in printed
    assert f"with {', '.join(f'{k}={v}' for k, v in change.items())}:" in printed
    result = json.loads(printed[printed.index("{") :])
    assert result["change"] == change
    assert result["plain"]["tokens"] == result["changed"]["tokens"] > 0, "every demonstration once on each side"
    assert result["speedup"] == pytest.approx(result["plain"]["seconds"] / result["changed"]["seconds"])
    if "share_prefix" in change:  # the same batches in the same order, each step the same
        assert result["changed"]["mean_loss"] == pytest.approx(result["plain"]["mean_loss"], rel=1e-5)


def test_a_lora_run_directory_loads_after_being_moved_and_through_auto_peft(tmp_path):
    from peft import AutoPeftModelForCausalLM

    result = run_sft(
        SFTOptions(
            model="tiny",
            out_dir=str(tmp_path / "run"),
            n_demos=8,
            max_steps=2,
            batch_size=4,
            lora_rank=4,
            progress=False,
        )  # fmt: skip
    )
    assert isinstance(AutoPeftModelForCausalLM.from_pretrained(result.model_dir), PeftModel)
    before = Policy.from_pretrained(result.model_dir)
    ids = torch.tensor([before.encode("Task: compute 2 + 3.\n")])
    moved = tmp_path / "elsewhere" / "copy"
    shutil.move(tmp_path / "run", moved)
    after = Policy.from_pretrained(moved / "model")
    with torch.no_grad():
        assert torch.equal(after.model(ids).logits, before.model(ids).logits), "the same adapter over the same base"
    shutil.rmtree(moved / "base")
    with pytest.raises(FileNotFoundError, match=r"trained over the base model at .*run/base or .*, which is not there"):
        Policy.from_pretrained(moved / "model")
