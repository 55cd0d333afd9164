"""One task per BFCL category: an instance is one entry, its functions are the episode's tools.

Single-turn categories: the prompt offers the entry's functions (BFCL's JSON documentation: the instructions,
a chat model's system message) and its question (the user message); the agent makes its calls one per turn, each answered with a neutral acknowledgement (the
functions are not executable), then finishes. Every call the agent wrote counts, refused ones included
(the registry refuses arguments that break the function's JSON Schema, and tells the agent why), and the
list is judged by BFCL's AST checker (`agentic.tasks.bfcl.checker`), as BFCL judges a model's whole response.
An irrelevance entry is correct when the agent finishes without calling anything. An episode that ends
without ``<finish>`` (out of budget) scores 0.

Multi-turn categories: the tools are the methods of BFCL's back-end classes, run on instances built from the
entry's initial configuration (`agentic.tasks.bfcl.backends`). The first request is in the prompt; each
``<finish>`` ends the agent's turn and the next request arrives as ``<user>…</user>``; the last
``<finish>`` is scored by BFCL's multi-turn checker on the calls that ran, turn by turn.

Seeds: ``reset(seed=i)`` for 0 <= i < n gives the category's entry i, so seeds 0..n-1 are the whole
category in order, as the leaderboard runs it. Seeds from `TRAINING_SEEDS` up (where ``agentic sft`` and
RL draw) cycle through the category's training entries: the `consistent` ones none of whose user messages
occurs in a category of another family (live, non-live, multi-turn), so that training on one family never
shows a question of another. Within a family categories share questions; `contaminated` says which
categories a model must not be scored on, given the BFCL tasks it trained on.

Oracle: the ground truth's calls, each parameter at its first acceptable value that the documentation allows
(`agentic.tasks.bfcl.oracle`), then ``<finish>``; its episodes are the SFT demonstrations.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from agentic import Budget, Score, Task, Tool, ToolRegistry, Turn, finish, tool, tool_call
from agentic.actions import Action
from agentic.tasks.bfcl import data
from agentic.tasks.bfcl.backends import Call, backends, check_turns, execute, named_arguments, routes
from agentic.tasks.bfcl.checker import PASS, Verdict, check
from agentic.tasks.bfcl.data import family
from agentic.tasks.bfcl.oracle import in_schema_order, oracle_call
from agentic.tasks.bfcl.schema import function_schema

TRAINING_SEEDS = 10_000
ACKNOWLEDGEMENT = "recorded"
DONE = "Done."
NOTHING_FITS = "None of the functions can do this."
MISSING = "I cannot do this yet: the request lacks a parameter the functions need."
CALL_EVENTS = frozenset({"tool", "tool_error", "bad_tool_call", "over_budget"})
"""Events of turns in which the environment read a tool call, whether it ran or not."""

INSTRUCTIONS = (
    "You are an expert in composing functions. You are given a question and a set of possible functions. "
    "Based on the question, make one or more function calls to achieve the purpose. If none of the functions "
    "can be used, or the question lacks the parameters a function requires, point it out and call nothing.\n"
    'Make one call per turn: <tool name="NAME">{json arguments}</tool>. When you have made every call the '
    "request needs, or none applies, end with <finish>…</finish>.\n"
)
MULTI_TURN_INSTRUCTIONS = (
    "At each turn, try your best to complete the user's request within that turn: keep calling functions until "
    "it is done, then end the turn with <finish>…</finish>; the user's next request follows.\n"
)

Step = tuple[str, Action]
"""(event, action) of one turn: what a verdict is computed from, in an episode or in a saved trajectory."""


def contaminated(categories: Iterable[str], trained_tasks: Iterable[str]) -> dict[str, str]:
    """The categories a model may not be scored on, each with the BFCL task that rules it out: any category of a
    family the model trained on (a category's entries share questions with others of its family)."""
    trained = {name.removeprefix("BFCL-"): name for name in trained_tasks if name.startswith("BFCL-")}
    by_family = {family(category): task for category, task in trained.items()}
    return {c: by_family[family(c)] for c in categories if family(c) in by_family}


def render_turn(messages: Sequence[dict[str, Any]]) -> str:
    """A user turn as the context shows it: user messages as ``<user>…</user>``, others as plain lines."""
    return "".join(f"<user>{m['content']}</user>\n" if m["role"] == "user" else f"{m['content']}\n" for m in messages)


def call_steps(steps: Iterable[Step]) -> list[Action]:
    """The tool calls among ``steps``, in order, whether the registry ran them or not."""
    return [action for event, action in steps if event in CALL_EVENTS]


class BFCLTask(Task):
    """A single-turn BFCL category (subclasses set ``category``)."""

    category: ClassVar[str] = ""
    budget = Budget(max_turns=12, max_tool_calls=10)
    held_out = False
    notes = (
        "evaluation is not held out within a category (seeds 0..n-1 are all its entries, training seeds cycle "
        "through them too): train on one family (live, non-live, multi-turn) and evaluate on another",
    )
    max_output_chars: ClassVar[int] = 2000

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.category:
            cls.name = f"BFCL-{cls.category}"
            cls.description = (
                f"BFCL {cls.category}: {data.category(cls.category).what}; tools: the entry's functions. Seeds "
                f"0..n-1 are its entries; training seeds (>= {TRAINING_SEEDS}) skip questions of other families. "
                f"Needs: {data.INSTALL}"
            )

    def __init__(self) -> None:
        self._tools: dict[str, tuple[Tool, ...]] = {}
        self._built: dict[str, Tool] = {}

    @property
    def entries(self) -> tuple[dict[str, Any], ...]:
        return data.entries(self.category)

    @functools.cached_property
    def training_entries(self) -> tuple[dict[str, Any], ...]:
        """The `consistent` entries none of whose user messages occurs in a category of another family."""
        others = frozenset().union(
            *(data.user_texts(c) for c in data.ALL_CATEGORIES if family(c) != family(self.category))
        )
        return tuple(e for e in self.entries if others.isdisjoint(data.entry_user_texts(e)) and self.consistent(e))

    def consistent(self, instance: dict[str, Any]) -> bool:
        """Whether every call of the oracle passes its function's schema. Where BFCL's ground truth contradicts
        its own documentation the environment refuses the oracle's call: such an entry is not a demonstration."""
        tools = ToolRegistry(self.instance_tools(instance))
        return all(
            tools.validate(name, arguments) is None for turn in self.oracle_calls(instance) for name, arguments in turn
        )

    def oracle_calls(self, instance: dict[str, Any]) -> list[list[Call]]:
        """The oracle's calls, per user turn."""
        return [[oracle_call(instance["function"], answer) for answer in instance["ground_truth"]]]

    def instance_for(self, seed: int | None, rng: random.Random, split: str = "training") -> dict[str, Any]:
        """Entry ``seed`` (a training entry from `TRAINING_SEEDS` up) whatever ``split``: BFCL holds out by family."""
        if seed is None:
            return self.sample(rng)
        pool = self.training_entries if seed >= TRAINING_SEEDS else self.entries
        return pool[seed % len(pool)]

    def sample(self, rng: random.Random) -> dict[str, Any]:
        return rng.choice(self.entries)

    def instance_tools(self, instance: dict[str, Any]) -> tuple[Tool, ...]:
        """The entry's functions as tools, each built once per distinct documentation (live entries share them)."""
        if instance["id"] not in self._tools:
            self._tools[instance["id"]] = tuple(self._tool(f, owner) for f, owner in self._owned_functions(instance))
        return self._tools[instance["id"]]

    def functions(self, instance: dict[str, Any]) -> list[dict[str, Any]]:
        """BFCL's documentation of the functions the entry offers."""
        return [function for function, _ in self._owned_functions(instance)]

    def _owned_functions(self, instance: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
        """(documentation, back-end class that runs it) of each function offered; None: nothing runs it, single-turn."""
        return [(function, None) for function in instance["function"]]

    def _tool(self, function: dict[str, Any], owner: str | None) -> Tool:
        key = json.dumps([function, owner], sort_keys=True)
        if key not in self._built:
            self._built[key] = tool(
                _acknowledge if owner is None else _BackendCall(owner, function["name"]),
                name=function["name"],
                description=function.get("description", ""),
                schema=function_schema(function),
                max_output_chars=self.max_output_chars,
            )
        return self._built[key]

    def instructions(self, instance: dict[str, Any]) -> str:
        """BFCL's system prompt: how to call, then the entry's functions in BFCL's JSON documentation."""
        functions = "\n".join(
            json.dumps({k: f[k] for k in ("name", "description", "parameters") if k in f}, ensure_ascii=False)
            for f in self.functions(instance)
        )
        return f"{self._instructions()}Here is a list of functions in JSON format that you can invoke.\n{functions}"

    def question(self, instance: dict[str, Any]) -> str:
        """The entry's first user turn, as each later one arrives: ``<user>…</user>``."""
        return render_turn(instance["question"][0]).removesuffix("\n")

    def _instructions(self) -> str:
        return INSTRUCTIONS

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        verdict = self.verdict(instance, [(turn.event, turn.action) for turn in history], answer is not None)
        return Score(float(verdict.valid), {"correct": float(verdict.valid)}, success=verdict.valid)

    def verdict(self, instance: dict[str, Any], steps: Sequence[Step], finished: bool) -> Verdict:
        """BFCL's verdict on an episode's ``steps``; ``finished``: it ended with ``<finish>``."""
        if not finished:
            return Verdict(False, "episode:truncated", "the episode ended without <finish>")
        calls = [{action.tool: action.arguments} for action in call_steps(steps)]
        if data.category(self.category).kind == "irrelevance":
            return PASS if not calls else Verdict(False, "irrelevance_error:decoder_success", "called a function")
        return check(self.category, instance["function"], calls, instance["ground_truth"])

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        made = len(call_steps((turn.event, turn.action) for turn in history))
        (calls,) = self.oracle_calls(instance)
        if made < len(calls):
            return self._oracle_tool_call(instance, *calls[made])
        return finish(DONE if calls else NOTHING_FITS)

    def _oracle_tool_call(self, instance: dict[str, Any], name: str, arguments: dict[str, Any]) -> str:
        """The oracle's call, its arguments in the order of the tool's schema (`in_schema_order`)."""
        offered = {t.name: t.parameters for t in self.instance_tools(instance)}
        return tool_call(name, in_schema_order(arguments, offered.get(name, {})))


class BFCLMultiTurnTask(BFCLTask):
    """A multi-turn BFCL category: calls run on BFCL's back-ends; requests arrive one ``<finish>`` at a time."""

    budget = Budget(max_turns=64, max_tool_calls=48, max_invalid=5)
    max_output_chars: ClassVar[int] = 8000

    def _owned_functions(self, instance: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
        """Every involved class's documented functions, one per name: the later class wins, as its method does."""
        route = routes(instance["involved_classes"])
        documented = {doc["name"]: doc for name in instance["involved_classes"] for doc in data.function_docs(name)}
        return [(doc, route.get(name, "")) for name, doc in documented.items()]

    def _instructions(self) -> str:
        return INSTRUCTIONS + MULTI_TURN_INSTRUCTIONS

    def initial_state(self, instance: dict[str, Any]) -> dict[str, Any]:
        return {"backends": backends(instance)}

    def next_user_turn(self, instance: dict[str, Any], answer: str, history: Sequence[Turn]) -> str | None:
        following = 1 + sum(turn.event == "user_turn" for turn in history)
        if following == len(instance["question"]):
            return None
        return "\n".join(str(message["content"]) for message in instance["question"][following])

    def verdict(self, instance: dict[str, Any], steps: Sequence[Step], finished: bool) -> Verdict:
        """BFCL's multi-turn verdict on the calls that ran, turn by turn (a call that timed out fails the episode:
        what it left behind cannot be replayed)."""
        if not finished:
            return Verdict(False, "multi_turn:force_terminated", "the episode ended without its last <finish>")
        if any(event == "tool_error" for event, _ in steps):
            return Verdict(False, "multi_turn:timeout", "a call timed out")
        turns: list[list[Call]] = [[]]
        for event, action in steps:
            if event == "user_turn":
                turns.append([])
            elif event == "tool":
                turns[-1].append((action.tool, action.arguments))
        return check_turns(instance, turns)

    def oracle_calls(self, instance: dict[str, Any]) -> list[list[Call]]:
        """The ground truth's calls per user turn, positional arguments named from the methods' signatures."""
        route = routes(instance["involved_classes"])
        return [
            [named_arguments(route[call.split("(", 1)[0].strip()], call) for call in turn]
            for turn in instance["ground_truth"]
        ]

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        turn, made = 0, 0
        for past in history:
            turn, made = (turn + 1, 0) if past.event == "user_turn" else (turn, made + (past.event == "tool"))
        calls = self.oracle_calls(instance)[turn]
        if made < len(calls):
            return self._oracle_tool_call(instance, *calls[made])
        return finish(DONE if calls else MISSING)


def _acknowledge(**arguments: Any) -> str:
    """A single-turn BFCL function: not executable, every call is acknowledged alike."""
    return ACKNOWLEDGEMENT


class _BackendCall:
    # The function behind one back-end tool: the method ``name`` of the episode's ``owner`` back-end (in ``state``);
    # with no owner (documented, but no class has the method) the call fails as in BFCL. An object rather than a
    # closure so that the tool pickles; no class docstring, which `tool` would take for the tool's description.

    def __init__(self, owner: str, name: str):
        self.route, self.name = ({name: owner} if owner else {}), name

    def __call__(self, state: dict[str, Any], **arguments: Any) -> str:
        return execute(state["backends"], self.route, self.name, (), arguments)


LIVE_BUDGET = Budget(max_turns=12, max_tool_calls=10, max_action_tokens=512)
"""Live entries' calls run longer (up to ~390 words and marks in the ground truth); the others fit in 256."""


class SimplePython(BFCLTask):
    category = "simple_python"


class Multiple(BFCLTask):
    category = "multiple"


class Parallel(BFCLTask):
    category = "parallel"


class ParallelMultiple(BFCLTask):
    category = "parallel_multiple"


class Irrelevance(BFCLTask):
    category = "irrelevance"


class LiveSimple(BFCLTask):
    category = "live_simple"
    budget = LIVE_BUDGET


class LiveMultiple(BFCLTask):
    category = "live_multiple"
    budget = LIVE_BUDGET


class LiveParallel(BFCLTask):
    category = "live_parallel"
    budget = LIVE_BUDGET


class LiveParallelMultiple(BFCLTask):
    category = "live_parallel_multiple"
    budget = LIVE_BUDGET


class LiveIrrelevance(BFCLTask):
    category = "live_irrelevance"
    budget = LIVE_BUDGET


class MultiTurnBase(BFCLMultiTurnTask):
    category = "multi_turn_base"


class MultiTurnLongContext(BFCLMultiTurnTask):
    category = "multi_turn_long_context"
    budget = Budget(max_turns=64, max_tool_calls=48, max_invalid=5, max_action_tokens=2048)
    max_output_chars = 32_000


class MultiTurnMissParam(BFCLMultiTurnTask):
    category = "multi_turn_miss_param"
