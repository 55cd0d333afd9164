"""Checkpoints of a PPO / GRPO run: everything a resumed run needs to continue exactly where this one stood.

    checkpoints/update-000010/
        model/           the policy, ``save_pretrained`` with its tokenizer (with LoRA: the adapter)
        trainer.pt       the update counter, RNG states, and the training state: optimizer, the algorithm's own
                         (critic, KL coefficient), the NaN guard's counters, the reward statistics
        metrics.jsonl    the run's metrics up to and including this update

A checkpoint is written to a temporary directory and renamed into place when complete, so a run
killed while saving leaves the previous checkpoint as the latest. The newest `KEEP` are kept.
Loading checks that every file is there and readable, and that the weights are finite, and says which is not.
"""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

KEEP = 2
_NAME = re.compile(r"update-(\d{6,})")
TRAINER_KEYS = ("iteration", "rng", "optimizer", "algorithm", "guard", "rewards")


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, unreadable or holds non-finite weights."""


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
    checkpoints: Path, iteration: int, model: Any, tokenizer: Any, trainer_state: dict[str, Any], metrics: Path
) -> Path:
    """Write checkpoint ``iteration`` under ``checkpoints`` (atomically, by rename) and drop all but the newest `KEEP`."""
    target = checkpoints / checkpoint_name(iteration)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial / "model")
    tokenizer.save_pretrained(partial / "model")
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


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    """The trainer state of ``checkpoint``, after checking that its files are all there."""
    model = checkpoint / "model"
    required = [
        "trainer.pt",
        "model/adapter_config.json" if (model / "adapter_config.json").exists() else "model/config.json",
    ]
    missing = [name for name in required if not (checkpoint / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {checkpoint} is incomplete: missing {', '.join(missing)}")
    try:
        state = torch.load(checkpoint / "trainer.pt", map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several kinds for truncated or foreign files
        raise CheckpointError(
            f"checkpoint {checkpoint} is corrupt (delete it to resume from an earlier one): {error}"
        ) from None
    for key in TRAINER_KEYS:
        if key not in state:
            raise CheckpointError(f"checkpoint {checkpoint} is corrupt: trainer.pt has no {key!r}")
    return state


def load_weights(model: Any, checkpoint: Path) -> None:
    """Copy the weights saved in ``checkpoint/model`` into ``model`` (a full model, or a PEFT model whose adapter
    was saved), refusing weights that do not load or are not finite."""
    path = checkpoint / "model"
    try:
        if (path / "adapter_config.json").is_file():
            from peft import set_peft_model_state_dict
            from peft.utils import load_peft_weights

            set_peft_model_state_dict(model, load_peft_weights(str(path), device="cpu"))
        else:
            saved = type(model).from_pretrained(path, dtype=torch.float32)
            model.load_state_dict(saved.state_dict())
    except Exception as error:  # transformers, peft and safetensors raise many kinds for a damaged directory
        raise CheckpointError(
            f"checkpoint {checkpoint} is corrupt (delete it to resume from an earlier one): its model does not load: {error}"
        ) from None
    bad = non_finite(model.named_parameters())
    if bad:
        raise CheckpointError(
            f"checkpoint {checkpoint} is corrupt (delete it to resume from an earlier one): its weights are not finite "
            f"(NaN or Inf in {bad})"
        )


def non_finite(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    """The name of the first tensor holding NaN or Inf, and how many more do ("" when all are finite)."""
    bad = [name for name, tensor in named_tensors if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    return "" if not bad else bad[0] + (f" and {len(bad) - 1} more tensors" if len(bad) > 1 else "")
