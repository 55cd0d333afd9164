"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """A model this small runs fastest on one thread, and far slower when two threads compete with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", autouse=True)
def fresh_accelerate_state():
    """Each test module starts without accelerate's process-wide state: a TRL trainer (bf16 on by default) and the
    project's RL loop (`mixed_precision="no"` on a CPU) cannot share one process's AcceleratorState. (Per module, not
    per test: a module-scoped trainer fixture keeps its state across its tests.)"""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
