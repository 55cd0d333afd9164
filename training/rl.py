"""Turn-level PPO and GRPO for multi-turn agents: the training loop, readable top to bottom (after CleanRL's ``ppo.py``).

Each update ``i``:

1. rollout: each process samples its share of the update's task instances (`RLOptions.train_seeds`) with
   `agentic.rollout.rollout`, recording the sampling log-probs; the sampling seed is derived from
   (seed, i, process), so the batch is a function of the update number;
2. update: `collate`, then `agentic.training.ppo.ppo_update` (critic, GAE over turns, KL-penalised rewards) or
   `agentic.training.grpo.grpo_update` (group-relative advantages); minibatch order also derived from (seed, i, process);
3. log: episode metrics gathered from every process, the update's diagnostics averaged over processes,
   timings, to metrics.jsonl and TensorBoard; the first ``samples_per_update`` transcripts of the main
   process to ``samples/update-N.jsonl`` (render them with ``agentic show``);
4. every ``eval_every`` updates, before the first and after the last: greedy evaluation on the fixed
   held-out seeds (tool-call accuracy at the oracle's decision points, episode success), ``eval/update-N.json``;
5. every ``checkpoint_every`` updates and at the end: a checkpoint (`agentic.training.rl_checkpoint`).

At the end: the final policy in ``out_dir/model`` (a full model, or with LoRA an adapter over the
starting model; `Policy.from_pretrained` and ``agentic eval`` load either), PNG plots, report.json / report.md.

Devices: `accelerate` places everything (CUDA with bf16 autocast over float32 weights where available,
CPU float32 otherwise). Under ``accelerate launch --num_processes N -m agentic.cli ppo ...`` on GPUs, or
``torchrun --standalone --nproc_per_node N -m agentic.cli ppo ...`` on CPUs (gloo), every process
rolls out 1/N of each update's instances and DDP averages the gradients, so an update sees the same
instances as a single-process run; advantages are whitened (PPO) per process, and GRPO groups never
straddle processes. The adaptive KL coefficient moves on the KL averaged over processes.

Resume: ``resume=True`` continues ``out_dir`` from its newest checkpoint (weights, critic, optimizer,
KL coefficient, update counter, RNG states, metrics so far); an ``out_dir`` that already holds a run
is refused without it, so nothing is overwritten by accident. The next batch and minibatch order
follow from the update number, so the resumed run repeats no update and continues exactly.
TensorBoard keeps the events logged after the checkpoint by the interrupted run; metrics.jsonl does not.

NaN/Inf: `NonFiniteGuard` rolls a failed update back; after ``max_failures`` consecutive failures the
run saves a checkpoint of the last good state, writes its report and raises `TrainingDiverged`.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from peft import PeftModel, get_peft_model
from tqdm.auto import tqdm

from agentic.evaluation import evaluate, report_rows
from agentic.policy import Policy
from agentic.registry import make_task
from agentic.rollout import rollout
from agentic.run_dir import RunDir
from agentic.sampling import Sampling
from agentic.task import INVALID_EVENTS
from agentic.training.grpo import group_ids, grpo_update
from agentic.training.options import lora_config
from agentic.training.ppo import (
    KLController,
    NonFiniteGuard,
    TrainingDiverged,
    collate,
    make_optimizer,
    ppo_update,
    separate_critic,
    shared_value_head,
)
from agentic.training.rl_checkpoint import (
    CheckpointError,
    checkpoint_name,
    latest_checkpoint,
    load_trainer_state,
    restore_rng_states,
    save_checkpoint,
)
from agentic.training.rl_config import RLOptions
from agentic.trajectory import Trajectory, write_jsonl

TRAINING_PLOT = (
    "reward",
    "success",
    "kl",
    "entropy",
    "clip_fraction",
    "value_loss",
    "explained_variance",
    "invalid_action_rate",
)
EVAL_PLOT = ("eval/success", "eval/tool_call_accuracy", "eval/mean_return")
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


def derived_seed(*parts: int) -> int:
    """A seed mixed from ``parts`` by numpy's `SeedSequence`: an independent stream per (seed, update, process, use)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def process_seeds(options: RLOptions, iteration: int, process: int, n_processes: int) -> list[int]:
    """This process's contiguous share of update ``iteration``'s instances; GRPO repeats each ``group_size`` times in a row."""
    seeds = options.train_seeds(iteration)
    share = len(seeds) // n_processes
    mine = seeds[process * share : (process + 1) * share]
    return list(mine) if options.algorithm == "ppo" else [seed for seed in mine for _ in range(options.group_size)]


