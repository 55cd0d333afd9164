"""BFCL's parameter dialect as JSON Schema, so that the tool registry validates BFCL functions like any tool.

BFCL documents parameters in a dialect of JSON Schema with Python's type names: ``dict`` for an object,
``float``, ``tuple`` (a list once it has been through JSON), ``any`` (no constraint), and keys JSON Schema
does not know (``optional``) or uses differently. `json_schema` maps the types, keeps what JSON Schema
means the same way (descriptions, enums, defaults, bounds, nested properties and items) and drops the rest;
an enum on an array constrains its items, as BFCL means it.
The result is never stricter on types than BFCL's checker: an integer passes a ``float`` parameter
(``number``), as BFCL accepts it; ``any`` accepts everything.
"""

from __future__ import annotations

from typing import Any

TYPES = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "number": "number",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "array": "array",
    "tuple": "array",
}
UNCONSTRAINED = ("any", "")
KEPT = ("description", "enum", "default", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format")


def json_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """One BFCL parameter (or a function's ``parameters`` object) as JSON Schema (draft 2020-12).

    Raises ValueError on a type the dialect does not have, naming it.
    """
    schema: dict[str, Any] = {}
    kind = spec.get("type")
    if kind in TYPES:
        schema["type"] = TYPES[kind]
    elif kind is not None and kind not in UNCONSTRAINED:
        raise ValueError(f"BFCL parameter type {kind!r} has no JSON Schema counterpart")
    schema.update({key: spec[key] for key in KEPT if key in spec})
    if isinstance(spec.get("properties"), dict):
        schema["properties"] = {name: json_schema(inner) for name, inner in spec["properties"].items()}
    if isinstance(spec.get("required"), list):  # BFCL sometimes writes "required": true on a property
        schema["required"] = list(spec["required"])
    if isinstance(spec.get("items"), dict):
        schema["items"] = json_schema(spec["items"])
    if schema.get("type") == "array" and "enum" in schema:  # BFCL's enum on an array lists what its items may be
        schema["items"] = {**schema.get("items", {}), "enum": schema.pop("enum")}
    return schema


def function_schema(function: dict[str, Any]) -> dict[str, Any]:
    """A BFCL function's parameters as the JSON Schema of a tool's arguments: an object without other keys."""
    parameters = json_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    return {"type": "object", "properties": {}, **parameters, "additionalProperties": False}
