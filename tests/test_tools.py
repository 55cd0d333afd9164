"""Tools: schemas from signatures, validation before every call, failures as observations, the safe calculator."""

from __future__ import annotations

import contextlib
import time

import jsonschema
import pytest

from agentic import Tool, ToolRegistry, tool
from agentic.tools.calculator import CalculatorError, calculator, evaluate


@tool
def scale(value: float, factor: int = 2, state: dict | None = None) -> float:
    """Multiply a value by a factor.

    Args:
        value: The value to scale.
        factor: How many times larger.
    """
    state["calls"] = state.get("calls", 0) + 1
    return value * factor


@tool(timeout_s=0.2)
def spin() -> str:
    """Loop forever, swallowing exceptions."""
    while True:
        with contextlib.suppress(Exception):
            pass


@tool(timeout_s=0.2)
def sleepy() -> str:
    """Sleep far past the deadline."""
    time.sleep(30)
    return "never"


@tool
def explode(reason: str) -> str:
    """Raise an error.

    Args:
        reason: What to say.
    """
    raise RuntimeError(reason)


@tool(max_output_chars=50)
def flood() -> str:
    """Return far too much text."""
    return "z" * 10_000


@tool
def opaque() -> object:
    """Return something that is not text."""
    return object()


@tool(schema={"type": "object", "properties": {"q": {"type": "string", "maxLength": 5}}, "required": ["q"]})
def explicit(q):
    """A tool with an explicit schema."""
    return q.upper()


REGISTRY = ToolRegistry([scale, spin, sleepy, explode, flood, opaque, explicit, calculator])


def test_schema_comes_from_hints_and_docstring_and_hides_injected_parameters():
    assert isinstance(scale, Tool) and scale.injected == ("state",)
    assert scale.schema() == {
        "type": "function",
        "function": {
            "name": "scale",
            "description": "Multiply a value by a factor.",
            "parameters": {
                "type": "object",
                "properties": {
                    "value": {"type": "number", "description": "The value to scale."},
                    "factor": {"type": "integer", "description": "How many times larger."},
                },
                "required": ["value"],
                "additionalProperties": False,
            },
        },
    }
    assert scale.signature() == "scale(value: number, factor?: integer)"


def test_explicit_schema_is_used_and_checked():
    assert explicit.parameters["properties"] == {"q": {"type": "string", "maxLength": 5}}
    with pytest.raises(jsonschema.SchemaError):
        tool(schema={"type": "object", "properties": {"q": {"type": 12}}})(lambda q: q)


def test_call_injects_hidden_parameters():
    state: dict = {}
    result = REGISTRY.call("scale", {"value": 1.5}, {"state": state})
    assert result.ok and result.text == "3.0" and state == {"calls": 1}


@pytest.mark.parametrize(
    "name, arguments, status, fragments",
    [
        ("nope", {}, "unknown_tool", ["unknown tool 'nope'", "calculator", "scale"]),
        ("scale", {}, "invalid_arguments", ["'value' is a required property"]),
        ("scale", {"value": "big"}, "invalid_arguments", ["argument 'value'", "'big' is not of type 'number'"]),
        ("scale", {"value": 1, "state": {}}, "invalid_arguments", ["'state' was unexpected"]),
        ("explicit", {"q": "toolong"}, "invalid_arguments", ["argument 'q'", "too long"]),
        ("explode", {"reason": "boom"}, "error", ["explode raised RuntimeError: boom"]),
        ("spin", {}, "timeout", ["spin timed out after 0.2s"]),
        ("sleepy", {}, "timeout", ["sleepy timed out after 0.2s"]),
        ("calculator", {"expression": "9**9**9"}, "error", ["CalculatorError", "exponent"]),
        ("calculator", {"expression": "x" * 1_000_000}, "error", ["longer than 200 characters"]),
    ],
)
def test_every_failure_is_an_observation_naming_the_problem(name, arguments, status, fragments):
    state: dict = {}
    result = REGISTRY.call(name, arguments, {"state": state})
    assert result.status == status
    for fragment in fragments:
        assert fragment in result.text
    if status in ("unknown_tool", "invalid_arguments"):
        assert state == {}, "a tool never sees arguments that failed validation"


def test_output_is_capped_with_a_marker_and_non_text_is_marked():
    flooded = REGISTRY.call("flood", {})
    assert flooded.ok and flooded.text == "z" * 50 + "…[truncated 9950 chars]"
    assert REGISTRY.call("opaque", {}).text.startswith("[non-text output]")


def test_timeout_outside_the_main_thread():
    import threading

    results = []
    worker = threading.Thread(target=lambda: results.append(REGISTRY.call("sleepy", {})))
    worker.start()
    worker.join(5)
    assert results and results[0].status == "timeout"


