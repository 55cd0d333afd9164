"""GRPO for multi-turn agents: group-normalised trajectory advantages, PPO's token-level clipped loss, no critic."""

from agentic.training.grpo.core import GRPO, GRPOTargets, group_advantages

__all__ = ["GRPO", "GRPOTargets", "group_advantages"]
