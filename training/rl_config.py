"""The options of a PPO or GRPO run: one class per algorithm (`PPOOptions`, `GRPOOptions`) over a base of what they
share (`RLOptions`). Kept apart from the trainer so that reading them (e.g. to build the `agentic ppo` / `agentic grpo`
flags) imports nothing heavy, as TRL keeps its configs beside its trainers.

Seeds: evaluation uses the fixed held-out seeds ``0 .. n_eval-1`` (greedy); SFT demonstrations use 10 000 and up;
update ``i`` (0-based) plays the task instances ``TRAIN_SEED_START + i * instances_per_update + j``, so a resumed run
draws exactly the batch the uninterrupted run would have.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from agentic.options import Options, option
from agentic.training.options import REPORT_TO_HELP, tracker_problems
from agentic.training.sft_config import DEMO_SEED_START, LORA_SWITCH

TRAIN_SEED_START = 1_000_000
NORMALIZATIONS = ("none", "batch", "running")
# Options that may change when a run is resumed; every other option must match the checkpointed run's.
RESUMABLE_CHANGES = (
    "iterations",
    "max_seconds",
    "resume",
    "progress",
    "report_to",
    "eval_every",
    "checkpoint_every",
    "samples_per_update",
    "micro_batch_size",
    "share_prefix",
)


@dataclass(frozen=True)
class RLOptions(Options):
    """What a PPO or GRPO run does, whichever the algorithm; ``agentic ppo`` / ``agentic grpo`` have one flag per field
    (``renamed_flags``: old flags that still work)."""

    name: ClassVar[str] = ""
    renamed_flags: ClassVar[dict[str, Any]] = {"--lr": "learning_rate", **LORA_SWITCH}

    model: str = option(
        "",
        "the starting model: a directory (full model or PEFT adapter) or a hub id (run_rl also takes a model object)",
    )
    task: str = option(
        "Arithmetic",
        "registered task to train on (see `agentic tasks`); options: NAME:key=value,...; several, comma-separated "
        "(A,B:key=value,C): one policy on their interleaved instances, evaluated per task",
    )
    out_dir: str = option("runs/rl", "run directory")
    iterations: int = option(100, "updates", bounds="positive")
    temperature: float = option(
        1.0,
        "sampling temperature of the rollouts; the update takes its log-probs (ratio, KL, entropy) at the same "
        "temperature, so what it trains is the distribution sampled from (as TRL does)",
        bounds="positive",
    )
    max_new_tokens: int = option(
        0,
        "longest action sampled; 0: the task's longest oracle action plus a quarter, at least 64 "
        "(`agentic.training.action_length`)",
        unit="tokens",
        bounds="non-negative",
    )
    constrained: bool = option(
        False,
        "sample every action (rollouts and evaluations) from the grammar of the valid actions; the ratio, the KL and "
        "the entropy are then taken under the same masks (needs llguidance)",
    )
    learning_rate: float = option(
        1e-5,
        "policy learning rate; 0: by model size (1e-5 from 50M parameters, 5e-5 below; ten times that with LoRA)",
        bounds="non-negative",
    )
    epochs: int = option(4, "passes over each update's episodes", bounds="positive")
    minibatch_size: int = option(8, "episodes per gradient step", bounds="positive")
    micro_batch_size: int = option(
        0,
        "episodes per forward and backward pass: each minibatch's gradient is accumulated over micro-batches of this "
        "many, exactly as one pass would give it (memory then grows with this, not with the minibatch); also the "
        "rows of the update's passes without gradients. 0: the whole minibatch at once",
        bounds="non-negative",
    )
    share_prefix: bool = option(
        True,
        "run the tokens all episodes of a forward pass begin with (instructions, tool manual) once per pass, not once "
        "per episode: the same log-probs and gradients for less compute",
    )
    clip_range: float = option(0.2, "the probability ratio is clipped to 1 +- this", bounds="positive")
    max_grad_norm: float = option(1.0, "gradients are clipped to this norm", bounds="positive")
    entropy_coef: float = option(0.0, "weight of the entropy bonus in the loss", bounds="non-negative")
    kl_coef: float = option(
        0.05, "weight of the KL to the frozen reference (starting weight, when adaptive)", bounds="non-negative"
    )
    reward_normalization: str = option(
        "none",
        "how each episode's last reward (its score) is normalised: none, over this batch, or with running statistics",
        choices=NORMALIZATIONS,
    )
    reward_clip: float = option(
        0.0, "rewards are clipped to +-this after normalisation; 0: no clipping", bounds="non-negative"
    )
    missing_eos_penalty: float = option(
        0.0,
        "free-text tasks: subtracted from the (normalised) reward of a response that ends without the end-of-sequence "
        "token, having reached the length limit; 0: off",
        bounds="non-negative",
    )
    lora_rank: int = option(
        0,
        "0: train every weight against a frozen copy; > 0: fresh LoRA adapters of this rank, the reference being the "
        "model under them",
        bounds="non-negative",
    )
    lora_alpha: int = option(0, "LoRA scaling alpha; 0: twice the rank", bounds="non-negative")
    lora_target_modules: str = option("all-linear", "modules LoRA adapts: all-linear or comma-separated names")
    eval_every: int = option(
        10, "greedy held-out evaluation every this many updates; 0: at the start and end only", bounds="non-negative"
    )
    n_eval: int = option(100, "held-out evaluation seeds 0 .. n_eval-1; 0: no evaluation", bounds="non-negative")
    checkpoint_every: int = option(10, "checkpoint every this many updates; 0: at the end only", bounds="non-negative")
    samples_per_update: int = option(4, "transcripts saved per update (samples/update-N.jsonl)", bounds="non-negative")
    resume: bool = option(False, "continue the run in out_dir from its newest checkpoint")
    seed: int = option(0, "seed of the initialisation, sampling and minibatch order", bounds="non-negative")
    max_seconds: float = option(
        0.0,
        "start no update after this long (the final evaluation and save still run); 0: no limit",
        unit="s",
        bounds="non-negative",
    )
    max_failures: int = option(
        3, "consecutive non-finite updates (each rolled back) that stop the run", bounds="positive"
    )
    progress: bool = option(True, "show a progress bar")
    report_to: str = option("tensorboard", REPORT_TO_HELP)

    def problems(self) -> list[str]:
        problems = tracker_problems(self.report_to)  # the task is checked when the run makes it (it may be an object)
        if self.n_eval > DEMO_SEED_START:
            problems.append(
                f"n_eval must be at most {DEMO_SEED_START}: evaluation seeds must not reach the SFT demonstration seeds"
            )
        return problems

    @property
    def instances_per_update(self) -> int:
        """Task instances (seeds) per update."""
        raise NotImplementedError

    @property
    def instances_name(self) -> str:
        """The option that sets `instances_per_update`."""
        raise NotImplementedError

    @property
    def episodes_per_update(self) -> int:
        return self.instances_per_update

    @property
    def forward_batch_size(self) -> int:
        """Episodes per forward pass of an update: a micro-batch, or the whole minibatch."""
        return self.micro_batch_size or self.minibatch_size

    @property
    def eval_seeds(self) -> range:
        return range(self.n_eval)

    def train_seeds(self, iteration: int) -> range:
        """The task instances of update ``iteration`` (0-based), never an evaluation or demonstration seed."""
        start = TRAIN_SEED_START + iteration * self.instances_per_update
        return range(start, start + self.instances_per_update)

    def process_seeds(self, iteration: int, process: int, n_processes: int) -> list[int]:
        """The seeds this process plays in update ``iteration``: its contiguous share of the update's instances."""
        seeds = self.train_seeds(iteration)
        share = len(seeds) // n_processes
        return list(seeds[process * share : (process + 1) * share])

    def differences(self, other: RLOptions) -> list[str]:
        """The options, beyond those a resume may change, on which ``other`` differs from these."""
        if type(other) is not type(self):
            return [f"algorithm ({other.name} here, {self.name} in the run)"]
        return [
            f"{f.name} ({getattr(other, f.name)!r} here, {getattr(self, f.name)!r} in the run)"
            for f in fields(self)
            if f.name not in RESUMABLE_CHANGES and getattr(self, f.name) != getattr(other, f.name)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The options as config.json records them, the algorithm's name included."""
        return {"algorithm": self.name} | {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class PPOOptions(RLOptions):
    """Turn-level PPO: a critic estimates a value at each turn's decision point, GAE runs over turns, the KL to the
    reference is charged to each turn's reward."""

    name: ClassVar[str] = "ppo"
    renamed_flags: ClassVar[dict[str, Any]] = RLOptions.renamed_flags | {"--value-lr": "value_learning_rate"}

    episodes: int = option(32, "episodes per update (one instance each)", bounds="positive")
    value_learning_rate: float = option(
        1e-4, "the critic's learning rate (a fresh head needs larger steps)", bounds="positive"
    )
    critic: str = option(
        "shared",
        "shared: a value head on the policy's last hidden state; separate: a head on its own copy of the trunk; "
        "reward-model: the reward model critic_model's trunk and head (its vocabulary the policy's)",
        choices=("shared", "separate", "reward-model"),
    )
    critic_model: str = option("", "critic reward-model: the reward model it starts as (directory or hub id)")
    gamma: float = option(1.0, "discount per turn", bounds="fraction")
    lam: float = option(0.95, "GAE's lambda", bounds="fraction")
    value_coef: float = option(0.5, "weight of the value loss", bounds="non-negative")
    value_clip_range: float = option(
        0.2, "new values are kept within this of the rollout's; 0: no value clipping", bounds="non-negative"
    )
    whiten_advantages: bool = option(True, "shift and scale the batch's advantages to mean 0, variance 1")
    kl_target: float = option(
        0.0,
        "per-episode KL the coefficient adapts towards (Ziegler et al.); 0: kl_coef stays fixed",
        bounds="non-negative",
    )
    kl_horizon: int = option(
        10_000, "episodes over which the adaptive coefficient moves by its full step", bounds="positive"
    )

    @property
    def instances_per_update(self) -> int:
        return self.episodes

    @property
    def instances_name(self) -> str:
        return "episodes"


@dataclass(frozen=True)
class GRPOOptions(RLOptions):
    """GRPO: ``group_size`` rollouts of each of ``groups`` instances per update, each episode's advantage its return
    normalised within its group; no critic; the KL to the reference is a loss term (k3 estimate)."""

    name: ClassVar[str] = "grpo"

    epochs: int = option(
        1, "passes over each update's episodes (1: the ratio is 1, as in the paper's usual setting)", bounds="positive"
    )
    groups: int = option(8, "task instances per update", bounds="positive")
    group_size: int = option(4, "rollouts of each instance (at least 2: advantages compare them)", bounds="positive")

    def problems(self) -> list[str]:
        if self.group_size < 2:
            return [
                *super().problems(),
                "group_size must be at least 2: GRPO's advantages compare rollouts of the same instance",
            ]
        return super().problems()

    @property
    def instances_per_update(self) -> int:
        return self.groups

    @property
    def instances_name(self) -> str:
        return "groups"

    @property
    def episodes_per_update(self) -> int:
        return self.groups * self.group_size

    def process_seeds(self, iteration: int, process: int, n_processes: int) -> list[int]:
        """Each of this process's instances ``group_size`` times in a row: a group never straddles processes."""
        return [seed for seed in super().process_seeds(iteration, process, n_processes) for _ in range(self.group_size)]


OPTIONS_BY_ALGORITHM: dict[str, type[RLOptions]] = {options.name: options for options in (PPOOptions, GRPOOptions)}


def options_from_config(config: dict[str, Any]) -> RLOptions:
    """The options a run's config.json records."""
    options_class = OPTIONS_BY_ALGORITHM[config["algorithm"]]
    names = {f.name for f in fields(options_class)}
    return options_class(**{k: v for k, v in config.items() if k in names})
