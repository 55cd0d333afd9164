"""The PPO / GRPO trainer (`agentic.training.rl.run_rl`): runs that learn and leave a complete run directory, exact resume,
the NaN stop, two processes with gloo, and the `agentic ppo` / `agentic grpo` command line.

Every run trains the ~50k-parameter `toy_yes_no` policy (answers yes, no or maybe about equally often) on `YesOrNo`,
where answering yes scores 1, so a few updates of 32 episodes take seconds.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file
from toy_yes_no import YesOrNo, warmed_up_policy

from agentic import Budget, Turn, finish
from agentic.cli import main
from agentic.policy import Policy
from agentic.registry import register_task
from agentic.rollout import oracle_trajectories, rollout
from agentic.sampling import Sampling
from agentic.training.ppo import TrainingDiverged
from agentic.training.rl import run_rl
from agentic.training.rl_checkpoint import CheckpointError
from agentic.training.rl_config import TRAIN_SEED_START, GRPOOptions, PPOOptions, RLOptions
from agentic.training.sft_config import DEMO_SEED_START
from agentic.trajectory import from_dataset, read_trajectories

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = ("seconds", "rollout_seconds", "update_seconds", "episodes_per_second", "elapsed_seconds")
LOGGED_EVERY_UPDATE = (
    "reward", "success", "kl", "kl_coef", "entropy", "clip_fraction", "value_loss", "explained_variance", "invalid_action_rate",
    "mean_turns", "tokens", "agent_tokens", "episodes", "first_seed", "skipped", "seconds", "episodes_per_second",
)  # fmt: skip


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> str:
    """The warmed-up toy policy saved as a model directory, with `YesOrNo` registered."""
    register_task(YesOrNo)
    torch.manual_seed(0)
    policy = warmed_up_policy()
    path = tmp_path_factory.mktemp("toy") / "model"
    policy.model.save_pretrained(path)
    policy.tokenizer.save_pretrained(path)
    return str(path)


def toy_options(model: str, out_dir: Path, algorithm: type[RLOptions] = PPOOptions, **changes) -> RLOptions:
    settings = dict(
        model=model, task="YesOrNo", out_dir=str(out_dir), iterations=6, learning_rate=3e-3, epochs=2, minibatch_size=16,
        kl_coef=0.01, n_eval=16, eval_every=3, checkpoint_every=3, progress=False,
    )  # fmt: skip
    specific = (
        {"episodes": 32, "value_learning_rate": 1e-2} if algorithm is PPOOptions else {"groups": 8, "group_size": 4}
    )
    return algorithm(**settings | specific | changes)


def updates(run_dir: Path) -> list[dict]:
    """The per-update rows of metrics.jsonl (evaluation rows left out)."""
    return [row for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "reward" in row]


def greedy_success(model_dir: Path) -> float:
    trajectories = rollout(Policy.from_pretrained(model_dir), YesOrNo(), range(8), Sampling(temperature=0.0))
    return sum(t.success for t in trajectories) / len(trajectories)


def test_options_keep_training_seeds_apart_from_evaluation_and_demonstration_seeds():
    options = PPOOptions(model="m", n_eval=500, iterations=10, episodes=64)
    training = {seed for i in range(options.iterations) for seed in options.train_seeds(i)}
    assert min(training) == TRAIN_SEED_START and len(training) == 640, "each update draws new instances"
    assert not training & set(options.eval_seeds) and not training & set(
        range(DEMO_SEED_START, DEMO_SEED_START + 100_000)
    )
    with pytest.raises(ValueError, match="n_eval must be at most 10000"):
        PPOOptions(model="m", n_eval=20_000)
    with pytest.raises(ValueError, match="episodes must be positive"):
        PPOOptions(episodes=0)
    with pytest.raises(ValueError, match="minibatch_size must be positive"):
        GRPOOptions(model="m", minibatch_size=0)
    for bad in ("kl_coef", "value_clip_range", "learning_rate", "max_seconds"):
        with pytest.raises(ValueError, match=f"{bad} must be a finite number"):
            PPOOptions(model="m", **{bad: math.nan})


def test_processes_share_an_update_instances_and_grpo_groups_stay_whole():
    ppo = PPOOptions(model="m", episodes=8)
    shares = [ppo.process_seeds(3, rank, 2) for rank in range(2)]
    assert shares[0] + shares[1] == ppo.process_seeds(3, 0, 1) == list(ppo.train_seeds(3))
    grpo = GRPOOptions(model="m", groups=4, group_size=3)
    first, second = (grpo.process_seeds(0, rank, 2) for rank in range(2))
    assert first == [TRAIN_SEED_START] * 3 + [TRAIN_SEED_START + 1] * 3 and not set(first) & set(second)


def test_a_ppo_run_raises_the_reward_and_leaves_a_complete_run_dir(toy_model, tmp_path):
    result = run_rl(toy_options(toy_model, tmp_path / "run", iterations=8, kl_target=2.0, samples_per_update=2))
    rows = updates(result.run_dir)
    assert [row["step"] for row in rows] == list(range(1, 9))
    assert all(set(LOGGED_EVERY_UPDATE) <= set(row) for row in rows)
    assert all(
        math.isfinite(row[key]) for row in rows for key in ("reward", "entropy", "value_loss", "clip_fraction", "kl")
    )
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5), "the policy starts as its reference"
    assert rows[0]["reward"] < 0.5 and sum(row["reward"] for row in rows[-2:]) / 2 > 0.85
    assert sorted(result.evaluations) == [0, 3, 6, 8]
    assert (
        result.evaluations[0]["episodes"]["success"]["value"]
        < 0.5
        < result.evaluations[8]["episodes"]["success"]["value"]
    )

    for name in (
        "report.json",
        "report.md",
        "config.json",
        "plots/training.png",
        "plots/eval.png",
        "samples/update-000008.jsonl",
    ):
        assert (result.run_dir / name).is_file(), name
    samples = result.run_dir / "samples" / "update-000001.jsonl"
    assert len(read_trajectories(samples)) == 2
    loaded = from_dataset(datasets.load_dataset("json", data_files=str(samples), split="train"))
    assert [t.transcript for t in loaded] == [t.transcript for t in read_trajectories(samples)]
    assert sorted(p.name for p in (result.run_dir / "checkpoints").iterdir()) == ["update-000006", "update-000008"]
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["updates"] == 8 and report["episodes"] == 256 and report["stop_reason"] == "completed"
    assert "| success |" in (result.run_dir / "report.md").read_text()
    assert greedy_success(result.model_dir) == 1.0


class AtLength(YesOrNo):
    """YesOrNo answered at length: the oracle's one action is about a hundred tokens long."""

    name = "AtLength"
    budget = Budget(max_turns=1)

    def oracle(self, instance: dict, history: Sequence[Turn]) -> str:
        return finish("yes " * 90)


