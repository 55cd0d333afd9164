"""The whole single-turn chain: prepare -> (tiny base ->) SFT -> reward model -> PPO -> evaluation -> results table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agentic.training.corpus.base import TINY, build_tiny_base
from agentic.training.corpus.evaluate import EvalSettings, evaluate, write_results_table
from agentic.training.corpus.options import corpus_ppo_options
from agentic.training.corpus.ppo import ppo_stage
from agentic.training.corpus.prepare import PrepareSettings, prepare
from agentic.training.corpus.reward import RewardSettings, reward_stage
from agentic.training.corpus.rundir import CorpusRun
from agentic.training.corpus.sft import SftSettings, train_sft
from agentic.training.rl_config import PPOOptions


def run_pipeline(
    model: str,
    corpus: str,
    out_dir: str | Path,
    *,
    standin: bool = False,
    seed: int = 0,
    prepare_settings: PrepareSettings | None = None,
    sft_settings: SftSettings | None = None,
    reward_settings: RewardSettings | None = None,
    ppo_options: PPOOptions | None = None,
    eval_settings: EvalSettings | None = None,
    skip_ppo: bool = False,
    table_root: str | Path | None = None,
) -> dict:
    """Every stage in order into ``out_dir``; then the results table over ``table_root`` (default: ``out_dir``'s parent).

    ``model``, ``corpus``, ``standin`` and ``seed`` override the same fields of the options given; a stage's options
    not given are its defaults (PPO's: `corpus_ppo_options`). ``skip_ppo`` evaluates SFT as the final policy.
    Returns each stage's summary and the evaluation's results.
    """
    run_dir = str(out_dir)
    prepare_settings = replace(prepare_settings or PrepareSettings(corpus), corpus=corpus, standin=standin, seed=seed)
    sft_settings = replace(sft_settings or SftSettings(), model=model, seed=seed)
    reward_settings = replace(reward_settings or RewardSettings(), seed=seed)
    eval_settings = replace(eval_settings or EvalSettings(), seed=seed)
    summaries = {"prepare": prepare(run_dir, prepare_settings)}
    if model == TINY:
        summaries["base"] = build_tiny_base(run_dir, sft_settings.tiny)
    summaries["sft"] = train_sft(run_dir, sft_settings)
    summaries["reward"] = reward_stage(run_dir, reward_settings)
    if not skip_ppo:
        summaries["ppo"] = ppo_stage(run_dir, corpus_ppo_options(run_dir, seed) if ppo_options is None else ppo_options)
    summaries["eval"] = evaluate(run_dir, eval_settings)
    CorpusRun(run_dir).write(".", "pipeline", {stage: summary.get("seconds") for stage, summary in summaries.items()})
    write_results_table(table_root or Path(run_dir).parent)
    return summaries
