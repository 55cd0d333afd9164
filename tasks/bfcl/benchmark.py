"""A policy (or the oracle) over BFCL categories, and the leaderboard's table of the results.

Each category runs all its entries (or the first ``limit``) through the real environment: a model with the
batched rollout engine (`agentic.rollout.rollout`), ``batch_size`` episodes at a time; the oracle step by
step (it needs no model). An entry's verdict comes from its episode (`BFCLTask.verdict`), with BFCL's error
type when it fails. Summary rows follow BFCL's ``generate_leaderboard_csv``:

- non-live: the unweighted mean of simple, multiple, parallel and parallel_multiple (BFCL's simple is itself
  the mean of Python, Java and JavaScript; only Python is offered here);
- live: the mean of live_simple, live_multiple, live_parallel and live_parallel_multiple weighted by entries;
- multi-turn: the unweighted mean of base, miss_func, miss_param and long_context;
- irrelevance: the unweighted mean of irrelevance and live_irrelevance;
- overall: BFCL weighs non-live 10, live 10, irrelevance 10, multi-turn 30 and agentic 40; agentic is not
  offered, so the overall here is the weighted mean of the groups measured, weights renormalised.

A summary over a group some of whose categories were not run is the mean of those that were, and says which
are missing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentic.env import AgenticEnvironment, oracle_action, run_episode
from agentic.metrics import wilson
from agentic.parsing import parse_action
from agentic.registry import make_task
from agentic.tasks.bfcl.data import bfcl_version
from agentic.tasks.bfcl.tasks import BFCLTask, Step
from agentic.trajectory import Trajectory

GROUPS = {
    "non_live": ("unweighted", ("simple_python", "multiple", "parallel", "parallel_multiple")),
    "live": ("weighted", ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple")),
    "multi_turn": (
        "unweighted",
        ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"),
    ),
    "irrelevance": ("unweighted", ("irrelevance", "live_irrelevance")),
}
OVERALL_WEIGHTS = {"non_live": 10, "live": 10, "irrelevance": 10, "multi_turn": 30}


@dataclass
class CategoryResult:
    """One category's verdicts: per entry ``{"id", "valid", "error_type", "error"}``, and the wall time."""

    category: str
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def correct(self) -> int:
        return sum(v["valid"] for v in self.verdicts)

    def summary(self) -> dict[str, Any]:
        errors = Counter(v["error_type"] for v in self.verdicts if not v["valid"])
        return {
            "accuracy": wilson(self.correct, len(self.verdicts)).to_dict(),
            "entries": len(self.verdicts),
            "seconds": self.seconds,
            "errors": dict(errors.most_common()),
        }


def trajectory_steps(trajectory: Trajectory) -> list[Step]:
    """(event, action) of each turn of a saved episode, as its verdict reads them."""
    return [(turn.event, parse_action(turn.action)) for turn in trajectory.turns]


def _verdict(task: BFCLTask, instance: dict[str, Any], steps: Sequence[Step], finished: bool) -> dict[str, Any]:
    verdict = task.verdict(instance, steps, finished)
    return {"id": instance["id"], "valid": verdict.valid, "error_type": verdict.error_type, "error": verdict.error}


def run_category(
    category: str,
    policy: Any | None,
    *,
    limit: int = 0,
    sampling: Any = None,
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[CategoryResult, list[Trajectory]]:
    """The category's first ``limit`` entries (0: all) played by ``policy`` (None: the oracle); its trajectories
    when a policy played."""
    from agentic.rollout import rollout

    task = make_task(f"BFCL-{category}")
    seeds = list(range(len(task.entries) if limit <= 0 else min(limit, len(task.entries))))
    started = time.perf_counter()
    trajectories: list[Trajectory] = []
    result = CategoryResult(category)
    if policy is None:
        env = AgenticEnvironment(task)
        for seed in seeds:
            infos = run_episode(env, oracle_action, seed)
            steps = [(info["event"], info["action"]) for info in infos]
            result.verdicts.append(_verdict(task, env.instance, steps, infos[-1]["event"] == "finish"))
    else:
        for start in range(0, len(seeds), batch_size):
            trajectories += rollout(
                policy, task, seeds[start : start + batch_size], sampling, split="evaluation", progress=progress
            )
        result.verdicts = [_verdict(task, t.instance, trajectory_steps(t), t.terminated) for t in trajectories]
    result.seconds = time.perf_counter() - started
    return result, trajectories


def summarize(results: dict[str, CategoryResult]) -> dict[str, Any]:
    """Per category accuracy with Wilson 95% intervals, and BFCL's summary rows over what was run."""
    categories = {name: result.summary() for name, result in results.items()}
    groups = {}
    for group, (rule, members) in GROUPS.items():
        present = [m for m in members if m in categories]
        if not present:
            continue
        if rule == "weighted":
            value = sum(results[m].correct for m in present) / sum(len(results[m].verdicts) for m in present)
        else:
            value = sum(categories[m]["accuracy"]["value"] for m in present) / len(present)
        groups[group] = {
            "value": value,
            "rule": f"{rule} mean",
            "categories": present,
            "missing": [m for m in members if m not in categories],
        }
    weights = {g: w for g, w in OVERALL_WEIGHTS.items() if g in groups}
    if weights:
        groups["overall"] = {
            "value": sum(groups[g]["value"] * w for g, w in weights.items()) / sum(weights.values()),
            "rule": "BFCL's weights " + ", ".join(f"{g} {w}" for g, w in weights.items()) + ", renormalised",
            "categories": sorted(weights),
            "missing": [g for g in OVERALL_WEIGHTS if g not in weights] + ["agentic (not offered)"],
        }
    return {"bfcl_eval": bfcl_version(), "categories": categories, "summary": groups}


def report_markdown(report: dict[str, Any], title: str) -> str:
    lines = [f"# BFCL: {title}", "", f"bfcl-eval {report['bfcl_eval']}. {report.get('protocol', '')}".rstrip(), ""]
    lines += ["| category | accuracy [Wilson 95%] | correct / entries | wall s |", "|---|---|---|---|"]
    for name, row in report["categories"].items():
        p = row["accuracy"]
        lines.append(
            f"| {name} | {p['value']:.3f} [{p['low']:.3f}, {p['high']:.3f}] | {p['k']} / {p['n']} | {row['seconds']:.1f} |"
        )
    lines += ["", "| summary (BFCL's rule) | value | over | missing |", "|---|---|---|---|"]
    for name, row in report["summary"].items():
        missing = ", ".join(row["missing"]) or "—"
        lines.append(f"| {name} ({row['rule']}) | {row['value']:.3f} | {', '.join(row['categories'])} | {missing} |")
    return "\n".join(lines)
