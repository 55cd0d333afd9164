"""BFCL's multi-turn back-ends, loaded from the installed package, and the leaderboard's multi-turn checker.

A multi-turn entry names the back-end classes it involves (GorillaFileSystem, MathAPI, MessageAPI, TwitterAPI,
TicketAPI, TradingBot, TravelAPI, VehicleControlAPI: plain Python classes that hold state) and their initial
configuration. The classes are imported from ``bfcl_eval``, never copied. A method is reached by its name
alone; when two involved classes share a name, the later class wins, as in BFCL. What a call returns
reaches the agent as BFCL renders it: a string as is, a dict as JSON, anything else by ``str``, and an
exception as ``Error during execution: …``.

`check_turns` is BFCL's multi-turn checker (``multi_turn_checker``), reimplemented on direct method calls
instead of ``eval`` of call strings: each user turn's calls run on one set of back-ends and the ground
truth's on another; after every turn whose ground truth calls something, the agent must have called
something, every public attribute of every back-end must equal the ground truth's, and every result the
ground truth's calls produced in that turn must be among the results of the agent's calls so far.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import inspect
import json
from collections.abc import Sequence
from typing import Any

from agentic.tasks.bfcl.checker import PASS, Verdict

Call = tuple[str, dict[str, Any]]


@functools.cache
def backend_class(name: str) -> type:
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    return getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[name]), name)


def backends(entry: dict[str, Any]) -> dict[str, Any]:
    """Fresh back-end instances for one entry, each loaded with its initial configuration."""
    from bfcl_eval.constants.executable_backend_config import STATELESS_CLASSES

    long_context = "long_context" in entry["category"]
    found = {}
    for name in entry["involved_classes"]:
        instance = backend_class(name)()
        if name not in STATELESS_CLASSES:
            instance._load_scenario(copy.deepcopy(entry["initial_config"].get(name, {})), long_context=long_context)
        found[name] = instance
    return found


@functools.cache
def _public_methods(class_name: str) -> tuple[str, ...]:
    instance = backend_class(class_name)()
    return tuple(name for name, _ in inspect.getmembers(instance, inspect.ismethod) if not name.startswith("_"))


def routes(involved_classes: Sequence[str]) -> dict[str, str]:
    """Method name -> the class that answers it (the later class when two share a name)."""
    return {method: name for name in involved_classes for method in _public_methods(name)}


def result_text(value: Any) -> str:
    """A call's result as BFCL shows it to the model and compares it."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


def execute(instances: dict[str, Any], route: dict[str, str], name: str, args: Sequence, kwargs: dict) -> str:
    """Run one call on the back-ends; its result (or error) as BFCL's text. The arguments are copied first, as
    BFCL's ``eval`` of a call string makes new ones: a back-end keeps the lists it is given and may change them."""
    try:
        if name not in route:
            raise NameError(f"name '{name}' is not defined")
        method = getattr(instances[route[name]], name)
        return result_text(method(*copy.deepcopy(args), **copy.deepcopy(kwargs)))
    except Exception as err:  # the back-end's failure is the call's result, as in BFCL
        return f"Error during execution: {err}"


def parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """A ground-truth call string such as ``mv(source='a.txt', destination='b')`` as (name, args, kwargs).

    The arguments are Python literals, read with `ast.literal_eval`: nothing is evaluated.
    """
    node = ast.parse(text.strip(), mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain function call: {text!r}")
    args = [ast.literal_eval(arg) for arg in node.args]
    return node.func.id, args, {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}


def named_arguments(class_name: str, call: str) -> Call:
    """A ground-truth call with its positional arguments named from the method's signature (what a tool call needs)."""
    name, args, kwargs = parse_call(call)
    parameters = list(inspect.signature(getattr(backend_class(class_name), name)).parameters)[1:]  # after self
    return name, {**dict(zip(parameters, args)), **kwargs}


def check_turns(entry: dict[str, Any], turns: Sequence[Sequence[Call]]) -> Verdict:
    """BFCL's verdict on the agent's executed calls, grouped by user turn, against the entry's ground truth."""
    truth = entry["ground_truth"]
    if len(turns) != len(truth):
        return Verdict(False, "multi_turn:force_terminated", f"{len(turns)} of {len(truth)} turns were completed")
    route = routes(entry["involved_classes"])
    agent, reference = backends(entry), backends(entry)
    results: list[str] = []
    for index, (calls, expected_calls) in enumerate(zip(turns, truth)):
        results += [execute(agent, route, name, (), kwargs) for name, kwargs in calls]
        expected = [execute(reference, route, *parse_call(call)) for call in expected_calls]
        if not expected_calls:
            continue
        if not calls:
            return Verdict(False, "multi_turn:empty_turn_model_response", f"no call in turn {index}")
        for name, instance in reference.items():
            different = [
                a for a in vars(instance) if not a.startswith("_") and getattr(agent[name], a) != getattr(instance, a)
            ]
            if different:
                return Verdict(
                    False, "multi_turn:instance_state_mismatch", f"turn {index}: {name}.{different[0]} differs"
                )
        missing = missing_results(expected, results)
        if missing:
            return Verdict(
                False, "multi_turn:execution_response_mismatch", f"turn {index}: missing {missing[0][:200]!r}"
            )
    return PASS


def missing_results(expected: list[str], produced: list[str]) -> list[str]:
    """The expected results not among the produced ones, each produced result used once."""
    left = list(produced)
    missing = []
    for result in expected:
        if result in left:
            left.remove(result)
        else:
            missing.append(result)
    return missing
