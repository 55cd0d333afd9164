"""`agentic sft`, `agentic ppo`, `agentic grpo` and `agentic demo`: the training commands, one flag per option field
(the options classes say what each does); flags that were renamed still work, with a deprecation warning."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from agentic.cli.command import Command, add_config_flag, add_option_flags, options_from


def _sft_arguments(parser: argparse.ArgumentParser) -> None:
    from agentic.training.sft_config import SFTOptions

    add_option_flags(parser, SFTOptions, deprecated=SFTOptions.renamed_flags)
    add_config_flag(parser)


def _sft(args: argparse.Namespace, console: Console) -> None:
    from agentic.training.sft import run_sft
    from agentic.training.sft_config import SFTOptions

    result = run_sft(options_from(SFTOptions, args))
    console.print(
        f"SFT done in {result.wall_seconds:.0f} s ({result.tokens_per_second:,.0f} tokens/s): model {result.model_dir}, report {result.run_dir / 'report.md'}"
    )


def _rl_arguments(algorithm: str):
    def add(parser: argparse.ArgumentParser) -> None:
        from agentic.training.rl_config import OPTIONS_BY_ALGORITHM

        options_class = OPTIONS_BY_ALGORITHM[algorithm]
        add_option_flags(parser, options_class, deprecated=options_class.renamed_flags)
        add_config_flag(parser, resume=True)

    return add


def _rl(args: argparse.Namespace, console: Console) -> None:
    from accelerate import PartialState

    from agentic.training.ppo import TrainingDiverged
    from agentic.training.rl import run_rl
    from agentic.training.rl_config import OPTIONS_BY_ALGORITHM

    try:
        result = run_rl(options_from(OPTIONS_BY_ALGORITHM[args.command], args))
    except TrainingDiverged as err:
        raise SystemExit(f"agentic {args.command}: {err}") from None
    if not PartialState().is_main_process:
        return
    report = result.report
    evals = report["evaluations"]
    success = ""
    if evals:
        first, last = min(evals), max(evals)
        success = f"; held-out success {evals[first]['success']:.3f} (update {first}) -> {evals[last]['success']:.3f} (update {last})"
    console.print(
        f"{args.command.upper()} {report['updates']} updates ({result.stop_reason}) in {report['train_seconds']:.0f} s, "
        f"{report['seconds_per_update']:.1f} s/update, {report['episodes_per_second']:.1f} episodes/s{success}. "
        f"Model {result.model_dir}, report {result.run_dir / 'report.md'}"
    )


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from agentic.training.demo_config import DemoOptions

    add_option_flags(parser, DemoOptions, deprecated=DemoOptions.renamed_flags)
    add_config_flag(parser)


def _demo(args: argparse.Namespace, console: Console) -> None:
    from agentic.training.demo import column_names, compute_line, decoding, run_demo, summary_rows
    from agentic.training.demo_config import DemoOptions

    options = options_from(DemoOptions, args)
    report = run_demo(options)
    if "tasks" in report:
        _print_tasks(report, options, console)
        return
    table = Table(
        *column_names(report),
        title=f"agentic demo: {options.task} on {options.n_eval} held-out seeds, {decoding(report)} (Wilson 95%)",
    )
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"SFT {report['sft_train_seconds']:.0f} s of training, {options.algorithm.upper()} {report['rl_updates']} updates in "
        f"{report['rl_train_seconds']:.0f} s; whole demo {report['total_seconds']:.0f} s. Report: {options.out_dir}/report.md; model: {report['model_dir']}"
    )
    console.print(compute_line(report), markup=False)


def _print_tasks(report: dict, options, console: Console) -> None:
    """A several-task demo's table (`agentic.training.demo.task_rows`) and where its report is."""
    from agentic.training.demo import TASK_COLUMNS, decoding, task_rows

    table = Table(
        *TASK_COLUMNS,
        title=f"agentic demo: {report['task']} on {options.n_eval} held-out seeds each, {decoding(report)} (Wilson 95%)",
    )
    for row in task_rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(f"Whole demo {report['total_seconds']:.0f} s. Report: {options.out_dir}/report.md")


def _launch_note(algorithm: str, description: str) -> str:
    return (
        f"{description}. Several processes: torchrun --standalone --nproc_per_node N -m agentic.cli {algorithm} ... (CPU, gloo) "
        f"or accelerate launch --num_processes N -m agentic.cli {algorithm} ... (GPUs)"
    )


_PPO_HELP = "turn-level PPO from a warm-up model (critic, GAE over turns, KL to the reference)"
_GRPO_HELP = "GRPO from a warm-up model (group-relative advantages, no critic)"

SFT = Command("sft", "agentic SFT warm-up on oracle demonstrations (loss on agent tokens only)", _sft_arguments, _sft)
PPO = Command("ppo", _PPO_HELP, _rl_arguments("ppo"), _rl, _launch_note("ppo", _PPO_HELP))
GRPO = Command("grpo", _GRPO_HELP, _rl_arguments("grpo"), _rl, _launch_note("grpo", _GRPO_HELP))
DEMO = Command(
    "demo",
    "the whole loop on the embedded tiny model: build, SFT on sloppy demonstrations, PPO, before/after report",
    _demo_arguments,
    _demo,
    "Build the tiny model, SFT it on demonstrations most of which skip the tool, then PPO (or GRPO) it "
    "on the task's reward alone; evaluate untrained, SFT and RL models on the same held-out seeds.",
)
