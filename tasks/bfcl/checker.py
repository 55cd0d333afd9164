"""BFCL's AST checker for Python categories, reimplemented: do an agent's function calls match an entry's answers?

The leaderboard's single-turn number is the fraction of entries whose calls pass
``bfcl_eval.eval_checker.ast_eval.ast_checker`` (bfcl-eval 2026.3.23). That module cannot be imported
without BFCL's heavy dependencies (it reaches every API client through its model table), so its rules are
written again here, quirks included, because the point is the leaderboard's number:

- the function name must match; required parameters must be present; a parameter the function does not
  document, or the answer does not list, is unexpected;
- types are Python's, exactly (``True`` is not an integer), except that an integer passes a ``float``
  parameter; a value whose type is the answer's rather than the documented one passes as a "variable";
  arrays and tuples check their items' types one level deep;
- strings compare after `standardize` (case, spaces and ``,./-_*^`` ignored); lists compare item by item
  (strings standardised); dicts key by key against each acceptable dict; other values by ``==``;
- a parameter left out is fine when its possible answers include ``""``;
- ``multiple`` categories judge the first call against the first answer; ``parallel`` ones match answers to
  calls greedily, in the answers' order, each call used once, order free.

`tests/test_bfcl_checker.py` runs this and BFCL's own checker on the same cases and requires the same
verdict and error type on every one. One deliberate difference: where BFCL's checker raises (a list of
non-objects for an optional list-of-objects parameter), this one answers invalid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PYTHON_TYPES = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
NESTED = ("array", "tuple")
_IGNORED = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Verdict:
    """Whether the calls pass, and if not, BFCL's error type (e.g. ``value_error:string``) and a message."""

    valid: bool
    error_type: str = ""
    error: str = ""


PASS = Verdict(True)


def standardize(text: str) -> str:
    """BFCL's string normalisation: spaces and ``,./-_*^`` removed, lower case, single quotes made double."""
    return _IGNORED.sub("", text).lower().replace("'", '"')


def check(
    category: str, functions: Sequence[dict[str, Any]], calls: Sequence[dict[str, Any]], answers: Sequence[dict]
) -> Verdict:
    """The verdict on ``calls`` (each ``{name: arguments}``) for an entry of ``category`` offering ``functions``
    (BFCL's documentation) whose ground truth is ``answers`` (each ``{name: {parameter: [acceptable values]}}``)."""
    if "parallel" in category:
        return _check_any_order(functions, calls, answers)
    if "multiple" in category:
        if len(calls) != len(answers):
            return Verdict(False, "multiple_function_checker:wrong_count", "Wrong number of functions.")
        return check_call(_documentation(functions, _name(answers[0])), calls[0], answers[0])
    if len(calls) != 1:
        return Verdict(False, "simple_function_checker:wrong_count", "Wrong number of functions.")
    return check_call(functions[0], calls[0], answers[0])


def _name(answer: dict[str, Any]) -> str:
    return next(iter(answer))


