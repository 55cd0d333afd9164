"""BFCL's data, read from the installed ``bfcl-eval`` distribution: categories, entries and their ground truth.

``bfcl-eval`` ships the Berkeley Function Calling Leaderboard's data (``bfcl_eval/data/BFCL_v4_*.json``, one
JSON entry a line, with ``possible_answer/``) and its executable multi-turn back-ends. Its declared
dependencies are very heavy (API clients, pinned numpy, vllm extras) and none of them is needed to read the
data or run the back-ends, so it is installed without them::

    pip install --no-deps bfcl-eval==2026.3.23

Nothing here imports BFCL's own modules except its small constant tables, so its dependencies stay absent.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

INSTALL = "pip install --no-deps bfcl-eval==2026.3.23"
PREFIX = "BFCL_v4"


@dataclass(frozen=True)
class Category:
    """One BFCL test category and how it is scored: ``ast`` (calls judged by the AST checker), ``irrelevance``
    (correct when no function is called) or ``multi_turn`` (calls run on the back-ends, judged by their state
    and results)."""

    name: str
    kind: str
    what: str


CATEGORIES = {
    c.name: c
    for c in (
        Category("simple_python", "ast", "one call to the one function offered"),
        Category("multiple", "ast", "one call, to the right one of 2-4 functions"),
        Category("parallel", "ast", "several calls to one function, in any order"),
        Category("parallel_multiple", "ast", "several calls to several functions, in any order"),
        Category("irrelevance", "irrelevance", "no function fits: finish without calling any"),
        Category("live_simple", "ast", "user-contributed: one call to the one function offered"),
        Category("live_multiple", "ast", "user-contributed: one call, to the right one of many functions"),
        Category("live_parallel", "ast", "user-contributed: several calls to one function"),
        Category("live_parallel_multiple", "ast", "user-contributed: several calls to several functions"),
        Category("live_irrelevance", "irrelevance", "user-contributed: no function fits, call none"),
        Category("multi_turn_base", "multi_turn", "a conversation acted out on stateful back-ends"),
        Category("multi_turn_long_context", "multi_turn", "multi_turn_base with long back-end contents"),
        Category(
            "multi_turn_miss_param",
            "multi_turn",
            "multi_turn_base where a request lacks a parameter: call nothing until the user gives it",
        ),
    )
}
OTHER_CATEGORIES = ("simple_java", "simple_javascript", "live_relevance", "multi_turn_miss_func")
"""In the data, not offered as tasks: Java and JavaScript need their own type converters, live_relevance has no
ground truth to build an oracle from, and miss_func adds functions in the middle of an episode."""
ALL_CATEGORIES = (*CATEGORIES, *OTHER_CATEGORIES)
"""Every category whose questions count when training entries are kept apart from other families'."""


def family(category: str) -> str:
    """BFCL's family of a category, ``live``, ``multi_turn`` or ``non_live``: categories of one family share
    questions (simple_python and multiple share 96), so training on one contaminates the others."""
    if category.startswith("live"):
        return "live"
    return "multi_turn" if category.startswith("multi_turn") else "non_live"


class BFCLNotInstalled(FileNotFoundError):
    """``bfcl-eval`` is not installed: its data cannot be found."""


def bfcl_root() -> Path:
    """The installed ``bfcl_eval`` package folder (found without importing it)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or spec.origin is None:
        raise BFCLNotInstalled(f"BFCL tasks need the bfcl-eval data: {INSTALL}")
    return Path(spec.origin).parent


def bfcl_version() -> str:
    try:
        return version("bfcl-eval")
    except PackageNotFoundError:
        return "not installed"


def category(name: str) -> Category:
    if name not in CATEGORIES:
        raise KeyError(f"unknown BFCL category {name!r}; known: {', '.join(CATEGORIES)}")
    return CATEGORIES[name]


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BFCLNotInstalled(f"BFCL data file {path} is missing; reinstall it: {INSTALL}")
    with path.open(encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]


@functools.cache
def entries(name: str) -> tuple[dict[str, Any], ...]:
    """The category's entries in the file's order, each with its ``ground_truth`` (empty where there is none)
    and its ``category``. Read once per process."""
    data = bfcl_root() / "data"
    found = _read_lines(data / f"{PREFIX}_{name}.json")
    answers_path = data / "possible_answer" / f"{PREFIX}_{name}.json"
    answers = {a["id"]: a["ground_truth"] for a in _read_lines(answers_path)} if answers_path.is_file() else {}
    return tuple({**entry, "category": name, "ground_truth": answers.get(entry["id"], [])} for entry in found)


@functools.cache
def user_texts(name: str) -> frozenset[str]:
    """Every user message of the category, whitespace-collapsed and case-folded: what contamination is judged by."""
    return frozenset(text for entry in entries(name) for text in entry_user_texts(entry))


def entry_user_texts(entry: dict[str, Any]) -> list[str]:
    return [
        " ".join(str(message["content"]).split()).casefold()
        for turn in entry["question"]
        for message in turn
        if message["role"] == "user"
    ]


@functools.cache
def function_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    """The function documentation BFCL offers for one multi-turn back-end class."""
    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    return tuple(
        _read_lines(bfcl_root() / "data" / "multi_turn_func_doc" / MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name])
    )
