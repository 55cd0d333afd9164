"""What the trainers share beyond their options: the one LoRA configuration, and the TRL trainer arguments every
TRL-based trainer here starts from (agentic SFT, the corpus pipeline's tiny base, SFT and reward model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

TRACKERS = ("tensorboard", "wandb", "trackio", "mlflow")
"""Where `--report-to` may send a run's metrics besides metrics.jsonl (``none``: nowhere else). TensorBoard events
go to the run directory's tensorboard/ (`agentic.run_dir.RunDir`); the others through TRL's trainer (SFT) or
accelerate's trackers (PPO, GRPO)."""
REPORT_TO_HELP = f"experiment trackers besides metrics.jsonl: none, or comma-separated {', '.join(TRACKERS)}"


def trackers(report_to: str) -> list[str]:
    """The trackers ``report_to`` names (``none``: none)."""
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    return [] if names == ["none"] else names


def tracker_problems(report_to: str) -> list[str]:
    """Why ``report_to`` cannot be used: a name that is no tracker, or a tracker whose package is not installed."""
    problems = []
    for name in trackers(report_to):
        if name not in TRACKERS:
            problems.append(f"report_to: unknown tracker {name!r}; use none or {', '.join(TRACKERS)}")
        elif importlib.util.find_spec(name) is None:
            problems.append(f"report_to: {name} is not installed (pip install {name})")
    return problems


def external_trackers(report_to: str) -> list[str]:
    """The trackers a trainer reports to itself: all but TensorBoard, which the run directory writes."""
    return [name for name in trackers(report_to) if name != "tensorboard"]


def lora_config(rank: int, alpha: int = 0, target_modules: str = "all-linear", dropout: float = 0.0) -> Any:
    """A causal-LM `peft.LoraConfig`: ``alpha`` 0 is twice the rank; ``target_modules`` is ``all-linear`` or
    comma-separated module names. Dropout defaults to 0: on a CPU its masks cost as much as the adapters."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha or 2 * rank,
        lora_dropout=dropout,
        target_modules=target_modules if target_modules == "all-linear" else target_modules.split(","),
        task_type="CAUSAL_LM",
    )


def trainer_arguments(
    out_dir: str | Path, *, epochs: float, learning_rate: float, batch_size: int, seed: int, **overrides: Any
) -> dict[str, Any]:
    """Keyword arguments for a TRL config (``SFTConfig``, ``RewardConfig``): CUDA with bf16 where available, CPU float32
    otherwise; cosine schedule with 5% warm-up; no activation checkpointing (TRL turns it on by default; on small
    models it only costs time); no checkpoints, reports or progress bars unless ``overrides`` say otherwise."""
    import torch

    cuda = torch.cuda.is_available()
    arguments = dict(
        output_dir=str(out_dir),
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        seed=seed,
        data_seed=seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not cuda,
        activation_checkpointing=False,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    return arguments | overrides
