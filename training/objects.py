"""Objects instead of names: what `run_sft` and `run_rl` check of a model object passed to them (as TRL's trainers take
one), and what a run directory's config.json records of a model or task object, so that a reader, and a resume, know
what the run started from.

config.json keeps the options' own fields (``model``: the object's ``name_or_path``, "" for a model built in code;
``task``: the task object's ``name``) and adds ``model_object`` / ``task_object``: the object's class as
``module.QualifiedName``. Neither can be rebuilt from the file, so resuming such a run needs the object again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OBJECT_KEYS = ("model_object", "task_object")


def class_path(value: Any) -> str:
    """``module.QualifiedName`` of ``value``'s class."""
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def object_config(model: Any = None, task: Any = None) -> dict[str, str]:
    """What config.json adds for the objects given (None: given by name)."""
    given = {"model_object": model, "task_object": task}
    return {key: class_path(value) for key, value in given.items() if value is not None}


def model_name(model: Any) -> str:
    """The directory or hub id a model object was loaded from ("" for one built from a config in code)."""
    return str(getattr(model, "name_or_path", "") or "")


def check_model_object(model: Any, tokenizer: Any, lora_rank: int) -> None:
    """Refuse, in one line, a model object the trainers cannot take: no tokenizer with it, fresh LoRA adapters asked
    for over a PEFT model (which brings its own), adapters over a model that no directory or hub id names (their
    saved form could not name its base), or no parameter left to train."""
    from peft import PeftModel

    if tokenizer is None:
        raise ValueError(f"a model object ({class_path(model)}) needs its tokenizer: pass tokenizer= as well")
    if isinstance(model, PeftModel) and lora_rank:
        raise ValueError("a PEFT model object brings its own adapters, which are trained: set lora_rank to 0")
    if (lora_rank or isinstance(model, PeftModel)) and not model_name(model):
        raise ValueError(
            "adapters over a model built in code name no base to load them with: save the model (save_pretrained) "
            "and load it from there, or train without LoRA"
        )
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ValueError(
            f"the model object ({class_path(model)}) has no trainable parameter (a PEFT model loaded for inference: "
            "PeftModel.from_pretrained(..., is_trainable=True))"
        )


def check_objects_given(run_path: str | Path, given: dict[str, str]) -> None:
    """Refuse, in one line, to resume the run in ``run_path`` without the objects (`object_config`) its config.json
    records it was started from; a missing or unreadable config.json is left to the resume's own checks."""
    try:
        config = json.loads((Path(run_path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    missing = [key for key in OBJECT_KEYS if key in config and key not in given]
    if missing:
        what = " and ".join(
            f"a {key.removesuffix('_object')} object ({config[key]}, recorded as {config.get(key.removesuffix('_object'))!r})"
            for key in missing
        )
        raise ValueError(f"cannot resume {run_path}: it was started from {what}; pass the same object(s) again")
