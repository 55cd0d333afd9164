"""What a model was trained on, read from the run directories it came from.

Every training run writes ``config.json`` into its run directory, with the ``task`` it trained on and the
``model`` (or ``base_model``) it started from; its model is saved in a folder of that directory (``model/``,
``checkpoints/…``). `trained_tasks` reads the run directory above a model folder, then the one above the
model it started from, and so on (a LoRA adapter's ``base_model_name_or_path`` too), and collects every task
named on the way. A benchmark uses it to refuse scoring a model on what it was trained on. A model from the
hub or any other source has no such record: what it was trained on is not known here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentic.registry import split_task_specs

LEVELS_UP = 3
"""How far above a model folder its run directory's config.json is looked for (e.g. run/checkpoints/step-40/model)."""


def trained_tasks(model: str | Path) -> dict[str, Path]:
    """{task name: the config.json that records training on it}, over the model's whole lineage; empty for a
    model that is not a local folder or has no run directory."""
    found: dict[str, Path] = {}
    pending, seen = [Path(model).expanduser()], set()
    while pending:
        folder = pending.pop()
        if not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        for config_path, config in _run_configs(folder):
            for task in _tasks(config):
                found.setdefault(task, config_path)
            pending += [
                _local(config_path.parent, config[k]) for k in ("model", "base_model") if isinstance(config.get(k), str)
            ]
        adapter = _read(folder / "adapter_config.json")
        if isinstance(adapter.get("base_model_name_or_path"), str):
            pending.append(_local(folder, adapter["base_model_name_or_path"]))
    return found


def _run_configs(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The run configurations (config.json files that name a task) in ``folder`` and the folders above it."""
    for candidate in [folder, *folder.resolve().parents][: LEVELS_UP + 1]:
        config = _read(candidate / "config.json")
        if _tasks(config):
            yield candidate / "config.json", config


def _tasks(config: Any) -> list[str]:
    """Every task a run configuration names (``task`` keys at any depth, comma-separated lists split)."""
    if isinstance(config, list):
        return [task for item in config for task in _tasks(item)]
    if not isinstance(config, dict):
        return []
    named = config.get("task")
    own = _task_specs(named) if isinstance(named, str) else []
    return own + [task for key, value in config.items() if key != "task" for task in _tasks(value)]


def _task_specs(named: str) -> list[str]:
    """The tasks a config's ``task`` names: several, comma-separated, each with its options (`split_task_specs`)."""
    try:
        return split_task_specs(named)
    except ValueError:
        return [t.strip() for t in named.split(",") if t.strip()]


def _local(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else (base / path if (base / path).exists() else path)


def _read(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
