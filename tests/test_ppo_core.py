"""Turn-level PPO: hand-checked mathematics, masks that keep gradients on agent tokens, a critic that learns,
the KL to the reference, the NaN guard, and a short run on a toy task that raises the reward."""

import copy
import math
from collections import Counter

import pytest
import torch
from forward_calls import input_shapes
from peft import LoraConfig, get_peft_model
from toy_yes_no import YesOrNo, warmed_up_policy

from agentic.policy import Policy
from agentic.rollout import oracle_trajectories, rollout
from agentic.run_dir import read_jsonl
from agentic.sampling import Sampling
from agentic.training.ppo import (
    PPO,
    KLController,
    TurnBatch,
    ValueHead,
    collate,
    make_optimizer,
    separate_critic,
    shared_value_head,
)
from agentic.training.ppo.core import (
    broadcast_to_tokens,
    clipped_policy_loss,
    clipped_value_loss,
    kl_penalized_rewards,
    masked_mean,
    token_logprobs,
    turn_gae,
)
from agentic.training.ppo.forward import forward_in_chunks, policy_forward
from agentic.training.rl import TrainingState, optimize, run_rl
from agentic.training.rl_config import PPOOptions
from agentic.trajectory import Trajectory, TurnRecord

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def policy():
    torch.manual_seed(0)  # value heads start from the global random state
    return warmed_up_policy()


def two_turn_trajectory(logprob: float = -1.0) -> Trajectory:
    """prompt (3 tokens) | agent (2) | environment (2) | agent (3) | environment (1): rewards -0.1 then 1."""
    ids = [5, 6, 7, 20, 21, 8, 9, 22, 23, 24, 10]
    mask = [0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0]
    turns = [TurnRecord(3, 5, "a", "tool", "tool", -0.1, "r"), TurnRecord(7, 10, "b", "finish", "finish", 1.0, "")]
    logprobs = [logprob if bit else math.nan for bit in mask]
    return Trajectory("Toy", 0, {}, "p", ids, mask, logprobs, turns, terminated=True, success=True, score=1.0)


def one_turn_trajectory() -> Trajectory:
    ids, mask = [5, 6, 20, 21], [0, 0, 1, 1]
    turns = [TurnRecord(2, 4, "a", "finish", "finish", 0.0, "")]
    return Trajectory("Toy", 1, {}, "p", ids, mask, [math.nan, math.nan, -0.5, -0.25], turns, terminated=True)


def sampled_batch(policy: Policy, seeds: range, sampling_seed: int = 0) -> TurnBatch:
    return collate(rollout(policy, YesOrNo(), seeds, Sampling(seed=sampling_seed)), policy.pad_id)


def ppo_state(model, reference, **options) -> TrainingState:
    """PPO on ``model`` with a fresh critic and an AdamW over both, as `agentic.training.rl.run_rl` sets them up."""
    options = PPOOptions(**{"model": "toy", "learning_rate": 1e-2, "value_learning_rate": 1e-2} | options)
    algorithm = PPO(options, model, reference)
    return TrainingState(model, algorithm, algorithm.optimizer(model, options.learning_rate), options)


def ppo_update(state: TrainingState, batch: TurnBatch, seed: int = 0) -> dict[str, float]:
    """One update as the training loop makes it: advantages, then the minibatch loss steps."""
    targets = state.algorithm.advantages(state.model, batch)
    return targets.stats | optimize(state.model, state, batch, targets, seed)


def test_collate_pads_right_and_indexes_turns_and_decision_points():
    batch = collate([two_turn_trajectory(), one_turn_trajectory()], pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 20, 21, 8, 9, 22, 23, 24, 10], [5, 6, 20, 21] + [0] * 7]
    assert batch.attention_mask[1].tolist() == [1] * 4 + [0] * 7
    assert batch.turn_index.tolist() == [
        [-1, -1, -1, 0, 0, -1, -1, 1, 1, 1, -1],
        [-1, -1, 0, 0] + [-1] * 7,
    ]
    assert torch.equal(batch.agent_mask, batch.turn_index >= 0)
    assert batch.old_logprobs[1].tolist() == [0, 0, -0.5, -0.25] + [0] * 7
    assert batch.decision_positions.tolist() == [[2, 6], [1, 0]]
    assert batch.turn_rewards.tolist() == [pytest.approx([-0.1, 1.0]), [0.0, 0.0]]
    assert batch.turn_mask.tolist() == [[True, True], [True, False]]


