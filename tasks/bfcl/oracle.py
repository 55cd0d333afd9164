"""The oracle's calls: BFCL's ground truth with one acceptable value chosen for each parameter.

An answer lists, per parameter, every value BFCL accepts; ``""`` among them means the parameter may be left
out. The oracle takes the first acceptable value that the function's documentation allows (its JSON
Schema): ``""`` leaves an optional parameter out; a value the schema rules out is passed over, for BFCL's
ground truth sometimes contradicts its own documentation (a string for an integer, a value outside an
enum, a required parameter marked optional). When no acceptable value fits, the first one is used and the
environment will refuse the call: the entry is not `consistent`, and training leaves it out.

A dict parameter's answer is itself a dict of acceptable values per key (a list of such dicts for a list of
dicts); its value is built key by key, each key's first acceptable value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsonschema

from agentic.tasks.bfcl.backends import Call
from agentic.tasks.bfcl.schema import function_schema

_LEAVE_OUT = object()


def oracle_call(functions: Sequence[dict[str, Any]], answer: dict[str, Any]) -> Call:
    """One ground-truth call (``{name: {parameter: [acceptable values]}}``) as the oracle makes it."""
    name, acceptable = next(iter(answer.items()))
    function = next((f for f in functions if f["name"] == name), None)
    schema = function_schema(function) if function else {"properties": {}, "required": []}
    arguments = {}
    for parameter, values in acceptable.items():
        value = _choose(values, schema["properties"].get(parameter), parameter in schema.get("required", []))
        if value is not _LEAVE_OUT:
            arguments[parameter] = value
    return name, arguments


def in_schema_order(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with every object's keys in the order its schema lists them (others after, as they were).

    Any order is a valid call; this one is also the order constrained sampling writes (`agentic.constraint`:
    llguidance generates properties in the schema's order), so the oracle's actions stay inside the constraint.
    """
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        keys = [k for k in properties if k in value] + [k for k in value if k not in properties]
        return {k: in_schema_order(value[k], properties.get(k, {})) for k in keys}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [in_schema_order(item, schema["items"]) for item in value]
    return value


def _choose(values: list[Any], schema: dict[str, Any] | None, required: bool) -> Any:
    concrete = [(value, _concrete(value, schema or {})) for value in values]
    for value, candidate in concrete:
        if value == "":
            if not required:
                return _LEAVE_OUT
        elif schema is not None and jsonschema.Draft202012Validator(schema).is_valid(candidate):
            return candidate
    return next((candidate for value, candidate in concrete if value != ""), _LEAVE_OUT)


def _concrete(value: Any, schema: dict[str, Any]) -> Any:
    """An acceptable value as a call passes it: a dict answer's keys at their first acceptable values."""
    if schema.get("type") == "object" and isinstance(value, dict):
        return {k: v[0] for k, v in value.items() if isinstance(v, list) and v and v[0] != ""}
    items = schema.get("items", {})
    if schema.get("type") == "array" and items.get("type") == "object" and isinstance(value, list):
        return [_concrete(item, items) for item in value]
    return value
