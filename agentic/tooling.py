"""Tools: typed Python functions the agent calls, and the registry that calls them safely.

`@tool` derives a JSON Schema from type hints and the docstring's Args section
(transformers' `get_json_schema`). Parameters named in ``INJECTED`` (the task
instance, the episode state, the environment) are passed by the environment and
never shown to the model. `ToolRegistry.call` validates arguments with jsonschema
before the call, enforces a time-out and an output cap, and turns every failure into
a `ToolResult` whose text names the problem. Sizes follow `agentic.limits`.

An ``async def`` tool is awaited in its worker thread, on an event loop of its own, under its time-out like any
tool (one without a time-out is refused when made). Tools pickle, and so do the tasks and environments that hold
them (`pickle`, gymnasium's ``AsyncVectorEnv``): ``@tool`` puts the `Tool` in its function's place in the module,
so a tool is pickled by its module and name (`Tool.__reduce__`), not through its function.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import importlib
import inspect
import json
import math
import reprlib
import threading
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from agentic.limits import ERROR_CHARS, TOOL_OUTPUT_CHARS, TOOL_OUTPUT_CHARS_MAX, cap, clean_text

INJECTED = ("instance", "state", "env")
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_MAX_OUTPUT_CHARS = TOOL_OUTPUT_CHARS

# JSON Schema's "integer" admits 2.0; Python code given 2.0 for an int breaks (slicing, range), so only ints pass.
_TYPE_CHECKER = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool)
)
_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPE_CHECKER)


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

    def __post_init__(self) -> None:
        if inspect.iscoroutinefunction(self.fn) and not self.timeout_s > 0:
            raise ValueError(
                f"async tool {self.name} needs a time-out (timeout_s > 0): it is awaited in a worker thread "
                "that the time-out stops"
            )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by reference where this tool is a module attribute: ``@tool`` put it in its function's place, so
        pickle cannot find the function by its own name. A tool made around such a function under another name
        (``arithmetic = tool(calculator.fn, name="arithmetic")``) is rebuilt around the function found through
        the tool that holds it; any other tool pickles its fields, its function as pickle can (a local function
        cannot, and pickle says so)."""
        module, qualname = getattr(self.fn, "__module__", None) or "", getattr(self.fn, "__qualname__", None) or ""
        for name in (qualname, self.name):
            if _module_attribute(module, name) is self:
                return _tool_at, (module, name)
        holder = _module_attribute(module, qualname)
        if isinstance(holder, Tool) and holder.fn is self.fn:
            values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "fn"}
            return _tool_around, (module, qualname, values)
        return Tool, tuple(getattr(self, f.name) for f in dataclasses.fields(self))


def _module_attribute(module: str, qualname: str) -> Any:
    """``module.qualname`` (dotted names followed), or None when it is not there."""
    if not (module and qualname):
        return None
    try:
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError):
        return None
    return value


def _tool_at(module: str, qualname: str) -> Tool:
    """The tool at ``module.qualname``, where an unpickled tool is found; a clear error when it is not there."""
    found = _module_attribute(module, qualname)
    if not isinstance(found, Tool):
        raise ImportError(f"cannot unpickle the tool {module}.{qualname}: no such tool in that module")
    return found


