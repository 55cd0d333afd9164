"""The whole single-turn chain: prepare -> (tiny base ->) SFT -> reward model -> PPO -> evaluation -> results table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agentic.run_dir import RunDir
from agentic.training.corpus.base import build_tiny_base
from agentic.training.corpus.evaluate import evaluate_run, write_results_table
from agentic.training.corpus.options import (
    TINY,
    CorpusEvalOptions,
    CorpusSFTOptions,
    PrepareOptions,
    RewardOptions,
    TinyBaseOptions,
    corpus_ppo_options,
)
from agentic.training.corpus.ppo import ppo_stage
from agentic.training.corpus.prepare import prepare
from agentic.training.corpus.reward import reward_stage
from agentic.training.corpus.sft import train_sft
from agentic.training.rl_config import PPOOptions


def run_pipeline(
    model: str,
    corpus: str,
    out_dir: str | Path,
    *,
    standin: bool = False,
    seed: int = 0,
    prepare_options: PrepareOptions | None = None,
    tiny_options: TinyBaseOptions | None = None,
    sft_options: CorpusSFTOptions | None = None,
    reward_options: RewardOptions | None = None,
    ppo_options: PPOOptions | None = None,
    eval_options: CorpusEvalOptions | None = None,
    skip_ppo: bool = False,
    table_root: str | Path | None = None,
) -> dict:
    """Every stage in order into ``out_dir``; then the results table over ``table_root`` (default: ``out_dir``'s parent).

    ``model``, ``corpus``, ``standin`` and ``seed`` override the same fields of the stages' options; options not given
    are the stage's defaults (PPO's: `corpus_ppo_options`, whose model, task, directory and seed the run sets).
    ``skip_ppo`` evaluates SFT as the final policy. Returns each stage's summary and the evaluation's results.
    """
    run_dir = str(out_dir)
    prepared = replace(prepare_options or PrepareOptions(), corpus=corpus, standin=standin, seed=seed)
    summaries = {"prepare": prepare(run_dir, prepared)}
    tiny = replace(tiny_options or TinyBaseOptions(), seed=seed)
    if model == TINY:
        summaries["base"] = build_tiny_base(run_dir, tiny)
    summaries["sft"] = train_sft(run_dir, replace(sft_options or CorpusSFTOptions(), model=model, seed=seed), tiny)
    summaries["reward"] = reward_stage(run_dir, replace(reward_options or RewardOptions(), seed=seed))
    if not skip_ppo:
        summaries["ppo"] = ppo_stage(run_dir, replace(ppo_options or corpus_ppo_options(run_dir), seed=seed))
    summaries["eval"] = evaluate_run(run_dir, replace(eval_options or CorpusEvalOptions(), seed=seed))
    RunDir(run_dir).write_json("pipeline.json", {stage: summary.get("seconds") for stage, summary in summaries.items()})
    write_results_table(table_root or Path(run_dir).parent)
    return summaries
