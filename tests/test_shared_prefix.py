"""`agentic.training.shared_prefix`: running a batch's shared beginning once changes the compute, not the training,
in SFT and in the RL update."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from forward_calls import input_shapes
from peft import LoraConfig, get_peft_model
from sliding_window import sliding_window_policy
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentic.cli import main
from agentic.policy import Policy
from agentic.rollout import oracle_trajectories, rollout
from agentic.sampling import Sampling
from agentic.training.ppo import collate
from agentic.training.ppo.forward import update_prefix_length
from agentic.training.rl import ALGORITHMS
from agentic.training.rl_config import GRPOOptions, PPOOptions
from agentic.training.sft import demo_dataset, sft_trainer
from agentic.training.sft_config import SFTOptions
from agentic.training.shared_prefix import SharedPrefixSFTTrainer, shared_prefix_length
from agentic.trajectory import Trajectory, TurnRecord

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


def trajectory(prompt: list[int], turns: list[tuple[list[int], list[int]]]) -> Trajectory:
    """An episode of ``prompt`` then (agent tokens, environment tokens) per turn, every agent token at log-prob -1."""
    ids, mask, records = list(prompt), [0] * len(prompt), []
    for agent, environment in turns:
        records.append(TurnRecord(len(ids), len(ids) + len(agent), "a", "tool", "tool", 0.0, ""))
        ids += agent + environment
        mask += [1] * len(agent) + [0] * len(environment)
    logprobs = [-1.0 if bit else math.nan for bit in mask]
    return Trajectory("Toy", 0, {}, "p", ids, mask, logprobs, records, terminated=True)


def test_the_update_shares_no_agent_token_nor_the_token_before_one_nor_a_decision_point():
    common = list(range(10, 40))
    episodes = [trajectory(common + [50, 51], [([60, 61], [70])]), trajectory(common + [52], [([62], [])])]
    assert update_prefix_length(collate(episodes, pad_id=0)) == 30, "the rows differ from position 30"
    early = [trajectory(common[:20], [(common[20:], [])]), trajectory(common, [([63], [])])]
    assert update_prefix_length(collate(early, pad_id=0)) == 19, "position 19 predicts the agent token at 20"
    empty_turn = [trajectory(common[:20], [([], common[20:])]), trajectory(common, [([63], [])])]
    assert update_prefix_length(collate(empty_turn, pad_id=0)) == 19, (
        "a turn that wrote nothing still has its decision point (19), whose output the critic reads"
    )
    assert update_prefix_length(collate(episodes[:1], pad_id=0)) == 0, "a single episode has nothing to share"


def rl_step(model, batch, options, lora: bool) -> tuple[float, dict, dict, dict[str, torch.Tensor], list]:
    """One update's scoring and one minibatch's loss and backward pass from a fresh copy of ``model`` (with fresh LoRA
    adapters, against the base model, when ``lora``): the loss, the loss's and the scoring's diagnostics, every
    gradient (the critic's included), and the shapes of the ids the policy was given."""
    policy = copy.deepcopy(model).eval()
    if lora:
        torch.manual_seed(2)
        policy = get_peft_model(policy, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    torch.manual_seed(1)  # the same fresh critic on both sides
    algorithm = ALGORITHMS[type(options)](options, policy, None if lora else copy.deepcopy(model).eval())
    shapes = input_shapes(policy)
    targets = algorithm.advantages(policy, batch)
    loss, stats = algorithm.loss(policy, batch, targets)
    loss.backward()
    critic = getattr(algorithm, "value_head", torch.nn.Module())
    trained = [*policy.named_parameters(), *(("critic." + n, p) for n, p in critic.named_parameters())]
    gradients = {name: p.grad.clone() for name, p in trained if p.requires_grad}
    return loss.item(), stats, targets.stats, gradients, list(shapes)


@pytest.mark.parametrize(
    ("model", "algorithm", "lora"),
    [
        ("tiny_neox", "ppo", False),
        ("tiny_neox", "grpo", False),
        ("chat_llama", "ppo", False),
        ("chat_llama", "grpo", True),
    ],
    ids=["neox-ppo", "neox-grpo", "llama-chat-ppo", "llama-chat-grpo-lora"],
)
def test_an_rl_update_with_the_prefix_run_once_has_the_plain_updates_loss_and_gradients(
    model, algorithm, lora, small_arithmetic_model, chat_model_dir
):
    """Multi-turn MissingQuantity episodes (ask, call, finish): the reference's log-probs and the critic's values
    (scoring, no gradients) and the minibatch loss (with gradients) each run the instructions and tool manual once."""
    policy = Policy.from_pretrained({"tiny_neox": small_arithmetic_model, "chat_llama": chat_model_dir}[model])
    episodes = rollout(policy, "MissingQuantity", [0, 0, 1, 1, 2, 2], Sampling(max_new_tokens=12, seed=3))
    batch = collate(episodes, policy.pad_id)
    assert batch.turn_mask.sum(1).max() > 1, "episodes of several turns"
    extra = {"kl_coef": 0.1, "entropy_coef": 0.01}  # gradients even where every return of a group is equal
    options_class = {"ppo": PPOOptions, "grpo": GRPOOptions}[algorithm]
    steps = {
        share: rl_step(policy.model, batch, options_class(model="m", share_prefix=share, **extra), lora)
        for share in (False, True)
    }
    (loss, stats, scored, gradients, whole_shapes), (s_loss, s_stats, s_scored, s_gradients, shapes) = (
        steps[False],
        steps[True],
    )
    n_shared = update_prefix_length(batch)
    assert n_shared > 30 and all(shape[0] == len(batch) for shape in whole_shapes)
    assert (1, n_shared) in shapes and (len(batch), batch.input_ids.shape[1] - n_shared) in shapes, (
        "the prefix ran once, the rest of every episode against its cache"
    )
    assert s_loss == pytest.approx(loss, rel=1e-5, abs=1e-7)
    for name in {**stats, **scored}:
        assert {**s_stats, **s_scored}[name] == pytest.approx({**stats, **scored}[name], rel=1e-4, abs=1e-6), name
    assert gradients.keys() == s_gradients.keys() and any(g.abs().sum() > 0 for g in gradients.values())
    for name, gradient in gradients.items():
        torch.testing.assert_close(s_gradients[name], gradient, rtol=1e-4, atol=1e-6, msg=name)


def test_bench_rl_update_times_both_sides_on_the_same_episodes(small_arithmetic_model, capsys):
    args = ["bench", "rl-update", "--model", small_arithmetic_model, "--episodes", "1", "--repeats", "1", "--json"]
    assert main([*args, "--max-new-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    assert "every episode run whole" in printed and "shared prefix run once per pass" in printed
    result = json.loads(printed[printed.index("{") :])
    assert result["episodes"] == 32 and result["updates"] == 1
    assert result["speedup"] == pytest.approx(result["whole_seconds"] / result["shared_seconds"])
    assert result["max_weight_difference"] < 1e-5, "the same training on both sides"