def _tool_around(module: str, qualname: str, values: dict[str, Any]) -> Tool:
    """A pickled `Tool` rebuilt around the function of the tool found at ``module.qualname``, with its other fields."""
    return Tool(fn=_tool_at(module, qualname).fn, **values)


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
    generated from the signature and docstring. An ``async def`` function is awaited when called,
    within ``timeout_s`` (which must then be positive: the coroutine runs on an event loop of its own,
    in the worker thread that the time-out stops).
    """

    if not (math.isfinite(timeout_s) and timeout_s >= 0):
        raise ValueError(f"timeout_s must be a finite number of seconds >= 0 (0: no time-out), got {timeout_s}")
    if not 0 < max_output_chars <= TOOL_OUTPUT_CHARS_MAX:
        raise ValueError(f"max_output_chars must be between 1 and {TOOL_OUTPUT_CHARS_MAX}, got {max_output_chars}")

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
        self._validators: dict[str, Any] = {}
        for t in tools:
            self.add(t)

    def add(self, t: Tool) -> Tool:
        if not isinstance(t, Tool):
            raise TypeError(f"expected a Tool (decorate the function with @agentic.tool), got {type(t).__name__}")
        if t.name in self._tools and self._tools[t.name] is not t:
            raise ValueError(f"a different tool named {t.name!r} is already registered")
        self._tools[t.name] = t
        self._validators[t.name] = _Validator(t.parameters)
        return t

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its tools; the validators (of a class jsonschema makes at run time) are made again."""
        return ToolRegistry, (list(self._tools.values()),)

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
            return cap(f"unknown tool {name!r}; known tools: {', '.join(self.names) or 'none'}", ERROR_CHARS)
        errors = sorted(self._validators[name].iter_errors(dict(arguments)), key=lambda e: list(e.absolute_path))
        if not errors:
            return None
        return cap("; ".join(_describe_schema_error(name, e) for e in errors[:3]), ERROR_CHARS)

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
            value = _run_with_timeout(lambda: _awaited(t.fn(**arguments, **injected), t.timeout_s), t.timeout_s)
        except ToolTimeout:
            return ToolResult(name, arguments, "timeout", f"error: {name} timed out after {t.timeout_s:g}s")
        except Exception as err:  # the tool's own failure is an observation, not a crash
            message = f"error: {name} raised {type(err).__name__}: {_safe_str(err)}"
            return ToolResult(name, arguments, "error", cap(clean_text(message), ERROR_CHARS))
        return ToolResult(name, arguments, "ok", cap(clean_text(_to_text(value)), t.max_output_chars), value)


def _describe_schema_error(name: str, err: jsonschema.ValidationError) -> str:
    where = cap(".".join(str(p) for p in err.absolute_path), 60)
    field_name = f"argument {where!r}" if where else "arguments"
    return clean_text(f"invalid {field_name} for {name}: {cap(err.message, ERROR_CHARS)}")


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = 200


def _to_text(value: Any) -> str:
    """A tool's return value as text: strings as they are, other values as JSON, or a short repr."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return f"[non-text output] {_SHORT_REPR.repr(value)}"
    except Exception:  # a repr may fail too (an int of 5000 digits, a broken __repr__)
        return f"[non-text output of type {type(value).__name__}]"


def _safe_str(err: BaseException) -> str:
    try:
        return str(err)
    except Exception:
        return "(the error's message could not be shown)"


class _ToolCall(threading.Thread):
    """One tool call in a worker thread, which `stop` ends by raising `ToolTimeout` inside it."""

    def __init__(self, fn: Callable[[], Any]):
        super().__init__(daemon=True, name="agentic-tool")
        self.fn = fn
        self.lock = threading.Lock()
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            try:
                value, error = self.fn(), None
            except BaseException as err:  # re-raised in the caller's thread
                value, error = None, err
            with self.lock:
                self.value, self.error, self.finished = value, error, True
        except ToolTimeout:  # stopped at the deadline
            pass

    def stop(self) -> None:
        """Raise `ToolTimeout` in the worker unless it has finished (the lock keeps its id valid)."""
        with self.lock:
            if not self.finished and self.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), ctypes.py_object(ToolTimeout))


_ASYNC_GRACE_S = 0.5
"""How long after its time-out an async tool's own event loop cancels it, ending the worker thread's wait."""


def _awaited(value: Any, timeout_s: float) -> Any:
    """A tool's value: a coroutine (an ``async def`` tool's) run to its end on an event loop of this thread, and
    cancelled a little after ``timeout_s`` (the caller has had its time-out by then; this ends the worker's wait)."""
    if not inspect.iscoroutine(value):
        return value
    if not timeout_s:  # a coroutine from a tool declared without async: await it without a deadline
        return asyncio.run(value)
    return asyncio.run(asyncio.wait_for(value, timeout_s + _ASYNC_GRACE_S))


def _run_with_timeout(fn: Callable[[], Any], timeout_s: float) -> Any:
    """Run ``fn`` in a worker thread; at ``timeout_s`` raise `ToolTimeout` here and stop the worker.

    The caller always gets control back at the deadline. The worker is stopped by raising
    `ToolTimeout` inside it (CPython's ``PyThreadState_SetAsyncExc``; no library offers this, and
    signals reach only the main thread and would take the caller's own SIGALRM timer): a pure-Python
    loop stops at once, a call blocked in C code (a sleep, a regex, a huge integer) when that call
    returns. ``timeout_s`` 0 means no time-out: ``fn`` runs in the caller's thread.
    """
    if timeout_s <= 0:
        return fn()
    call = _ToolCall(fn)
    call.start()
    call.join(timeout_s)
    if not call.finished:
        call.stop()
        raise ToolTimeout
    if call.error is not None:
        raise call.error
    return call.value
