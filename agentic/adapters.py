"""Where a saved PEFT adapter's base model is, so that a LoRA run directory still loads after being moved or copied.

PEFT records the base in ``adapter_config.json`` as it was loaded: often an absolute path, which breaks when the
run moves (`peft.AutoPeftModelForCausalLM` reads that path as it is). `record_base` writes ``base_model.json``
beside it: that path, the path relative to the adapter directory, and the base's known name or hub id when it has
one. `adapter_base` finds the base again from those, in that order, or says in one line what is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agentic.models import resolve_model

BASE_FILE = "base_model.json"


def record_base(adapter_dir: str | Path, name: str = "") -> Path:
    """Write ``base_model.json`` for the adapter in ``adapter_dir``; ``name``: the base's known name or hub id."""
    adapter_dir = Path(adapter_dir)
    recorded = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
    local = Path(recorded).is_dir()
    record = {
        "recorded": recorded,
        "relative": os.path.relpath(Path(recorded).resolve(), adapter_dir.resolve()) if local else "",
        "name": name or ("" if local else recorded),
    }
    target = adapter_dir / BASE_FILE
    target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return target


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model of the adapter in ``adapter_dir``: where PEFT recorded it, else beside the adapter as it was
    (after a move), else by its name; FileNotFoundError naming what was looked for when none is there."""
    adapter_dir = Path(adapter_dir)
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    record_file = adapter_dir / BASE_FILE
    record = json.loads(record_file.read_text(encoding="utf-8")) if record_file.is_file() else {}
    recorded = record.get("recorded") or config["base_model_name_or_path"]
    if Path(recorded).is_dir():
        return recorded
    relative = adapter_dir / record["relative"] if record.get("relative") else None
    if relative is not None and relative.is_dir():
        return str(relative.resolve())
    name = record.get("name") or ("" if recorded.startswith((".", "/", "~")) else recorded)
    if name:
        return resolve_model(name)
    tried = f"{recorded}" + (f" or {relative}" if relative is not None else "")
    raise FileNotFoundError(
        f"the adapter in {adapter_dir} was trained over the base model at {tried}, which is not there: "
        "copy the base model along with the run directory"
    )