def load_start_model(name_or_path: str) -> tuple[Any, Any]:
    """The starting policy in float32 on the CPU, and its tokenizer; a PEFT adapter is merged into its base."""
    policy = Policy.from_pretrained(name_or_path, device="cpu")
    model = policy.model.merge_and_unload() if isinstance(policy.model, PeftModel) else policy.model
    return model, policy.tokenizer


def build_policy(
    options: RLOptions, run_path: Path, checkpoint: Path | None, accelerator: Accelerator
) -> tuple[Any, Any, Any]:
    """``(model to train, tokenizer, frozen reference or None)``, from the starting model or ``checkpoint``.

    Full fine-tuning: the reference is a frozen copy of the starting model. LoRA: fresh adapters on the
    starting model, which is then the reference (adapters disabled); adapters are saved pointing at it,
    so a starting model that is itself an adapter is merged and written once to ``out_dir/base-model``.
    """
    start, tokenizer = load_start_model(options.model)
    if not options.lora:
        reference = copy.deepcopy(start).requires_grad_(False).eval()
        model = (
            start if checkpoint is None else checkpoint_model(checkpoint, lambda path: load_start_model(str(path))[0])
        )
        return model, tokenizer, reference
    base = Path(options.model)
    if (base / "adapter_config.json").is_file():
        base = run_path / "base-model"
        if accelerator.is_main_process and not (base / "config.json").is_file():
            start.save_pretrained(base)
            tokenizer.save_pretrained(base)
    base_name = str(base.resolve()) if base.is_dir() else options.model
    if checkpoint is not None:
        model = checkpoint_model(checkpoint, lambda path: PeftModel.from_pretrained(start, path, is_trainable=True))
    else:
        model = get_peft_model(start, lora_config(options))
    model.peft_config["default"].base_model_name_or_path = base_name
    return model, tokenizer, None


def checkpoint_model(checkpoint: Path, load: Callable[[Path], Any]) -> Any:
    """``load(checkpoint / "model")``, any failure reported as a corrupt checkpoint."""
    try:
        return load(checkpoint / "model")
    except Exception as error:  # transformers, peft and safetensors raise many kinds for a damaged directory
        raise CheckpointError(
            f"checkpoint {checkpoint} is corrupt (delete it to resume from an earlier one): its model does not load: {error}"
        ) from None


def check_run_dir(options: RLOptions, run_path: Path) -> Path | None:
    """The checkpoint to resume from (``resume``), after checking that the saved run's options agree; else None,
    after checking that ``out_dir`` holds no run that starting afresh would overwrite."""
    if not options.resume:
        if (run_path / "metrics.jsonl").exists() or (run_path / "checkpoints").exists():
            raise ValueError(
                f"{run_path} already holds a run: pass --resume to continue it, or choose another --out-dir"
            )
        return None
    checkpoint = latest_checkpoint(run_path / "checkpoints")
    try:
        saved = json.loads((run_path / "config.json").read_text(encoding="utf-8"))
        saved_options = RLOptions(**{k: v for k, v in saved.items() if k in RLOptions.__dataclass_fields__})
    except (OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"cannot resume {run_path}: its config.json is missing or unreadable ({error})") from None
    differences = saved_options.differences(options)
    if differences:
        raise ValueError(f"cannot resume {run_path} with different options: {'; '.join(differences)}")
    return checkpoint


