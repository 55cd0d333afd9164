"""The whole single-turn chain: prepare -> SFT -> reward model -> PPO (a hook) -> evaluation.

PPO is plugged in as a `PPOHook`: a callable given a `PPOJob` (the SFT policy, which is also the
frozen KL reference, the reward model to score one-turn episodes with, the train prompts and where
to save) that leaves a causal LM in ``job.out_dir / "model"`` and returns its summary. The default
hook is `agentic.training.corpus.ppo.corpus_ppo`, the shared turn-level core; with ``ppo=None`` the chain
evaluates SFT alone and says so in the results.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agentic.training.corpus.base import TINY, build_tiny_base
from agentic.training.corpus.evaluate import EvalSettings, evaluate, write_results_table
from agentic.training.corpus.ppo import PPOHook, PPOJob, corpus_ppo
from agentic.training.corpus.prepare import PrepareSettings, prepare
from agentic.training.corpus.reward import RewardSettings, reward_model_of, reward_stage
from agentic.training.corpus.rundir import CorpusRun, read_jsonl, timed
from agentic.training.corpus.sft import SftSettings, train_sft


def run_ppo(run_dir: str | Path, hook: PPOHook, seed: int = 0) -> dict:
    """Run the PPO hook on the run's SFT model, reward model and train prompts; its policy lands in ``RUN/ppo/model``."""
    run = CorpusRun(run_dir)
    job = PPOJob(
        policy=run.model("sft"),
        reward_model=reward_model_of(run_dir),
        prompts=[row["prompt"] for row in read_jsonl(run.examples("train"))],
        out_dir=run.stage("ppo"),
        seed=seed,
    )
    with timed({}) as summary:
        summary.update(hook(job))
    if not (run.model("ppo") / "config.json").is_file():
        raise RuntimeError(f"the PPO hook returned without saving a model to {run.model('ppo')}")
    run.write(
        "ppo",
        "config",
        {"policy": str(job.policy), "reward_model": job.reward_model, "prompts": len(job.prompts), "seed": seed},
    )
    run.write("ppo", "summary", summary)
    return summary


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
    eval_settings: EvalSettings | None = None,
    ppo: PPOHook | None = corpus_ppo(),  # noqa: B008 (a frozen default; replaced when the corpus PPO joins the agentic loop)
    table_root: str | Path | None = None,
) -> dict:
    """Every stage in order into ``out_dir``; then the results table over ``table_root`` (default: ``out_dir``'s parent).

    ``model``, ``corpus``, ``standin`` and ``seed`` override the same fields of the settings given; ``seed`` is
    also the PPO job's. ``ppo`` is the PPO hook (default: `corpus_ppo` with its default settings; None skips PPO).
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
    if ppo is not None:
        summaries["ppo"] = run_ppo(run_dir, ppo, seed)
    summaries["eval"] = evaluate(run_dir, eval_settings)
    CorpusRun(run_dir).write(".", "pipeline", {stage: summary.get("seconds") for stage, summary in summaries.items()})
    write_results_table(table_root or Path(run_dir).parent)
    return summaries