def test_rl_samples_actions_as_long_as_the_oracles_unless_told(tmp_path):
    """Where no limit is given, rollouts and evaluations sample actions up to the task's longest oracle action plus a
    quarter (at least 64 tokens): an answer cut shorter than the task needs could never score. An untrained model
    rarely closes its action, so its sampled actions show the limit."""
    policy = warmed_up_policy(steps=0)
    model = tmp_path / "untrained"
    policy.model.save_pretrained(model)
    policy.tokenizer.save_pretrained(model)
    (oracle,) = oracle_trajectories(AtLength(), [0], policy.tokenizer)
    expected = math.ceil(1.25 * (oracle.turns[0].end - oracle.turns[0].start))
    assert expected > 64
    quick = dict(iterations=1, episodes=16, n_eval=2, eval_every=1, checkpoint_every=0, samples_per_update=16)
    for given, limit in ((0, expected), (20, 20)):
        out = tmp_path / f"run-{given}"
        run_rl(toy_options(str(model), out, max_new_tokens=given, **quick), AtLength())
        assert json.loads((out / "report.json").read_text())["action_limit"] == limit
        assert json.loads((out / "config.json").read_text())["action_limit"] == limit
        assert json.loads((out / "eval" / "update-000001.json").read_text())["sampling"]["max_new_tokens"] == limit
        lengths = [
            turn.end - turn.start
            for t in read_trajectories(out / "samples" / "update-000001.jsonl")
            for turn in t.turns
        ]
        assert max(lengths) == limit


