"""What the SFT and RL option dataclasses share: their sign checks, and the LoRA adapters their
``lora_rank`` / ``lora_alpha`` / ``lora_target_modules`` fields describe. Imports nothing heavy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def sign_problems(options: Any, positive: Iterable[str] = (), non_negative: Iterable[str] = ()) -> list[str]:
    """One message per named field of ``options`` that is not > 0 (``positive``) or is < 0 (``non_negative``)."""
    problems = [
        f"{name} must be positive, got {getattr(options, name)}" for name in positive if not getattr(options, name) > 0
    ]
    return problems + [
        f"{name} must be >= 0, got {getattr(options, name)}" for name in non_negative if getattr(options, name) < 0
    ]


def lora_config(options: Any) -> Any:
    """A causal-LM `peft.LoraConfig` from the options' LoRA fields (no dropout: on a CPU its masks cost as much as the adapters)."""
    from peft import LoraConfig

    modules = options.lora_target_modules
    return LoraConfig(
        r=options.lora_rank,
        lora_alpha=options.lora_alpha,
        lora_dropout=0.0,
        target_modules=modules if modules == "all-linear" else modules.split(","),
        task_type="CAUSAL_LM",
    )
