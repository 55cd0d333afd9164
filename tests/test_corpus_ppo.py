"""The corpus pipeline's PPO stage: one-turn episodes scored by a reward model, updated by the shared PPO core."""

import json
import math
from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXForCausalLM, GPTNeoXForSequenceClassification

from agentic.training.corpus import PPOJob, PpoSettings, RewardNormalizer, RewardScorer, train_ppo
from agentic.training.corpus import ppo as corpus_ppo_module
from agentic.training.ppo import PPOConfig, TrainingDiverged
from agentic.training.tiny_model import tiny_config, train_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = [
    "Once upon a time, a little cat sat in the sun.",
    "Tom had a red ball.",
    "The sky was blue and",
    "Mia and her dog ran to the park.",
] * 3
QUICK = PpoSettings(iterations=2, prompts_per_update=6, max_new_tokens=6, update=PPOConfig(epochs=1, minibatch_size=3))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny SFT policy and a tiny one-label reward model, saved as the pipeline saves them."""
    root = tmp_path_factory.mktemp("models")
    tokenizer = train_tokenizer(PROMPTS + ["The end. They were happy and played all day."], vocab_size=300)
    torch.manual_seed(0)
    config = tiny_config(tokenizer, hidden_size=32, num_hidden_layers=1, intermediate_size=64)
    GPTNeoXForCausalLM(config).save_pretrained(root / "sft")
    tokenizer.save_pretrained(root / "sft")
    config.num_labels = 1
    GPTNeoXForSequenceClassification(config).save_pretrained(root / "rm")
    tokenizer.save_pretrained(root / "rm")
    return root


def job(models, out_dir, seed=0):
    return PPOJob(policy=models / "sft", reward_model=str(models / "rm"), prompts=PROMPTS, out_dir=out_dir, seed=seed)


def read_metrics(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("lora_rank", [0, 2])
def test_a_ppo_stage_runs_the_shared_core_and_saves_a_loadable_policy(models, tmp_path, monkeypatch, lora_rank):
    batches = []
    original = corpus_ppo_module.ppo_update

    def recording_update(model, value_head, optimizer, batch, *args, **kwargs):
        batches.append(batch)
        return original(model, value_head, optimizer, batch, *args, **kwargs)

    monkeypatch.setattr(corpus_ppo_module, "ppo_update", recording_update)
    summary = train_ppo(job(models, tmp_path), replace(QUICK, lora_rank=lora_rank))

    assert len(batches) == 2 and summary["iterations"] == 2
    first = batches[0]
    assert first.turn_mask.shape == (6, 1) and first.turn_mask.all(), "one turn per episode"
    lengths = first.attention_mask.sum(1)
    for row in range(6):
        agent = first.agent_mask[row].nonzero().squeeze(1)
        start = int(first.decision_positions[row, 0]) + 1
        assert agent.tolist() == list(range(start, int(lengths[row]))) and 1 <= len(agent) <= 6, (
            "the completion ends the episode"
        )

    tokenizer = AutoTokenizer.from_pretrained(models / "sft")
    prompts = [
        tokenizer.decode(first.input_ids[row, :start])
        for row, start in enumerate((first.decision_positions[:, 0] + 1).tolist())
    ]
    completions = [
        tokenizer.decode(
            [t for t in first.input_ids[row][first.agent_mask[row]].tolist() if t != tokenizer.eos_token_id],
            skip_special_tokens=True,
        )
        for row in range(6)
    ]
    expected = RewardNormalizer("running", 5.0)(RewardScorer(models / "rm").score(prompts, completions))
    assert first.turn_rewards[:, 0].tolist() == pytest.approx(expected, abs=1e-4), (
        "terminal reward = the normalised reward-model score"
    )

    metrics = read_metrics(tmp_path)
    assert [m["step"] for m in metrics] == [0, 1]
    for name in ("reward_raw_mean", "reward_raw_std", "reward_mean", "kl", "entropy", "clip_fraction", "value_loss"):
        assert all(math.isfinite(m[name]) for m in metrics), name
    assert metrics[0]["kl"] == pytest.approx(0.0, abs=1e-4), "the policy starts as its KL reference"
    assert (tmp_path / "plots" / "training.png").is_file()

    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert not (tmp_path / "model" / "adapter_config.json").exists(), "a LoRA policy is saved merged"
    sft = AutoModelForCausalLM.from_pretrained(models / "sft")
    assert any(not torch.equal(a, b) for a, b in zip(saved.state_dict().values(), sft.state_dict().values())), (
        "PPO moved the weights"
    )
    assert AutoTokenizer.from_pretrained(tmp_path / "model").get_vocab() == tokenizer.get_vocab()


def test_rewards_are_normalised_by_running_or_batch_statistics_then_clipped():
    running = RewardNormalizer("running", clip=5.0)
    assert running([0.0, 2.0]) == pytest.approx([-1.0, 1.0])
    assert running([4.0]) == pytest.approx([2 / math.sqrt(8 / 3)]), "pooled over 0, 2, 4: mean 2, variance 8/3"
    assert RewardNormalizer("batch")([1.0, 2.0, 3.0, 4.0]) == pytest.approx(
        [x / math.sqrt(1.25) for x in (-1.5, -0.5, 0.5, 1.5)]
    )
    outlier = RewardNormalizer("batch", clip=5.0)([0.0] * 99 + [100.0])
    assert outlier[-1] == 5.0 and outlier[0] == pytest.approx(-1 / math.sqrt(99)), "mean 1, variance 99"
    assert RewardNormalizer("none", clip=5.0)([-7.0, 3.0, 6.0]) == [-5.0, 3.0, 5.0]
    with pytest.raises(ValueError, match="finite"):
        running([1.0, math.nan])
    with pytest.raises(ValueError, match="running, batch, none"):
        PpoSettings(reward_normalization="zscore")


class NaNForFirstCompletion:
    """A reward model stub: NaN for the first completion of each batch (``all_nan``: for every one), else its length."""

    all_nan = False

    def __init__(self, name_or_path):
        pass

    def score(self, prompts, completions):
        return [math.nan if i == 0 or self.all_nan else float(len(c)) for i, c in enumerate(completions)]


def test_non_finite_rewards_are_left_out_and_a_batch_of_them_is_refused(models, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_ppo_module, "RewardScorer", NaNForFirstCompletion)
    summary = train_ppo(job(models, tmp_path / "some"), QUICK)
    assert summary["nonfinite_rewards"] == 2
    assert all(m["nonfinite_rewards"] == 1 and math.isfinite(m["loss"]) for m in read_metrics(tmp_path / "some"))

    monkeypatch.setattr(NaNForFirstCompletion, "all_nan", True)
    with pytest.raises(ValueError, match="every completion of update 0 as NaN or Inf"):
        train_ppo(job(models, tmp_path / "all"), QUICK)
    assert not (tmp_path / "all" / "model").exists()


def test_repeated_non_finite_updates_stop_training_with_a_clear_message(models, tmp_path, monkeypatch):
    original = corpus_ppo_module.load_policy

    def poisoned(path, lora_rank):
        """The policy's training forward passes (with gradients) give NaN logits; sampling and scoring stay finite."""
        policy = original(path, lora_rank)

        def hook(module, args, output):
            if torch.is_grad_enabled():
                output.logits = output.logits + math.nan
            return output

        policy.model.register_forward_hook(hook)
        return policy

    monkeypatch.setattr(corpus_ppo_module, "load_policy", poisoned)
    with pytest.raises(TrainingDiverged, match="2 consecutive updates were non-finite"):
        train_ppo(job(models, tmp_path), replace(QUICK, iterations=4, max_failures=2))
    assert "non-finite" in read_metrics(tmp_path)[-1]["stopped"]
    assert not (tmp_path / "model").exists(), "a diverged run saves no policy"
