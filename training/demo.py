"""`agentic demo`: the whole loop on the embedded tiny model, from nothing to an agent trained by reinforcement learning.

1. build the tiny default model (tokenizer learnt from the task's training-seed transcripts);
2. measure its tool calls untrained (decision points only: it has not learnt to stop);
3. agentic SFT on *sloppy* demonstrations (`agentic.training.demos`): most of them give up at once, without
   the tool, so the SFT model imitates a demonstrator that is usually wrong;
4. PPO (or GRPO) from the SFT model, rewarded by the task's verifiable score only: the held-out
   evaluation before its first update is the SFT model's, the one after its last is the RL model's;
5. write a before/after report (JSON + Markdown) and print it.

What it shows: reinforcement learning fixes what imitation copied. The reward never mentions the tool;
the policy finds out that episodes which call it succeed and ones that give up fail.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentic.evaluation import evaluate_tool_calls, mean_cell
from agentic.mixture import component_tasks, played_task, task_label
from agentic.policy import Policy
from agentic.registry import make_task
from agentic.run_dir import RunDir
from agentic.sampling import Sampling
from agentic.task import Task
from agentic.training.action_length import constrained_action_limit, oracle_actions
from agentic.training.demo_config import DemoOptions, demo_kl_coef
from agentic.training.objects import object_config
from agentic.training.rl import run_rl
from agentic.training.sft import run_sft
from agentic.training.sft_config import DEMO_SEED_START
from agentic.training.tiny_model import build_tiny_model

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TOOL_CALL_METRICS = ("tool_call_validity", "tool_call_accuracy", "first_sentinel_is_tool")
STAGES = ("untrained", "sft", "rl")


def run_demo(options: DemoOptions, task: Task | Sequence[str | Task] | None = None) -> dict[str, Any]:
    """The demo of ``options`` on ``options.task``, or on ``task`` (a task object, registered or not); its report.

    Several tasks (``options.task`` comma-separated or `ALL_TASKS`, or ``task`` a sequence of specs and objects): the
    demo of each task alone in ``<out_dir>/<task>``, then one policy trained on all of them (`multi_task_stages`),
    and a report of every task's rows (`task_rows`)."""
    given = options.task_specs if task is None else [task] if isinstance(task, Task) else list(task)
    if len(given) == 1:
        return _alone(options, given[0], Path(options.out_dir))
    started = time.perf_counter()
    run = RunDir(options.out_dir)
    labels = [task_label(t) for t in given]
    # no "task" key here: provenance reads the folders above a model, and each model's own runs record its tasks
    options_record = {key: value for key, value in asdict(options).items() if key != "task"}
    run.write_config(options_record | {"tasks": labels})  # each task's own runs record the objects given
    reports = {label: _alone(options, t, run.path / _folder(label)) for label, t in zip(labels, given)}
    mixed = multi_task_stages(options, run.path / "multi-task", None if task is None else given)
    report = {
        "task": ",".join(labels),
        "tasks": reports,
        "multi_task": mixed,
        "algorithm": options.algorithm,
        "constrained": options.constrained,
        "rl_temperature": options.rl_temperature,
        "eval_seeds": [0, options.n_eval - 1],
        "total_seconds": time.perf_counter() - started,
    }
    run.write_report(report, tasks_markdown(report))
    run.close()
    return report


def _alone(options: DemoOptions, task: str | Task, out: Path) -> dict[str, Any]:
    """The demo of one of several tasks in ``out``: a spec, or an object (``options.task`` is then left as it is)."""
    if isinstance(task, str):
        return task_demo(replace(options, task=task, out_dir=str(out)))
    return task_demo(replace(options, out_dir=str(out)), task)