def test_a_grpo_run_raises_the_reward(toy_model, tmp_path):
    result = run_rl(toy_options(toy_model, tmp_path / "run", GRPOOptions, iterations=8, n_eval=0))
    rows = updates(result.run_dir)
    assert all(row["episodes"] == 32 and "no_signal_fraction" in row and "kl_per_token" in row for row in rows)
    assert rows[0]["reward"] < 0.5 and sum(row["reward"] for row in rows[-2:]) / 2 > 0.85
    assert greedy_success(result.model_dir) == 1.0


def test_a_lora_run_trains_adapters_against_the_base_and_saves_a_loadable_adapter(toy_model, tmp_path):
    options = toy_options(toy_model, tmp_path / "run", iterations=2, lora_rank=4, critic="separate", n_eval=4)
    result = run_rl(options)
    first = updates(result.run_dir)[0]
    assert first["kl"] == pytest.approx(0.0, abs=1e-5), "fresh adapters: the policy is its reference, the base model"
    assert (result.model_dir / "adapter_config.json").is_file()
    adapted, base = Policy.from_pretrained(result.model_dir), Policy.from_pretrained(toy_model)
    ids = torch.tensor([base.encode(YesOrNo().prompt({}) + "<finish>yes</finish>")])
    assert not torch.allclose(adapted.model(ids).logits, base.model(ids).logits), (
        "the saved adapter holds the trained weights"
    )


def test_a_resumed_run_continues_exactly_as_an_uninterrupted_one(toy_model, tmp_path):
    """A run killed after update 3 (logged, but its checkpoint never written) resumes from checkpoint 2, repeats
    update 3 and goes on: the same instances and sampled token ids, the same metrics and the same final weights."""
    options = toy_options(toy_model, tmp_path / "whole", iterations=4, episodes=16, kl_target=1.0, kl_horizon=50)
    options = replace(options, checkpoint_every=2, eval_every=2, n_eval=4, samples_per_update=16)
    whole = run_rl(options)

    killed = replace(options, out_dir=str(tmp_path / "killed"))
    run_rl(replace(killed, iterations=3))
    shutil.rmtree(tmp_path / "killed" / "checkpoints" / "update-000003")  # the kill came before this checkpoint
    resumed = run_rl(replace(killed, resume=True))

    whole_rows, resumed_rows = updates(whole.run_dir), updates(resumed.run_dir)
    assert [row["step"] for row in resumed_rows] == [1, 2, 3, 4], "no update lost or logged twice"
    assert resumed_rows[-1]["kl_coef"] != options.kl_coef, "the adaptive KL coefficient moved and was restored"
    for expected, got in zip(whole_rows, resumed_rows):
        for key, value in expected.items():
            if key not in TIMING_KEYS:
                assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-6, nan_ok=True), (expected["step"], key)
    for step in (3, 4):
        name = f"samples/update-00000{step}.jsonl"
        assert [t.token_ids for t in read_trajectories(resumed.run_dir / name)] == [
            t.token_ids for t in read_trajectories(whole.run_dir / name)
        ]
    assert resumed.evaluations == whole.evaluations
    final, expected = (
        load_file(resumed.model_dir / "model.safetensors"),
        load_file(whole.model_dir / "model.safetensors"),
    )
    assert all(torch.allclose(final[name], expected[name], atol=1e-6) for name in expected)


