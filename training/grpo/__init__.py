"""GRPO for multi-turn agents: group-normalised trajectory advantages, PPO's token-level clipped loss, no critic."""

from agentic.training.grpo.core import GRPOConfig, group_advantages, group_ids, grpo_update

__all__ = ["GRPOConfig", "group_advantages", "group_ids", "grpo_update"]