def test_collate_refuses_trajectories_without_sampling_logprobs(policy):
    demos = oracle_trajectories(YesOrNo(), [0], policy.tokenizer)
    with pytest.raises(ValueError, match="without sampling log-probs"):
        collate(demos, policy.pad_id)


def test_gae_over_turns_matches_a_hand_computed_example():
    rewards = torch.tensor([[0.0, -0.1, 1.0], [0.5, 1.0, 5.0]])
    values = torch.tensor([[0.5, 0.2, 0.8], [0.3, 0.6, 7.0]])
    turn_mask = torch.tensor([[True, True, True], [True, True, False]])  # the second trajectory has two turns
    advantages, returns = turn_gae(rewards, values, turn_mask, gamma=0.9, lam=0.8)
    # row 0: delta = (0 + .9*.2 - .5, -.1 + .9*.8 - .2, 1 - .8) = (-.32, .42, .2); A_t = delta_t + .72 A_{t+1}
    # row 1: delta = (.5 + .9*.6 - .3, 1 - .6) = (.74, .4); the padded third turn is ignored
    assert advantages.tolist() == [pytest.approx([0.08608, 0.564, 0.2]), pytest.approx([1.028, 0.4, 0.0])]
    assert returns.tolist() == [pytest.approx([0.58608, 0.764, 1.0]), pytest.approx([1.328, 1.0, 0.0])]


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.9, 0.0), (0.5, 1.0)])
def test_a_single_turn_episode_reduces_to_standard_ppo(gamma, lam):
    batch = collate([one_turn_trajectory()], pad_id=0)
    reward, value = torch.tensor([[0.7]]), torch.tensor([[0.25]])
    advantages, returns = turn_gae(reward, value, batch.turn_mask, gamma, lam)
    assert advantages.item() == pytest.approx(0.7 - 0.25) and returns.item() == pytest.approx(0.7)
    token_advantages = broadcast_to_tokens(advantages, batch.turn_index)
    assert token_advantages[0].tolist() == pytest.approx([0.0, 0.0, 0.45, 0.45])
    logprobs = torch.tensor([[0.0, 0.0, -0.4, -0.5]])
    loss, _ = clipped_policy_loss(logprobs, batch.old_logprobs, token_advantages, batch.agent_mask, clip_range=0.2)
    ratios = torch.tensor([-0.4 + 0.5, -0.5 + 0.25]).exp()
    expected = torch.maximum(-0.45 * ratios, -0.45 * ratios.clamp(0.8, 1.2)).mean()
    assert loss.item() == pytest.approx(expected.item())


def test_kl_penalty_charges_each_turn_the_sum_of_its_token_kls():
    batch = collate([two_turn_trajectory()], pad_id=0)
    token_kl = torch.arange(11, dtype=torch.float32)[None]  # nonzero everywhere, but only agent tokens count
    rewards = kl_penalized_rewards(batch.turn_rewards, token_kl, batch.turn_index, kl_coef=0.1)
    assert rewards[0].tolist() == pytest.approx([-0.1 - 0.1 * (3 + 4), 1.0 - 0.1 * (7 + 8 + 9)])


def test_clipped_value_loss_keeps_the_new_value_near_the_old_one():
    old, target, mask = torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([True])
    assert clipped_value_loss(torch.tensor([0.5]), old, target, mask, 0.2).item() == pytest.approx(0.5 * 0.8**2)
    assert clipped_value_loss(torch.tensor([0.5]), old, target, mask, 0.0).item() == pytest.approx(0.5 * 0.5**2)