def _folder(label: str) -> str:
    """A directory name for a task spec (its options' punctuation replaced)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def multi_task_stages(options: DemoOptions, out: Path, tasks: list[str | Task] | None) -> dict[str, Any]:
    """One policy on every task of ``options`` (or ``tasks``, names and objects): the tiny model with a tokenizer
    learnt from all of them, SFT on their interleaved demonstrations, RL on their interleaved instances; each task's
    RL row on its own held-out seeds, its compute and where its model is."""
    played = [each for _, each in component_tasks(played_task(options.task_specs if tasks is None else tasks))]
    model_dir = demo_tiny_model(played, out, options)
    limit, kl_coef = action_settings(options, played, Policy.from_pretrained(model_dir).tokenizer)
    sft = run_sft(options.sft_options(model_dir, out / "sft"), tasks)
    rl = run_rl(options.rl_options(sft.model_dir, out / options.algorithm, limit, kl_coef), tasks)
    final = rl.evaluations[max(rl.evaluations)]["tasks"]
    return {
        "rl": {label: _stage(evaluation) for label, evaluation in final.items()},
        "model_dir": str(rl.model_dir),
        "max_new_tokens": limit,
        "kl_coef": kl_coef,
        "rl_updates": rl.iterations,
        "compute": {"sft_steps": sft.steps, "sft_tokens": sft.report["tokens_seen"], "rl_updates": rl.iterations},
    }


def action_settings(options: DemoOptions, tasks: list[Task], tokenizer: PreTrainedTokenizerBase) -> tuple[int, float]:
    """The RL stage's longest action and KL coefficient: ``options.max_new_tokens`` and ``options.kl_coef``, or where
    0 the tasks' oracle's (`agentic.training.action_length`): its longest action plus a quarter, at least 64 tokens, and
    under the constraint at least what the grammar needs to admit the oracle's actions; the demo's coefficient scaled down for
    actions longer than those it was set on (`demo_kl_coef`)."""
    actions = oracle_actions(tasks, tokenizer)
    if actions is None:
        raise ValueError(f"the demo needs a task with an oracle: {', '.join(t.name for t in tasks)} has none")
    kl_coef = options.kl_coef or demo_kl_coef(options.algorithm, actions.mean)
    if options.max_new_tokens or not options.constrained:
        return options.max_new_tokens or actions.limit, kl_coef
    return constrained_action_limit(tasks, tokenizer, actions), kl_coef


def demo_tiny_model(tasks: list[str | Task], out: Path, options: DemoOptions) -> Path:
    """The demo's tiny model in ``<out>/tiny-model``, its tokenizer learnt from 200 demonstrations of ``tasks``."""
    seeds = range(DEMO_SEED_START, DEMO_SEED_START + 200)
    return build_tiny_model(tasks, out / "tiny-model", seeds=seeds, seed=options.seed, spell_names=options.spell_names)


