"""Stage 4: PPO from the SFT model against the reward model: the agentic training loop (`agentic.training.rl.run_rl`)
on one-turn episodes of a reward-model task, not a loop of its own.

`RewardModelTask` is a free-text task (`agentic.Task.free_text`): an instance is a train prompt; the agent's whole
completion is its answer, sampled until eos or ``max_new_tokens`` (not until a sentinel), and the episode ends with
it; its score is the reward model's score of (prompt, completion). A chat model gets the prompt as the user message
of its chat template and answers as the assistant, ending at its end-of-turn token (`agentic.encoding.ChatEncoding`;
the reward model then scores the chat, `agentic.training.corpus.reward.RewardScorer`); a response cut at the length
limit loses ``missing_eos_penalty``. The loop then does what it does for every task:
the reward normalised with running statistics and clipped (``reward_normalization``, ``reward_clip``), a value head
on the policy's trunk, KL to the frozen SFT model (with ``lora_rank`` > 0: the SFT model under disabled adapters),
the NaN/Inf guard, checkpoints (``--ppo-resume`` continues a run).

Writes ``RUN/ppo``: the loop's run directory (config.json, metrics.jsonl, tensorboard/, samples/, checkpoints/,
plots/, report.json / report.md), the policy in ``model/`` (with LoRA, an adapter over the SFT model), and the
stage's summary.json.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from agentic.run_dir import RunDir, read_jsonl, timed
from agentic.task import Budget, Score, Task, Turn
from agentic.training.corpus.options import REWARD_MODEL_TASK, ppo_fields_of_run
from agentic.training.corpus.prepare import examples_file
from agentic.training.corpus.reward import RewardScorer, reward_model_of, reward_scorer
from agentic.training.rl import run_rl
from agentic.training.rl_config import PPOOptions


class RewardModelTask(Task):
    """Continue a train prompt; a reward model scores the continuation. One turn, free text, no tools, no oracle."""

    name = REWARD_MODEL_TASK
    description = "continue the text; a reward model scores the continuation"
    free_text = True
    # One turn. The sampler's max_new_tokens bounds a completion; the token budget only has to let it through
    # (a completion decoded and encoded again may come out a few tokens longer).
    budget = Budget(max_turns=1, max_action_tokens=1_000_000)

    def __init__(self, prompts: Sequence[str], scorer: RewardScorer, *, ordered: bool = False):
        """``ordered``: seed ``i`` plays prompt ``i`` (an evaluation covers the prompts once); else a random one."""
        if not prompts:
            raise ValueError("PPO needs at least one train prompt")
        self.prompts, self.scorer, self.ordered = list(prompts), scorer, ordered

    def sample(self, rng: Any) -> dict[str, str]:
        return {"prompt": rng.choice(self.prompts)}

    held_out = False  # the corpus pipeline splits its prompts itself: a task holds one split's prompts
    notes = ("evaluation prompts are split off by the corpus pipeline (prepare), not by this task",)

    def instance_for(self, seed: int | None, rng: Any, split: str = "training") -> dict[str, str]:
        return {"prompt": self.prompts[seed]} if self.ordered and seed is not None else self.sample(rng)

    def prompt(self, instance: dict[str, str]) -> str:
        return instance["prompt"]

    def score(self, instance: dict[str, str], answer: str | None, history: Sequence[Turn]) -> Score:
        reward = self.scorer.score([instance["prompt"]], [answer or ""])[0]
        return Score(reward, {"reward_model": reward})

    def oracle(self, instance: dict[str, str], history: Sequence[Turn]) -> str:
        raise NotImplementedError("a reward-model task has no oracle: its answers are scored, not known")


def ppo_stage(run_dir: str | Path, options: PPOOptions) -> dict[str, Any]:
    """PPO on the run's train prompts with its reward model (``options`` as `corpus_ppo_options` makes them; the
    run sets the model, task and directory). A rerun replaces the stage's output, unless ``options.resume`` continues it."""
    options = replace(options, **ppo_fields_of_run(run_dir, options.seed))
    prompts = [row["prompt"] for row in read_jsonl(examples_file(run_dir, "train"))]
    reward_model = reward_model_of(run_dir)
    if options.critic == "reward-model":
        options = replace(options, critic_model=reward_model)
    task = RewardModelTask(prompts, reward_scorer(run_dir))
    if not options.resume:
        shutil.rmtree(options.out_dir, ignore_errors=True)
    with timed({"reward_model": reward_model, "prompts": len(prompts)}) as summary:
        report = run_rl(options, task).report
        rows = [row for row in read_jsonl(Path(options.out_dir) / "metrics.jsonl") if "score" in row]
        summary |= {
            "iterations": report["updates"],
            "episodes": report["episodes"],
            "learning_rate": report["learning_rate"],
            "score_first": rows[0]["score"],
            "score_last": rows[-1]["score"],
            "kl_last": rows[-1].get("kl"),
            "skipped_updates": report["skipped_updates"],
            "nonfinite_rewards": sum(row["nonfinite_rewards"] for row in rows),
            "metrics": str(Path(options.out_dir) / "metrics.jsonl"),
        }
    RunDir(options.out_dir).write_json("summary.json", summary)
    return summary