def test_a_lora_run_resumes_with_its_adapters_and_critic(toy_model, tmp_path):
    options = toy_options(toy_model, tmp_path / "whole", iterations=2, episodes=16, lora_rank=4, n_eval=0)
    options = replace(options, checkpoint_every=1)
    whole = run_rl(options)
    killed = replace(options, out_dir=str(tmp_path / "killed"))
    run_rl(replace(killed, iterations=1))
    resumed = run_rl(replace(killed, resume=True))
    assert updates(resumed.run_dir)[-1]["loss"] == pytest.approx(updates(whole.run_dir)[-1]["loss"], rel=1e-6)
    final, expected = (load_file(run.model_dir / "adapter_model.safetensors") for run in (resumed, whole))
    assert all(torch.allclose(final[name], expected[name], atol=1e-6) for name in expected)


@pytest.fixture
def finished_run(toy_model, tmp_path) -> RLOptions:
    options = toy_options(toy_model, tmp_path / "run", iterations=2, episodes=16, n_eval=0, checkpoint_every=1)
    run_rl(options)
    return replace(options, iterations=3, resume=True)


def test_a_run_dir_is_never_overwritten_and_resume_needs_matching_options(finished_run):
    with pytest.raises(ValueError, match="already holds a run: pass --resume"):
        run_rl(replace(finished_run, resume=False))
    with pytest.raises(ValueError, match=r"different options: learning_rate \(0.1 here, 0.003 in the run\)"):
        run_rl(replace(finished_run, learning_rate=0.1))
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        run_rl(replace(finished_run, out_dir=finished_run.out_dir + "-elsewhere"))


