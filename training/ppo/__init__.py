"""Turn-level PPO for multi-turn agents: the algorithm's core, as pure functions and small modules.

- `batch`: trajectories -> right-padded tensors (`TurnBatch`, `collate`);
- `core`: the mathematics (token log-probs, KL estimators and penalty, GAE over turns, clipped losses, KL controller);
- `value`: the critic (`ValueHead`, shared on the policy's trunk or with a trunk of its own);
- `guard`: the NaN/Inf guard (`NonFiniteGuard`, `TrainingDiverged`);
- `update`: one PPO update (`ppo_update`) and the optimisation loop it shares with GRPO.
"""

from agentic.training.ppo.batch import TurnBatch, collate
from agentic.training.ppo.core import KLController
from agentic.training.ppo.guard import NonFiniteGuard, TrainingDiverged
from agentic.training.ppo.update import PPOConfig, UpdateConfig, make_optimizer, ppo_update
from agentic.training.ppo.value import ValueHead, separate_critic, shared_value_head

__all__ = [
    "KLController",
    "NonFiniteGuard",
    "PPOConfig",
    "TrainingDiverged",
    "TurnBatch",
    "UpdateConfig",
    "ValueHead",
    "collate",
    "make_optimizer",
    "ppo_update",
    "separate_critic",
    "shared_value_head",
]