def forget_after(run_path: Path, checkpoint: Path, iteration: int) -> None:
    """Make ``run_path`` hold what ``checkpoint`` knew: its metrics, and no evaluations or samples of later updates
    (the interrupted run's, which the resumed run repeats)."""
    (run_path / "metrics.jsonl").write_bytes((checkpoint / "metrics.jsonl").read_bytes())
    for path in [*(run_path / "eval").glob("update-*.json"), *(run_path / "samples").glob("update-*.jsonl")]:
        if int(_UPDATE_FILE.fullmatch(path.name).group(1)) > iteration:
            path.unlink()


def episode_stats(trajectories: list[Trajectory], accelerator: Accelerator) -> dict[str, float]:
    """Rollout metrics over every process's episodes: reward, success, turns, invalid-action rate, tokens."""
    rows = torch.tensor(
        [
            [
                sum(t.rewards),
                t.success,
                len(t.turns),
                sum(turn.event in INVALID_EVENTS for turn in t.turns),
                sum(t.loss_mask),
                len(t.token_ids),
                t.truncated,
            ]
            for t in trajectories
        ],
        dtype=torch.float64,
        device=accelerator.device,
    )
    returns, success, turns, invalid, agent_tokens, tokens, truncated = accelerator.gather(rows).T.tolist()
    n = len(returns)
    return {
        "episodes": n,
        "reward": sum(returns) / n,
        "success": sum(success) / n,
        "mean_turns": sum(turns) / n,
        "invalid_action_rate": sum(invalid) / max(sum(turns), 1),
        "truncated": sum(truncated) / n,
        "agent_tokens": sum(agent_tokens),
        "tokens": sum(tokens),
    }


def mean_over_processes(stats: dict[str, float], accelerator: Accelerator) -> dict[str, float]:
    if accelerator.num_processes == 1:
        return stats
    names = sorted(stats)
    values = accelerator.reduce(
        torch.tensor([stats[n] for n in names], dtype=torch.float64, device=accelerator.device), "mean"
    )
    return dict(zip(names, values.tolist()))


def eval_metrics(report: dict[str, Any]) -> dict[str, float]:
    """The numbers of an `agentic.evaluation.evaluate` report that go on the training curves."""
    calls, episodes = report["tool_calls"], report["episodes"]
    return {
        "tool_call_accuracy": calls["tool_call_accuracy"]["value"],
        "tool_call_validity": calls["tool_call_validity"]["value"],
        "success": episodes["success"]["value"],
        "mean_return": episodes["mean_return"],
        "mean_turns": episodes["mean_turns"],
        "invalid_action_rate": episodes["invalid_action_rate"]["value"],
    }


