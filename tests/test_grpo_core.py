"""GRPO: group-normalised advantages on a hand example, instances as groups, the paper's KL term, a toy run that learns."""

import copy

import pytest
import torch
from toy_yes_no import YesOrNo, warmed_up_policy

from agentic.policy import Policy
from agentic.rollout import rollout
from agentic.sampling import Sampling
from agentic.training.grpo import GRPOConfig, group_advantages, group_ids, grpo_update
from agentic.training.ppo import NonFiniteGuard, collate, make_optimizer
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
    assert group_ids(trajectories).tolist() == [0, 1, 0, 2, 1]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="kl_coef"):
        GRPOConfig(kl_coef=-1)
    with pytest.raises(ValueError, match="minibatch_size must be positive"):
        GRPOConfig(minibatch_size=0)


def sample_groups(policy: Policy, seeds: range, sampling_seed: int) -> list[Trajectory]:
    """``GROUP_SIZE`` rollouts of each seed, in one batch."""
    return rollout(policy, YesOrNo(), [seed for seed in seeds for _ in range(GROUP_SIZE)], Sampling(seed=sampling_seed))


def test_the_kl_term_is_zero_while_the_policy_is_the_reference(policy):
    optimizer = make_optimizer(policy.model, lr=1e-3)
    trajectories = sample_groups(policy, range(8), 0)
    assert any(len({t.turns[0].action for t in trajectories if t.seed == seed}) > 1 for seed in range(8)), (
        "a group's rollouts differ"
    )
    batch, groups, config = (
        collate(trajectories, policy.pad_id),
        group_ids(trajectories),
        GRPOConfig(minibatch_size=32, kl_coef=0.1),
    )
    stats = grpo_update(
        policy.model, optimizer, batch, groups, config, NonFiniteGuard(optimizer), reference=copy.deepcopy(policy.model)
    )
    assert stats["kl_per_token"] == pytest.approx(0.0, abs=1e-6) and stats["approx_kl"] == pytest.approx(0.0, abs=1e-6)
    assert 0 < stats["no_signal_fraction"] < 1


def test_a_short_grpo_run_raises_the_mean_reward_on_a_toy_task(policy):
    def mean_reward() -> float:
        trajectories = rollout(policy, YesOrNo(), range(1000, 1128), Sampling(seed=1000))
        return sum(t.score for t in trajectories) / len(trajectories)

    before = mean_reward()
    optimizer = make_optimizer(policy.model, lr=3e-3)
    guard, generator, config = (
        NonFiniteGuard(optimizer),
        torch.Generator().manual_seed(0),
        GRPOConfig(epochs=2, minibatch_size=16),
    )
    for iteration in range(8):
        trajectories = sample_groups(policy, range(8 * iteration, 8 * (iteration + 1)), iteration)
        batch, groups = collate(trajectories, policy.pad_id), group_ids(trajectories)
        stats = grpo_update(policy.model, optimizer, batch, groups, config, guard, generator=generator)
        assert not stats["skipped"]
    after = mean_reward()
    assert before < 0.5 and after > 0.85, (before, after)
