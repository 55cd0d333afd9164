"""Turn-level PPO for multi-turn agents: the algorithm's core, as pure functions and small modules.

- `batch`: trajectories -> right-padded tensors (`TurnBatch`, `collate`);
- `core`: the mathematics (token log-probs, KL estimators and penalty, GAE over turns, clipped losses) and what
  adapts during training (`KLController`, `RewardNormalizer`);
- `value`: the critic (`ValueHead`, shared on the policy's trunk or with a trunk of its own);
- `forward`: the forward passes an update makes (policy, critic, frozen reference);
- `guard`: the NaN/Inf guard (`NonFiniteGuard`, `TrainingDiverged`);
- `update`: PPO's two halves of an update (`PPO.advantages`, `PPO.loss`); the loop around them is
  `agentic.training.rl`.
"""

from agentic.training.ppo.batch import TurnBatch, collate
from agentic.training.ppo.core import KLController, RewardNormalizer
from agentic.training.ppo.guard import NonFiniteGuard, TrainingDiverged
from agentic.training.ppo.update import PPO, PPOTargets, make_optimizer
from agentic.training.ppo.value import ValueHead, separate_critic, shared_value_head

__all__ = [
    "PPO",
    "KLController",
    "NonFiniteGuard",
    "PPOTargets",
    "RewardNormalizer",
    "TrainingDiverged",
    "TurnBatch",
    "ValueHead",
    "collate",
    "make_optimizer",
    "separate_critic",
    "shared_value_head",
]
