"""PPO and GRPO under the constraint: the update recomputes the policy's log-probs (the ratio), the reference's (the
KL) and the entropy under the masks the actions were sampled under, replayed once per rollout batch.

The bench is the embedded tiny model, untrained (it writes noise, so the masks cut deep), on Arithmetic.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

from agentic.cli import main
from agentic.constraint import constrained_masks
from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.sampling import Sampling
from agentic.training.grpo import GRPO
from agentic.training.ppo import PPO, collate
from agentic.training.ppo.forward import policy_forward
from agentic.training.rl import TrainingState, optimize
from agentic.training.rl_config import GRPOOptions, PPOOptions
from agentic.training.tiny_model import build_tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

CONSTRAINED = Sampling(max_new_tokens=64, seed=7, constrained=True)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(["Arithmetic"], tmp_path_factory.mktemp("tiny"), seeds=range(30))


@pytest.fixture
def policy(model_dir):
    return Policy.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def trajectories(model_dir):
    """Eight constrained episodes, two of each of four instances (GRPO's groups)."""
    return rollout(Policy.from_pretrained(model_dir), "Arithmetic", [0, 0, 1, 1, 2, 2, 3, 3], CONSTRAINED)


def agent_logprobs(model, batch, share_prefix: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(recomputed, recorded) log-probs at every agent token of ``batch``."""
    with torch.no_grad():
        new = policy_forward(model, batch, share_prefix=share_prefix).logprobs
    return new[batch.agent_mask], batch.old_logprobs[batch.agent_mask]


@pytest.mark.parametrize("share_prefix", [False, True], ids=["whole", "shared-prefix"])
def test_recomputed_logprobs_under_the_replayed_masks_equal_the_sampling_ones(policy, trajectories, share_prefix):
    """Also with the episodes' shared prefix run once: the masks then apply from the first position after it."""
    batch = collate(trajectories, policy.pad_id, policy.tokenizer)
    recomputed, recorded = agent_logprobs(policy.model, batch, share_prefix)
    assert recomputed.numel() > 100 and torch.allclose(recomputed, recorded, atol=1e-4), "the ratio is exactly 1"
    unmasked, _ = agent_logprobs(policy.model, replace(batch, masks=None))
    assert (unmasked - recorded).abs().max() > 0.1, "without the masks the ratio is not 1: they matter"
    with torch.no_grad():
        entropy = policy_forward(policy.model, batch).entropy[batch.agent_mask]
        free_entropy = policy_forward(policy.model, replace(batch, masks=None)).entropy[batch.agent_mask]
    assert torch.isfinite(entropy).all() and (entropy <= free_entropy + 1e-4).all() and entropy.min() < 1e-3, (
        "the entropy is the masked distribution's: no more than the free one, 0 where the grammar allows one token"
    )


def test_the_batch_stores_each_distinct_mask_once_and_gives_back_the_replayed_masks(policy, trajectories):
    batch = collate(trajectories, policy.pad_id, policy.tokenizer)
    masks, vocab_size = batch.masks, policy.model.get_output_embeddings().weight.shape[0]
    constrained_positions = int((masks.index >= 0).sum())
    assert masks.bits.dtype == torch.int32 and masks.bits.shape[0] < constrained_positions / 4, "shared masks"
    for row in torch.randperm(len(trajectories))[:3].tolist():  # a minibatch keeps each row's masks
        minibatch = batch.rows(torch.tensor([row]))
        n = len(trajectories[row].token_ids)
        logits = torch.zeros(1, batch.input_ids.shape[1] - 1, vocab_size)
        allowed = torch.isfinite(minibatch.masks.apply(logits))[0]
        assert torch.equal(allowed[: n - 1], constrained_masks(trajectories[row], policy.tokenizer, vocab_size)[1:])
        assert allowed[n - 1 :].all(), "padding is not masked"


def test_constrained_trajectories_need_the_tokenizer_and_free_ones_get_no_masks(policy, trajectories):
    with pytest.raises(ValueError, match="need the tokenizer"):
        collate(trajectories, policy.pad_id)
    free = rollout(policy, "Arithmetic", range(2), Sampling(max_new_tokens=64, seed=7))
    assert collate(free, policy.pad_id, policy.tokenizer).masks is None


def first_update(policy, trajectories, options) -> tuple[dict[str, float], object]:
    """One update of ``options``' algorithm, the reference a copy of the policy: its diagnostics and the batch."""
    model = policy.model
    algorithm = (PPO if isinstance(options, PPOOptions) else GRPO)(options, model, copy.deepcopy(model))
    state = TrainingState(model, algorithm, algorithm.optimizer(model, 1e-3), options)
    batch = collate(trajectories, policy.pad_id, policy.tokenizer)
    targets = algorithm.advantages(model, batch)
    return targets.stats | optimize(model, state, batch, targets, seed=0), batch


def test_the_first_ppo_update_has_ratio_one_and_no_kl_to_a_reference_equal_to_the_policy(policy, trajectories):
    options = PPOOptions(model="tiny", epochs=1, minibatch_size=len(trajectories), kl_coef=0.1)
    stats, batch = first_update(policy, trajectories, options)
    assert stats["kl"] == pytest.approx(0.0, abs=1e-4) and stats["kl_k3"] == pytest.approx(0.0, abs=1e-6)
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6) and stats["clip_fraction"] == 0.0
    assert math.isfinite(stats["entropy"]) and not stats["skipped"]
    recomputed, recorded = agent_logprobs(policy.model, batch)
    assert not torch.allclose(recomputed, recorded, atol=1e-4), "the update moved the policy"


def test_grpo_takes_its_kl_term_under_the_masks_too(policy, trajectories):
    options = GRPOOptions(model="tiny", group_size=2, minibatch_size=len(trajectories), kl_coef=0.1)
    stats, _ = first_update(policy, trajectories, options)
    assert stats["kl_per_token"] == pytest.approx(0.0, abs=1e-6) and stats["approx_kl"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("algorithm", ["ppo", "grpo"])
def test_the_command_line_trains_and_evaluates_under_the_constraint(model_dir, tmp_path, algorithm, capsys):
    out = tmp_path / algorithm
    size = ["--episodes", "8"] if algorithm == "ppo" else ["--groups", "4", "--group-size", "2"]
    argv = [algorithm, "--model", str(model_dir), "--out-dir", str(out), "--constrained", "--iterations", "1"]
    argv += [
        *size,
        "--epochs",
        "1",
        "--minibatch-size",
        "8",
        "--n-eval",
        "2",
        "--max-new-tokens",
        "128",
        "--no-progress",
    ]
    assert main(argv) == 0, capsys.readouterr().err
    (update,) = [row for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "reward" in row]
    assert update["invalid_action_rate"] == 0.0 and update["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert update["clip_fraction"] == 0.0
    if algorithm == "ppo":
        assert update["kl"] == pytest.approx(0.0, abs=1e-4), "the policy starts as its reference"
    for step in (0, 1):
        report = json.loads((out / "eval" / f"update-00000{step}.json").read_text())
        assert report["sampling"]["constrained"] is True and report["episodes"]["invalid_action_rate"]["k"] == 0
    assert json.loads((out / "config.json").read_text())["constrained"] is True


def test_sft_evaluates_its_final_model_under_the_constraint(model_dir, tmp_path, capsys):
    out = tmp_path / "sft"
    argv = ["sft", "--model", str(model_dir), "--out-dir", str(out), "--n-demos", "8", "--max-steps", "1"]
    assert main([*argv, "--n-eval", "3", "--constrained", "--no-progress"]) == 0, capsys.readouterr().err
    report = json.loads((out / "eval.json").read_text())
    assert report["sampling"]["constrained"] is True and report["seeds"] == [0, 2]
    assert report["episodes"]["invalid_action_rate"]["k"] == 0
    summary = json.loads((out / "report.json").read_text())["evaluation"]
    assert summary["constrained"] is True and summary["invalid_action_rate"] == 0.0
    assert "held-out evaluation (greedy, constrained" in (out / "report.md").read_text()


def test_sft_refuses_a_constraint_with_nothing_to_evaluate(tmp_path, capsys):
    assert main(["sft", "--out-dir", str(tmp_path / "sft"), "--constrained"]) == 2
    error = capsys.readouterr().err
    assert "constrained applies to the evaluation: give n_eval too" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "sft").exists()


def test_a_constrained_run_whose_actions_cannot_hold_a_tool_call_is_refused(model_dir, tmp_path, capsys):
    """At 64 tokens the thought's share, the calculator's tags and its shortest arguments leave no room."""
    out = tmp_path / "ppo"
    argv = ["ppo", "--model", str(model_dir), "--out-dir", str(out), "--constrained", "--max-new-tokens", "64"]
    assert main([*argv, "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "cannot hold a call to calculator" in error and "raise max_new_tokens" in error
    assert len(error.strip().splitlines()) == 1 and not out.exists()
