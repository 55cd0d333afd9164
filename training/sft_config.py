"""The options of an agentic SFT run, kept apart from the trainer so that reading them (e.g. to build
the `agentic sft` flags) imports nothing heavy, as TRL keeps its configs beside its trainers."""

from __future__ import annotations

from dataclasses import dataclass

from agentic.training.options import sign_problems

TINY_MODEL = "tiny"
DEMO_SEED_START = 10_000
TOKENIZER_DEMOS = 200


@dataclass(frozen=True)
class SFTOptions:
    """What an SFT run does; ``agentic sft`` has one flag per field.

    ``max_steps`` (when > 0) overrides ``epochs``; ``max_seconds`` stops training early once
    that much training time has passed (the learning-rate schedule is then cut short).
    ``checkpoint_every`` > 0 saves a resumable Trainer checkpoint every that many steps.
    ``lora_target_modules`` is ``all-linear`` or comma-separated module names (e.g. ``query_key_value,dense``).
    ``sloppy_demos`` is the fraction of demonstrations that give up at once, without trying the tools
    (`agentic.training.demos`): imperfect demonstrations that leave reinforcement learning something to fix.
    """

    model: str = TINY_MODEL
    task: str = "Arithmetic"
    out_dir: str = "runs/sft"
    n_demos: int = 4000
    demo_seed_start: int = DEMO_SEED_START
    sloppy_demos: float = 0.0
    epochs: float = 5.0
    max_steps: int = 0
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    batch_size: int = 32
    max_length: int = 1024
    lora: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_target_modules: str = "all-linear"
    seed: int = 0
    max_seconds: float = 0.0
    checkpoint_every: int = 0
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        problems = sign_problems(
            self,
            positive=("n_demos", "learning_rate", "batch_size", "max_length", "lora_rank", "lora_alpha", "log_every"),
            non_negative=("demo_seed_start", "max_steps", "max_seconds", "checkpoint_every", "weight_decay"),
        )
        if self.max_steps == 0 and self.epochs <= 0:
            problems.append(f"epochs must be positive when max_steps is 0, got {self.epochs}")
        if not 0 <= self.sloppy_demos <= 1:
            problems.append(f"sloppy_demos must lie in [0, 1], got {self.sloppy_demos}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if problems:
            raise ValueError("bad SFT options: " + "; ".join(problems))

    @property
    def demo_seeds(self) -> range:
        return range(self.demo_seed_start, self.demo_seed_start + self.n_demos)