def _documentation(functions: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    for function in functions:
        if function["name"] == name:
            return function
    raise ValueError(f"the ground truth calls {name!r}, which the entry does not document")


def _check_any_order(functions: Sequence[dict], calls: Sequence[dict], answers: Sequence[dict]) -> Verdict:
    if len(calls) != len(answers):
        return Verdict(False, "parallel_function_checker_no_order:wrong_count", "Wrong number of functions.")
    used: set[int] = set()
    for number, answer in enumerate(answers):
        function = _documentation(functions, _name(answer))
        match = next(
            (i for i in range(len(calls)) if i not in used and check_call(function, calls[i], answer).valid), None
        )
        if match is None:
            return Verdict(
                False,
                "parallel_function_checker_no_order:cannot_find_match",
                f"no call matches answer {number} ({_name(answer)})",
            )
        used.add(match)
    return PASS


def check_call(function: dict[str, Any], call: dict[str, Any], answer: dict[str, Any]) -> Verdict:
    """One call against one documented function and its acceptable values (BFCL's simple checker)."""
    acceptable = next(iter(answer.values()))
    name = function["name"]
    documented = function["parameters"]["properties"]
    if name not in call:
        return Verdict(False, "simple_function_checker:wrong_func_name", f"Function name {name!r} not found.")
    arguments = call[name]
    for parameter in function["parameters"]["required"]:
        if parameter not in arguments:
            return Verdict(False, "simple_function_checker:missing_required", f"Missing required {parameter!r}.")
    for parameter, value in arguments.items():
        if parameter not in documented or parameter not in acceptable:
            return Verdict(False, "simple_function_checker:unexpected_param", f"Unexpected parameter {parameter!r}.")
        verdict = _check_value(parameter, value, documented[parameter], acceptable[parameter])
        if not verdict.valid:
            return verdict
    for parameter, values in acceptable.items():
        if parameter not in arguments and "" not in values:
            return Verdict(False, "simple_function_checker:missing_optional", f"Parameter {parameter!r} is missing.")
    return PASS


def _check_value(parameter: str, value: Any, spec: dict[str, Any], options: list[Any]) -> Verdict:
    """One argument: its type, then its value by the rule for that type."""
    declared = spec["type"]
    expected = PYTHON_TYPES[declared]
    item_type = PYTHON_TYPES[spec["items"]["type"]] if declared in NESTED else None
    if declared == "float" and type(value) is int:
        value = float(value)
    typed = _check_type(parameter, value, options, expected, item_type)
    if not typed.valid:
        return typed
    if not _is_variable(value, options, expected):
        if expected is dict:
            return _check_dict(parameter, value, options)
        if expected is list and item_type is dict:
            return _check_list_of_dicts(parameter, value, options)
        if expected is str:
            return _check_string(parameter, value, options)
        if expected is list:
            return _check_list(parameter, value, options)
    if value not in options:
        return Verdict(False, "value_error:others", f"Invalid value for {parameter!r}: {value!r}.")
    return PASS


def _answer_type(options: list[Any]) -> type | None:
    """The type of the first acceptable value that is not ``""`` (the mark of an optional parameter)."""
    return next((type(option) for option in options if option != ""), None)


def _is_variable(value: Any, options: list[Any], expected: type) -> bool:
    """BFCL treats a value as a "variable" (compared by ``==`` only) when the answers' type is not the documented one
    (or, for a value of the wrong type, when the value has the answers' type)."""
    answer_type = _answer_type(options)
    if answer_type is None:
        return False
    return answer_type is not expected or type(value) is not expected


def _check_type(parameter: str, value: Any, options: list[Any], expected: type, item_type: type | None) -> Verdict:
    answer_type = _answer_type(options)
    if type(value) is expected:
        if item_type is None or any(_items_typed(value, option, item_type) for option in options):
            return PASS
        if answer_type is not None and type(value) is answer_type:
            return Verdict(False, "type_error:nested", f"Nested type check failed for {parameter!r}.")
    elif answer_type is not None and type(value) is answer_type:
        return PASS
    return Verdict(False, "type_error:simple", f"Incorrect type for {parameter!r}: {type(value).__name__}.")


def _items_typed(value: list[Any], option: Any, item_type: type) -> bool:
    """Every item has the item type, or the type of the option's first item; an option that is not a list
    (``""``) lets any items through, as in BFCL."""
    if type(option) is not list:
        return True
    answer_type = _answer_type(option)
    return all(type(item) is item_type or (answer_type is not None and type(item) is answer_type) for item in value)


def _standard(value: Any) -> Any:
    return standardize(value) if type(value) is str else value


def _check_string(parameter: str, value: str, options: list[Any]) -> Verdict:
    if standardize(value) in [standardize(option) for option in options if type(option) is str]:
        return PASS
    return Verdict(False, "value_error:string", f"Invalid value for {parameter!r}: {value!r}.")


def _check_list(parameter: str, value: list[Any], options: list[Any]) -> Verdict:
    if [_standard(item) for item in value] in [[_standard(item) for item in option] for option in options]:
        return PASS
    return Verdict(False, "value_error:list/tuple", f"Invalid value for {parameter!r}: {value!r}.")


def _check_dict(parameter: str, value: Any, options: list[Any]) -> Verdict:
    """The value against each acceptable dict; the verdict of the last one tried when none fits."""
    verdict = Verdict(False, "dict_checker:unclear", f"No acceptable dict for {parameter!r}.")
    for option in options:
        if option == "":
            continue
        if not isinstance(value, dict):
            return Verdict(False, "dict_checker:unclear", f"{parameter!r} is not a dict.")
        error_type = ""
        for key, item in value.items():
            if key not in option:
                error_type = "value_error:dict_key"
                break
            if _standard(item) not in [_standard(choice) for choice in option[key]]:
                error_type = "value_error:dict_value"
                break
        if any(key not in value and "" not in choices for key, choices in option.items()):
            error_type = "value_error:dict_key"
        if not error_type:
            return PASS
        verdict = Verdict(False, error_type, f"Invalid dict for {parameter!r}: {value!r}.")
    return verdict


def _check_list_of_dicts(parameter: str, value: list[Any], options: list[Any]) -> Verdict:
    """Each acceptable list of dicts in turn: same length, and each dict fits the one at its position."""
    verdict = Verdict(False, "list_dict_checker:unclear", f"No acceptable list of dicts for {parameter!r}.")
    for option in options:
        if len(value) != len(option):
            verdict = Verdict(False, "value_error:list_dict_count", f"Wrong number of dicts in {parameter!r}.")
            continue
        for item, expected in zip(value, option):
            verdict = _check_dict(parameter, item, [expected])
            if not verdict.valid:
                break
        else:
            return PASS
    return verdict
