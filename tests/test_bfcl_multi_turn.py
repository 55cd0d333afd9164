"""The project's multi-turn checker against bfcl_eval's own ``multi_turn_checker`` on the same calls.

BFCL's checker runs the calls as strings with ``eval`` on back-ends it keeps in module globals (named after the
model); the project's calls the methods directly. Cases: the oracle's calls of a spread of multi_turn_base and
multi_turn_miss_param entries, and mutations of them (each call dropped, a turn emptied, two calls swapped, a call
repeated, an argument changed, a call moved to the next turn). Same verdict and error type on every case.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("bfcl_eval", reason="needs bfcl-eval: pip install --no-deps bfcl-eval==2026.3.23")

from agentic import make_task  # noqa: E402
from agentic.tasks.bfcl.backends import check_turns, missing_results  # noqa: E402
from agentic.tasks.bfcl.data import entries  # noqa: E402

Turns = list[list[tuple[str, dict[str, Any]]]]
_case_numbers = itertools.count()


def call_string(name: str, arguments: dict[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"


def bfcl_verdict(entry: dict[str, Any], turns: Turns) -> tuple[bool, str]:
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    model = f"parity{next(_case_numbers)}"
    decoded = [[[call_string(name, arguments)] for name, arguments in turn] for turn in turns]
    try:
        result = multi_turn_checker(decoded, entry["ground_truth"], dict(entry), entry["category"], model)
    finally:  # BFCL keeps every case's back-ends in its module's globals
        for key in [k for k in vars(multi_turn_utils) if k.startswith(model)]:
            del vars(multi_turn_utils)[key]
    return result["valid"], "" if result["valid"] else result["error_type"]


def changed(arguments: dict[str, Any]) -> dict[str, Any]:
    for key, value in arguments.items():
        if isinstance(value, str):
            return {**arguments, key: value + "_x"}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return {**arguments, key: value + 1}
    return arguments


def mutations(turns: Turns) -> list[Turns]:
    found = [turns]
    for t, calls in enumerate(turns):

        def with_turn(new: list, t: int = t) -> Turns:
            return turns[:t] + [new] + turns[t + 1 :]

        if calls:
            found += [with_turn(calls[:i] + calls[i + 1 :]) for i in range(len(calls))]
            found += [with_turn([]), with_turn(calls + calls[-1:])]
            found.append(with_turn([(calls[0][0], changed(calls[0][1])), *calls[1:]]))
        if len(calls) >= 2:
            found.append(with_turn([calls[1], calls[0], *calls[2:]]))
        if calls and t + 1 < len(turns):
            found.append(turns[:t] + [calls[1:], [calls[0], *turns[t + 1]]] + turns[t + 2 :])
    return found


@pytest.mark.parametrize("category", ["multi_turn_base", "multi_turn_miss_param"])
def test_project_multi_turn_checker_agrees_with_bfcl(category):
    task = make_task(f"BFCL-{category}")
    agreed, verdicts = 0, Counter()
    for entry in entries(category)[::8]:
        for turns in mutations(task.oracle_calls(entry)):
            ours = check_turns(entry, turns)
            theirs = bfcl_verdict(entry, turns)
            assert (ours.valid, ours.error_type) == theirs, (entry["id"], turns)
            agreed += 1
            verdicts[theirs] += 1
    assert agreed >= 200 and verdicts[(True, "")] >= 20 and len(verdicts) >= 3, verdicts
    print(f"{category}: {agreed} cases agree: {dict(verdicts)}")


@given(
    st.lists(st.sampled_from(["a", "b", "None"]), max_size=6), st.lists(st.sampled_from(["a", "b", "None"]), max_size=6)
)
def test_results_are_matched_as_bfcl_matches_them_repeats_included(expected, produced):
    """Each produced result stands for one expected result: BFCL's data rarely tells this apart (its repeated
    results come from calls whose absence the state check sees first), so the rule is compared on its own."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import _is_subsequence_unordered

    assert missing_results(expected, produced) == _is_subsequence_unordered(expected, produced)[1]
