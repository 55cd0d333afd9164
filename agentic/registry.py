"""What is registered: tasks and tools by name, and a Gymnasium id `agentic/<Name>-v0` per task.

Built-ins arrive through the entry-point groups ``agentic.tasks`` and ``agentic.tools``
(declared in pyproject.toml), loaded lazily, so the core never imports them directly.
Your own tasks and tools register with `register_task` / `register_tool`.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import gymnasium

from agentic.task import Task
from agentic.tooling import Tool

TASK_GROUP = "agentic.tasks"
TOOL_GROUP = "agentic.tools"

_task_factories: dict[str, Callable[..., Task]] = {}
_tools: dict[str, Tool] = {}


def gym_id(task_name: str) -> str:
    return f"agentic/{task_name}-v0"


def register_task(factory: Callable[..., Task], name: str | None = None) -> Callable[..., Task]:
    """Register a Task class (or factory) under ``name`` and as ``agentic/<name>-v0``. Usable as a decorator."""
    name = name or getattr(factory, "name", "") or getattr(factory, "__name__", "")
    if not name:
        raise ValueError("a task needs a name: set the class attribute `name` or pass name=")
    _task_factories[name] = factory
    _register_gym_id(name)
    return factory


def _register_gym_id(name: str) -> None:
    if gym_id(name) not in gymnasium.registry:
        gymnasium.register(id=gym_id(name), entry_point="agentic.env:AgenticEnvironment", kwargs={"task": name})


def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def task_names() -> list[str]:
    return sorted(set(_task_factories) | set(_entry_points(TASK_GROUP)))


def make_task(name: str, **kwargs: Any) -> Task:
    """A task by registered name; keyword arguments go to its constructor."""
    if name not in _task_factories:
        found = _entry_points(TASK_GROUP).get(name)
        if found is None:
            raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(task_names()) or 'none'}")
        _task_factories[name] = found.load()
    return _task_factories[name](**kwargs)


def register_tool(t: Tool) -> Tool:
    """Make a tool visible to `agentic tools` and to tasks that look tools up by name."""
    _tools[t.name] = t
    return t


def all_tools() -> dict[str, Tool]:
    """Every registered tool, built-ins included, by name."""
    for name, ep in _entry_points(TOOL_GROUP).items():
        if name not in _tools:
            _tools[name] = ep.load()
    return dict(sorted(_tools.items()))


def register_builtin_gym_ids() -> None:
    """Declare a Gymnasium id for every entry-point task, without importing it."""
    for name in _entry_points(TASK_GROUP):
        _register_gym_id(name)
