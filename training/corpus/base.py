"""The policy's starting point: a hub id or local path as given, or the embedded tiny model built from the train split.

``model="tiny"`` builds, in ``RUN/base/model``, a Pythia-style GPT-NeoX (`agentic.training.tiny_model`) whose
BPE tokenizer is learnt from the train part's text and which is then pretrained on that text as a
plain language model, standing in for a hub model's pretraining. Only train text is used, so the
evaluation's perplexity is measured on text the tiny model never saw.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from transformers import GPTNeoXForCausalLM, set_seed
from trl import SFTConfig, SFTTrainer

from agentic.run_dir import Panel, RunDir, read_jsonl, timed
from agentic.training.corpus.options import TinyBaseOptions
from agentic.training.corpus.prepare import examples_file, plot_trainer_log
from agentic.training.options import trainer_arguments
from agentic.training.tiny_model import tiny_config, train_tokenizer


def build_tiny_base(run_dir: str | Path, options: TinyBaseOptions) -> dict:
    """Learn the tokenizer on the train part, pretrain the tiny model on it and save both to ``RUN/base/model``."""
    stage = RunDir(run_dir).stage("base")
    texts = [row["prompt"] + row["reference"] for row in read_jsonl(examples_file(run_dir, "train"))]
    with timed({}) as summary:
        set_seed(options.seed)
        tokenizer = train_tokenizer(texts, vocab_size=options.vocab_size)
        config = tiny_config(
            tokenizer,
            hidden_size=options.hidden_size,
            num_hidden_layers=options.num_hidden_layers,
            intermediate_size=4 * options.hidden_size,
        )
        model = GPTNeoXForCausalLM(config)
        arguments = trainer_arguments(
            stage.path / "trainer",
            epochs=options.epochs,
            learning_rate=options.learning_rate,
            batch_size=options.batch_size,
            seed=options.seed,
        )
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**arguments, max_length=config.max_position_embeddings),
            train_dataset=datasets.Dataset.from_dict({"text": texts}),
            processing_class=tokenizer,
        )
        summary["train_loss"] = trainer.train().training_loss
        loss = Panel(("loss",), "training loss: cross-entropy on the train text (lower is better)")
        plot_trainer_log(run_dir, "base", trainer, "language-model pretraining", "tiny", loss)
        trainer.model.save_pretrained(stage.model_dir)
        tokenizer.save_pretrained(stage.model_dir)
        summary["parameters"] = sum(p.numel() for p in model.parameters())
    stage.write_config(options)
    stage.write_json("summary.json", summary)
    return summary