def run_rl(options: RLOptions) -> RLResult:  # noqa: C901 (to be split into the CleanRL-style loop)
    """Train ``options.model`` on ``options.task`` with PPO or GRPO; see the module docstring for what each update does."""
    started = time.perf_counter()
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(),  # on a CPU-only machine this is what lets several processes use gloo
        mixed_precision="bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no",
    )
    main, rank, n_processes = accelerator.is_main_process, accelerator.process_index, accelerator.num_processes
    if options.instances_per_update % n_processes:
        what = "episodes" if options.algorithm == "ppo" else "groups"
        raise ValueError(
            f"{what} ({options.instances_per_update}) must be a multiple of the number of processes ({n_processes})"
        )
    task = make_task(options.task)
    run_path = Path(options.out_dir)
    checkpoint = check_run_dir(options, run_path)
    accelerator.wait_for_everyone()  # every process has looked at out_dir before the main one writes to it
    run = RunDir(run_path) if main else None

    if checkpoint is not None:
        state, head_state = load_trainer_state(checkpoint, needs_value_head=options.algorithm == "ppo")
    set_seed(options.seed)
    model, tokenizer, reference = build_policy(options, run_path, checkpoint, accelerator)
    if options.algorithm == "grpo" and not options.kl_coef:
        reference = None  # GRPO without its KL term never reads the reference
    value_head = None
    if options.algorithm == "ppo":
        value_head = shared_value_head(model) if options.critic == "shared" else separate_critic(model)
    optimizer = make_optimizer(model, value_head, lr=options.lr, value_lr=options.value_lr)
    kl = KLController(options.kl_coef, options.kl_target or None, options.kl_horizon)
    guard = NonFiniteGuard(optimizer, options.max_failures)
    start_iteration = 0
    if checkpoint is not None:
        if value_head is not None:
            value_head.load_state_dict(head_state)
        optimizer.load_state_dict(state["optimizer"])
        kl.coef, start_iteration = state["kl_coef"], state["iteration"]
        guard.failures, guard.total_failures = state["failures"], state["total_failures"]
        restore_rng_states(state["rng"])
        if main:
            forget_after(run_path, checkpoint, start_iteration)
    if main:
        run.write_config(asdict(options) | {"device": str(accelerator.device), "processes": n_processes})

    trained_policy = accelerator.prepare_model(model).eval()
    trained_head = accelerator.prepare_model(value_head) if value_head is not None else None
    if reference is not None:
        reference = reference.to(accelerator.device)
    policy = Policy(accelerator.unwrap_model(trained_policy), tokenizer)
    config = options.update_config()
    greedy = Sampling(temperature=0.0, max_new_tokens=options.max_new_tokens)

    def save(iteration: int) -> None:
        if main:
            trainer_state = {
                "optimizer": optimizer.state_dict(),
                "kl_coef": kl.coef,
                "failures": guard.failures,
                "total_failures": guard.total_failures,
            }
            save_checkpoint(
                run_path / "checkpoints",
                iteration,
                policy.model,
                tokenizer,
                value_head,
                trainer_state,
                run_path / "metrics.jsonl",
            )
        accelerator.wait_for_everyone()

    def evaluate_now(step: int) -> None:
        if main:
            with accelerator.autocast():
                report = evaluate(policy, options.task, list(options.eval_seeds), greedy)
            (run_path / "eval").mkdir(exist_ok=True)
            run.write_json(f"eval/{checkpoint_name(step)}.json", report)
            run.log(step, eval_metrics(report), prefix="eval/")
        accelerator.wait_for_everyone()

    if options.n_eval and checkpoint is None:
        evaluate_now(0)
    stop_reason = "completed"
    iteration = saved_at = evaluated_at = start_iteration
    bar = tqdm(
        total=options.iterations,
        initial=start_iteration,
        desc=options.algorithm,
        unit="update",
        disable=not (options.progress and main),
    )
    try:
        while iteration < options.iterations:
            iteration_started = time.perf_counter()
            seeds = process_seeds(options, iteration, rank, n_processes)
            sampling = Sampling(
                temperature=options.temperature,
                max_new_tokens=options.max_new_tokens,
                seed=derived_seed(options.seed, iteration, rank),
            )
            with accelerator.autocast():
                trajectories = rollout(policy, task, seeds, sampling)
            rollout_seconds = time.perf_counter() - iteration_started

            batch = collate(trajectories, policy.pad_id)
            generator = torch.Generator().manual_seed(derived_seed(options.seed, iteration, rank, 1))
            with accelerator.autocast():
                if options.algorithm == "ppo":
                    # a fixed controller inside the update: the adaptive one moves below, on the KL of every process
                    stats = ppo_update(
                        trained_policy,
                        trained_head,
                        optimizer,
                        batch,
                        config,
                        guard,
                        kl=KLController(kl.coef),
                        reference=reference,
                        generator=generator,
                    )
                else:
                    stats = grpo_update(
                        trained_policy,
                        optimizer,
                        batch,
                        group_ids(trajectories),
                        config,
                        guard,
                        reference=reference,
                        generator=generator,
                    )
            stats = mean_over_processes(stats, accelerator)
            episodes = episode_stats(trajectories, accelerator)
            if "kl" in stats and not stats["skipped"]:
                kl.update(stats["kl"], episodes["episodes"])
            iteration += 1
            seconds = time.perf_counter() - iteration_started

            if main:
                run.log(
                    iteration,
                    stats
                    | episodes
                    | {
                        "first_seed": options.train_seeds(iteration - 1).start,
                        "rollout_seconds": rollout_seconds,
                        "update_seconds": seconds - rollout_seconds,
                        "seconds": seconds,
                        "episodes_per_second": episodes["episodes"] / rollout_seconds,
                        "elapsed_seconds": time.perf_counter() - started,
                    },
                )
                if options.samples_per_update:
                    (run_path / "samples").mkdir(exist_ok=True)
                    write_jsonl(
                        trajectories[: options.samples_per_update],
                        run_path / "samples" / f"{checkpoint_name(iteration)}.jsonl",
                    )
                bar.update()
                bar.set_postfix(reward=f"{episodes['reward']:.3f}", success=f"{episodes['success']:.2f}")
            if options.n_eval and options.eval_every and iteration % options.eval_every == 0:
                evaluate_now(iteration)
                evaluated_at = iteration
            if options.checkpoint_every and iteration % options.checkpoint_every == 0:
                save(iteration)
                saved_at = iteration
            if options.max_seconds and time.perf_counter() - started >= options.max_seconds:
                accelerator.set_trigger()
            if accelerator.check_trigger():
                stop_reason = f"time limit of {options.max_seconds:g} s"
                break
    except TrainingDiverged as error:
        # the guard has restored the last good weights and optimizer state: keep them
        iteration += 1
        save(iteration)
        if main:
            finish_run(options, run, iteration, f"diverged: {error}", started, accelerator)
        raise
    finally:
        bar.close()

    if options.n_eval and evaluated_at != iteration:
        evaluate_now(iteration)
    if saved_at != iteration:
        save(iteration)
    model_dir = run_path / "model"
    report: dict[str, Any] = {}
    if main:
        policy.model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        report = finish_run(options, run, iteration, stop_reason, started, accelerator)
    accelerator.wait_for_everyone()
    return RLResult(run_path, model_dir, iteration, stop_reason, saved_evaluations(run_path, iteration), report)


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


