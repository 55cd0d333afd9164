"""`agentic eval`: tool-call metrics at the oracle's decision points, and episode metrics from free-running rollouts.

Decision points come from oracle episodes run through the real environment on the
evaluation seeds: wherever the oracle calls a tool, the policy continues the exact token
context the oracle had (token-in, never re-tokenized) and its action is judged against the
oracle's call (see `agentic.metrics`). The oracle's episodes are encoded in the policy's mode
(`agentic.encoding`), so in chat mode each context is the chat up to the generation prompt of the
assistant message the oracle's call fills, and the judge reads the action as the environment would,
without the end-of-turn token. Episode metrics come from the policy acting alone on the same seeds
(optional: a model that rambles to its token limit makes them the expensive part). Proportions carry
Wilson 95% intervals.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from agentic.actions import ActionKind
from agentic.constraint import GrammarFor, task_grammar
from agentic.metrics import judge_tool_call, mean_interval, wilson
from agentic.mixture import TaskMixture, component_tasks
from agentic.parsing import parse_action
from agentic.policy import Policy
from agentic.registry import make_task
from agentic.rollout import oracle_trajectories, rollout
from agentic.sampling import Sampling
from agentic.task import INVALID_EVENTS, Task
from agentic.tooling import ToolRegistry
from agentic.trajectory import Trajectory

GREEDY = Sampling(temperature=0.0)
N_SAMPLES = 5  # the decision points and episodes a report keeps verbatim


@dataclass(frozen=True)
class DecisionPoint:
    """The oracle's context just before one of its tool calls, and the call it made, in ``instance``'s episode
    (whose tools, `Task.instance_tools`, are the ones offered there)."""

    seed: int
    turn: int
    context_ids: list[int]
    tool: str
    arguments: dict[str, Any]
    instance: Any


def decision_points(demonstrations: Sequence[Trajectory]) -> list[DecisionPoint]:
    """Every tool call in the oracle's trajectories, with the token context that preceded it."""
    points = []
    for demo in demonstrations:
        for index, turn in enumerate(demo.turns):
            action = parse_action(turn.action)
            if action.kind is ActionKind.TOOL:
                points.append(
                    DecisionPoint(
                        demo.seed, index, demo.token_ids[: turn.start], action.tool, action.arguments, demo.instance
                    )
                )
    return points


def tool_call_metrics(task: Task, points: Sequence[DecisionPoint], actions: Sequence[str]) -> dict[str, Any]:
    """Validity, accuracy and the paper's looser figure over decision points, overall and per tool."""
    if len(points) != len(actions):
        raise ValueError(f"{len(points)} decision points but {len(actions)} actions")
    registries: dict[tuple[int, ...], ToolRegistry] = {}

    def offered(point: DecisionPoint) -> ToolRegistry:  # one registry per distinct set of tools (BFCL: per entry)
        tools = task.instance_tools(point.instance)
        key = tuple(map(id, tools))
        if key not in registries:
            registries[key] = ToolRegistry(tools)
        return registries[key]

    judgements = [judge_tool_call(a, p.tool, p.arguments, task, offered(p)) for p, a in zip(points, actions)]
    by_tool: dict[str, list] = defaultdict(list)
    for point, judgement in zip(points, judgements):
        by_tool[point.tool].append(judgement)

    def summary(items: list) -> dict[str, Any]:
        n = len(items)
        return {
            "decision_points": n,
            "tool_call_validity": wilson(sum(j.valid for j in items), n).to_dict(),
            "tool_call_accuracy": wilson(sum(j.accurate for j in items), n).to_dict(),
            "first_sentinel_is_tool": wilson(sum(j.first_sentinel_is_tool for j in items), n).to_dict(),
        }

    return {**summary(judgements), "per_tool": {name: summary(items) for name, items in sorted(by_tool.items())}}


