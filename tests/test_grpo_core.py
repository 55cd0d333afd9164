"""GRPO: group-normalised advantages on a hand example, instances as groups, the paper's KL term, a toy run that learns."""

import copy
from dataclasses import replace

import pytest
import torch
from test_ppo_core import one_turn_trajectory, two_turn_trajectory
from toy_yes_no import YesOrNo, warmed_up_policy

from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.sampling import Sampling
from agentic.training.grpo import GRPO, group_advantages
from agentic.training.grpo.core import K3_CAP
from agentic.training.ppo import collate
from agentic.training.ppo.batch import instance_ids
from agentic.training.rl import TrainingState, optimize
from agentic.training.rl_config import GRPOOptions
from agentic.trajectory import Trajectory

GROUP_SIZE = 4


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def policy():
    return warmed_up_policy()


def test_group_advantages_on_a_hand_example():
    returns = torch.tensor([1.0, 0.5, 2.0, 0.0, 0.5, 0.0, 0.0, 1.0])
    groups = torch.tensor([7, 3, 5, 7, 3, 5, 7, 7])  # any ids, in any order
    # group 7: returns (1, 0, 0, 1), mean 0.5, sample std sqrt(1/3); group 3: all equal; group 5: (2, 0), mean 1, std sqrt(2)
    a, b = 0.5 / (3**-0.5 + 1e-4), 1 / (2**0.5 + 1e-4)
    assert group_advantages(returns, groups).tolist() == pytest.approx([a, 0.0, b, -a, 0.0, -b, -a, a])


def test_groups_are_task_instances_in_order_of_first_appearance():
    def trajectory(task: str, seed: int) -> Trajectory:
        return Trajectory(task, seed, {}, "", [], [], [])

    trajectories = [trajectory("A", 3), trajectory("A", 1), trajectory("A", 3), trajectory("B", 3), trajectory("A", 1)]
    assert instance_ids(trajectories).tolist() == [0, 1, 0, 2, 1]


def test_options_reject_bad_values():
    with pytest.raises(ValueError, match="kl_coef must be >= 0"):
        GRPOOptions(model="m", kl_coef=-1.0)
    with pytest.raises(ValueError, match="minibatch_size must be positive"):
        GRPOOptions(model="m", minibatch_size=0)
    with pytest.raises(ValueError, match="group_size must be at least 2"):
        GRPOOptions(model="m", group_size=1)


def grpo_state(model, reference=None, **options) -> TrainingState:
    options = GRPOOptions(**{"model": "toy", "group_size": GROUP_SIZE} | options)
    algorithm = GRPO(options, model, reference)
    return TrainingState(model, algorithm, algorithm.optimizer(model, options.learning_rate), options)


def grpo_update(state: TrainingState, trajectories: list[Trajectory], seed: int = 0) -> dict[str, float]:
    batch = collate(trajectories, state.model.config.pad_token_id)
    targets = state.algorithm.advantages(state.model, batch)
    return targets.stats | optimize(state.model, state, batch, targets, seed)


def sample_groups(policy: Policy, seeds: range, sampling_seed: int) -> list[Trajectory]:
    """``GROUP_SIZE`` rollouts of each seed, in one batch."""
    return rollout(policy, YesOrNo(), [seed for seed in seeds for _ in range(GROUP_SIZE)], Sampling(seed=sampling_seed))


def test_the_kl_term_is_zero_while_the_policy_is_the_reference(policy):
    trajectories = sample_groups(policy, range(8), 0)
    assert any(len({t.turns[0].action for t in trajectories if t.seed == seed}) > 1 for seed in range(8)), (
        "a group's rollouts differ"
    )
    state = grpo_state(policy.model, copy.deepcopy(policy.model), learning_rate=1e-3, minibatch_size=32, kl_coef=0.1)
    stats = grpo_update(state, trajectories)
    assert stats["kl_per_token"] == pytest.approx(0.0, abs=1e-6) and stats["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < stats["no_signal_fraction"] < 1


def test_a_token_the_policy_has_ruled_out_adds_at_most_the_cap_to_the_kl_term_and_no_gradient(policy):
    """k3 grows as p_ref / p: one sampled token the reference likes e^15 times more than the policy would make the term
    explode (and the step with it). Capped, the token adds `K3_CAP` at most, and raising its reference log-prob
    further changes nothing."""
    trajectories = sample_groups(policy, range(4), 0)
    state = grpo_state(policy.model, copy.deepcopy(policy.model), minibatch_size=16, kl_coef=0.1)
    batch = collate(trajectories, policy.model.config.pad_token_id)
    targets = state.algorithm.advantages(policy.model, batch)
    row, position = batch.agent_mask.nonzero()[0].tolist()

    def loss_and_gradient(raise_by: float) -> tuple[dict[str, float], list[torch.Tensor]]:
        ref = targets.ref_logprobs.clone()
        ref[row, position] = batch.old_logprobs[row, position] + raise_by
        policy.model.zero_grad()
        loss, stats = state.algorithm.loss(policy.model, batch, replace(targets, ref_logprobs=ref))
        loss.backward()
        return stats, [p.grad.clone() for p in policy.model.parameters() if p.grad is not None]

    plain, _ = loss_and_gradient(0.0)
    far, far_gradient = loss_and_gradient(15.0)
    farther, farther_gradient = loss_and_gradient(30.0)
    cap_share = K3_CAP / int(batch.agent_mask.sum())
    assert far["kl_per_token"] == pytest.approx(plain["kl_per_token"] + cap_share, rel=1e-3)
    assert farther["kl_per_token"] == pytest.approx(far["kl_per_token"])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(far_gradient, farther_gradient))


def test_a_short_grpo_run_raises_the_mean_reward_on_a_toy_task(policy):
    def mean_reward() -> float:
        trajectories = rollout(policy, YesOrNo(), range(1000, 1128), Sampling(seed=1000))
        return sum(t.score for t in trajectories) / len(trajectories)

    before = mean_reward()
    state = grpo_state(policy.model, learning_rate=3e-3, epochs=2, minibatch_size=16, kl_coef=0.0)
    for iteration in range(8):
        stats = grpo_update(
            state, sample_groups(policy, range(8 * iteration, 8 * (iteration + 1)), iteration), iteration
        )
        assert not stats["skipped"]
    after = mean_reward()
    assert before < 0.5 and after > 0.85, (before, after)


def test_grpo_micro_batches_accumulate_exactly_the_gradient_of_the_whole_minibatch(policy):
    """One episode per forward/backward pass gives the update one pass gives (the KL term's mean included), on
    episodes of different lengths."""
    trajectories = sample_groups(policy, range(2), 0) + [two_turn_trajectory(), one_turn_trajectory()]
    updates = []
    for micro_batch_size in (0, 1):
        model = copy.deepcopy(policy.model)
        state = grpo_state(
            model,
            copy.deepcopy(model),
            learning_rate=1e-3,
            minibatch_size=8,
            kl_coef=0.1,
            micro_batch_size=micro_batch_size,
        )
        updates.append((grpo_update(state, trajectories), list(model.parameters())))
    (whole, whole_weights), (micro, micro_weights) = updates
    assert all(micro[name] == pytest.approx(whole[name], rel=1e-4, abs=1e-6) for name in whole), (micro, whole)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(whole_weights, micro_weights))
