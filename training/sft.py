"""Agentic SFT warm-up: fine-tune a causal LM on oracle demonstrations, with the loss on agent tokens only.

The demonstrations are the task oracle's episodes run through the real environment
(`agentic.training.demos`), so they cannot disagree with it; a ``sloppy_demos`` fraction can be made
imperfect on purpose, to leave reinforcement learning headroom. Each becomes one
pre-tokenized row, ``input_ids`` (prompt, actions and replies exactly as a rollout sees them) and
``assistant_masks`` (1 on the agent's tokens). TRL's `SFTTrainer` turns the mask into labels,
-100 on prompt and environment tokens, and trains on padded batches (no packing, no padding-free
flattening, so sequences never attend across each other), running the tokens every row of a batch begins with
once (`agentic.training.shared_prefix`). Full fine-tuning, or LoRA through ``peft_config``.

Demonstration seeds start at `DEMO_SEED_START` (10 000) so that they never meet the evaluation
seeds (0, 1, 2, ...). ``model="tiny"`` builds the embedded default model (`agentic.training.tiny_model`),
its tokenizer learnt from the first `TOKENIZER_DEMOS` demonstrations' transcripts. CUDA with bf16
where available, CPU float32 otherwise. The same options and seed give the same run.

The run directory (`agentic.run_dir.RunDir`) receives config.json, demos.jsonl (render one with
``agentic show``), metrics.jsonl and TensorBoard logs, checkpoints/, plots/training.png,
report.json / report.md, and the final model in ``model/``: with LoRA a PEFT adapter directory, which
`Policy.from_pretrained` loads (also after the run directory was moved: `agentic.adapters`), and
``peft.AutoPeftModelForCausalLM.from_pretrained`` where the base model still is where it was trained; without
LoRA a full model for ``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    PrinterCallback,
    TrainerCallback,
    set_seed,
)
from trl import SFTConfig, SFTTrainer

from agentic.adapters import record_base
from agentic.encoding import episode_mode
from agentic.evaluation import evaluate_each
from agentic.mixture import TaskMixture, component_tasks, given_by_name, played_task
from agentic.models import resolve_model as known_model
from agentic.policy import Policy
from agentic.run_dir import Panel, RunDir, plot_title, write_jsonl
from agentic.sampling import Sampling
from agentic.task import Task
from agentic.training.demos import demonstrations
from agentic.training.objects import check_model_object, model_name, object_config
from agentic.training.options import external_trackers, lora_config, trackers, trainer_arguments
from agentic.training.rl_run import eval_metrics
from agentic.training.sft_config import TINY_MODEL, TOKENIZER_DEMOS, SFTOptions
from agentic.training.sft_data import SFTData, load_sft_dataset, sft_rows
from agentic.training.shared_prefix import SharedPrefixSFTTrainer
from agentic.training.tiny_model import build_tiny_model
from agentic.trajectory import Trajectory, to_dataset

log = logging.getLogger(__name__)
SFT_PLOT = (
    Panel(("loss",), "training loss: cross-entropy on agent tokens (lower is better)"),
    Panel(("mean_token_accuracy",), "agent-token accuracy (higher is better)"),
    Panel(("learning_rate",), "learning rate"),
    Panel(("grad_norm",), "gradient norm (before clipping)"),
)


@dataclass(frozen=True)
class SFTResult:
    """Where the run went and what it measured. ``loss_curve`` holds (step, training loss) pairs."""

    run_dir: Path
    model_dir: Path
    loss_curve: list[tuple[int, float]]
    steps: int
    wall_seconds: float
    train_seconds: float
    tokens_per_second: float
    report: dict[str, Any]

    @property
    def final_loss(self) -> float:
        return self.loss_curve[-1][1]


def demo_dataset(trajectories: list[Trajectory]) -> datasets.Dataset:
    """One pre-tokenized row per demonstration: ``input_ids`` and ``assistant_masks`` (1 on agent tokens), as `SFTTrainer` takes them."""
    return datasets.Dataset.from_dict(
        {"input_ids": [t.token_ids for t in trajectories], "assistant_masks": [t.loss_mask for t in trajectories]}
    )


def sft_trainer(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    dataset: datasets.Dataset,
    options: SFTOptions,
    callbacks: list[TrainerCallback] = (),
    **config_overrides: Any,
) -> SFTTrainer:
    """TRL's `SFTTrainer` configured from ``options`` (``config_overrides`` go to `SFTConfig`): padded batches,
    their shared prefix run once (`SharedPrefixSFTTrainer`) unless ``options.share_prefix`` is off, labels from
    ``assistant_masks``, the shared trainer arguments (`trainer_arguments`), checkpoints in
    ``<out_dir>/checkpoints``.

    With ``options.micro_batches`` > 1 each step's demonstrations are drawn at random as before, then split by
    transformers' `BatchRebalanceSampler` into micro-batches of similar lengths whose gradients are accumulated; the
    loss is normalised by the whole step's label count (``num_items_in_batch``), so the step is the one-batch step.
    That sampler shuffles with a seed of its own, so the dataset is shuffled with ``options.seed`` first."""
    arguments = trainer_arguments(
        Path(options.out_dir) / "checkpoints",
        epochs=options.epochs,
        learning_rate=options.learning_rate,
        batch_size=options.batch_size,
        seed=options.seed,
        max_steps=options.max_steps or -1,
        warmup_steps=options.warmup_ratio,
        weight_decay=options.weight_decay,
        max_length=options.max_length,
        logging_steps=options.log_every,
        save_strategy="steps" if options.checkpoint_every else "no",
        save_steps=options.checkpoint_every or 500,
        save_total_limit=2,
        disable_tqdm=not options.progress,
        include_num_input_tokens_seen="non_padding",
        report_to=external_trackers(options.report_to) or "none",
        run_name=Path(options.out_dir).name,
    )
    if options.micro_batches > 1:
        arguments |= dict(
            per_device_train_batch_size=options.batch_size // options.micro_batches,
            gradient_accumulation_steps=options.micro_batches,
            train_sampling_strategy="batch_rebalance",
        )
        dataset = dataset.shuffle(seed=options.seed)
    lora = options.lora_rank and lora_config(options.lora_rank, options.lora_alpha, options.lora_target_modules)
    trainer_class = SharedPrefixSFTTrainer if options.share_prefix else SFTTrainer
    trainer = trainer_class(
        model=model,
        args=SFTConfig(**arguments | config_overrides),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora or None,
        callbacks=list(callbacks),
    )
    if not options.progress:  # without a progress bar the trainer prints every log dict; the run directory keeps them
        trainer.remove_callback(PrinterCallback)
    return trainer


class RunDirLogger(TrainerCallback):
    """Sends the trainer's logs (loss, learning rate, grad norm, tokens seen, token accuracy) to the run directory."""

    def __init__(self, run: RunDir):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self.run.log(state.global_step, {k: v for k, v in logs.items() if isinstance(v, (int, float))})


