"""`agentic eval`: tool-call accuracy and episode metrics of a model on held-out seeds."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentic.cli.bfcl import refuse_contaminated
from agentic.cli.command import Command
from agentic.cli.flags import add_out_dir_flag, non_negative_int, positive_int
from agentic.cli.model_args import add_mode_flag, add_sampling_flags, load_policy, sampling_from


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="model directory, hub id or a name `agentic models list` shows (full model or PEFT adapter)",
    )
    parser.add_argument(
        "--task",
        required=True,
        help="registered task name, with options as NAME:key=value,... (e.g. ReasoningGym:dataset=chain_sum)",
    )
    parser.add_argument("--n", type=positive_int, default=200, help="number of evaluation seeds (default 200)")
    parser.add_argument(
        "--seed-start", type=non_negative_int, default=0, help="first evaluation seed; SFT demos use 10000 and up"
    )
    parser.add_argument("--batch-size", type=positive_int, default=64)
    add_out_dir_flag(parser, "run directory for report.json / report.md (default runs/eval/TASK)")
    parser.add_argument(
        "--episodes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run free-running episodes for success, return and turns (default); "
        "--no-episodes: tool-call metrics alone, which cost one action per decision point",
    )
    add_mode_flag(parser)
    add_sampling_flags(parser, temperature=0.0)


def _run(args: argparse.Namespace, console: Console) -> None:
    from agentic.evaluation import evaluate, report_markdown, report_rows
    from agentic.run_dir import RunDir

    bfcl = [args.task.removeprefix("BFCL-")] if args.task.startswith("BFCL-") else []
    trained = refuse_contaminated("agentic eval", args.model, bfcl)
    sampling = sampling_from(args)
    policy = load_policy(args.model, args.mode)
    seeds = list(range(args.seed_start, args.seed_start + args.n))
    start = time.perf_counter()
    report = evaluate(
        policy,
        args.task,
        seeds,
        sampling,
        batch_size=args.batch_size,
        progress=True,
        episodes=args.episodes,
    )
    report["model"] = str(args.model)
    report["trained_on"] = trained
    report["seconds"] = time.perf_counter() - start
    out = RunDir(Path(args.out_dir) if args.out_dir else Path("runs") / "eval" / args.task)
    out.write_report(report, report_markdown(report, title=f"Evaluation of {args.model}"))
    table = Table("metric", "value [Wilson 95%]", title=f"{args.task}: {args.model}")
    for metric, value in report_rows(report):
        table.add_row(metric, value)
    console.print(table)
    console.print(f"{policy.mode} mode, {report['seconds']:.0f} s; report: {out.path / 'report.json'}")


EVAL = Command(
    "eval",
    "tool-call accuracy and episode metrics of a model on held-out seeds",
    _arguments,
    _run,
    "Judge a model's tool calls at the oracle's decision points and play free-running episodes on evaluation "
    "seeds. Refuses a BFCL category of a family the model's run directories say it trained on; the report "
    "records what they say it trained on.",
)
