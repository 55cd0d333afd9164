"""Trainer settings every stage shares: CUDA with bf16 where available, CPU float32 otherwise, no checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def on_cuda() -> bool:
    return torch.cuda.is_available()


def trainer_arguments(out_dir: Path, settings: Any, learning_rate: float) -> dict[str, Any]:
    """Keyword arguments for a TRL config (``SFTConfig``, ``RewardConfig``) from a stage's ``epochs``, ``batch_size`` and ``seed``."""
    return dict(
        output_dir=str(out_dir / "trainer"),
        num_train_epochs=settings.epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=settings.batch_size,
        seed=settings.seed,
        data_seed=settings.seed,
        bf16=on_cuda() and torch.cuda.is_bf16_supported(),
        use_cpu=not on_cuda(),
        activation_checkpointing=False,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
