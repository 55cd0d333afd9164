"""The options of a PPO or GRPO run, kept apart from the trainer so that reading them (e.g. to build the
`agentic ppo` / `agentic grpo` flags) imports nothing heavy, as TRL keeps its configs beside its trainers."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from agentic.training.options import sign_problems
from agentic.training.sft_config import DEMO_SEED_START

TRAIN_SEED_START = 1_000_000
ALGORITHMS = ("ppo", "grpo")
CRITICS = ("shared", "separate")
# Options that may change when a run is resumed; every other option must match the checkpointed run's.
RESUMABLE_CHANGES = (
    "iterations",
    "max_seconds",
    "resume",
    "progress",
    "eval_every",
    "checkpoint_every",
    "samples_per_update",
)


@dataclass(frozen=True)
class RLOptions:
    """What a PPO or GRPO run does; ``agentic ppo`` / ``agentic grpo`` have one flag per field.

    Seeds: evaluation uses the fixed held-out seeds ``0 .. n_eval-1`` (greedy); SFT demonstrations use
    10 000 and up; training update ``i`` (0-based) samples the task instances
    ``TRAIN_SEED_START + i * instances_per_update + j``, so a resumed run draws exactly the batch the
    uninterrupted run would have. ``episodes`` is PPO's episodes per update; GRPO draws ``groups``
    instances with ``group_size`` rollouts each.

    Zero switches off: ``epochs`` 0 takes the algorithm's default (PPO 4, GRPO 1), ``kl_target`` 0 keeps the
    KL coefficient fixed (PPO only; GRPO's KL is a fixed loss term), ``value_clip_range`` 0 disables value
    clipping, ``eval_every`` / ``checkpoint_every`` 0 evaluate / checkpoint at the end only, ``n_eval`` 0
    skips evaluation, ``max_seconds`` 0 means no time limit (otherwise no update starts once that many seconds
    have passed since this invocation began; the final evaluation and save still run).

    ``temperature`` 1 keeps the recorded sampling log-probs the policy's own, which the PPO ratio assumes;
    another value trains on a tempered behaviour policy. ``lora``: the starting model (merged, if it is
    itself an adapter) gets fresh LoRA adapters and the KL reference is that model with the adapters
    disabled; without it the whole model trains against a frozen copy.
    """

    model: str = ""
    algorithm: str = "ppo"
    task: str = "Arithmetic"
    out_dir: str = "runs/rl"
    iterations: int = 100
    episodes: int = 32
    groups: int = 8
    group_size: int = 4
    temperature: float = 1.0
    max_new_tokens: int = 64
    lr: float = 1e-5
    value_lr: float = 1e-4
    critic: str = "shared"
    epochs: int = 0
    minibatch_size: int = 8
    clip_range: float = 0.2
    max_grad_norm: float = 1.0
    gamma: float = 1.0
    lam: float = 0.95
    value_coef: float = 0.5
    value_clip_range: float = 0.2
    entropy_coef: float = 0.0
    whiten_advantages: bool = True
    kl_coef: float = 0.05
    kl_target: float = 0.0
    kl_horizon: int = 10_000
    lora: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_target_modules: str = "all-linear"
    eval_every: int = 10
    n_eval: int = 100
    checkpoint_every: int = 10
    samples_per_update: int = 4
    resume: bool = False
    seed: int = 0
    max_seconds: float = 0.0
    max_failures: int = 3
    progress: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not self.model:
            problems.append("model must be given (a model directory or hub id)")
        if self.algorithm not in ALGORITHMS:
            problems.append(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.critic not in CRITICS:
            problems.append(f"critic must be one of {', '.join(CRITICS)}, got {self.critic!r}")
        problems += sign_problems(
            self,
            positive=(
                "iterations",
                "episodes",
                "groups",
                "group_size",
                "temperature",
                "max_new_tokens",
                "lr",
                "value_lr",
            )
            + ("kl_horizon", "lora_rank", "lora_alpha", "max_failures"),
            non_negative=("epochs", "value_clip_range", "kl_coef", "kl_target", "eval_every", "n_eval")
            + ("checkpoint_every", "samples_per_update", "seed", "max_seconds"),
        )
        if self.n_eval > DEMO_SEED_START:
            problems.append(
                f"n_eval must be at most {DEMO_SEED_START}: evaluation seeds must not reach the SFT demonstration seeds"
            )
        if self.algorithm == "grpo" and self.kl_target > 0:
            problems.append("kl_target (an adaptive KL coefficient) is PPO's; GRPO's KL term has a fixed kl_coef")
        if self.algorithm == "grpo" and self.group_size < 2:
            problems.append("group_size must be at least 2: GRPO's advantages compare rollouts of the same instance")
        if problems:
            raise ValueError("bad RL options: " + "; ".join(problems))
        try:
            self.update_config()
        except ValueError as error:
            raise ValueError(f"bad RL options: {error}") from None

    @property
    def instances_per_update(self) -> int:
        """Task instances (seeds) per update: PPO's episodes, GRPO's groups."""
        return self.episodes if self.algorithm == "ppo" else self.groups

    @property
    def episodes_per_update(self) -> int:
        return self.episodes if self.algorithm == "ppo" else self.groups * self.group_size

    @property
    def eval_seeds(self) -> range:
        return range(self.n_eval)

    def train_seeds(self, iteration: int) -> range:
        """The task instances of update ``iteration`` (0-based), never an evaluation or demonstration seed."""
        start = TRAIN_SEED_START + iteration * self.instances_per_update
        return range(start, start + self.instances_per_update)

    def update_config(self) -> Any:
        """The algorithm's update settings: a `agentic.training.ppo.PPOConfig` or `agentic.training.grpo.GRPOConfig` (imports torch)."""
        shared: dict[str, Any] = {
            "minibatch_size": self.minibatch_size,
            "clip_range": self.clip_range,
            "max_grad_norm": self.max_grad_norm,
        }
        if self.epochs:
            shared["epochs"] = self.epochs
        if self.algorithm == "grpo":
            from agentic.training.grpo import GRPOConfig

            return GRPOConfig(**shared, kl_coef=self.kl_coef)
        from agentic.training.ppo import PPOConfig

        return PPOConfig(
            **shared,
            gamma=self.gamma,
            lam=self.lam,
            value_coef=self.value_coef,
            value_clip_range=self.value_clip_range or None,
            entropy_coef=self.entropy_coef,
            whiten_advantages=self.whiten_advantages,
        )

    def differences(self, other: RLOptions) -> list[str]:
        """The options, beyond those a resume may change, on which ``other`` differs from these."""
        return [
            f"{f.name} ({getattr(other, f.name)!r} here, {getattr(self, f.name)!r} in the run)"
            for f in fields(self)
            if f.name not in RESUMABLE_CHANGES and getattr(self, f.name) != getattr(other, f.name)
        ]
