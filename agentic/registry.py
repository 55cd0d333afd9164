"""What is registered: tasks and tools by name, and a Gymnasium id `agentic/<Name>-v0` per task.

Built-ins arrive through the entry-point groups ``agentic.tasks`` and ``agentic.tools``
(declared in pyproject.toml), loaded lazily, so the core never imports them directly.
Your own tasks and tools register with `register_task` / `register_tool`.
"""

from __future__ import annotations

import inspect
import json
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


def installed_task_names() -> list[str]:
    """The tasks installed packages declare (the ``agentic.tasks`` entry points): the built-ins and plugins' tasks,
    not those registered at run time, so that a name such as ``demo --task all`` means the same in every process."""
    return sorted(_entry_points(TASK_GROUP))


def parse_task_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A task spec ``NAME`` or ``NAME:key=value,key=value`` (e.g. ``ReasoningGym:dataset=chain_sum,size=500``): the
    task's name and the keyword arguments for its constructor. A value that reads as a JSON number, ``true``,
    ``false`` or ``null`` is that; any other is text."""
    name, _, options = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in options.split(","))):
        key, equals, value = (part.strip() for part in pair.partition("="))
        if not equals or not key.isidentifier():
            raise ValueError(f"bad task option {pair!r} in {spec!r}: write NAME:key=value,key=value")
        kwargs[key] = _spec_value(value)
    return name.strip(), kwargs


def split_task_specs(text: str) -> list[str]:
    """The task specs of a comma-separated list, ``A,B`` or ``ReasoningGym:dataset=chain_sum,size=5,TwoHop`` (two
    tasks): a piece with ``=`` and no ``:`` is one more option of the spec before it. One line of ValueError for an
    empty list, an empty piece, or an option before any task. Each spec is left to `parse_task_spec`."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            raise ValueError(f"empty task in {text!r}: write NAME or NAME:key=value, comma-separated")
        if "=" in piece and ":" not in piece:
            if not specs:
                raise ValueError(f"task option {piece!r} in {text!r} comes before any task: write NAME:key=value")
            specs[-1] += f",{piece}"
        else:
            specs.append(piece)
    return specs


def _spec_value(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text


def check_task_spec(spec: str, **kwargs: Any) -> tuple[Callable[..., Task], dict[str, Any]]:
    """The factory of a task spec (`parse_task_spec`) and its constructor's arguments (the spec's, then ``kwargs``),
    checked without building the task: an unknown name is a KeyError, options its constructor does not take a
    ValueError, each one line."""
    name, options = parse_task_spec(spec)
    options.update(kwargs)
    if name not in _task_factories:
        found = _entry_points(TASK_GROUP).get(name)
        if found is None:
            raise KeyError(f"unknown task {name!r}; registered tasks: {', '.join(task_names()) or 'none'}")
        _task_factories[name] = found.load()
    factory = _task_factories[name]
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:
        raise ValueError(f"task {name}: {err}") from None
    return factory, options


def task_spec_problems(text: str) -> list[str]:
    """What is wrong with a task spec, or a comma-separated list of them (`split_task_specs`), for an options class's
    ``problems`` (empty when nothing is)."""
    try:
        specs = split_task_specs(text)
        for spec in specs:
            check_task_spec(spec)
    except (KeyError, ValueError) as err:
        return [str(err.args[0])]
    if len(set(specs)) < len(specs):
        return [f"a task is named twice in {text!r}"]
    return []


def make_task(name: str, **kwargs: Any) -> Task:
    """A task by registered name, or by a spec with its options (`parse_task_spec`, e.g. ``ReasoningGym:dataset=
    chain_sum``); keyword arguments go to its constructor too (`check_task_spec` says what it refuses)."""
    factory, options = check_task_spec(name, **kwargs)
    return factory(**options)


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
