"""The options of the corpus pipeline's stages, kept apart from the stages so that reading them (e.g. to build the
`agentic corpus` flags) imports nothing heavy.

The PPO stage is the agentic loop (`agentic.training.rl.run_rl`) with `PPOOptions`: `CORPUS_PPO` holds its
defaults for one-turn episodes scored by a reward model; the fields in `PPO_SET_BY_STAGE` come from the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentic.training.rl_config import PPOOptions

REWARD_MODEL_TASK = "RewardModel"
CORPUS_PPO: dict[str, Any] = {
    "iterations": 40,
    "episodes": 64,
    "max_new_tokens": 32,
    "learning_rate": 0.0,
    "value_learning_rate": 1e-3,
    "kl_coef": 0.05,
    "kl_target": 6.0,
    "epochs": 2,
    "minibatch_size": 8,
    "reward_normalization": "running",
    "reward_clip": 5.0,
    "checkpoint_every": 0,
}
# The SFT model (RUN/sft/model), the reward-model task, RUN/ppo and the run's seed; no agentic evaluation (the
# reward-model task has no oracle: the pipeline's evaluation stage measures the PPO model).
PPO_SET_BY_STAGE = ("model", "task", "out_dir", "seed", "n_eval", "eval_every")


def corpus_ppo_options(run_dir: str | Path, seed: int = 0, **changes: Any) -> PPOOptions:
    """The PPO stage's options for the run in ``run_dir``: `CORPUS_PPO`, then ``changes``, then what the run sets."""
    run = Path(run_dir)
    from_run = dict(model=str(run / "sft" / "model"), task=REWARD_MODEL_TASK, out_dir=str(run / "ppo"), seed=seed)
    return PPOOptions(**CORPUS_PPO | changes | from_run | {"n_eval": 0, "eval_every": 0})
