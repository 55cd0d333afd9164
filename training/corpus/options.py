"""The options of the corpus pipeline's stages, kept apart from the stages so that reading them (e.g. to build the
`agentic corpus` flags) imports nothing heavy. Each stage's ``seed`` (and, where it has them, ``model``, ``corpus``
and ``standin``) come from the run (`CorpusRunOptions`).

The PPO stage is the agentic loop (`agentic.training.rl.run_rl`) with `PPOOptions`: `CORPUS_PPO` holds its
defaults for one-turn episodes scored by a reward model; the fields in `PPO_SET_BY_STAGE` come from the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from agentic.options import Options, option
from agentic.training.rl_config import PPOOptions

TINY = "tiny"
CORPUS_NAMES = ("tinystories", "cnn_dailymail", "wikitext103", "chat")
LOCAL_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
REJECTION_KINDS = ("mismatch", "shuffle", "dropout")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
REWARD_MODEL_TASK = "RewardModel"
# The PPO stage's hyper-parameters of the project's seed recipes: PPO RLHF of SmolLM(2)-135M(-Instruct) against a
# reward model, as TRL's PPO example runs it (its KL coefficient is fixed: no adaptive target).
RECIPES: dict[str, dict[str, Any]] = {
    "smollm-rlhf": {
        "learning_rate": 2e-6,
        "epochs": 4,
        "clip_range": 0.2,
        "kl_coef": 0.02,
        "kl_target": 0.0,
        "missing_eos_penalty": 1.0,
        "critic": "reward-model",
        "value_learning_rate": 2e-6,
    }
}


def corpus_problems(corpus: str, what: str = "corpus", names: tuple[str, ...] = CORPUS_NAMES) -> list[str]:
    """What is wrong with a corpus (or preference dataset) name: neither one of ``names``, nor a hub id
    (``owner/name``), nor an existing local file `datasets` reads."""
    if corpus in names or (HUB_ID.fullmatch(corpus) and Path(corpus).suffix not in LOCAL_SUFFIXES):
        return []
    if Path(corpus).suffix not in LOCAL_SUFFIXES:
        return [
            f"unknown {what} {corpus!r}: use one of {', '.join(names)}, a hub id (owner/name) or a local "
            f"{'/'.join(LOCAL_SUFFIXES)} file"
        ]
    return [] if Path(corpus).is_file() else [f"{what} file {corpus} does not exist"]


@dataclass(frozen=True)
class CorpusRunOptions(Options):
    """Which model and corpus a run is about, and where it lives: every `agentic corpus` subcommand takes these."""

    model: str = option(TINY, "hub id, local path, or `tiny` (the embedded model, built from the corpus)")
    corpus: str = option("tinystories", f"{', '.join(CORPUS_NAMES)}, or a local {'/'.join(LOCAL_SUFFIXES)} file")
    standin: bool = option(False, "use the named corpus's shipped offline stand-in instead of the hub")
    out_dir: str = option("", "run directory; empty: runs/corpus/MODEL-CORPUS")
    seed: int = option(0, "seed of every stage", bounds="non-negative")
    recipe: str = option(
        "none",
        "a seed recipe's PPO hyper-parameters (smollm-rlhf: lr 2e-6 for policy and critic, 4 epochs, clip 0.2, fixed KL "
        "coefficient 0.02, missing-EOS penalty 1.0, critic from the reward model); a --ppo-* flag given with another "
        "value than its default still wins",
        choices=("none", *RECIPES),
    )

    def problems(self) -> list[str]:
        problems = corpus_problems(self.corpus)
        if self.model.startswith((".", "/", "~")) and not Path(self.model).expanduser().exists():
            problems.append(f"model directory {self.model} does not exist")
        return problems

    @property
    def run_dir(self) -> Path:
        """``out_dir``, or ``runs/corpus/MODEL-CORPUS`` from the model's and corpus's last path parts."""
        return Path(self.out_dir or Path("runs") / "corpus" / f"{Path(self.model).name}-{Path(self.corpus).stem}")


@dataclass(frozen=True)
class PipelineOptions(CorpusRunOptions):
    """`agentic corpus run`: the run, and whether PPO is part of it."""

    ppo: bool = option(True, "run the PPO stage (--no-ppo: SFT is the final policy)")


@dataclass(frozen=True)
class PrepareOptions(Options):
    """Stage 1: the split (evaluation, then held-out, then train) and the preference pairs."""

    corpus: str = option("tinystories", "named corpus or local file")
    standin: bool = option(False, "the named corpus's shipped stand-in")
    seed: int = option(0, "seed of the split and the pairs", bounds="non-negative")
    eval_size: int = option(32, "evaluation examples, split off first", bounds="positive")
    heldout_size: int = option(32, "examples whose pairs measure the reward model", bounds="positive")
    train_size: int = option(0, "train examples; 0: all that is left", bounds="non-negative")
    max_rows: int = option(0, "corpus rows read; 0: all", bounds="non-negative")
    max_prompt_words: int = option(128, "prompt length cap", unit="words", bounds="positive")
    max_reference_words: int = option(64, "reference length cap", unit="words", bounds="positive")
    rejection_kinds: str = option(
        ",".join(REJECTION_KINDS), f"how rejected texts are made, comma-separated: {', '.join(REJECTION_KINDS)}"
    )
    word_dropout: float = option(0.3, "share of words a `dropout` rejection drops", bounds="fraction")
    preferences: str = option(
        "",
        "the reward model's pairs from a preference dataset (chosen/rejected, prompt explicit or implicit, "
        "conversational or plain): chat (its stand-in with --standin), a hub id or a local file; held-out pairs: "
        "heldout_size of them; empty: pairs built from the corpus",
    )

    def problems(self) -> list[str]:
        unknown = [kind for kind in self.kinds if kind not in REJECTION_KINDS]
        problems = corpus_problems(self.preferences, "preference dataset", ("chat",)) if self.preferences else []
        if not self.kinds:
            return [*problems, "rejection_kinds must name at least one kind"]
        return (
            [*problems, f"unknown rejection kinds {unknown}: use {', '.join(REJECTION_KINDS)}"] if unknown else problems
        )

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind.strip() for kind in self.rejection_kinds.split(",") if kind.strip())


@dataclass(frozen=True)
class TinyBaseOptions(Options):
    """The embedded tiny model for ``--model tiny``: its tokenizer and pretraining on the train split."""

    vocab_size: int = option(1024, "BPE vocabulary learnt from the train split", bounds="positive")
    hidden_size: int = option(128, "width", bounds="positive")
    num_hidden_layers: int = option(4, "layers", bounds="positive")
    epochs: float = option(8.0, "pretraining epochs", bounds="positive")
    learning_rate: float = option(1e-3, "pretraining learning rate", bounds="positive")
    batch_size: int = option(16, "texts per step", bounds="positive")
    seed: int = option(0, "seed of the initialisation and batches", bounds="non-negative")


@dataclass(frozen=True)
class CorpusSFTOptions(Options):
    """Stage 2: LoRA SFT on (prompt, reference), merged."""

    model: str = option(TINY, "the model SFT starts from")
    epochs: float = option(2.0, "SFT epochs", bounds="positive")
    learning_rate: float = option(
        0.0, "SFT learning rate; 0: 1e-3 for the tiny model, 2e-4 otherwise", bounds="non-negative"
    )
    batch_size: int = option(16, "examples per step", bounds="positive")
    max_length: int = option(512, "longest example kept", unit="tokens", bounds="positive")
    lora_rank: int = option(0, "LoRA rank; 0: by model size as in the paper (8 / 16 / 32)", bounds="non-negative")
    lora_dropout: float = option(
        0.0, "LoRA dropout (its masks cost as much as the adapters on a CPU)", bounds="fraction"
    )
    seed: int = option(0, "seed of the adapters' initialisation and batches", bounds="non-negative")


@dataclass(frozen=True)
class RewardOptions(Options):
    """Stage 3: the Bradley-Terry reward model trained from the SFT model, or a pretrained one."""

    model: str = option("", "a pretrained reward model (hub id or path) used instead of training one; empty: train")
    epochs: float = option(3.0, "reward-model epochs", bounds="positive")
    learning_rate: float = option(
        0.0, "reward-model learning rate; 0: 1e-3 for the tiny model, 1e-5 otherwise", bounds="non-negative"
    )
    batch_size: int = option(8, "pairs per step", bounds="positive")
    max_length: int = option(512, "longest text scored", unit="tokens", bounds="positive")
    seed: int = option(0, "seed of the head's initialisation and batches", bounds="non-negative")


@dataclass(frozen=True)
class CorpusEvalOptions(Options):
    """Stage 5: every model of the run on the held-out evaluation prompts, with one sampler."""

    max_new_tokens: int = option(48, "completion length cap", unit="tokens", bounds="positive")
    temperature: float = option(0.7, "sampling temperature", bounds="positive")
    top_p: float = option(0.9, "nucleus probability mass", bounds="fraction")
    batch_size: int = option(16, "prompts per batch", bounds="positive")
    table_prompts: int = option(8, "evaluation prompts in the before/after-PPO table", bounds="non-negative")
    seed: int = option(0, "sampling seed", bounds="non-negative")

    def problems(self) -> list[str]:
        return [] if self.top_p > 0 else ["top_p must be positive"]


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
    "missing_eos_penalty": 1.0,
    "checkpoint_every": 0,
}
# The SFT model (RUN/sft/model), the reward-model task, RUN/ppo and the run's seed; no agentic evaluation (the
# reward-model task has no oracle: the pipeline's evaluation stage measures the PPO model); a critic from the reward
# model starts as the run's reward model (set when the stage runs, once the reward stage has recorded it).
PPO_SET_BY_STAGE = ("model", "task", "out_dir", "seed", "n_eval", "eval_every", "critic_model")


def ppo_fields_of_run(run_dir: str | Path, seed: int) -> dict[str, Any]:
    """The `PPO_SET_BY_STAGE` fields for the run in ``run_dir`` that are known before its stages run (all but
    ``critic_model``, which `agentic.training.corpus.ppo.ppo_stage` sets)."""
    run = Path(run_dir)
    return dict(
        model=str(run / "sft" / "model"),
        task=REWARD_MODEL_TASK,
        out_dir=str(run / "ppo"),
        seed=seed,
        n_eval=0,
        eval_every=0,
    )


def corpus_ppo_options(run_dir: str | Path, seed: int = 0, recipe: str = "none", **changes: Any) -> PPOOptions:
    """The PPO stage's options for the run in ``run_dir``: `CORPUS_PPO`, then the ``recipe``'s (`RECIPES`), then
    ``changes``, then what the run sets."""
    return PPOOptions(**CORPUS_PPO | RECIPES.get(recipe, {}) | changes | ppo_fields_of_run(run_dir, seed))


def with_recipe(options: PPOOptions, recipe: str) -> PPOOptions:
    """``options`` (as the ``--ppo-*`` flags give them) with the ``recipe``'s value in every field the flags left at
    the stage's default; a field set to another value keeps it, so every recipe value can be overridden (a flag that
    repeats the default cannot be told from no flag)."""
    if recipe == "none":
        return options
    defaults = {field.name: CORPUS_PPO.get(field.name, field.default) for field in fields(PPOOptions)}
    kept = {name: value for name, value in RECIPES[recipe].items() if getattr(options, name) == defaults[name]}
    return replace(options, **kept)