def episode_metrics(trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """Success, return, turns, invalid-action rate and ask rate of free-running episodes."""
    n = len(trajectories)
    returns = [sum(t.rewards) for t in trajectories]
    turns = [len(t.turns) for t in trajectories]
    all_turns = [turn for t in trajectories for turn in t.turns]
    return {
        "episodes": n,
        "success": wilson(sum(t.success for t in trajectories), n).to_dict(),
        "mean_score": mean_interval([t.score for t in trajectories]).to_dict(),
        "mean_return": statistics.fmean(returns) if returns else float("nan"),
        "std_return": statistics.pstdev(returns) if returns else float("nan"),
        "mean_turns": statistics.fmean(turns) if turns else float("nan"),
        "invalid_action_rate": wilson(
            sum(turn.event in INVALID_EVENTS for turn in all_turns), len(all_turns)
        ).to_dict(),
        "ask_rate": wilson(sum(any(turn.kind == "ask" for turn in t.turns) for t in trajectories), n).to_dict(),
        "truncated": sum(t.truncated for t in trajectories),
    }


def _grammars(task: Task, points: Sequence[DecisionPoint]) -> GrammarFor:
    """Under constrained sampling, each row's grammar: the actions of its point's episode, every tool offered."""
    return lambda row, limit: task_grammar(task, points[row].instance, min(limit, task.budget.max_action_tokens))


def evaluate_tool_calls(
    policy: Policy,
    task: Task,
    seeds: Sequence[int],
    sampling: Sampling = GREEDY,
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Tool-call metrics at the oracle's decision points on ``seeds`` (evaluation instances), and a few judged samples."""
    demonstrations = oracle_trajectories(
        task, seeds, policy.tokenizer, mode=policy.mode, split="evaluation", progress=progress
    )
    points = decision_points(demonstrations)

    actions: list[str] = []
    with tqdm(total=len(points), desc="decision points", unit="point", disable=not progress) as bar:
        for start in range(0, len(points), batch_size):
            chunk = points[start : start + batch_size]
            generations = policy.generate([p.context_ids for p in chunk], sampling, _grammars(task, chunk))
            actions += [policy.encoding.environment_text(g.text, g.token_ids) for g in generations]
            bar.update(len(chunk))
    samples = [
        {"seed": p.seed, "expected": {"tool": p.tool, "arguments": p.arguments}, "action": a}
        for p, a in list(zip(points, actions))[:N_SAMPLES]
    ]
    return tool_call_metrics(task, points, actions), samples


def evaluate(
    policy: Policy,
    task: str | Task,
    seeds: Sequence[int],
    sampling: Sampling = GREEDY,
    batch_size: int = 64,
    progress: bool = False,
    episodes: bool = True,
) -> dict[str, Any]:
    """The whole evaluation of ``policy`` on ``task`` (a task spec, or a task object the registry need not know) over
    ``seeds``, on the task's evaluation instances (held out from training by content, `agentic.task.Task.instance_for`).

    ``episodes=False`` leaves out the free-running episodes (the report's ``episodes`` is then None).
    """
    task_name = task if isinstance(task, str) else task.name
    task = make_task(task) if isinstance(task, str) else task
    tool_calls, samples = evaluate_tool_calls(policy, task, seeds, sampling, batch_size, progress)
    played: list[Trajectory] = []
    for start in range(0, len(seeds), batch_size) if episodes else ():
        played += rollout(
            policy, task, list(seeds[start : start + batch_size]), sampling, split="evaluation", progress=progress
        )
    return {
        "task": task_name,
        "seeds": [min(seeds), max(seeds)] if seeds else [],
        "mode": policy.mode,
        "sampling": {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_new_tokens": sampling.max_new_tokens,
            "constrained": sampling.constrained,
        },
        "tool_calls": tool_calls,
        "episodes": episode_metrics(played) if episodes else None,
        "samples": samples,
        "episode_samples": [episode_sample(t) for t in played[:N_SAMPLES]],
    }


def episode_sample(trajectory: Trajectory) -> dict[str, Any]:
    """One played episode as a report keeps it: what the agent did each turn and how it scored, so that a policy that
    answers the same thing throughout, or games the score, can be seen where no tool call is judged."""
    return {
        "seed": trajectory.seed,
        "turns": [{"action": turn.action, "kind": turn.kind, "event": turn.event} for turn in trajectory.turns],
        "return": sum(trajectory.rewards),
        "score": trajectory.score,
        "success": trajectory.success,
    }


def _interval(p: dict[str, Any]) -> str:
    if not p["n"]:
        return "— (0/0)"  # nothing to measure (e.g. an episode metric on no turns); JSON may hold null or NaN here
    return f"{p['value']:.3f} [{p['low']:.3f}, {p['high']:.3f}] ({p['k']}/{p['n']})"


def evaluate_each(
    policy: Policy, task: Task | TaskMixture, seeds: Sequence[int], sampling: Sampling = GREEDY, **kwargs: Any
) -> dict[str, Any]:
    """`evaluate` on one task; on a `TaskMixture`, `evaluate` on each of its tasks, each on its own evaluation
    instances of ``seeds``: ``{"task": the mixture's name, "tasks": {label: report}}``."""
    if not isinstance(task, TaskMixture):
        return evaluate(policy, task, seeds, sampling, **kwargs)
    reports = {label: evaluate(policy, each, seeds, sampling, **kwargs) for label, each in component_tasks(task)}
    return {"task": task.name, "tasks": reports}


def mean_cell(mean: dict[str, Any]) -> str:
    """A `agentic.metrics.Mean` as a table shows it: the mean, its interval where there is one."""
    if not mean["n"]:
        return "—"
    if math.isnan(mean["low"]):
        return f"{mean['value']:.3f}"
    return f"{mean['value']:.3f} [{mean['low']:.3f}, {mean['high']:.3f}]"


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(metric, value) rows for a table: proportions with their Wilson 95% intervals."""
    calls, episodes = report["tool_calls"], report["episodes"]
    rows = [
        (name, _interval(calls[name]))
        for name in ("tool_call_validity", "tool_call_accuracy", "first_sentinel_is_tool")
    ]
    rows += [
        (f"{name} ({tool})", _interval(per[name]))
        for tool, per in calls["per_tool"].items()
        for name in ("tool_call_validity", "tool_call_accuracy")
    ]
    if episodes is None:
        return rows
    rows += [
        ("success", _interval(episodes["success"])),
        ("mean score", mean_cell(episodes["mean_score"])),
        ("mean return", f"{episodes['mean_return']:.3f} ± {episodes['std_return']:.3f}"),
        ("mean turns", f"{episodes['mean_turns']:.2f}"),
        ("invalid-action rate (per turn)", _interval(episodes["invalid_action_rate"])),
        ("ask rate (episodes that ask)", _interval(episodes["ask_rate"])),
    ]
    return rows


def report_markdown(report: dict[str, Any], title: str = "Evaluation") -> str:
    lines = [
        f"# {title}: {report['task']}",
        "",
        f"Seeds {report['seeds'][0]}–{report['seeds'][-1]}, {report.get('mode', 'raw')} mode, sampling {report['sampling']}."
        + ("" if report["episodes"] is not None else " Episodes not run."),
        "",
    ]
    lines += ["| metric | value [Wilson 95%] |", "|---|---|"] + [f"| {m} | {v} |" for m, v in report_rows(report)]
    return "\n".join(lines)