def test_a_corrupt_or_incomplete_checkpoint_gives_a_clear_error(finished_run):
    latest = Path(finished_run.out_dir) / "checkpoints" / "update-000002"
    (latest / "trainer.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="update-000002 is corrupt"):
        run_rl(finished_run)
    (latest / "trainer.pt").unlink()
    with pytest.raises(CheckpointError, match="update-000002 is incomplete: missing trainer.pt"):
        run_rl(finished_run)
    previous = latest.with_name("update-000001")
    (previous / "model" / "model.safetensors").write_bytes(b"\0" * 100)
    shutil.rmtree(latest)
    with pytest.raises(CheckpointError, match="update-000001 is corrupt .* its model does not load"):
        run_rl(finished_run)


def overwrite_tensor_bytes(path: Path) -> None:
    """Overwrite every tensor's bytes of a safetensors file with 0xFF: each float32 weight becomes NaN, the file still parses."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")  # an 8-byte header length, the JSON header, then the tensors
    data[start:] = b"\xff" * (len(data) - start)
    path.write_bytes(bytes(data))


def test_a_checkpoint_whose_weights_were_overwritten_with_nan_is_refused_in_one_line(finished_run, capsys):
    latest = Path(finished_run.out_dir) / "checkpoints" / "update-000002"
    overwrite_tensor_bytes(latest / "model" / "model.safetensors")
    with pytest.raises(CheckpointError, match="update-000002 is corrupt .* its weights are not finite"):
        run_rl(finished_run)
    capsys.readouterr()
    flags = ["--model", finished_run.model, "--task", "YesOrNo", "--out-dir", finished_run.out_dir, "--resume"]
    flags += ["--iterations", "3", "--episodes", "16", "--learning-rate", "3e-3", "--value-learning-rate", "1e-2"]
    flags += ["--epochs", "2", "--minibatch-size", "16", "--kl-coef", "0.01", "--n-eval", "0", "--eval-every", "3"]
    assert main(["ppo", *flags, "--checkpoint-every", "1", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "its weights are not finite (NaN or Inf in" in error and len(error.strip().splitlines()) == 1, error


def test_a_checkpoint_whose_critic_is_not_finite_is_refused(finished_run):
    trainer = Path(finished_run.out_dir) / "checkpoints" / "update-000002" / "trainer.pt"
    state = torch.load(trainer, weights_only=True)
    state["algorithm"]["value_head"]["score.weight"].fill_(math.nan)
    torch.save(state, trainer)
    with pytest.raises(CheckpointError, match="update-000002 is corrupt .* its critic's weights are not finite"):
        run_rl(finished_run)


def test_a_starting_model_with_non_finite_weights_is_refused(toy_model, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(toy_model, broken)
    overwrite_tensor_bytes(broken / "model.safetensors")
    argv = ["ppo", "--model", str(broken), "--task", "YesOrNo", "--out-dir", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert f"model {broken} has weights that are not finite" in error and len(error.strip().splitlines()) == 1


def poison_rewards_from(monkeypatch, update: int) -> None:
    """From update ``update`` on (1-based), every reward of the batch is NaN: the loss is not finite."""
    import agentic.training.rl

    collate, calls = agentic.training.rl.collate, {"n": 0}

    def poisoned_collate(*args, **kwargs):
        calls["n"] += 1
        batch = collate(*args, **kwargs)
        return replace(batch, turn_rewards=batch.turn_rewards + math.nan) if calls["n"] >= update else batch

    monkeypatch.setattr(agentic.training.rl, "collate", poisoned_collate)


def test_repeated_non_finite_updates_stop_the_run_and_keep_the_last_good_state(toy_model, tmp_path, monkeypatch):
    poison_rewards_from(monkeypatch, 3)
    options = toy_options(
        toy_model, tmp_path / "run", iterations=10, episodes=16, n_eval=0, checkpoint_every=2, max_failures=2
    )
    with pytest.raises(TrainingDiverged, match="2 consecutive updates were non-finite"):
        run_rl(options)
    run_dir = Path(options.out_dir)
    assert [row["skipped"] for row in updates(run_dir)] == [0, 0, 1, 1], (
        "the third update rolled back, the fourth stopped the run"
    )
    good, kept = (
        load_file(run_dir / "checkpoints" / name / "model" / "model.safetensors")
        for name in ("update-000002", "update-000004")
    )
    assert all(torch.equal(kept[name], good[name]) for name in good), (
        "the checkpoint holds the weights of the last good update"
    )
    assert json.loads((run_dir / "report.json").read_text())["stop_reason"].startswith("diverged")
    assert not (run_dir / "model").exists(), "a diverged run saves no final model"


def test_a_run_whose_every_update_rolled_back_fails_with_the_reason(toy_model, tmp_path, monkeypatch, capsys):
    """Fewer updates than max_failures, all non-finite: not "completed" with exit 0, but exit 1 and why."""
    poison_rewards_from(monkeypatch, 1)
    out_dir = tmp_path / "run"
    flags = ["--model", toy_model, "--task", "YesOrNo", "--out-dir", str(out_dir), "--iterations", "2"]
    flags += ["--episodes", "16", "--n-eval", "0", "--max-failures", "3", "--no-progress"]
    with pytest.raises(SystemExit) as stopped:
        main(["ppo", *flags])
    message = str(stopped.value.code)
    assert message.startswith("agentic ppo: every update (2) was rolled back as non-finite (last: loss nan")
    report = json.loads((out_dir / "report.json").read_text())
    assert report["stop_reason"].startswith("every update (2) was rolled back") and report["skipped_updates"] == 2


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--kl-coef", "nan"),
        ("--value-clip-range", "nan"),
        ("--learning-rate", "inf"),
        ("--lr", "inf"),
        ("--max-seconds", "nan"),
    ],
)
def test_non_finite_numbers_are_refused_when_the_command_line_is_read(toy_model, tmp_path, capsys, flag, value):
    out_dir = tmp_path / "run"
    assert main(["ppo", "--model", toy_model, "--task", "YesOrNo", "--out-dir", str(out_dir), flag, value]) == 2
    error = capsys.readouterr().err
    assert f"argument {flag}: {value} is not a finite number" in error and len(error.strip().splitlines()) == 1
    assert not out_dir.exists()


LAUNCHER = """
import sys

sys.path.insert(0, {tests!r})
from accelerate import PartialState
from toy_yes_no import YesOrNo

import agentic.training.rl
from agentic import Budget, Turn, finish
from agentic.cli import main
from agentic.registry import register_task

register_task(YesOrNo)
optimize = agentic.training.rl.optimize


def recorded_optimize(policy, state, *args, **kwargs):
    stats = optimize(policy, state, *args, **kwargs)
    parameters = [*state.model.parameters(), *state.algorithm.value_head.parameters()]
    checksum = sum(p.double().sum().item() for p in parameters)
    with open(f"{{sys.argv[1]}}/weights-{{PartialState().process_index}}.txt", "a") as out:
        out.write(f"{{checksum!r}}\\n")
    return stats


agentic.training.rl.optimize = recorded_optimize
sys.exit(main(sys.argv[2:]))
"""


def test_two_processes_with_gloo_train_like_one(toy_model, tmp_path):
    """``torchrun --nproc_per_node 2`` on the CPU (gloo). "Like one" means: every update uses the same 32 instances
    as the single-process run (each process samples 16), the processes hold identical weights after every update
    (DDP averaged the gradients), and both runs go from a low first-update reward to greedy success 1 on the held-out
    seeds. The sampled episodes themselves differ: each process draws from its own random stream."""
    options = toy_options(toy_model, tmp_path / "one")
    single = run_rl(options)
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER.format(tests=str(REPO / "tests")))
    flags = [
        "--model",
        toy_model,
        "--task",
        "YesOrNo",
        "--out-dir",
        str(tmp_path / "two"),
        "--iterations",
        "6",
        "--episodes",
        "32",
    ]
    flags += [
        "--learning-rate",
        "3e-3",
        "--value-learning-rate",
        "1e-2",
        "--epochs",
        "2",
        "--minibatch-size",
        "16",
        "--kl-coef",
        "0.01",
        "--n-eval",
        "16",
    ]
    flags += ["--eval-every", "3", "--checkpoint-every", "3", "--no-progress"]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(launcher),
        str(tmp_path),
        "ppo",
        *flags,
    ]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PPO 6 updates (completed)" in done.stdout and done.stdout.count("PPO 6 updates") == 1, (
        "one summary, from the main process"
    )

    two = tmp_path / "two"
    assert json.loads((two / "report.json").read_text())["processes"] == 2
    single_rows, two_rows = updates(single.run_dir), updates(two)
    assert [(r["first_seed"], r["episodes"]) for r in two_rows] == [
        (r["first_seed"], r["episodes"]) for r in single_rows
    ]
    checksums = [(tmp_path / f"weights-{rank}.txt").read_text().split() for rank in range(2)]
    assert len(checksums[0]) == 6 and checksums[0] == checksums[1]
    for rows in (single_rows, two_rows):
        assert rows[0]["reward"] < 0.5 and rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)
    for run_dir in (single.run_dir, two):
        last = json.loads((run_dir / "eval" / "update-000006.json").read_text())
        assert last["episodes"]["success"]["value"] == 1.0


def test_cli_runs_grpo_and_rejects_bad_flags_in_one_line(toy_model, tmp_path, capsys):
    out_dir = tmp_path / "cli"
    flags = ["--model", toy_model, "--task", "YesOrNo", "--out-dir", str(out_dir), "--iterations", "2", "--n-eval", "4"]
    assert main(["grpo", *flags, "--groups", "4", "--no-progress"]) == 0
    output = capsys.readouterr().out
    assert "GRPO 2 updates (completed)" in output and "held-out success" in output
    assert Policy.from_pretrained(out_dir / "model") is not None

    for argv, message in (
        (["grpo", *flags, "--critic", "separate"], "unrecognized arguments: --critic"),
        (["ppo", "--task", "YesOrNo"], "model must be given"),
        (["grpo", *flags, "--group-size", "1"], "group_size must be at least 2"),
        (["ppo", *flags], "already holds a run: pass --resume"),
        (["ppo", "--model", toy_model, "--task", "Nope", "--out-dir", str(tmp_path / "x")], "unknown task 'Nope'"),
    ):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error
