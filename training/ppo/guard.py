"""A NaN/Inf guard for RL updates: roll a failed update back, and say when repeated failures should stop the run.

One diverging minibatch (an overflowing ratio, a NaN reward) would otherwise poison the weights and
the optimizer's moments for good. The guard snapshots what an optimizer step can change, the
parameters in the optimizer and its state, before each update; `rollback` restores both. After
``max_failures`` consecutive failed updates `stop_reason` says why the run should stop; the weights
and optimizer then hold the last good state, for the trainer to save.
"""

from __future__ import annotations

import copy

import torch


class TrainingDiverged(RuntimeError):
    """A run stopped by non-finite updates; its weights and optimizer hold the last good state."""


class NonFiniteGuard:
    """Per update: `snapshot` before it, then `passed` when it went through or `rollback` when it did not."""

    def __init__(self, optimizer: torch.optim.Optimizer, max_failures: int = 3):
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        self.optimizer = optimizer
        self.max_failures = max_failures
        self.failures = 0
        self.total_failures = 0
        self.last_reason = ""
        self._parameters: list[torch.Tensor] = []
        self._optimizer_state: dict | None = None

    def snapshot(self) -> None:
        """Remember the optimizer's parameters and state: the last good state."""
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        self._parameters = [p.detach().clone() for p in parameters]
        self._optimizer_state = copy.deepcopy(self.optimizer.state_dict())

    def passed(self) -> None:
        """The update went through: the run of consecutive failures is over."""
        self.failures = 0

    def rollback(self, reason: str) -> None:
        """Restore the snapshot and count the failure (``reason`` says what was not finite)."""
        if self._optimizer_state is None:
            raise RuntimeError("rollback() before any snapshot()")
        parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
        with torch.no_grad():
            for parameter, saved in zip(parameters, self._parameters):
                parameter.copy_(saved)
        self.optimizer.load_state_dict(copy.deepcopy(self._optimizer_state))
        self.optimizer.zero_grad(set_to_none=True)
        self.failures += 1
        self.total_failures += 1
        self.last_reason = reason

    @property
    def stop_reason(self) -> str:
        """Why the run must stop ("" while it may go on): ``max_failures`` consecutive updates were non-finite."""
        if self.failures < self.max_failures:
            return ""
        return (
            f"diverged: {self.failures} consecutive updates were non-finite (last: {self.last_reason}); "
            "the weights and optimizer state are those of the last good update. "
            "Lower the learning rate, tighten gradient clipping, or check the rewards for NaN/Inf."
        )

    def state_dict(self) -> dict[str, int | str]:
        return {"failures": self.failures, "total_failures": self.total_failures, "last_reason": self.last_reason}

    def load_state_dict(self, state: dict[str, int | str]) -> None:
        self.failures, self.total_failures = int(state["failures"]), int(state["total_failures"])
        self.last_reason = str(state["last_reason"])
