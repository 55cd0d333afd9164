"""`agentic bfcl`: a model (or the oracle) on BFCL's categories, scored as the leaderboard scores, in its table."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agentic.cli.command import Command, UsageError
from agentic.cli.flags import add_out_dir_flag, non_negative_int, positive_int
from agentic.cli.model_args import add_sampling_flags, load_policy, sampling_from


def _arguments(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--model", help="model directory, hub id or known model name (full model or PEFT adapter)")
    who.add_argument(
        "--oracle", action="store_true", help="play BFCL's ground truth instead of a model (a check of the harness)"
    )
    parser.add_argument(
        "--categories", default="all", help="comma-separated BFCL categories (default: all offered; see agentic tasks)"
    )
    parser.add_argument(
        "--limit", type=non_negative_int, default=0, help="the first N entries of each category (default 0: all)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="episodes sampled together (default 64)")
    add_out_dir_flag(parser, "run directory (default runs/bfcl/<model>)")
    add_sampling_flags(parser, temperature=0.0)


def _categories(text: str) -> list[str]:
    from agentic.tasks.bfcl.data import CATEGORIES

    if text == "all":
        return list(CATEGORIES)
    names = [name.strip().removeprefix("BFCL-") for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in CATEGORIES]
    if unknown or not names:
        raise UsageError(
            f"agentic bfcl: unknown categories {', '.join(unknown) or repr(text)}; offered: {', '.join(CATEGORIES)}"
        )
    return list(dict.fromkeys(names))


def refuse_contaminated(command: str, model: str, categories: list[str]) -> list[str]:
    """The tasks the model's run directories say it trained on, sorted; a usage error (naming ``command``) when
    any of the BFCL ``categories`` is of a family it trained on (`agentic bfcl` and `agentic eval` refuse alike)."""
    from agentic.provenance import trained_tasks
    from agentic.tasks.bfcl.tasks import contaminated

    trained = trained_tasks(model)
    refused = contaminated(categories, trained)
    if refused:
        reasons = "; ".join(f"{c} (trained on {task}, {trained[task]})" for c, task in refused.items())
        raise UsageError(
            f"{command}: {model} was trained on BFCL data of the same family, refusing to score: {reasons}. "
            "Train and evaluate on different families (e.g. train on live_*, evaluate non-live and multi-turn)"
        )
    return sorted(trained)


def _run(args: argparse.Namespace, console: Console) -> None:
    from agentic.run_dir import RunDir, write_jsonl
    from agentic.tasks.bfcl.benchmark import report_markdown, run_category, summarize

    categories = _categories(args.categories)
    name = "oracle" if args.oracle else args.model
    trained = [] if args.oracle else refuse_contaminated("agentic bfcl", args.model, categories)
    sampling = sampling_from(args)
    policy = None if args.oracle else load_policy(args.model)
    default_dir = Path("runs") / "bfcl" / re.sub(r"[^\w.-]+", "_", name).strip("_")
    out = RunDir(Path(args.out_dir) if args.out_dir else default_dir)
    settings = {k: v for k, v in vars(args).items() if k != "run"}
    out.write_config({**settings, "categories": categories, "trained_on": trained})
    results = {}
    for category in categories:
        result, trajectories = run_category(
            category, policy, limit=args.limit, sampling=sampling, batch_size=args.batch_size, progress=True
        )
        results[category] = result
        if trajectories:
            (out.path / "trajectories").mkdir(exist_ok=True)
            write_jsonl(trajectories, out.path / "trajectories" / f"{category}.jsonl")
        console.print(f"{category}: {result.correct}/{len(result.verdicts)} in {result.seconds:.1f} s")
    report = summarize(results) | {"model": name, "trained_on": trained, "limit": args.limit}
    report["protocol"] = f"Model trained on: {', '.join(trained) or 'nothing recorded'}."
    out.write_report(report, report_markdown(report, name))
    with (out.path / "verdicts.jsonl").open("w", encoding="utf-8") as stream:
        for result in results.values():
            stream.writelines(
                json.dumps({"category": result.category, **v}, ensure_ascii=False) + "\n" for v in result.verdicts
            )
    _print(console, report, name)
    console.print(f"report: {out.path / 'report.md'}")


def _print(console: Console, report: dict, name: str) -> None:
    table = Table("category", "accuracy [Wilson 95%]", "correct / entries", "wall s", title=f"BFCL: {name}")
    for category, row in report["categories"].items():
        p = row["accuracy"]
        interval = f"{p['value']:.3f} [{p['low']:.3f}, {p['high']:.3f}]"
        table.add_row(category, interval, f"{p['k']} / {p['n']}", f"{row['seconds']:.1f}")
    console.print(table)
    summary = Table("summary", "value", "BFCL's rule", "missing")
    for group, row in report["summary"].items():
        summary.add_row(group, f"{row['value']:.3f}", row["rule"], ", ".join(row["missing"]) or "—")
    console.print(summary)


BFCL = Command(
    "bfcl",
    "a model on BFCL's categories, scored as the leaderboard scores (JSON + Markdown table)",
    _arguments,
    _run,
    "Run a model (or the ground-truth oracle) on the Berkeley Function Calling Leaderboard's categories inside the "
    "environment; needs bfcl-eval (pip install --no-deps bfcl-eval==2026.3.23). Refuses categories of a family the "
    "model's run directories say it trained on.",
)