def test_prompt_and_environment_tokens_get_no_gradient(policy):
    """The policy loss reaches only the logits that predict agent tokens; the value loss only the hidden states at decision points."""
    batch = collate([two_turn_trajectory(), one_turn_trajectory()], pad_id=policy.pad_id)
    output = policy.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    logits = output.logits
    logits.retain_grad()
    logprobs, entropy = token_logprobs(logits, batch.input_ids)
    advantages = torch.randn(batch.input_ids.shape, generator=torch.Generator().manual_seed(0))
    policy_loss, _ = clipped_policy_loss(logprobs, batch.old_logprobs, advantages, batch.agent_mask, 0.2)
    (policy_loss - 0.01 * masked_mean(entropy, batch.agent_mask)).backward()
    predicts_agent_token = torch.zeros_like(batch.agent_mask)
    predicts_agent_token[:, :-1] = batch.agent_mask[:, 1:]
    assert torch.equal(logits.grad.abs().sum(-1) > 0, predicts_agent_token)

    hidden = output.hidden_states[-1].detach().requires_grad_()
    values = shared_value_head(policy.model)(batch.input_ids, batch.attention_mask, hidden).gather(
        1, batch.decision_positions
    )
    clipped_value_loss(values, values.detach(), torch.ones_like(values), batch.turn_mask, 0.2).backward()
    at_decision_points = torch.zeros_like(batch.agent_mask)
    for row, turn in batch.turn_mask.nonzero().tolist():
        at_decision_points[row, batch.decision_positions[row, turn]] = True
    assert torch.equal(hidden.grad.abs().sum(-1) > 0, at_decision_points)


@pytest.mark.parametrize("placement", ["shared", "separate"])
def test_the_value_head_fits_distinct_returns_for_distinct_contexts(policy, placement):
    contexts = ["Answer yes.", "Answer no.", "Say maybe", "yes or no or maybe?"]
    targets = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    ids = [policy.encode(text) for text in contexts]
    width = max(map(len, ids))
    input_ids = torch.tensor([row + [policy.pad_id] * (width - len(row)) for row in ids])
    attention_mask = (torch.arange(width)[None] < torch.tensor([len(row) for row in ids])[:, None]).long()
    last = torch.tensor([len(row) - 1 for row in ids])[:, None]
    head = shared_value_head(policy.model) if placement == "shared" else separate_critic(policy.model)
    optimizer = make_optimizer(policy.model, head, lr=1e-3, value_lr=1e-2)

    def values() -> torch.Tensor:
        hidden = None
        if head.shared:
            hidden = policy.model(
                input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
            ).hidden_states[-1]
        return head(input_ids, attention_mask, hidden).gather(1, last).squeeze(1)

    assert values().abs().max() < 0.2, "a small initial head: early values near 0"
    for _ in range(150):
        loss = ((values() - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert values().tolist() == pytest.approx(targets.tolist(), abs=0.05)


def test_a_shared_head_needs_the_policy_hidden_state():
    with pytest.raises(ValueError, match="policy_hidden"):
        ValueHead(8)(torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2))


def test_the_kl_controller_is_fixed_or_moves_beta_toward_its_target():
    fixed = KLController(0.1)
    fixed.update(kl=50.0, n_samples=64)
    assert fixed.coef == 0.1
    adaptive = KLController(0.1, target=1.0, horizon=100)
    adaptive.update(kl=3.0, n_samples=10)  # error clipped to +0.2
    assert adaptive.coef == pytest.approx(0.1 * 1.02)
    adaptive.update(kl=0.9, n_samples=10)
    assert adaptive.coef == pytest.approx(0.1 * 1.02 * 0.99)
    restored = KLController(0.1, target=1.0, horizon=100)
    restored.load_state_dict(adaptive.state_dict())
    assert restored.coef == adaptive.coef


def lora_policy(policy: Policy) -> Policy:
    return Policy(get_peft_model(policy.model, LoraConfig(r=2, target_modules=["query_key_value"])), policy.tokenizer)


@pytest.mark.parametrize("reference_kind", ["copy", "lora base"])
def test_kl_is_zero_at_the_first_update_when_the_policy_is_the_reference(policy, reference_kind):
    if reference_kind == "lora base":
        policy, reference = lora_policy(policy), None  # LoRA's B starts at 0: the adapted model is the base model
    else:
        reference = copy.deepcopy(policy.model)
    state = ppo_state(policy.model, reference, epochs=1, minibatch_size=16, kl_coef=0.1)
    first = ppo_update(state, sampled_batch(policy, range(16)))
    assert first["kl"] == pytest.approx(0.0, abs=1e-4) and first["kl_k3"] == pytest.approx(0.0, abs=1e-4)
    assert first["approx_kl"] == pytest.approx(0.0, abs=1e-6) and first["clip_fraction"] == 0.0, (
        "the ratio is 1 at first"
    )
    state.options = PPOOptions(model="toy", minibatch_size=4)
    for seeds in (range(16, 32), range(32, 48)):
        later = ppo_update(state, sampled_batch(policy, seeds))
    assert later["kl_k3"] > 1e-3, "the reference stays frozen while the policy moves"


@pytest.mark.parametrize("temperature", [0.5, 1.5])
def test_rollouts_at_a_temperature_are_trained_at_it_the_first_ratio_one(policy, temperature, tmp_path):
    """The update retakes the log-probs of the distribution the actions were drawn from, ``logits / temperature``:
    the first minibatch step's ratio is 1 and the KL to a reference equal to the policy 0, as at temperature 1."""
    sampled = rollout(policy, YesOrNo(), range(16), Sampling(temperature=temperature, seed=3))
    batch = collate(sampled, policy.pad_id, temperature=temperature)
    with torch.no_grad():
        tempered = policy_forward(policy.model, batch).logprobs[batch.agent_mask]
        plain = policy_forward(policy.model, collate(sampled, policy.pad_id)).logprobs[batch.agent_mask]
    recorded = batch.old_logprobs[batch.agent_mask]
    assert torch.allclose(tempered, recorded, atol=1e-4)
    assert not torch.allclose(plain, recorded, atol=1e-3), "at temperature 1 the ratio would not start at 1"

    options = PPOOptions(
        model="toy", task="YesOrNo", out_dir=str(tmp_path), iterations=1, episodes=16, epochs=1, minibatch_size=16,
        temperature=temperature, kl_coef=0.1, n_eval=2, eval_every=0, checkpoint_every=0, progress=False,
    )  # fmt: skip
    result = run_rl(options, YesOrNo(), model=policy.model, tokenizer=policy.tokenizer)
    metrics = next(row for row in read_jsonl(result.run_dir / "metrics.jsonl") if "approx_kl" in row)
    assert metrics["approx_kl"] == pytest.approx(0.0, abs=1e-6) and metrics["clip_fraction"] == 0.0
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-4)


