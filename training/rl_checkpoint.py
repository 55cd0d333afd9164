"""Checkpoints of a PPO / GRPO run: everything a resumed run needs to continue exactly where this one stood.

    checkpoints/update-000010/
        model/           the policy, ``save_pretrained`` with its tokenizer (with LoRA: the adapter)
        value_head.pt    the critic's state dict (PPO)
        trainer.pt       optimizer state, KL coefficient, update counter, RNG states, timers
        metrics.jsonl    the run's metrics up to and including this update

A checkpoint is written to a temporary directory and renamed into place when complete, so a run
killed while saving leaves the previous checkpoint as the latest. The newest `KEEP` are kept.
Loading checks that every file is there and readable, and says which is not.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

KEEP = 2
_NAME = re.compile(r"update-(\d{6,})")


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or unreadable."""


def checkpoint_name(iteration: int) -> str:
    return f"update-{iteration:06d}"


def rng_states() -> dict[str, Any]:
    """The global random states (Python, torch CPU and CUDA) for anything in the loop not seeded from the update number."""
    states: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    checkpoints: Path,
    iteration: int,
    model: Any,
    tokenizer: Any,
    value_head: torch.nn.Module | None,
    trainer_state: dict[str, Any],
    metrics: Path,
) -> Path:
    """Write checkpoint ``iteration`` under ``checkpoints`` (atomically, by rename) and drop all but the newest `KEEP`."""
    target = checkpoints / checkpoint_name(iteration)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial / "model")
    tokenizer.save_pretrained(partial / "model")
    if value_head is not None:
        torch.save(value_head.state_dict(), partial / "value_head.pt")
    if metrics.exists():
        shutil.copyfile(metrics, partial / "metrics.jsonl")
    torch.save(trainer_state | {"iteration": iteration, "rng": rng_states()}, partial / "trainer.pt")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    for old in sorted(p for p in checkpoints.iterdir() if _NAME.fullmatch(p.name))[:-KEEP]:
        shutil.rmtree(old)
    return target


def latest_checkpoint(checkpoints: Path) -> Path:
    """The newest complete checkpoint under ``checkpoints``."""
    found = sorted(p for p in checkpoints.glob("update-*") if _NAME.fullmatch(p.name)) if checkpoints.is_dir() else []
    if not found:
        raise CheckpointError(f"no checkpoint to resume from in {checkpoints}")
    return found[-1]


def load_trainer_state(checkpoint: Path, needs_value_head: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The trainer state and value-head state dict of ``checkpoint``, after checking that its files are all there."""
    required = [
        "trainer.pt",
        "model/config.json"
        if not (checkpoint / "model" / "adapter_config.json").exists()
        else "model/adapter_config.json",
    ]
    required += ["value_head.pt"] if needs_value_head else []
    missing = [name for name in required if not (checkpoint / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {checkpoint} is incomplete: missing {', '.join(missing)}")
    try:
        state = torch.load(checkpoint / "trainer.pt", map_location="cpu", weights_only=True)
        head = (
            torch.load(checkpoint / "value_head.pt", map_location="cpu", weights_only=True)
            if needs_value_head
            else None
        )
    except Exception as error:  # torch raises several kinds for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {checkpoint} is corrupt (delete it to resume from an earlier one): {error}"
        ) from None
    for key in ("iteration", "optimizer", "kl_coef", "rng"):
        if key not in state:
            raise CheckpointError(f"checkpoint {checkpoint} is corrupt: trainer.pt has no {key!r}")
    return state, head