def finish_run(
    options: RLOptions, run: RunDir, iteration: int, stop_reason: str, started: float, accelerator: Accelerator
) -> dict[str, Any]:
    """Plots, report.json and report.md, from the metrics and evaluations on disk (so a resumed run reports its whole history)."""
    run.plot(TRAINING_PLOT, "training.png")
    run.plot(EVAL_PLOT, "eval.png")
    rows = [r for r in run.metrics() if "seconds" in r and r["step"] <= iteration]
    evaluations = saved_evaluations(run.path, iteration)
    episodes = sum(r["episodes"] for r in rows)
    rollout_seconds = sum(r["rollout_seconds"] for r in rows)
    report = {
        "algorithm": options.algorithm,
        "task": options.task,
        "start_model": options.model,
        "model_dir": str(run.path / "model"),
        "lora": options.lora,
        "device": str(accelerator.device),
        "processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
        "updates": iteration,
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
        "options": asdict(options),
    }
    run.write_report(report, report_markdown(report))
    run.close()
    return report


def report_markdown(report: dict[str, Any]) -> str:
    name = report["algorithm"].upper()
    lines = [
        f"# {name} on {report['task']}",
        "",
        f"- start model: `{report['start_model']}` ({'LoRA' if report['lora'] else 'full fine-tuning'}); final model: `{report['model_dir']}`",
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
        lines += [
            f"| {metric} | {before} | {after} |"
            for (metric, before), (_, after) in zip(report_rows(first), report_rows(last))
        ]
    return "\n".join(lines)