def test_an_injected_nan_rolls_the_update_back_and_repeated_ones_stop_training(policy):
    model = policy.model
    state = ppo_state(model, copy.deepcopy(model), epochs=1, minibatch_size=8, max_failures=2)
    head = state.algorithm.value_head
    batch = sampled_batch(policy, range(16))
    assert not ppo_update(state, batch)["skipped"]
    good_weights = [p.detach().clone() for p in [*model.parameters(), *head.parameters()]]
    good_moments = [s["exp_avg"].clone() for s in state.optimizer.state.values()]

    calls = {"n": 0, "poison_from": 3}  # 1: scoring the batch, 2: first minibatch (a real step), 3: second minibatch

    def poison(module, args, output):
        calls["n"] += 1
        if calls["n"] >= calls["poison_from"]:
            output.logits = output.logits + math.nan
        return output

    model.register_forward_hook(poison)
    assert ppo_update(state, batch)["skipped"] == 1.0
    assert state.guard.failures == 1 and not state.guard.stop_reason
    for weight, saved in zip([*model.parameters(), *head.parameters()], good_weights):
        assert torch.equal(weight, saved), "the step taken before the NaN is undone"
    for moments, saved in zip(state.optimizer.state.values(), good_moments):
        assert torch.equal(moments["exp_avg"], saved)

    assert ppo_update(state, batch)["skipped"] == 1.0
    assert state.guard.stop_reason.startswith("diverged: 2 consecutive updates were non-finite (last: loss nan")
    assert all(torch.equal(w, s) for w, s in zip([*model.parameters(), *head.parameters()], good_weights))