class TimeLimit(TrainerCallback):
    """Stops training after the step during which ``max_seconds`` of training time ran out."""

    def __init__(self, max_seconds: float):
        self.max_seconds = max_seconds
        self.started = time.perf_counter()
        self.reached = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.started >= self.max_seconds:
            self.reached = control.should_training_stop = True


def resolve_model(options: SFTOptions, run: RunDir, task: Task | TaskMixture | None = None) -> str:
    """The model to start from: a directory (made absolute), a hub id, a known model's name
    (`agentic.models.resolve_model`), or the tiny model built into ``<run>/base`` (its tokenizer learnt from ``task``,
    or ``options.task``: every task of a mixture)."""
    if options.model != TINY_MODEL:
        name_or_path = known_model(options.model)
        path = Path(name_or_path)
        return str(path.resolve()) if path.is_dir() else name_or_path
    base = run.path / "base"
    if not (base / "config.json").is_file():
        build_tiny_model(
            [each for _, each in component_tasks(played_task(options.task if task is None else task))],
            base,
            seeds=options.demo_seeds[:TOKENIZER_DEMOS],
            seed=options.seed,
        )
    return str(base.resolve())


def run_sft(
    options: SFTOptions,
    task: Task | TaskMixture | Sequence[str | Task] | None = None,
    *,
    model: Any = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    dataset: datasets.Dataset | None = None,
) -> SFTResult:
    """Demonstrations (or ``dataset``, or ``options.dataset``: `training_data`) -> `SFTTrainer` -> ``<out_dir>/model``,
    with config, metrics, checkpoints, plot and report in ``out_dir``. Several tasks (``options.task`` comma-separated,
    or ``task`` a sequence or `TaskMixture`) train one policy on their interleaved demonstrations
    (`agentic.mixture`), evaluated per task. Objects for names, as TRL's trainers take them:
    ``task`` (any object satisfying the `Task` contract) for ``options.task``; ``model`` (a `PreTrainedModel`, or a
    PEFT model whose adapters are trained) with its ``tokenizer`` for ``options.model``, trained in place and saved to
    ``model_dir``; ``callbacks`` go to the trainer."""
    started = time.perf_counter()
    run = RunDir(options.out_dir, tensorboard="tensorboard" in trackers(options.report_to))
    set_seed(options.seed)
    spec = played_task(options.task if task is None else task)  # what demonstrations and the evaluation play
    model, tokenizer, names = start_model(options, run, spec, model, tokenizer, objects=not given_by_name(task))
    mode = episode_mode(tokenizer)  # as `demonstrations` and `Policy` encode episodes: chat when there is a template
    data, data_report = training_data(options, spec, tokenizer, run, dataset)
    run.write_config(asdict(options) | names | {"mode": mode, "training_data": data.summary})

    time_limit = TimeLimit(options.max_seconds or float("inf"))
    trainer = sft_trainer(model, tokenizer, data.rows, options, [RunDirLogger(run), time_limit, *callbacks])
    train_started = time.perf_counter()
    output = trainer.train()
    train_seconds = time.perf_counter() - train_started

    log.info("trained %d steps in %.1f s; saving the model to %s", output.global_step, train_seconds, run.model_dir)
    save_model(trainer, tokenizer, run.model_dir, names.get("model", options.model))
    run.plot(SFT_PLOT, title=plot_title("SFT", names["task"], names.get("model", options.model)), x_label="step")
    evaluation = final_evaluation(options, run, spec)
    run.close()

    curve = loss_curve(trainer.state.log_history, output.global_step, output.training_loss)
    timing = {"train_seconds": train_seconds, "wall_seconds": time.perf_counter() - started}
    stopped_by_callback = output.global_step < trainer.state.max_steps and not time_limit.reached
    stops = {"stopped_by_time_limit": time_limit.reached, "stopped_by_callback": stopped_by_callback}
    extra = timing | stops | names | {"mean_train_loss": output.training_loss, "evaluation": evaluation}
    report = sft_report(options, names["base_model"], run.model_dir, trainer, data_report, curve, extra)
    run.write_report(report, _markdown(report))
    return SFTResult(
        run.path,
        run.model_dir,
        curve,
        output.global_step,
        report["wall_seconds"],
        train_seconds,
        report["tokens_per_second"],
        report,
    )