def task_demo(options: DemoOptions, task: Task | None = None) -> dict[str, Any]:
    """The demo of one task: ``options.task``, or ``task`` (an object) in its place; its report."""
    run = RunDir(options.out_dir)
    task_name = options.task if task is None else task.name
    run.write_config(asdict(options) | {"task": task_name} | object_config(task=task))
    started = time.perf_counter()
    seeds = list(range(options.n_eval))
    played = make_task(options.task) if task is None else task  # the stages get ``task`` as given: None for a name

    model_dir = demo_tiny_model([played], run.path, options)
    untrained = Policy.from_pretrained(model_dir)
    limit, kl_coef = action_settings(options, [played], untrained.tokenizer)
    greedy = Sampling(temperature=0.0, max_new_tokens=limit, constrained=options.constrained)
    before, _ = evaluate_tool_calls(untrained, played, seeds, greedy)

    sft_options = options.sft_options(model_dir, run.path / "sft")
    sft = run_sft(sft_options, task)
    rl = run_rl(options.rl_options(sft.model_dir, run.path / options.algorithm, limit, kl_coef), task)
    start, end = rl.evaluations[0], rl.evaluations[max(rl.evaluations)]

    report = {
        "task": task_name,
        "algorithm": options.algorithm,
        "constrained": options.constrained,
        "rl_temperature": options.rl_temperature,
        "eval_seeds": [0, options.n_eval - 1],
        "sloppy_demos": sft_options.sloppy_demos,
        "max_new_tokens": limit,
        "kl_coef": kl_coef,
        "model_dir": str(rl.model_dir),
        "untrained": {"tool_calls": before},
        "sft": _stage(start),
        "rl": _stage(end),
        "sft_demo_success_rate": sft.report.get("demo_success_rate"),
        "sft_wall_seconds": sft.wall_seconds,
        "sft_train_seconds": sft.train_seconds,
        "sft_tokens_per_second": sft.tokens_per_second,
        "rl_updates": rl.iterations,
        "rl_updates_planned": options.rl_iterations,
        "rl_stop_reason": rl.stop_reason,
        "compute": {
            "sft_steps": sft.steps,
            "sft_tokens": sft.report["tokens_seen"],
            "rl_updates": rl.iterations,
            "rl_episodes": rl.iterations * options.rl_options("model").episodes_per_update,
        },
        "rl_train_seconds": rl.report["train_seconds"],
        "total_seconds": time.perf_counter() - started,
    }
    run.write_report(report, demo_markdown(report))
    run.close()
    return report


def _stage(evaluation: dict[str, Any]) -> dict[str, Any]:
    return {
        "tool_calls": evaluation["tool_calls"],
        "episodes": evaluation["episodes"],
        "samples": evaluation["samples"],
        "episode_samples": evaluation["episode_samples"],
    }


