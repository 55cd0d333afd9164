"""Benchmarks behind `agentic bench`: each reports a ratio against a baseline run in the same process."""

from __future__ import annotations

from typing import Any


def throughput(seconds: list[float], episodes: int, agent_tokens: int) -> dict[str, Any]:
    """One side of a rollout benchmark: its best time (a busy machine only ever adds time), every time, and its
    episodes/s and agent tokens/s at the best time."""
    best = min(seconds)
    return {
        "seconds": best,
        "all_seconds": seconds,
        "episodes_per_s": episodes / best,
        "agent_tokens_per_s": agent_tokens / best,
    }