def start_model(
    options: SFTOptions,
    run: RunDir,
    task: Task | TaskMixture,
    model: Any,
    tokenizer: PreTrainedTokenizerBase | None,
    objects: bool = False,
) -> tuple[Any, PreTrainedTokenizerBase, dict[str, str]]:
    """The model to train, its tokenizer (given a pad token where it has none) and what config.json and the report
    record of the start: ``base_model`` (its directory or hub id), ``task`` (a mixture's comma-separated), and for
    objects given in place of names (`agentic.training.objects`; ``objects``: the task was given as one) ``model``
    (the object's ``name_or_path``) and their classes. The model is ``model`` with its ``tokenizer`` when given
    (`check_model_object`), else what ``options.model`` names (in float32)."""
    names = {"task": task.name if objects else options.task} | object_config(model, task if objects else None)
    if model is not None:
        check_model_object(model, tokenizer, options.lora_rank)
        names |= {"model": model_name(model), "base_model": model_name(model)}
    else:
        names["base_model"] = resolve_model(options, run, task)
        tokenizer = AutoTokenizer.from_pretrained(names["base_model"])
        model = AutoModelForCausalLM.from_pretrained(names["base_model"], dtype=torch.float32)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, names


def training_data(
    options: SFTOptions,
    task: Task | TaskMixture,
    tokenizer: PreTrainedTokenizerBase,
    run: RunDir,
    dataset: datasets.Dataset | None,
) -> tuple[SFTData, dict[str, Any]]:
    """The rows to train on and what the report says of them: from ``dataset``, or the one ``options.dataset`` names,
    in any of `agentic.training.sft_data`'s formats; without either, from the task oracle's demonstrations (written
    to ``demos.jsonl``). Both go through `sft_rows`, so their records (``config.json``'s ``training_data``) compare."""
    if dataset is not None and options.dataset:
        raise ValueError("give run_sft a dataset or options.dataset, not both")
    if dataset is None and not options.dataset:
        demos = demonstrations(
            task,
            options.demo_seeds,
            tokenizer,
            sloppy_rate=options.sloppy_demos,
            seed=options.seed,
            progress=options.progress,
        )
        write_jsonl(demos, run.path / "demos.jsonl")
        log.info("%d demonstrations of %s written to %s", len(demos), task.name, run.path)
        data = sft_rows(to_dataset(demos), tokenizer, max_length=options.max_length, source="demos.jsonl")
        return data, demo_report(demos, options.demo_seeds)
    source = options.dataset or "a datasets.Dataset given to run_sft"
    if dataset is None:
        dataset = load_sft_dataset(options.dataset, options.dataset_split)
    data = sft_rows(dataset, tokenizer, max_length=options.max_length, source=source)
    log.info("%d rows of %s (%s) to train on", data.summary["kept"], source, data.summary["format"])
    summary = data.summary
    report = {"demos": summary["kept"], "demo_tokens": summary["tokens"], "demo_agent_tokens": summary["agent_tokens"]}
    return data, report | {"dataset": summary}


