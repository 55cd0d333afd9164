"""Stage 2: LoRA supervised fine-tuning on (prompt, reference) through TRL's `SFTTrainer`, then merge.

The loss is on the reference tokens only (TRL's prompt-completion format). The LoRA rank follows
the paper by model size: 8 up to 100M parameters, 16 up to 200M, 32 above (the tiny model: 8).
LoRA dropout defaults to 0: on a CPU its Bernoulli masks cost as much as the adapters' matmuls.
The adapter is merged (`merge_and_unload`) and the merged model saved to ``RUN/sft/model``: it is
the PPO policy, its KL reference, and the reward model's initialisation. The loss curve is plotted in
``RUN/sft/plots/training.png``.

A prompt-only corpus (chat prompts: the instruct model is already tuned, and there is no reference to fine-tune
on) skips the training: ``RUN/sft/model`` is then the starting model itself (a link to its directory, or a saved
copy of a hub model), and the summary says ``trained: false``.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import datasets
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import SFTConfig, SFTTrainer

from agentic.models import resolve_model
from agentic.run_dir import Panel, RunDir, read_jsonl, timed
from agentic.training.corpus.base import build_tiny_base
from agentic.training.corpus.options import TINY, CorpusSFTOptions, TinyBaseOptions
from agentic.training.corpus.prepare import examples_file, plot_trainer_log
from agentic.training.options import lora_config, trainer_arguments


def lora_rank(parameters: int) -> int:
    """The paper's rank by model size: 8 (<= 100M parameters), 16 (<= 200M), 32 (larger)."""
    if parameters <= 100_000_000:
        return 8
    return 16 if parameters <= 200_000_000 else 32


def sft_learning_rate(model: str) -> float:
    """LoRA's usual 2e-4 for a pretrained model; the tiny model, trained minutes ago, takes 1e-3."""
    return 1e-3 if model == TINY else 2e-4


def base_model(run_dir: str | Path, options: CorpusSFTOptions, tiny: TinyBaseOptions) -> str:
    """The model SFT starts from: the given hub id / path, or the tiny model (built into ``RUN/base`` if missing)."""
    if options.model != TINY:
        return resolve_model(options.model)
    base = RunDir(run_dir).stage("base").model_dir
    if not (base / "config.json").is_file():
        build_tiny_base(run_dir, tiny)
    return str(base)


def train_sft(run_dir: str | Path, options: CorpusSFTOptions, tiny: TinyBaseOptions | None = None) -> dict:
    """Fine-tune on ``RUN/prepare/train.jsonl`` with LoRA and save the merged model to ``RUN/sft/model``
    (``tiny``: the options of the tiny base, built first when ``options.model`` is ``tiny`` and it is missing)."""
    stage = RunDir(run_dir).stage("sft")
    start = base_model(run_dir, options, tiny or TinyBaseOptions(seed=options.seed))
    if stage.model_dir.is_symlink():  # a run before this one took the model as it was: never write through the link
        stage.model_dir.unlink()
    if not RunDir(run_dir).stage("prepare").read_json("summary.json").get("references", True):
        return keep_start_model(stage, options, start)
    train = datasets.Dataset.from_list(read_jsonl(examples_file(run_dir, "train"))).select_columns(
        ["prompt", "reference"]
    )
    with timed({"base_model": start, "trained": True}) as summary:
        set_seed(options.seed)
        model = AutoModelForCausalLM.from_pretrained(start)
        tokenizer = AutoTokenizer.from_pretrained(start)
        summary["parameters"] = sum(p.numel() for p in model.parameters())
        rank = options.lora_rank or lora_rank(summary["parameters"])
        arguments = trainer_arguments(
            stage.path / "trainer",
            epochs=options.epochs,
            learning_rate=options.learning_rate or sft_learning_rate(options.model),
            batch_size=options.batch_size,
            seed=options.seed,
        )
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**arguments, max_length=options.max_length, completion_only_loss=True),
            train_dataset=train.rename_column("reference", "completion"),
            processing_class=tokenizer,
            peft_config=lora_config(rank, dropout=options.lora_dropout),
        )
        summary.update(lora_rank=rank, train_loss=trainer.train().training_loss)
        loss = Panel(("loss",), "training loss: cross-entropy on the reference completions (lower is better)")
        plot_trainer_log(run_dir, "sft", trainer, "SFT", start, loss)
        trainer.model.merge_and_unload().save_pretrained(stage.model_dir)
        trainer.processing_class.save_pretrained(stage.model_dir)
    stage.write_config(asdict(options) | {"base_model": start})
    stage.write_json("summary.json", summary)
    return summary


def keep_start_model(stage: RunDir, options: CorpusSFTOptions, start: str) -> dict:
    """No fine-tuning (a prompt-only corpus): ``RUN/sft/model`` links to the starting model's directory, or holds a
    saved copy of a hub model."""
    with timed({"base_model": start, "trained": False}) as summary:
        shutil.rmtree(stage.model_dir, ignore_errors=True)
        if Path(start).is_dir():
            stage.model_dir.parent.mkdir(parents=True, exist_ok=True)
            stage.model_dir.symlink_to(Path(start).resolve(), target_is_directory=True)
        else:
            AutoModelForCausalLM.from_pretrained(start).save_pretrained(stage.model_dir)
            AutoTokenizer.from_pretrained(start).save_pretrained(stage.model_dir)
    stage.write_config(asdict(options) | {"base_model": start})
    stage.write_json("summary.json", summary)
    return summary