def _cell(proportion: dict[str, Any] | None) -> str:
    if proportion is None or not proportion["n"]:
        return "—"
    return f"{proportion['value']:.3f} [{proportion['low']:.3f}, {proportion['high']:.3f}]"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(metric, untrained, SFT, RL) rows; the untrained model is measured at decision points only."""
    rows = [(name, *(_cell(report[stage]["tool_calls"][name]) for stage in STAGES)) for name in TOOL_CALL_METRICS]
    episodes = [report[stage]["episodes"] for stage in STAGES[1:]]
    rows += [
        ("success", "—", *(_cell(e["success"]) for e in episodes)),
        ("mean score", "—", *(mean_cell(e["mean_score"]) for e in episodes)),
        ("mean return", "—", *(f"{e['mean_return']:.3f} ± {e['std_return']:.3f}" for e in episodes)),
        ("mean turns", "—", *(f"{e['mean_turns']:.2f}" for e in episodes)),
        ("invalid-action rate", "—", *(_cell(e["invalid_action_rate"]) for e in episodes)),
    ]
    return rows


def compute_line(report: dict[str, Any]) -> str:
    """The compute the demo used (what fixes its result, whatever the machine's speed), and a warning when the RL
    stage's wall-clock safety net cut it short of its updates."""
    compute = report["compute"]
    line = (
        f"Compute: SFT {compute['sft_steps']} steps, {compute['sft_tokens']:,} tokens; {report['algorithm'].upper()} "
        f"{compute['rl_updates']} updates, {compute['rl_episodes']:,} episodes."
    )
    if compute["rl_updates"] < report["rl_updates_planned"]:
        line += (
            f" WARNING: {report['rl_stop_reason']} cut the RL stage at {compute['rl_updates']} of "
            f"{report['rl_updates_planned']} updates; this table is not the demo's."
        )
    return line


TASK_COLUMNS = (
    "task",
    "model",
    "success",
    "mean score",
    "mean return",
    "tool-call accuracy",
    "ask rate",
    "invalid-action rate",
    "mean turns",
)


def task_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    """A several-task demo's rows (`TASK_COLUMNS`): per task untrained (decision points only), SFT and RL alone,
    and the multi-task policy's RL, each on that task's held-out seeds."""
    algorithm = report["algorithm"].upper()
    rows = []
    for label, single in report["tasks"].items():
        stages = {"untrained": single["untrained"], "SFT": single["sft"], algorithm: single["rl"]}
        stages[f"multi-task {algorithm}"] = report["multi_task"]["rl"][label]
        rows += [(label, name, *_metric_cells(stage)) for name, stage in stages.items()]
    return rows


def _metric_cells(stage: dict[str, Any]) -> tuple[str, ...]:
    accuracy = _cell(stage["tool_calls"]["tool_call_accuracy"])
    episodes = stage.get("episodes")
    if episodes is None:
        return ("—", "—", "—", accuracy, "—", "—", "—")
    return (
        _cell(episodes["success"]),
        mean_cell(episodes["mean_score"]),
        f"{episodes['mean_return']:.3f}",
        accuracy,
        _cell(episodes["ask_rate"]),
        _cell(episodes["invalid_action_rate"]),
        f"{episodes['mean_turns']:.2f}",
    )


def tasks_markdown(report: dict[str, Any]) -> str:
    """A several-task demo's report: one table of every task's rows, and each run's compute."""
    lines = [
        f"# agentic demo: {report['task']}",
        "",
        f"Held-out seeds {report['eval_seeds'][0]}–{report['eval_seeds'][1]} of each task, {decoding(report)}; values "
        f"with Wilson 95% intervals. Whole demo: {report['total_seconds']:.0f} s.",
        "",
        "| " + " | ".join(TASK_COLUMNS) + " |",
        "|" + "---|" * len(TASK_COLUMNS),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in task_rows(report)]
    lines += ["", *(f"- {label}: {compute_line(single)}" for label, single in report["tasks"].items())]
    compute = report["multi_task"]["compute"]
    lines.append(
        f"- multi-task: SFT {compute['sft_steps']} steps, {compute['sft_tokens']:,} tokens; "
        f"{report['algorithm'].upper()} {compute['rl_updates']} updates; model `{report['multi_task']['model_dir']}`."
    )
    return "\n".join(lines)


def decoding(report: dict[str, Any]) -> str:
    """How the report's evaluations decoded."""
    return "greedy decoding under the action grammar" if report["constrained"] else "greedy decoding"


def column_names(report: dict[str, Any]) -> tuple[str, str, str, str]:
    return ("metric", "untrained", "after SFT", f"after {report['algorithm'].upper()}")


def demo_markdown(report: dict[str, Any]) -> str:
    columns = column_names(report)
    run_dir = Path(report["model_dir"]).parent.parent
    lines = [
        f"# agentic demo: {report['task']}",
        "",
        f"Held-out seeds {report['eval_seeds'][0]}–{report['eval_seeds'][1]}, {decoding(report)}, actions of at most "
        f"{report['max_new_tokens']} tokens; values with Wilson 95% intervals.",
        f"SFT on demonstrations of which {report['sloppy_demos']:.0%} give up (demonstrator success "
        f"{report['sft_demo_success_rate']:.2f}): {report['sft_train_seconds']:.0f} s of training "
        f"({report['sft_wall_seconds']:.0f} s with demonstrations), {report['sft_tokens_per_second']:,.0f} tokens/s.",
        f"{report['algorithm'].upper()}: {report['rl_updates']} updates ({report['rl_stop_reason']}), {report['rl_train_seconds']:.0f} s, "
        f"KL coefficient {report['kl_coef']:.4g}. "
        f"Whole demo: {report['total_seconds']:.0f} s.",
        compute_line(report),
        "",
        "| " + " | ".join(columns) + " |",
        "|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(report)]
    lines += [
        "",
        f"Model: `{report['model_dir']}`. Demonstrations: `agentic show {run_dir / 'sft' / 'demos.jsonl'}`; "
        f"{report['algorithm'].upper()} curves and samples: `{run_dir / report['algorithm']}`.",
    ]
    return "\n".join(lines)