def demo_report(demos: list[Trajectory], seeds: range) -> dict[str, Any]:
    """What the report says of the oracle's demonstrations."""
    return {
        "demos": len(demos),
        "demo_success_rate": sum(t.success for t in demos) / len(demos),
        "demo_seeds": [seeds.start, seeds.stop - 1],
        "demo_tokens": sum(len(t.token_ids) for t in demos),
        "demo_agent_tokens": sum(sum(t.loss_mask) for t in demos),
    }


def save_model(trainer: SFTTrainer, tokenizer: PreTrainedTokenizerBase, model_dir: Path, model: str) -> None:
    """The trained model (or adapter) and its tokenizer in ``model_dir``; an adapter's base is recorded so that the
    run directory loads after being moved (`agentic.adapters`), by name too where ``model`` is a name or hub id."""
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        record_base(model_dir, name="" if Path(model).is_dir() or model == TINY_MODEL else model)


def final_evaluation(options: SFTOptions, run: RunDir, task: Task | TaskMixture) -> dict[str, Any] | None:
    """The final model's greedy evaluation on held-out seeds ``0 .. n_eval-1`` (under the constraint when
    ``constrained``; each task of a mixture on its own), written to ``eval.json``; its headline numbers (a mixture's:
    each task's and their mean, `eval_metrics`), or None when ``n_eval`` is 0."""
    if not options.n_eval:
        return None
    policy = Policy.from_pretrained(run.model_dir)
    report = evaluate_each(
        policy, task, range(options.n_eval), Sampling(temperature=0.0, constrained=options.constrained)
    )
    run.write_json("eval.json", report)
    return eval_metrics(report) | {"constrained": options.constrained}


