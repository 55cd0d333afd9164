"""Stage 2: LoRA supervised fine-tuning on (prompt, reference) through TRL's `SFTTrainer`, then merge.

The loss is on the reference tokens only (TRL's prompt-completion format). The LoRA rank follows
the paper by model size: 8 up to 100M parameters, 16 up to 200M, 32 above (the tiny model: 8).
LoRA dropout defaults to 0: on a CPU its Bernoulli masks cost as much as the adapters' matmuls.
The adapter is merged (`merge_and_unload`) and the merged model saved to ``RUN/sft/model``: it is
the PPO policy, its KL reference, and the reward model's initialisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import datasets
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import SFTConfig, SFTTrainer

from agentic.training.corpus.base import TINY, TinySettings, build_tiny_base
from agentic.training.corpus.hardware import trainer_arguments
from agentic.training.corpus.rundir import CorpusRun, read_jsonl, timed


@dataclass(frozen=True)
class SftSettings:
    model: str = TINY
    epochs: float = 2
    learning_rate: float | None = None
    batch_size: int = 16
    max_length: int = 512
    lora_rank: int | None = None
    lora_dropout: float = 0.0
    seed: int = 0
    tiny: TinySettings = TinySettings()


def lora_rank(parameters: int) -> int:
    """The paper's rank by model size: 8 (<= 100M parameters), 16 (<= 200M), 32 (larger)."""
    if parameters <= 100_000_000:
        return 8
    return 16 if parameters <= 200_000_000 else 32


def sft_learning_rate(model: str) -> float:
    """LoRA's usual 2e-4 for a pretrained model; the tiny model, trained minutes ago, takes 1e-3."""
    return 1e-3 if model == TINY else 2e-4


def base_model(run_dir: str | Path, settings: SftSettings) -> str:
    """The model SFT starts from: the given hub id / path, or the tiny model (built into ``RUN/base`` if missing)."""
    if settings.model != TINY:
        return settings.model
    run = CorpusRun(run_dir)
    if not (run.model("base") / "config.json").is_file():
        build_tiny_base(run_dir, settings.tiny)
    return str(run.model("base"))


def train_sft(run_dir: str | Path, settings: SftSettings = SftSettings()) -> dict:
    """Fine-tune on ``RUN/prepare/train.jsonl`` with LoRA and save the merged model to ``RUN/sft/model``."""
    run = CorpusRun(run_dir)
    start = base_model(run_dir, settings)
    train = datasets.Dataset.from_list(read_jsonl(run.examples("train"))).select_columns(["prompt", "reference"])
    with timed({"base_model": start}) as summary:
        set_seed(settings.seed)
        model = AutoModelForCausalLM.from_pretrained(start)
        tokenizer = AutoTokenizer.from_pretrained(start)
        summary["parameters"] = sum(p.numel() for p in model.parameters())
        rank = settings.lora_rank or lora_rank(summary["parameters"])
        arguments = trainer_arguments(
            run.stage("sft"), settings, settings.learning_rate or sft_learning_rate(settings.model)
        )
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**arguments, max_length=settings.max_length, completion_only_loss=True),
            train_dataset=train.rename_column("reference", "completion"),
            processing_class=tokenizer,
            peft_config=LoraConfig(
                r=rank,
                lora_alpha=2 * rank,
                lora_dropout=settings.lora_dropout,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            ),
        )
        summary.update(lora_rank=rank, train_loss=trainer.train().training_loss)
        trainer.model.merge_and_unload().save_pretrained(run.model("sft"))
        trainer.processing_class.save_pretrained(run.model("sft"))
    run.write("sft", "config", asdict(settings) | {"base_model": start})
    run.write("sft", "summary", summary)
    return summary