def test_registry_refuses_a_second_tool_with_the_same_name():
    registry = ToolRegistry([scale])
    with pytest.raises(ValueError):
        registry.add(tool(name="scale", schema={"type": "object"})(lambda: "other"))


@pytest.mark.parametrize(
    "expression, value",
    [
        ("2 + 3 * 4", 14),
        ("(12 + 7) * 3", 57),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-2 ** 2", -4),
        ("2 ** 10", 1024),
        ("10 % 4", 2),
    ],
)
def test_calculator_values(expression, value):
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    "expression, fragment",
    [
        ("9**9**9", "exponent"),
        ("10 ** 200", "more than 100 digits"),
        ("1/0", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("__import__('os').system('true')", "unsupported element"),
        ("[1, 2]", "unsupported element"),
        ("1 +", "not an arithmetic expression"),
        ("1e99 * 1e99", "more than 100 digits"),
        ("True + 1", "unsupported element"),
    ],
)
def test_calculator_refuses_hostile_expressions(expression, fragment):
    with pytest.raises(CalculatorError, match=fragment):
        evaluate(expression)


def test_calculator_formats_integral_floats_as_integers():
    assert calculator(expression="6 / 3") == "2"
    assert calculator(expression="1 / 3") == "0.3333333333"


@tool(timeout_s=0.2)
def count_up(n: int) -> int:
    """Count for ever.

    Args:
        n: Where to start.
    """
    while True:
        n += 1


def _tool_threads() -> list:
    import threading

    time.sleep(0.1)
    return [t for t in threading.enumerate() if t.name == "agentic-tool"]


@pytest.mark.parametrize("caller", ["main thread", "worker thread"])
def test_a_timed_out_tool_is_stopped_not_left_spinning(caller):
    import threading

    registry = ToolRegistry([count_up, spin])
    results = []
    earlier = set(_tool_threads())  # e.g. `sleepy`'s, blocked in time.sleep (C) until it returns

    def four_calls() -> None:
        results.extend(registry.call(name, {"n": 1} if name == "count_up" else {}) for name in ("count_up", "spin") * 2)

    if caller == "main thread":
        four_calls()
    else:
        worker = threading.Thread(target=four_calls)
        worker.start()
        worker.join(10)
    assert [r.status for r in results] == ["timeout"] * 4
    assert set(_tool_threads()) <= earlier, "every timed-out tool thread has ended"


def test_a_tool_call_leaves_the_callers_alarm_timer_and_handler_alone():
    import signal

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        assert REGISTRY.call("spin", {}).status == "timeout"
        assert REGISTRY.call("scale", {"value": 1}, {"state": {}}).ok
        assert 0.3 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.8
        time.sleep(1.0)
        assert fired == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@tool
def huge_number() -> int:
    """Return an integer too long for str() and repr()."""
    return 10**5000


@tool
def bad_repr() -> object:
    """Return an object whose repr raises."""

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    return Broken()


@tool
def echo(text: str) -> str:
    """Echo.

    Args:
        text: What to echo.
    """
    return f"you said {text}"


def test_outputs_that_cannot_be_shown_are_named_not_raised():
    for name in ("huge_number", "bad_repr"):
        result = ToolRegistry([huge_number, bad_repr]).call(name, {})
        assert result.ok and result.text.startswith("[non-text output")


def test_a_lone_surrogate_never_reaches_the_output():
    result = ToolRegistry([echo]).call("echo", {"text": "a\ud800b"})
    assert result.text == "you said a\ufffdb"
    result.text.encode("utf-8")


def test_an_integral_float_is_not_an_integer():
    result = REGISTRY.call("scale", {"value": 1, "factor": 2.0}, {"state": {}})
    assert result.status == "invalid_arguments" and "2.0 is not of type 'integer'" in result.text


def test_error_messages_are_bounded_however_long_the_arguments():
    from agentic.limits import ERROR_CHARS

    huge = "k" * 1_000_000
    for arguments in ({huge: 1, "value": 1}, {"value": huge}, {"value": 1, "factor": [huge] * 3}):
        result = REGISTRY.call("scale", arguments, {"state": {}})
        assert result.status == "invalid_arguments" and len(result.text) <= ERROR_CHARS + 40
    raised = REGISTRY.call("explode", {"reason": huge})
    assert raised.status == "error" and len(raised.text) <= ERROR_CHARS + 40


def test_tool_limits_are_checked_when_the_tool_is_made():
    with pytest.raises(ValueError, match="max_output_chars"):
        tool(max_output_chars=10**9)(echo.fn)
    with pytest.raises(ValueError, match="timeout_s"):
        tool(timeout_s=float("nan"))(echo.fn)


def test_the_calculator_refuses_text_it_cannot_encode():
    with pytest.raises(CalculatorError, match="cannot be read"):
        evaluate("1 + \ud800")
    assert REGISTRY.call("calculator", {"expression": "\ud800"}).status == "error"