def loss_curve(log_history: list[dict[str, Any]], steps: int, mean_loss: float) -> list[tuple[int, float]]:
    """(step, training loss) pairs from the trainer's log; the last step's own when it was not logged."""
    curve = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry]
    if not curve or curve[-1][0] != steps:
        curve.append((steps, mean_loss))
    return curve


def sft_report(
    options: SFTOptions,
    model_name: str,
    model_dir: Path,
    trainer: SFTTrainer,
    data: dict[str, Any],
    curve: list[tuple[int, float]],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """What report.json holds: the model, the training data (``data``: `demo_report`'s or a dataset's), the
    training and its speed (``shared_prefix_tokens``: tokens counted as seen that ran once per batch, not per row)."""
    tokens_seen = trainer.state.num_input_tokens_seen
    return {
        "task": options.task,
        "base_model": model_name,
        "model_dir": str(model_dir),
        "lora_rank": options.lora_rank,
        "device": str(trainer.args.device),
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        **data,
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "final_loss": curve[-1][1],
        "tokens_seen": tokens_seen,
        "shared_prefix_tokens": getattr(trainer, "shared_tokens", 0),
        "tokens_per_second": tokens_seen / extra["train_seconds"],
    } | extra


def _markdown(report: dict[str, Any]) -> str:
    mode = f"LoRA rank {report['lora_rank']}" if report["lora_rank"] else "full fine-tuning"
    return f"""# Agentic SFT: {report["task"]}

- base model: `{report["base_model"]}` ({report["parameters"]:,} parameters, {report["trainable_parameters"]:,} trained, {mode}) on {report["device"]}
- {_data_line(report)}, {report["demo_tokens"]:,} tokens of which {report["demo_agent_tokens"]:,} agent tokens carry the loss
- training: {report["steps"]} steps ({report["epochs"]:.2f} epochs){" stopped by the time limit" if report["stopped_by_time_limit"] else ""}{" stopped by a callback" if report["stopped_by_callback"] else ""}, final loss {report["final_loss"]:.4f}
- speed: {report["tokens_seen"]:,} tokens in {report["train_seconds"]:.1f} s ({report["tokens_per_second"]:,.0f} tokens/s, {report["shared_prefix_tokens"]:,} of them in prefixes run once per batch); whole run {report["wall_seconds"]:.1f} s
- model: `{report["model_dir"]}`
{_evaluation_line(report["evaluation"])}"""


def _data_line(report: dict[str, Any]) -> str:
    if "dataset" not in report:
        seeds = report["demo_seeds"]
        return f"demonstrations: {report['demos']} episodes, {report['demo_success_rate']:.0%} successful (seeds {seeds[0]}..{seeds[1]})"
    data = report["dataset"]
    dropped = f", {data['rows'] - data['kept']} dropped" if data["dropped"] else ""
    return f"dataset: `{data['source']}` ({data['format']}), {data['kept']} of {data['rows']} rows{dropped}"


def _evaluation_line(evaluation: dict[str, Any] | None) -> str:
    if evaluation is None:
        return ""
    how = "constrained" if evaluation["constrained"] else "unconstrained"
    return (
        f"- held-out evaluation (greedy, {how}, `eval.json`): success {evaluation['success']:.3f}, tool-call accuracy "
        f"{evaluation['tool_call_accuracy']:.3f}, invalid-action rate {evaluation['invalid_action_rate']:.3f}\n"
    )
