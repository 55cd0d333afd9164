"""`agentic.training.shared_prefix`: running a batch's shared beginning once changes the compute, not the training."""

from __future__ import annotations

import pytest
import torch
from sliding_window import sliding_window_policy
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentic.rollout import oracle_trajectories
from agentic.training.sft import demo_dataset, sft_trainer
from agentic.training.sft_config import SFTOptions
from agentic.training.shared_prefix import SharedPrefixSFTTrainer, shared_prefix_length

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_shared_prefix_stops_before_rows_differ_before_padding_and_before_the_first_label():
    ids = torch.tensor([[5, 6, 7, 8, 9, 1], [5, 6, 7, 3, 9, 1]])
    mask = torch.ones_like(ids)
    no_labels = torch.full_like(ids, -100)
    assert shared_prefix_length(ids, mask, no_labels) == 3  # rows differ at position 3
    labels = no_labels.clone()
    labels[0, 3] = 9  # the output at position 2 predicts it: position 2 must run per row
    assert shared_prefix_length(ids, mask, labels) == 2
    mask[1, 2:] = 0  # a row of two tokens, then padding
    assert shared_prefix_length(ids, mask, no_labels) == 2
    assert shared_prefix_length(ids[:1], torch.ones_like(ids[:1]), no_labels[:1]) == 5  # one token left to run


def one_step_gradients(model_dir, tmp_path, share_prefix: bool, lora_rank: int = 0, **config):
    """The loss, the gradient of every trained parameter and the trainer after one SFT batch of eight Arithmetic
    demonstrations, from the weights in ``model_dir`` (``config`` goes to `SFTConfig`)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    demos = oracle_trajectories("Arithmetic", range(10_000, 10_008), tokenizer)
    options = SFTOptions(
        model=str(model_dir), out_dir=str(tmp_path), batch_size=8, max_steps=1, progress=False,
        share_prefix=share_prefix, lora_rank=lora_rank,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    trainer = sft_trainer(
        model, tokenizer, demo_dataset(demos), options, train_sampling_strategy="sequential", **config
    )
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    items = (batch["labels"][:, 1:] != -100).sum()
    loss = trainer.compute_loss(trainer.model, batch, num_items_in_batch=items)
    loss.backward()
    gradients = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return loss.item(), gradients, trainer


@pytest.mark.parametrize("lora_rank", [0, 4], ids=["full", "lora"])
@pytest.mark.parametrize("model", ["tiny_neox", "chat_llama"])
def test_a_step_with_the_prefix_run_once_has_the_plain_steps_loss_and_gradients(
    model, lora_rank, small_arithmetic_model, chat_model_dir, tmp_path
):
    model_dir = {"tiny_neox": small_arithmetic_model, "chat_llama": chat_model_dir}[model]
    loss, gradients, plain = one_step_gradients(model_dir, tmp_path / "plain", share_prefix=False, lora_rank=lora_rank)
    shared_loss, shared_gradients, shared = one_step_gradients(model_dir, tmp_path / "shared", True, lora_rank)
    assert not isinstance(plain, SharedPrefixSFTTrainer)
    assert shared.shared_tokens > 7 * 30, "the instructions and tool manual ran once for the batch"
    assert shared_loss == pytest.approx(loss, rel=1e-5)
    assert gradients.keys() == shared_gradients.keys()
    for name, gradient in gradients.items():
        torch.testing.assert_close(shared_gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in gradients.values())
    assert plain._metrics["train"]["mean_token_accuracy"] == pytest.approx(
        shared._metrics["train"]["mean_token_accuracy"]
    )


def test_a_model_with_sliding_window_layers_gets_the_plain_steps_gradients_too(small_arithmetic_model, tmp_path):
    """Its sliding layer caches only the last 16 tokens of the prefix: the ones the rest of each row attends to."""
    policy = sliding_window_policy(AutoTokenizer.from_pretrained(small_arithmetic_model))
    policy.model.save_pretrained(tmp_path / "model")
    policy.tokenizer.save_pretrained(tmp_path / "model")
    loss, gradients, _ = one_step_gradients(tmp_path / "model", tmp_path / "plain", share_prefix=False)
    shared_loss, shared_gradients, shared = one_step_gradients(tmp_path / "model", tmp_path / "shared", True)
    assert shared.sharing and shared.shared_tokens > 7 * 30
    assert shared_loss == pytest.approx(loss, rel=1e-5)
    for name, gradient in gradients.items():
        torch.testing.assert_close(shared_gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)


def test_under_gradient_checkpointing_every_row_runs_whole(small_arithmetic_model, tmp_path):
    """Checkpointing recomputes each layer without a cache, so the prefix is not shared, and the step is the plain one."""
    loss, _, _ = one_step_gradients(small_arithmetic_model, tmp_path / "plain", False, activation_checkpointing=True)
    shared_loss, _, shared = one_step_gradients(
        small_arithmetic_model, tmp_path / "shared", True, activation_checkpointing=True
    )
    assert not shared.sharing and shared.shared_tokens == 0
    assert shared_loss == pytest.approx(loss, rel=1e-6)