def test_micro_batches_accumulate_exactly_the_gradient_of_the_whole_minibatch(policy):
    """An update made one episode per forward/backward pass equals the update made in one pass: same diagnostics, same
    weights after each step. Episodes of different lengths make it a real check: a micro-batch that averaged over its
    own tokens and turns would weigh a short episode's tokens as much as a long one's. And each pass is as wide as its
    own episode, not the batch's longest: padding costs time and adds nothing."""
    sampled = rollout(policy, YesOrNo(), range(4), Sampling(seed=0))
    handmade = [two_turn_trajectory(), one_turn_trajectory(), two_turn_trajectory(-0.5), one_turn_trajectory()]
    batch = collate([*sampled, *handmade], policy.pad_id)
    assert len(set(batch.agent_mask.sum(1).tolist())) > 1 and len(set(batch.turn_mask.sum(1).tolist())) > 1
    updates = []
    for micro_batch_size in (0, 1):
        torch.manual_seed(1)  # the same fresh critic both times
        model = copy.deepcopy(policy.model)
        state = ppo_state(model, copy.deepcopy(model), epochs=2, minibatch_size=4, micro_batch_size=micro_batch_size)
        shapes = input_shapes(model)
        stats = ppo_update(state, batch)
        updates.append((stats, [*model.parameters(), *state.algorithm.value_head.parameters()]))
    (whole, whole_weights), (micro, micro_weights) = updates
    lengths, passes = Counter(batch.attention_mask.sum(1).tolist()), len(shapes) // len(batch)
    assert Counter(shape[1] for shape in shapes) == {n: passes * k for n, k in lengths.items()}, (
        "one episode a pass, cut to its own length"
    )
    assert micro.keys() == whole.keys()
    assert all(micro[name] == pytest.approx(whole[name], rel=1e-4, abs=1e-6) for name in whole), (micro, whole)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole_weights, micro_weights))
    assert not all(torch.equal(a, b) for a, b in zip(whole_weights, [*policy.model.parameters()])), "a step was taken"


def test_micro_batches_are_cut_from_the_minibatch_sorted_by_length(policy):
    """Two long and two short episodes in micro-batches of two: one pass over the short pair, one over the long pair,
    each only as wide as its own episodes, whatever order the minibatch drew them in."""
    handmade = [two_turn_trajectory(), one_turn_trajectory(), two_turn_trajectory(-0.5), one_turn_trajectory()]
    batch = collate(handmade, policy.pad_id)
    model = copy.deepcopy(policy.model)
    state = ppo_state(model, copy.deepcopy(model), epochs=3, minibatch_size=4, micro_batch_size=2)
    targets = state.algorithm.advantages(model, batch)
    shapes = input_shapes(model)
    optimize(model, state, batch, targets, seed=0)
    assert sorted(tuple(shape) for shape in shapes) == [(2, 4)] * 3 + [(2, 11)] * 3


def test_scoring_in_chunks_gives_each_row_what_one_pass_gives_it(policy):
    """Chunks taken in order of length and cut to their longest row: every row's log-probs, entropies and values come
    back in the batch's order, equal to one pass over the whole padded batch (0 past a row's end)."""
    batch = collate([two_turn_trajectory(), one_turn_trajectory(), two_turn_trajectory(-0.5)], policy.pad_id)
    head = shared_value_head(policy.model)
    whole = policy_forward(policy.model, batch, head)
    with torch.no_grad():
        chunked = forward_in_chunks(policy.model, batch, 1, head)
    real = batch.attention_mask.bool()
    assert torch.allclose(chunked.logprobs[real], whole.logprobs[real], atol=1e-5)
    assert torch.allclose(chunked.entropy[real], whole.entropy[real], atol=1e-5)
    assert torch.allclose(chunked.values, whole.values, atol=1e-5)
    assert not chunked.logprobs[~real].any()


def mean_reward(policy: Policy, seeds: range) -> float:
    trajectories = rollout(policy, YesOrNo(), seeds, Sampling(seed=seeds.start))
    return sum(t.score for t in trajectories) / len(trajectories)


@pytest.mark.parametrize("placement", ["shared", "separate"])
def test_a_short_ppo_run_raises_the_mean_reward_on_a_toy_task(policy, placement):
    before = mean_reward(policy, range(1000, 1128))
    state = ppo_state(
        policy.model,
        copy.deepcopy(policy.model),
        critic=placement,
        learning_rate=3e-3,
        kl_coef=0.01,
        kl_target=2.0,
        epochs=2,
        minibatch_size=16,
    )
    for iteration in range(8):
        batch = sampled_batch(policy, range(32 * iteration, 32 * (iteration + 1)), sampling_seed=iteration)
        metrics = ppo_update(state, batch, seed=iteration)
        assert not metrics["skipped"] and math.isfinite(metrics["loss"])
    after = mean_reward(policy, range(1000, 1128))
    assert before < 0.5 and after > 0.85, (before, after)


def test_options_reject_bad_values():
    with pytest.raises(ValueError, match="clip_range must be positive"):
        PPOOptions(model="m", clip_range=0.0)
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        PPOOptions(model="m", lam=1.5)
