"""`agentic demo`: the whole loop on the embedded tiny model, from nothing to a measured agent.

1. build the tiny default model (tokenizer learnt from the task's training-seed transcripts);
2. measure its tool calls untrained (decision points only: it has not learnt to stop);
3. agentic SFT on oracle demonstrations run through the real environment;
4. evaluate the SFT model on held-out seeds: tool-call metrics and free-running episodes;
5. write a before/after report (JSON + Markdown) and print it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agentic.evaluation import evaluate, evaluate_tool_calls, report_markdown
from agentic.policy import Policy, Sampling
from agentic.registry import make_task
from training.run_dir import RunDir
from training.sft import run_sft
from training.sft_config import DEMO_SEED_START, SFTOptions
from training.tiny_model import build_tiny_model

TOOL_CALL_METRICS = ("tool_call_validity", "tool_call_accuracy", "first_sentinel_is_tool")


@dataclass(frozen=True)
class DemoOptions:
    task: str = "Arithmetic"
    out_dir: str = "runs/demo"
    n_eval: int = 200
    seed: int = 0
    sft: SFTOptions = SFTOptions()


def run_demo(options: DemoOptions) -> dict[str, Any]:
    run = RunDir(options.out_dir)
    run.write_config(options)
    started = time.perf_counter()
    seeds = list(range(options.n_eval))

    model_dir = build_tiny_model([options.task], run.path / "tiny-model", seeds=range(DEMO_SEED_START, DEMO_SEED_START + 200), seed=options.seed)
    untrained = Policy.from_pretrained(model_dir)
    before, _ = evaluate_tool_calls(untrained, make_task(options.task), seeds, Sampling(temperature=0.0, max_new_tokens=64))

    sft = run_sft(replace(options.sft, model=str(model_dir), task=options.task, out_dir=str(run.path / "sft"), seed=options.seed))
    after = evaluate(Policy.from_pretrained(sft.model_dir), options.task, seeds, progress=options.sft.progress)
    (run.path / "sft" / "eval.md").write_text(report_markdown(after, title="SFT model") + "\n", encoding="utf-8")

    report = {
        "task": options.task,
        "eval_seeds": [0, options.n_eval - 1],
        "model_dir": str(sft.model_dir),
        "untrained": {"tool_calls": before},
        "sft": {"tool_calls": after["tool_calls"], "episodes": after["episodes"], "samples": after["samples"]},
        "sft_wall_seconds": sft.wall_seconds,
        "sft_train_seconds": sft.train_seconds,
        "sft_tokens_per_second": sft.tokens_per_second,
        "total_seconds": time.perf_counter() - started,
    }
    run.write_report(report, demo_markdown(report))
    run.close()
    return report


def _cell(proportion: dict[str, Any] | None) -> str:
    if proportion is None:
        return "—"
    return f"{proportion['value']:.3f} [{proportion['low']:.3f}, {proportion['high']:.3f}]"


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, untrained, SFT) rows; the untrained model is measured at decision points only."""
    before, after = report["untrained"]["tool_calls"], report["sft"]["tool_calls"]
    episodes = report["sft"]["episodes"]
    rows = [(name, _cell(before[name]), _cell(after[name])) for name in TOOL_CALL_METRICS]
    rows += [
        ("success", "—", _cell(episodes["success"])),
        ("mean return", "—", f"{episodes['mean_return']:.3f} ± {episodes['std_return']:.3f}"),
        ("mean turns", "—", f"{episodes['mean_turns']:.2f}"),
        ("invalid-action rate", "—", _cell(episodes["invalid_action_rate"])),
    ]
    return rows


def demo_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# agentic demo: {report['task']}",
        "",
        f"Held-out seeds {report['eval_seeds'][0]}–{report['eval_seeds'][1]}, greedy decoding; values with Wilson 95% intervals.",
        f"SFT: {report['sft_train_seconds']:.0f} s of training ({report['sft_wall_seconds']:.0f} s with demonstrations), "
        f"{report['sft_tokens_per_second']:,.0f} tokens/s. Whole demo: {report['total_seconds']:.0f} s.",
        "",
        "| metric | untrained | after SFT |",
        "|---|---|---|",
    ]
    lines += [f"| {metric} | {before} | {after} |" for metric, before, after in summary_rows(report)]
    lines += ["", f"Model: `{report['model_dir']}`. Demonstrations: `agentic show {Path(report['model_dir']).parent / 'demos.jsonl'}`."]
    return "\n".join(lines)
