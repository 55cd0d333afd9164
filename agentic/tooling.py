"""Tools: typed Python functions the agent calls, and the registry that calls them safely.

`@tool` derives a JSON Schema from type hints and the docstring's Args section
(transformers' `get_json_schema`). Parameters named in ``INJECTED`` (the task
instance, the episode state, the environment) are passed by the environment and
never shown to the model. `ToolRegistry.call` validates arguments with jsonschema
before the call, enforces a time-out and an output cap, and turns every failure into
a `ToolResult` whose text names the problem.
"""

from __future__ import annotations

import inspect
import json
import signal
import threading
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

INJECTED = ("instance", "state", "env")
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_OUTPUT_CHARS = 2000


@dataclass(frozen=True)
class Tool:
    """A named function with the JSON Schema of the arguments the model may pass."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any] = field(repr=False, compare=False)
    injected: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS

    def schema(self) -> dict[str, Any]:
        """OpenAI/transformers-style function schema, as chat templates expect."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def signature(self) -> str:
        """A one-line summary for prompts, e.g. ``calculator(expression: string)``."""
        properties = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        args = ", ".join(
            f"{name}{'' if name in required else '?'}: {_type_name(spec)}" for name, spec in properties.items()
        )
        return f"{self.name}({args})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def _type_name(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "any")
    return "|".join(kind) if isinstance(kind, list) else kind


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    schema: dict[str, Any] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> Any:
    """Decorator: ``@tool`` or ``@tool(name=..., schema=..., timeout_s=...)`` makes a `Tool`.

    ``schema`` is the JSON Schema of the parameters object; without it the schema is
    generated from the signature and docstring.
    """

    def build(func: Callable[..., Any]) -> Tool:
        injected = tuple(p for p in inspect.signature(func).parameters if p in INJECTED)
        generated = _schema_from_function(func, injected) if schema is None else None
        parameters = dict(schema) if schema is not None else generated["parameters"]
        parameters.setdefault("type", "object")
        parameters.setdefault("additionalProperties", False)
        jsonschema.Draft202012Validator.check_schema(parameters)
        return Tool(
            name=name or func.__name__,
            description=description or (generated["description"] if generated else inspect.getdoc(func) or ""),
            parameters=parameters,
            fn=func,
            injected=injected,
            timeout_s=timeout_s,
            max_output_chars=max_output_chars,
        )

    return build(fn) if fn is not None else build


def _schema_from_function(func: Callable[..., Any], injected: tuple[str, ...]) -> dict[str, Any]:
    """`get_json_schema` over the function as the model sees it: injected parameters removed."""
    from transformers.utils import get_json_schema

    hints = typing.get_type_hints(func)
    signature = inspect.signature(func)
    visible = [p for n, p in signature.parameters.items() if n not in injected]

    def facade(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - never called
        raise NotImplementedError

    facade.__name__ = func.__name__
    facade.__doc__ = func.__doc__
    facade.__signature__ = signature.replace(parameters=visible)  # type: ignore[attr-defined]
    facade.__annotations__ = {n: hints[n] for n in hints if n not in injected}
    return get_json_schema(facade)["function"]


@dataclass(frozen=True)
class ToolResult:
    """What came of one call. ``status`` is ``ok`` or names the failure."""

    tool: str
    arguments: dict[str, Any]
    status: str  # ok | unknown_tool | invalid_arguments | error | timeout
    text: str
    value: Any = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def executed(self) -> bool:
        """Whether the tool ran (it may still have raised or timed out)."""
        return self.status in ("ok", "error", "timeout")


class ToolTimeout(BaseException):
    """Raised inside a tool at its deadline; a BaseException so that `except Exception` in a tool cannot swallow it."""

    pass


class ToolRegistry:
    """Tools by name; validates, calls and reports."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> Tool:
        if not isinstance(t, Tool):
            raise TypeError(f"expected a Tool (decorate the function with @agentic.tool), got {type(t).__name__}")
        if t.name in self._tools and self._tools[t.name] is not t:
            raise ValueError(f"a different tool named {t.name!r} is already registered")
        self._tools[t.name] = t
        self._validators[t.name] = jsonschema.Draft202012Validator(t.parameters)
        return t

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def __iter__(self):
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [self._tools[n].schema() for n in self.names]

    def validate(self, name: str, arguments: Mapping[str, Any]) -> str | None:
        """Why a call would be refused, or None when it is well-formed."""
        if name not in self._tools:
            return f"unknown tool {name!r}; known tools: {', '.join(self.names) or 'none'}"
        errors = sorted(self._validators[name].iter_errors(dict(arguments)), key=lambda e: list(e.absolute_path))
        if not errors:
            return None
        return "; ".join(_describe_schema_error(name, e) for e in errors[:3])

    def call(self, name: str, arguments: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> ToolResult:
        """Validate, then run the tool under its time-out; never raises for what the model wrote."""
        arguments = dict(arguments)
        problem = self.validate(name, arguments)
        if problem is not None:
            status = "unknown_tool" if name not in self._tools else "invalid_arguments"
            return ToolResult(name, arguments, status, problem)
        t = self._tools[name]
        injected = {k: (context or {}).get(k) for k in t.injected}
        try:
            value = _run_with_timeout(lambda: t.fn(**arguments, **injected), t.timeout_s)
        except ToolTimeout:
            return ToolResult(name, arguments, "timeout", f"error: {name} timed out after {t.timeout_s:g}s")
        except Exception as err:  # the tool's own failure is an observation, not a crash
            return ToolResult(
                name, arguments, "error", f"error: {name} raised {type(err).__name__}: {_cap(str(err), 300)}"
            )
        return ToolResult(name, arguments, "ok", _cap(_to_text(value), t.max_output_chars), value)


def _describe_schema_error(name: str, err: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in err.absolute_path)
    field_name = f"argument {where!r}" if where else "arguments"
    return f"invalid {field_name} for {name}: {err.message}"


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return f"[non-text output] {value!r}"


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def _run_with_timeout(fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run ``fn``; raise `ToolTimeout` after ``timeout_s``.

    In the main thread a SIGALRM interval timer interrupts the call (pure-Python
    loops and sleeps alike). Elsewhere the call runs in a daemon thread that is
    abandoned at the deadline.
    """
    if timeout_s <= 0:
        return fn()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):

        def on_alarm(signum: int, frame: Any) -> None:
            raise ToolTimeout

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as err:  # re-raised in the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise ToolTimeout
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
