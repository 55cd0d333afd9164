"""A verifiers taskset as an agentic task: its prompts played in `AgenticEnvironment`, scored by its own rewards.

verifiers 0.4 (``import verifiers.v1 as vf``) splits an environment into a taskset, whose tasks carry a prompt,
their data and ``@vf.reward`` / ``@vf.metric`` methods that judge a finished `vf.Trace`, and a harness, a program
that plays the task against a model endpoint. `VerifiersTask` takes the taskset and leaves the harness out: the
agent answers in this project's grammar, and when the episode ends its transcript becomes a `vf.Trace` that the
taskset's own `Task.score` judges, so rewards are computed by verifiers' code, not re-implemented.

How an episode maps onto a trace: the task's system prompt and prompt open it, each action is a sampled
assistant message (its raw text) and each environment reply a user message; the ``<finish>`` answer is the last
assistant message, and ``trace.last_reply`` returns it (an episode cut short by a budget replies ``""`` and
stops on ``"max_turns"``). The score is the weighted sum of the rewards (``trace.reward``), its breakdown the
weighted rewards by name, ``success`` a total of at least ``success_threshold``. A reward that raises scores 0
and is logged, as a failed scoring is in verifiers. The oracle finishes with the task data's ``answer`` field.

Tasksets that need what only a harness provides are refused when the task is built, not half-scored: tool
servers (verifiers serves tools over MCP), tasks that need a container, LLM judges (a model endpoint), and
rewards or metrics that read the task's runtime box. The other direction, an agentic task as a verifiers
environment, is not offered: verifiers plays every episode through a harness program it prepares with ``uv``
and a model endpoint behind its interception proxy, none of which runs in this project's offline tests.

verifiers (Python 3.11+) is optional: ``pip install agentic-slm[verifiers]``; it is imported when a task is built.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentic.actions import finish
from agentic.task import Budget, Score, Task, Turn

log = logging.getLogger(__name__)


class VerifiersTask(Task):
    """The tasks of a bounded verifiers ``taskset`` (e.g. ``taskset.take(500)``) as one agentic task.

    ``name`` defaults to the taskset's id (or class name); ``answer_field`` names the task data field the oracle
    finishes with.
    """

    name = "Verifiers"
    description = "answer a verifiers task with <finish>, scored by the taskset's own rewards"
    budget = Budget(max_turns=4)

    def __init__(self, taskset: Any, *, name: str = "", success_threshold: float = 1.0, answer_field: str = "answer"):
        try:
            import verifiers.v1  # noqa: F401  (fails early, with the fix, where verifiers is missing)
        except ImportError as err:
            raise ImportError("VerifiersTask needs verifiers: pip install agentic-slm[verifiers]") from err
        label = name or taskset.config.id or type(taskset).__name__
        if not taskset.bounded:
            raise ValueError(f"verifiers taskset {label} is infinite: bound it first, e.g. taskset.take(1000)")
        self.tasks = list(taskset)
        if not self.tasks:
            raise ValueError(f"verifiers taskset {label} yields no tasks")
        reasons = unplayable(taskset, self.tasks[0])
        if reasons:
            raise ValueError(f"verifiers taskset {label} cannot be played without a harness: {'; '.join(reasons)}")
        self.name = label
        self.success_threshold = success_threshold
        self.answer_field = answer_field

    def sample(self, rng: random.Random) -> dict[str, Any]:
        index = rng.randrange(len(self.tasks))
        return {"index": index, "data": self.tasks[index].data.model_dump(mode="json", exclude_defaults=True)}

    def prompt(self, instance: dict[str, Any]) -> str:
        data = self.tasks[instance["index"]].data
        system = f"{data.system_prompt}\n" if data.system_prompt else ""
        return f"{self.tool_manual()}\n{system}Task: {data.prompt_text}\n"

    def score(self, instance: dict[str, Any], answer: str | None, history: Sequence[Turn]) -> Score:
        from verifiers.v1 import TaskError

        task = self.tasks[instance["index"]]
        trace = episode_trace(task, answer, history)
        try:
            run_coroutine(task.score(trace))
        except TaskError as error:
            log.warning("%s: scoring instance %s failed, scored 0: %s", self.name, instance["index"], error)
            return Score(0.0, {"scoring_error": 1.0})
        breakdown = {name: reward.value for name, reward in trace.rewards.items() if reward is not None}
        return Score(trace.reward, breakdown, success=trace.reward >= self.success_threshold)

    def oracle(self, instance: dict[str, Any], history: Sequence[Turn]) -> str:
        answer = getattr(self.tasks[instance["index"]].data, self.answer_field, None)
        if answer is None:
            raise NotImplementedError(f"{self.name}: the task data has no {self.answer_field!r} field to finish with")
        return finish(str(answer))


def unplayable(taskset: Any, task: Any) -> list[str]:
    """Why the taskset's tasks (all of ``task``'s type and config) need a harness; empty when they do not."""
    reasons = []
    if type(task).toolsets(task.config) or taskset.toolsets(taskset.config):
        reasons.append("it serves tools (MCP toolsets)")
    if task.NEEDS_CONTAINER:
        reasons.append("its tasks need a container")
    if task.config.judges:
        reasons.append("it scores with LLM judges")
    boxed = [fn.__name__ for kind in ("reward", "metric") for fn in task.hooks(kind) if needs_runtime(fn)]
    if boxed:
        reasons.append(f"{', '.join(boxed)} read the task's runtime")
    return reasons


def needs_runtime(fn: Any) -> bool:
    """verifiers' own rule (`vf.Task.score`): a signal needs the runtime when it takes ``runtime`` without a default."""
    parameter = inspect.signature(fn).parameters.get("runtime")
    return parameter is not None and parameter.default is inspect.Parameter.empty


def episode_trace(task: Any, answer: str | None, history: Sequence[Turn]) -> Any:
    """The episode as the `vf.Trace` the taskset's rewards read (see the module docstring for the mapping)."""
    import verifiers.v1 as vf

    data = task.data
    opening = [vf.SystemMessage(content=data.system_prompt)] if data.system_prompt else []
    opening += [vf.UserMessage(content=data.prompt)] if isinstance(data.prompt, str) else list(data.prompt or [])
    messages = [(message, False) for message in opening]
    for turn in history:
        messages.append((vf.AssistantMessage(content=turn.action.raw), True))
        if turn.observation:
            messages.append((vf.UserMessage(content=turn.observation), False))
    if answer is not None:
        messages.append((vf.AssistantMessage(content=answer), True))
    nodes = [
        vf.MessageNode(parent=i - 1 if i else None, message=message, sampled=sampled)
        for i, (message, sampled) in enumerate(messages)
    ]
    return vf.Trace(
        task=vf.TraceTask(type=type(task).__name__, data=data, key=task.key, hash=task.hash),
        agent=vf.AgentInfo(config=vf.AgentConfig()),
        nodes=nodes,
        root_reply="" if answer is None else answer,
        stop_condition=None if answer is not None else "max_turns",
        is_completed=True,
        ok=True,
    )


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run verifiers' async scoring to completion from synchronous code, also where an event loop is already
    running in this thread (a notebook), which `asyncio.run` refuses."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
