"""The policy's starting point: a hub id or local path as given, or the embedded tiny model built from the train split.

``model="tiny"`` builds, in ``RUN/base/model``, a Pythia-style GPT-NeoX (`agentic.training.tiny_model`) whose
BPE tokenizer is learnt from the train part's text and which is then pretrained on that text as a
plain language model, standing in for a hub model's pretraining. Only train text is used, so the
evaluation's perplexity is measured on text the tiny model never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets
from transformers import GPTNeoXForCausalLM, set_seed
from trl import SFTConfig, SFTTrainer

from agentic.training.corpus.hardware import trainer_arguments
from agentic.training.corpus.rundir import CorpusRun, read_jsonl, timed
from agentic.training.tiny_model import tiny_config, train_tokenizer

TINY = "tiny"


@dataclass(frozen=True)
class TinySettings:
    vocab_size: int = 1024
    hidden_size: int = 128
    num_hidden_layers: int = 4
    epochs: float = 8
    learning_rate: float = 1e-3
    batch_size: int = 16
    seed: int = 0


def build_tiny_base(run_dir: str | Path, settings: TinySettings = TinySettings()) -> dict:
    """Learn the tokenizer on the train part, pretrain the tiny model on it and save both to ``RUN/base/model``."""
    run = CorpusRun(run_dir)
    texts = [row["prompt"] + row["reference"] for row in read_jsonl(run.examples("train"))]
    with timed({}) as summary:
        set_seed(settings.seed)
        tokenizer = train_tokenizer(texts, vocab_size=settings.vocab_size)
        config = tiny_config(
            tokenizer,
            hidden_size=settings.hidden_size,
            num_hidden_layers=settings.num_hidden_layers,
            intermediate_size=4 * settings.hidden_size,
        )
        model = GPTNeoXForCausalLM(config)
        arguments = trainer_arguments(run.stage("base"), settings, settings.learning_rate)
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**arguments, max_length=config.max_position_embeddings),
            train_dataset=datasets.Dataset.from_dict({"text": texts}),
            processing_class=tokenizer,
        )
        summary["train_loss"] = trainer.train().training_loss
        trainer.model.save_pretrained(run.model("base"))
        tokenizer.save_pretrained(run.model("base"))
        summary["parameters"] = sum(p.numel() for p in model.parameters())
    run.write("base", "config", settings)
    run.write("base", "summary", summary)
    return summary
