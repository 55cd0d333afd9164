"""The run directory of a PPO / GRPO run, as `agentic.training.rl.run_rl` fills it (the main process writes; every
process takes part in evaluations and checkpoints, which wait for each other):

    config.json            the options (with the algorithm's name), device and number of processes
    metrics.jsonl          one row per update (and eval/... rows); the same under tensorboard/
    samples/update-N.jsonl the first transcripts of each update (``agentic show`` renders them)
    eval/update-N.json     held-out evaluations (update 0 is the starting model)
    checkpoints/update-N/  see `agentic.training.rl_checkpoint` (the last two are kept)
    plots/training.png, plots/eval.png
    model/                 the final policy
    report.json, report.md
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from tqdm.auto import tqdm

from agentic.adapters import record_base
from agentic.evaluation import evaluate_each, report_rows
from agentic.mixture import TaskMixture
from agentic.policy import Policy
from agentic.run_dir import Panel, RunDir, plot_title, write_jsonl
from agentic.sampling import Sampling
from agentic.task import Task
from agentic.training.callbacks import Callback, stop_asked
from agentic.training.options import trackers
from agentic.training.ppo import TrainingDiverged
from agentic.training.rl_checkpoint import CheckpointError, checkpoint_name, latest_checkpoint, save_checkpoint
from agentic.training.rl_config import RLOptions, options_from_config
from agentic.trajectory import Trajectory

REWARD_PANELS = (
    Panel(("reward",), "reward: mean episode return (higher is better)"),
    Panel(("score",), "task score (higher is better)"),
    Panel(("success",), "success rate (rollouts)"),
)
KL_PANELS = {
    "ppo": Panel(
        ("kl", "kl_k3"),
        "KL to the reference, nats per episode",
        (
            "k1 = log π − log π_ref, the penalty (an estimate: < 0 when the samples are likelier under the reference)",
            "k3, never < 0 (logged beside it)",
        ),
    ),
    "grpo": Panel(("kl_per_token",), "KL to the reference per token (k3 ≥ 0, the loss term)"),
}
LOSS_PANELS = (
    Panel(("entropy",), "entropy, nats per agent token"),
    Panel(("policy_loss",), "policy loss (clipped surrogate, minimised)"),
    Panel(("clip_fraction",), "share of agent tokens clipped"),
    Panel(("value_loss",), "value loss (lower is better)"),
    Panel(("explained_variance",), "critic's explained variance (1 best; ≤ 0 no better than the mean)"),
    Panel(("missing_eos",), "share of responses cut without eos (lower is better)"),
    Panel(("invalid_action_rate",), "invalid-action rate (lower is better)"),
)
EVAL_PLOT = (
    Panel(("eval/success",), "held-out success (greedy)"),
    Panel(("eval/tool_call_accuracy",), "held-out tool-call accuracy (greedy)"),
    Panel(("eval/mean_return",), "held-out mean return (greedy)"),
)
"""Evaluation curves; success and tool-call accuracy with the Wilson 95% bands `eval_metrics` logs."""
_UPDATE_FILE = re.compile(r"update-(\d+)\.jsonl?")


@dataclass(frozen=True)
class RLResult:
    """Where the run went and what it measured; ``evaluations`` maps an update number (0: the starting model) to its evaluation."""

    run_dir: Path
    model_dir: Path
    iterations: int
    stop_reason: str
    evaluations: dict[int, dict[str, Any]]
    report: dict[str, Any]


class RLRunDir:
    """One run's directory and its progress bar, and which update was last evaluated and saved."""

    def __init__(
        self,
        options: RLOptions,
        accelerator: Accelerator,
        task: Task | TaskMixture,
        objects: dict[str, str],
        callbacks: Sequence[Callback] = (),
    ):
        """``task``: the task trained on (evaluations play it too); ``objects``: what config.json records of objects
        given in place of names (`agentic.training.objects.object_config`); ``callbacks``: shown every update and
        evaluation (`stop_reason`)."""
        self.options, self.accelerator, self.task, self.objects = options, accelerator, task, objects
        self.callbacks = callbacks
        self.path = Path(options.out_dir)
        self.main = accelerator.is_main_process
        tensorboard = "tensorboard" in trackers(options.report_to)
        self.run = RunDir(self.path, tensorboard=tensorboard) if self.main else None
        self.evaluated_at = self.saved_at = 0
        self.learning_rate = options.learning_rate
        self.action_limit = options.max_new_tokens
        self.bar: Any = None

    def checkpoint_to_resume(self) -> Path | None:
        """The checkpoint to resume from (``resume``), after checking that the saved run's options agree; else None,
        after checking that ``out_dir`` holds no run that starting afresh would overwrite."""
        checkpoint = None
        if not self.options.resume:
            if (self.path / "metrics.jsonl").exists() or (self.path / "checkpoints").exists():
                raise ValueError(
                    f"{self.path} already holds a run: pass --resume to continue it, or choose another --out-dir"
                )
        else:
            checkpoint = latest_checkpoint(self.path / "checkpoints")
            differences = self.saved_options().differences(self.options)
            if differences:
                raise ValueError(f"cannot resume {self.path} with different options: {'; '.join(differences)}")
        self.accelerator.wait_for_everyone()  # every process has looked at out_dir before the main one writes to it
        return checkpoint

    def saved_options(self) -> RLOptions:
        try:
            return options_from_config(json.loads((self.path / "config.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise CheckpointError(
                f"cannot resume {self.path}: its config.json is missing or unreadable ({error})"
            ) from None

    def begin(self, start: int, checkpoint: Path | None, learning_rate: float, mode: str, action_limit: int) -> None:
        """Record the options, the episodes' ``mode`` (chat or raw) and the longest action sampled (``action_limit``,
        evaluations included); when resuming, make the directory hold what ``checkpoint`` knew (its metrics, and no
        evaluations or samples of later updates, which the resumed run repeats)."""
        self.evaluated_at = self.saved_at = start
        self.learning_rate, self.action_limit = learning_rate, action_limit
        if self.run is not None:
            if checkpoint is not None:
                forget_after(self.path, checkpoint, start)
            extra = {
                "device": str(self.accelerator.device),
                "processes": self.accelerator.num_processes,
                "mode": mode,
                "action_limit": action_limit,
            }
            extra |= self.objects
            self.run.write_config(self.options.to_dict() | extra)
        self.accelerator.init_trackers(self.path.name, config=self.options.to_dict())  # those of `report_to`
        self.bar = tqdm(
            total=self.options.iterations,
            initial=start,
            desc=self.options.name,
            unit="update",
            disable=not (self.options.progress and self.main),
        )

    def evaluate_start(self, policy: Policy, started: float) -> str:
        """The evaluation of the starting model (update 0), when there is one, shown to the callbacks; why the run
        stops before its first update ("" to go on)."""
        return self.stop_reason(started, 0, None, self.evaluate(policy, 0)) if self.options.n_eval else ""

    def evaluation_due(self, done: int) -> bool:
        """Every ``eval_every`` updates, and after the last."""
        every = self.options.eval_every
        return bool(self.options.n_eval and ((every and done % every == 0) or done == self.options.iterations))

    def checkpoint_due(self, done: int) -> bool:
        return bool(self.options.checkpoint_every and done % self.options.checkpoint_every == 0)

    def log_update(self, done: int, record: dict[str, Any], trajectories: list[Trajectory]) -> None:
        """Update ``done``'s metrics, and its first transcripts under samples/."""
        if self.run is not None:
            self.run.log(done, record | {"first_seed": self.options.train_seeds(done - 1).start})
            self.accelerator.log(_numbers(record), step=done)
            if self.options.samples_per_update:
                samples = trajectories[: self.options.samples_per_update]
                write_jsonl(samples, self.path / "samples" / f"{checkpoint_name(done)}.jsonl")
            self.bar.update()
            self.bar.set_postfix(reward=f"{record['reward']:.3f}", success=f"{record['success']:.2f}")

    def evaluate(self, policy: Policy, step: int) -> dict[str, Any] | None:
        """The greedy evaluation on the held-out seeds, as ``eval/update-N.json`` and ``eval/...`` metrics (with their
        Wilson intervals); its report on the main process, None on the others."""
        report = None
        if self.run is not None:
            options = self.options
            greedy = Sampling(temperature=0.0, max_new_tokens=self.action_limit, constrained=options.constrained)
            with self.accelerator.autocast():
                report = evaluate_each(policy, self.task, list(options.eval_seeds), greedy)
            self.run.write_json(f"eval/{checkpoint_name(step)}.json", report)
            self.run.log(step, eval_metrics(report), prefix="eval/")
            self.accelerator.log({f"eval/{k}": v for k, v in _numbers(eval_metrics(report)).items()}, step=step)
        self.evaluated_at = step
        self.accelerator.wait_for_everyone()
        return report

    def save(self, step: int, state: Any, tokenizer: Any) -> None:
        """Checkpoint ``step``: the model and tokenizer, and ``state`` (`agentic.training.rl.TrainingState`)."""
        if self.run is not None:
            metrics = self.path / "metrics.jsonl"
            save_checkpoint(self.path / "checkpoints", step, state.model, tokenizer, state.state_dict(), metrics)
        self.saved_at = step
        self.accelerator.wait_for_everyone()

    def stop_reason(
        self, started: float, done: int, metrics: dict[str, Any] | None, evaluation: dict[str, Any] | None
    ) -> str:
        """Why the run stops after update ``done``: a callback shown its ``metrics`` and ``evaluation`` asked to (the
        one place the loop calls them: `agentic.training.callbacks.stop_asked`), or ``max_seconds`` have passed, on
        any process; "" to go on. Every process must ask, so that they all stop together."""
        asked = stop_asked(self.callbacks, done, metrics, evaluation)
        time_up = bool(self.options.max_seconds) and time.perf_counter() - started >= self.options.max_seconds
        if asked or time_up:
            self.accelerator.set_trigger()
        if not self.accelerator.check_trigger():
            return ""
        return asked or (f"time limit of {self.options.max_seconds:g} s" if time_up else "stopped by another process")

    def finish(self, done: int, policy: Policy, state: Any, failure: str, stop_reason: str, started: float) -> RLResult:
        """The final evaluation, checkpoint, model, plots and report; a ``failure`` skips the evaluation and the model,
        keeps the last good state in a checkpoint and raises `TrainingDiverged` with it."""
        self.bar.close()
        if not failure and self.options.n_eval and self.evaluated_at != done:
            self.evaluate(policy, done)
        if self.saved_at != done:
            self.save(done, state, policy.tokenizer)
        model_dir = self.path / "model"
        report: dict[str, Any] = {}
        if self.run is not None:
            if not failure:
                policy.model.save_pretrained(model_dir)
                policy.tokenizer.save_pretrained(model_dir)
                if (model_dir / "adapter_config.json").is_file():
                    record_base(model_dir)  # so that the run directory loads after being moved
            report = self.write_report(done, failure or stop_reason, started)
        for tracker in self.accelerator.trackers:  # not `end_training`: it also ends the process group
            tracker.finish()
        self.accelerator.wait_for_everyone()
        if failure:
            raise TrainingDiverged(failure)
        return RLResult(self.path, model_dir, done, stop_reason, saved_evaluations(self.path, done), report)

    def write_report(self, done: int, stop_reason: str, started: float) -> dict[str, Any]:
        """Plots, report.json and report.md, from the metrics and evaluations on disk (so a resumed run reports its
        whole history)."""
        run, options, accelerator = self.run, self.options, self.accelerator
        title = plot_title(options.name.upper(), options.task, options.model)
        training = (*REWARD_PANELS, KL_PANELS[options.name], *LOSS_PANELS)
        run.plot(training, "training.png", title=title, x_label="update")
        run.plot(EVAL_PLOT, "eval.png", title=f"{title}: held-out evaluation", x_label="update")
        rows = [r for r in run.metrics() if "seconds" in r and r["step"] <= done]
        evaluations = saved_evaluations(run.path, done)
        episodes = sum(r["episodes"] for r in rows)
        rollout_seconds = sum(r["rollout_seconds"] for r in rows)
        report = {
            "algorithm": options.name,
            "task": options.task,
            "start_model": options.model,
            "model_dir": str(run.path / "model"),
            "lora_rank": options.lora_rank,
            "learning_rate": self.learning_rate,
            "action_limit": self.action_limit,
            "device": str(accelerator.device),
            "processes": accelerator.num_processes,
            "mixed_precision": accelerator.mixed_precision,
            "updates": done,
            "stop_reason": stop_reason,
            "episodes": episodes,
            "skipped_updates": sum(r.get("skipped", 0) for r in rows),
            "train_seconds": sum(r["seconds"] for r in rows),
            "seconds_per_update": sum(r["seconds"] for r in rows) / max(len(rows), 1),
            "episodes_per_second": episodes / rollout_seconds if rollout_seconds else float("nan"),
            "wall_seconds_this_session": time.perf_counter() - started,
            "final_reward": rows[-1]["reward"] if rows else float("nan"),
            "eval_seeds": [0, options.n_eval - 1] if options.n_eval else [],
            "evaluations": {step: eval_metrics(report) for step, report in evaluations.items()},
            "first_evaluation": evaluations[min(evaluations)] if evaluations else None,
            "last_evaluation": evaluations[max(evaluations)] if evaluations else None,
            "options": options.to_dict(),
        } | self.objects
        run.write_report(report, report_markdown(report))
        run.close()
        return report


def forget_after(run_path: Path, checkpoint: Path, iteration: int) -> None:
    """Make ``run_path`` hold what ``checkpoint`` knew: its metrics, and no evaluations or samples of later updates."""
    (run_path / "metrics.jsonl").write_bytes((checkpoint / "metrics.jsonl").read_bytes())
    for path in [*(run_path / "eval").glob("update-*.json"), *(run_path / "samples").glob("update-*.jsonl")]:
        if int(_UPDATE_FILE.fullmatch(path.name).group(1)) > iteration:
            path.unlink()


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of ``metrics``: what a tracker takes."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def eval_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The numbers of an `agentic.evaluation.evaluate` report that go on the training curves: each proportion with its
    Wilson 95% interval (``<name>_low``, ``<name>_high``). For a task mixture's (`evaluate_each`), each task's as
    ``<task>/<name>``, and the unweighted mean over the tasks (those where it is defined) as ``<name>``."""
    if "tasks" in report:
        each = {label: eval_metrics(task_report) for label, task_report in report["tasks"].items()}
        names = [name for name in next(iter(each.values())) if not name.endswith(("_low", "_high"))]
        mean = {name: _defined_mean([metrics[name] for metrics in each.values()]) for name in names}
        return mean | {f"{label}/{name}": value for label, metrics in each.items() for name, value in metrics.items()}
    calls, episodes = report["tool_calls"], report["episodes"]
    proportions = {
        "tool_call_accuracy": calls["tool_call_accuracy"],
        "tool_call_validity": calls["tool_call_validity"],
        "success": episodes["success"],
        "invalid_action_rate": episodes["invalid_action_rate"],
    }
    intervals = {f"{name}_{end}": p[end] for name, p in proportions.items() for end in ("low", "high")}
    return (
        {name: p["value"] for name, p in proportions.items()}
        | {"mean_return": episodes["mean_return"], "mean_turns": episodes["mean_turns"]}
        | intervals
    )


def _defined_mean(values: list[float]) -> float:
    defined = [v for v in values if math.isfinite(v)]
    return sum(defined) / len(defined) if defined else math.nan


def evaluation_rows(first: dict[str, Any], last: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, first, last) rows of two evaluations (`report_rows`); a mixture's per task, named ``task: metric``."""
    if "tasks" not in first:
        return [(metric, before, after) for (metric, before), (_, after) in zip(report_rows(first), report_rows(last))]
    return [
        (f"{label}: {metric}", before, after)
        for label in first["tasks"]
        for metric, before, after in evaluation_rows(first["tasks"][label], last["tasks"][label])
    ]


def saved_evaluations(run_path: Path, last: int) -> dict[int, dict[str, Any]]:
    """The evaluation reports in ``run_path/eval`` up to update ``last``, by update number (with NaN back where
    the JSON holds null, e.g. the tool-call accuracy of a task without tools)."""
    found = {int(_UPDATE_FILE.fullmatch(p.name).group(1)): p for p in (run_path / "eval").glob("update-*.json")}

    def nan_for_null(record: dict[str, Any]) -> dict[str, Any]:
        return {k: math.nan if v is None else v for k, v in record.items()}

    return {
        step: json.loads(found[step].read_text(encoding="utf-8"), object_hook=nan_for_null)
        for step in sorted(found)
        if step <= last
    }


def report_markdown(report: dict[str, Any]) -> str:
    name = report["algorithm"].upper()
    mode = f"LoRA rank {report['lora_rank']}" if report["lora_rank"] else "full fine-tuning"
    lines = [
        f"# {name} on {report['task']}",
        "",
        f"- start model: `{report['start_model']}` ({mode}, learning rate {report['learning_rate']:g}, actions of at most {report['action_limit']} tokens); final model: `{report['model_dir']}`",
        f"- {report['updates']} updates ({report['stop_reason']}), {report['episodes']:,} episodes, {report['skipped_updates']:g} updates rolled back",
        (
            f"- {report['train_seconds']:.0f} s of training, {report['seconds_per_update']:.1f} s per update, "
            f"{report['episodes_per_second']:.1f} episodes/s in rollouts; {report['processes']} process(es) on {report['device']}, "
            f"mixed precision {report['mixed_precision']}"
        ),
        "- curves: `plots/training.png`, `plots/eval.png`; transcripts: `agentic show samples/update-N.jsonl`",
    ]
    first, last = report["first_evaluation"], report["last_evaluation"]
    if first is not None:
        steps = sorted(report["evaluations"])
        lines += [
            "",
            f"Greedy evaluation on held-out seeds {report['eval_seeds'][0]}–{report['eval_seeds'][1]} (Wilson 95% intervals):",
            "",
        ]
        lines += [f"| metric | update {steps[0]} | update {steps[-1]} |", "|---|---|---|"]
        lines += [f"| {metric} | {before} | {after} |" for metric, before, after in evaluation_rows(first, last)]
    return "\n".join(lines)
