"""`agentic sft`, `agentic ppo`, `agentic grpo` and `agentic demo`: the training commands, one flag per option."""

from __future__ import annotations

import argparse
import dataclasses

from rich.console import Console
from rich.table import Table

from agentic.cli.command import Command, add_option_flags, options_from

_PPO_ONLY_FLAGS = (
    "episodes",
    "critic",
    "value_lr",
    "gamma",
    "lam",
    "value_coef",
    "value_clip_range",
    "whiten_advantages",
    "kl_target",
    "kl_horizon",
)


def _sft_arguments(parser: argparse.ArgumentParser) -> None:
    from agentic.training.sft_config import SFTOptions

    add_option_flags(parser, SFTOptions)


def _sft(args: argparse.Namespace, console: Console) -> None:
    from agentic.training.sft import run_sft
    from agentic.training.sft_config import SFTOptions

    result = run_sft(options_from(SFTOptions, args))
    console.print(
        f"SFT done in {result.wall_seconds:.0f} s ({result.tokens_per_second:,.0f} tokens/s): model {result.model_dir}, report {result.run_dir / 'report.md'}"
    )


def _rl_arguments(not_for_it: tuple[str, ...]):
    def add(parser: argparse.ArgumentParser) -> None:
        from agentic.training.rl_config import RLOptions

        add_option_flags(parser, RLOptions, skip=("algorithm", *not_for_it))

    return add


def _rl(args: argparse.Namespace, console: Console) -> None:
    from accelerate import PartialState

    from agentic.training.ppo import TrainingDiverged
    from agentic.training.rl import run_rl
    from agentic.training.rl_config import RLOptions

    try:
        result = run_rl(options_from(RLOptions, args, algorithm=args.command))
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
    from agentic.training.demo_config import DEMO_SFT, DemoOptions

    parser.add_argument("--task", default="Arithmetic", help="registered task (default Arithmetic)")
    parser.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    parser.add_argument("--n-eval", type=int, default=200, help="held-out evaluation seeds 0..N-1 (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-demos", type=int, help=f"SFT demonstrations (default {DEMO_SFT.n_demos})")
    parser.add_argument("--epochs", type=float, help=f"SFT epochs (default {DEMO_SFT.epochs:g})")
    parser.add_argument("--sft-seconds", type=float, help="stop SFT training after this many seconds")
    parser.add_argument(
        "--sloppy-demos", type=float, help="fraction of demonstrations that give up at once (default 0.5)"
    )
    parser.add_argument("--algorithm", choices=["ppo", "grpo"], default="ppo", help="the RL stage (default ppo)")
    parser.add_argument(
        "--rl-iterations",
        type=int,
        default=DemoOptions.rl_iterations,
        help=f"RL updates (default {DemoOptions.rl_iterations})",
    )
    parser.add_argument(
        "--rl-seconds",
        type=float,
        default=DemoOptions.rl_seconds,
        help=f"start no RL update after this many seconds (default {DemoOptions.rl_seconds:g}; 0: no limit)",
    )


def _demo(args: argparse.Namespace, console: Console) -> None:
    from agentic.training.demo import column_names, run_demo, summary_rows
    from agentic.training.demo_config import DEMO_SFT, DemoOptions

    sft_flags = {
        "n_demos": args.n_demos,
        "epochs": args.epochs,
        "max_seconds": args.sft_seconds,
        "sloppy_demos": args.sloppy_demos,
    }
    options = DemoOptions(
        task=args.task,
        out_dir=args.out,
        n_eval=args.n_eval,
        seed=args.seed,
        sft=dataclasses.replace(DEMO_SFT, **{k: v for k, v in sft_flags.items() if v is not None}),
        algorithm=args.algorithm,
        rl_iterations=args.rl_iterations,
        rl_seconds=args.rl_seconds,
    )
    report = run_demo(options)
    table = Table(
        *column_names(report), title=f"agentic demo: {args.task} on {args.n_eval} held-out seeds, greedy (Wilson 95%)"
    )
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"SFT {report['sft_train_seconds']:.0f} s of training, {args.algorithm.upper()} {report['rl_updates']} updates in "
        f"{report['rl_train_seconds']:.0f} s; whole demo {report['total_seconds']:.0f} s. Report: {args.out}/report.md; model: {report['model_dir']}"
    )


def _launch_note(algorithm: str, description: str) -> str:
    return (
        f"{description}. Several processes: torchrun --standalone --nproc_per_node N -m agentic.cli {algorithm} ... (CPU, gloo) "
        f"or accelerate launch --num_processes N -m agentic.cli {algorithm} ... (GPUs)"
    )


_PPO_HELP = "turn-level PPO from a warm-up model (critic, GAE over turns, KL to the reference)"
_GRPO_HELP = "GRPO from a warm-up model (group-relative advantages, no critic)"

SFT = Command("sft", "agentic SFT warm-up on oracle demonstrations (loss on agent tokens only)", _sft_arguments, _sft)
PPO = Command("ppo", _PPO_HELP, _rl_arguments(("groups", "group_size")), _rl, _launch_note("ppo", _PPO_HELP))
GRPO = Command("grpo", _GRPO_HELP, _rl_arguments(_PPO_ONLY_FLAGS), _rl, _launch_note("grpo", _GRPO_HELP))
DEMO = Command(
    "demo",
    "the whole loop on the embedded tiny model: build, SFT on sloppy demonstrations, PPO, before/after report",
    _demo_arguments,
    _demo,
    "Build the tiny model, SFT it on demonstrations most of which skip the tool, then PPO (or GRPO) it "
    "on the task's reward alone; evaluate untrained, SFT and RL models on the same held-out seeds.",
)
