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


@pytest.fixture(scope="module")
def small_arithmetic_model(tmp_path_factory) -> str:
    """A one-layer tiny model of ~40k parameters for Arithmetic: the default model's code path in a fraction of the
    time (built once per test module)."""
    from agentic.training.tiny_model import build_tiny_model

    return str(
        build_tiny_model(
            ["Arithmetic"],
            tmp_path_factory.mktemp("small"),
            seeds=range(20),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
    )


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory):
    """The chat Llama of `chat_model` saved as a pretrained instruct model is: weights, tokenizer, chat template."""
    from chat_model import chat_llama, chat_tokenizer

    path = tmp_path_factory.mktemp("chat-llama")
    tokenizer = chat_tokenizer()
    chat_llama(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module", autouse=True)
def fresh_accelerate_state():
    """Each test module starts without accelerate's process-wide state: a TRL trainer (bf16 on by default) and the
    project's RL loop (`mixed_precision="no"` on a CPU) cannot share one process's AcceleratorState. (Per module, not
    per test: a module-scoped trainer fixture keeps its state across its tests.)"""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
