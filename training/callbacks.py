"""Callbacks of the PPO / GRPO loop, ``run_rl(options, callbacks=[...])``: transformers' `TrainerCallback` made small.

A callback is an `RLCallback` (override the hooks you need) or a plain callable, which is its ``on_update``. The
loop calls them in one place (`stop_asked`), after each update has been logged, evaluated and checkpointed, and
once after the evaluation of the starting model (update 0, ``on_evaluate`` only). A hook asks the run to stop by
returning True or a reason (a non-empty str); the run then stops after this update as after a time limit (final
evaluation, model, report), and its report's ``stop_reason`` says which callback stopped it and why. Every
callback is called even when an earlier one asked to stop. Under several processes ``on_update`` runs on every
process (with the same metrics) and ``on_evaluate`` on the main process only (which evaluates); a stop asked on any
process stops them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

StopRequest = bool | str | None
"""What a hook returns: True or a reason to stop after this update; None or False to go on."""


class RLCallback:
    """Hooks of the PPO / GRPO loop; each does nothing unless overridden."""

    def on_update(self, update: int, metrics: dict[str, Any]) -> StopRequest:
        """After update ``update`` (1-based): the metrics logged for it (reward, success, kl, policy_loss, seconds, ...,
        as metrics.jsonl holds them)."""
        return None

    def on_evaluate(self, update: int, report: dict[str, Any]) -> StopRequest:
        """After the held-out evaluation at ``update`` (0: the starting model): the `agentic.evaluation.evaluate`
        report, as ``eval/update-N.json`` holds it."""
        return None


Callback = RLCallback | Callable[[int, dict[str, Any]], StopRequest]


def _name(callback: Callback) -> str:
    return getattr(callback, "__name__", None) or type(callback).__name__


def stop_asked(
    callbacks: Sequence[Callback], update: int, metrics: dict[str, Any] | None, evaluation: dict[str, Any] | None
) -> str:
    """Call each callback's hooks for ``update`` (``on_update`` when ``metrics`` are given, ``on_evaluate`` when an
    ``evaluation`` is); the first stop asked, as a reason ("" when none asked)."""
    reasons = []
    for callback in callbacks:
        hooks = (
            [(callback.on_update, metrics), (callback.on_evaluate, evaluation)]
            if isinstance(callback, RLCallback)
            else [(callback, metrics)]
        )
        for hook, argument in hooks:
            answer = hook(update, argument) if argument is not None else None
            if answer:
                reasons.append(f"stopped by callback {_name(callback)}" + (f": {answer}" if answer is not True else ""))
    return reasons[0] if reasons else ""
