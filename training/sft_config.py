"""The options of an agentic SFT run, kept apart from the trainer so that reading them (e.g. to build the
`agentic sft` flags) imports nothing heavy, as TRL keeps its configs beside its trainers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from agentic.options import Options, option
from agentic.training.options import REPORT_TO_HELP, tracker_problems

TINY_MODEL = "tiny"
DEMO_SEED_START = 10_000
TOKENIZER_DEMOS = 200
# `--lora` / `--no-lora` from before LoRA was switched by its rank (0: off).
LORA_SWITCH: dict[str, Any] = {"--lora": ("lora_rank", 8), "--no-lora": ("lora_rank", 0)}


@dataclass(frozen=True)
class SFTOptions(Options):
    """What an SFT run does; ``agentic sft`` has one flag per field (``renamed_flags``: old flags that still work)."""

    renamed_flags: ClassVar[dict[str, Any]] = LORA_SWITCH

    model: str = option(
        TINY_MODEL,
        "model to fine-tune: a directory, a hub id, a name `agentic models list` shows, or `tiny` (built from the task's text)",
    )
    task: str = option(
        "Arithmetic",
        "registered task whose oracle demonstrates (see `agentic tasks`); options: NAME:key=value,...; several, "
        "comma-separated (A,B:key=value,C): one policy on their interleaved demonstrations, evaluated per task",
    )
    dataset: str = option(
        "",
        "train on this dataset instead of the oracle's demonstrations (--task then names the task evaluated and the "
        "text the tiny model's tokenizer learns): a "
        "JSONL/JSON/parquet file, a directory datasets' save_to_disk wrote, or a hub id; holding trajectories this "
        "project wrote (token_ids + loss_mask), chats (messages, with tool turns) or prompt + completion",
    )
    dataset_split: str = option(
        "train", "split of --dataset to train on (e.g. train; train[:1000] for a data file or a hub id)"
    )
    out_dir: str = option("runs/sft", "run directory")
    n_demos: int = option(4000, "oracle demonstrations to train on", bounds="positive")
    demo_seed_start: int = option(
        DEMO_SEED_START, "first demonstration seed (evaluation uses 0 and up)", bounds="non-negative"
    )
    sloppy_demos: float = option(
        0.0,
        "fraction of demonstrations that give up at once without trying the tools: imperfect demonstrations that "
        "leave reinforcement learning something to fix",
        bounds="fraction",
    )
    epochs: float = option(5.0, "passes over the demonstrations (when max_steps is 0)", bounds="non-negative")
    max_steps: int = option(0, "optimizer steps; 0: as many as epochs make", bounds="non-negative")
    learning_rate: float = option(3e-3, "peak learning rate (cosine schedule)", bounds="positive")
    warmup_ratio: float = option(0.05, "share of the steps spent warming the learning rate up", bounds="fraction")
    weight_decay: float = option(0.0, "AdamW weight decay", bounds="non-negative")
    batch_size: int = option(32, "demonstrations per step", bounds="positive")
    micro_batches: int = option(
        1,
        "split each step's demonstrations into this many micro-batches of similar lengths (transformers' "
        "batch_rebalance sampler) and accumulate their gradients: the same step over less padding; 1: one padded "
        "batch in random order",
        bounds="positive",
    )
    share_prefix: bool = option(
        True,
        "run the tokens all demonstrations of a batch begin with (instructions, tool manual) once per batch, not once "
        "per row: the same loss and gradients for less compute (training.shared_prefix)",
    )
    max_length: int = option(1024, "longest demonstration kept", unit="tokens", bounds="positive")
    lora_rank: int = option(0, "0: full fine-tuning; > 0: LoRA adapters of this rank", bounds="non-negative")
    lora_alpha: int = option(0, "LoRA scaling alpha; 0: twice the rank", bounds="non-negative")
    lora_target_modules: str = option(
        "all-linear", "modules LoRA adapts: all-linear or comma-separated names (e.g. query_key_value,dense)"
    )
    seed: int = option(
        0, "seed of the demonstrations' sloppiness, the initialisation and the batches", bounds="non-negative"
    )
    max_seconds: float = option(
        0.0,
        "stop training after this much training time (the schedule is cut short); 0: no limit",
        unit="s",
        bounds="non-negative",
    )
    checkpoint_every: int = option(
        0, "save a resumable trainer checkpoint every this many steps; 0: none", bounds="non-negative"
    )
    log_every: int = option(10, "log the loss every this many steps", bounds="positive")
    n_eval: int = option(
        0,
        "greedy evaluation of the final model on held-out seeds 0 .. n_eval-1 (eval.json, the report); 0: none",
        bounds="non-negative",
    )
    constrained: bool = option(
        False, "evaluate under the constraint: each action drawn from the grammar of the valid actions (llguidance)"
    )
    progress: bool = option(True, "show progress bars")
    report_to: str = option("tensorboard", REPORT_TO_HELP)

    def problems(self) -> list[str]:
        from agentic.registry import task_spec_problems  # here: reading the options imports nothing heavy

        problems = task_spec_problems(self.task)
        problems += tracker_problems(self.report_to)
        if self.max_steps == 0 and not self.epochs > 0:
            problems.append(f"epochs must be positive when max_steps is 0, got {self.epochs}")
        if self.batch_size % self.micro_batches:
            problems.append(
                f"batch_size ({self.batch_size}) must be a multiple of micro_batches ({self.micro_batches})"
            )
        if self.warmup_ratio == 1:
            problems.append("warmup_ratio must be below 1")
        if self.n_eval > self.demo_seed_start:
            problems.append(f"n_eval must be at most demo_seed_start ({self.demo_seed_start}): seeds held out")
        if self.dataset and self.sloppy_demos:
            problems.append("sloppy_demos applies to the oracle's demonstrations, not to a dataset")
        if not self.dataset_split:
            problems.append("dataset_split must name a split")
        if self.constrained and not self.n_eval:
            problems.append("constrained applies to the evaluation: give n_eval too")
        return problems

    @property
    def demo_seeds(self) -> range:
        return range(self.demo_seed_start, self.demo_seed_start + self.n_demos)
