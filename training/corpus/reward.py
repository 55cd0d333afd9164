"""Stage 3: the reward model, and scoring with any sequence-classification reward model.

Trained: `AutoModelForSequenceClassification` (one label) initialised from the SFT model, fitted
with the Bradley-Terry loss by TRL's `RewardTrainer` on ``RUN/prepare/pairs_train.jsonl``.
Pretrained: a hub id or local path given as ``model`` replaces training. Either way the
held-out pairwise accuracy is measured on ``pairs_heldout.jsonl`` (built from a held-out part of the
train split, never from evaluation text) with the same `RewardScorer` the evaluation and PPO use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

from agentic.metrics import wilson
from agentic.run_dir import RunDir, read_jsonl, timed
from agentic.training.corpus.options import TINY, RewardOptions
from agentic.training.corpus.prepare import pairs_file
from agentic.training.options import trainer_arguments


class RewardScorer:
    """A scalar reward for (prompt, completion), read from a sequence-classification model.

    The text scored is ``prompt + completion + eos``, exactly what `RewardTrainer` trains on.
    """

    def __init__(self, name_or_path: str | Path, *, batch_size: int = 16, max_length: int = 512):
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.truncation_side = "left"
        cuda = torch.cuda.is_available()
        device = torch.device("cuda" if cuda else "cpu")
        dtype = torch.bfloat16 if cuda else torch.float32
        self.model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=dtype).to(device).eval()
        if self.model.config.num_labels != 1:
            raise ValueError(
                f"{name_or_path} has {self.model.config.num_labels} labels; a reward model has exactly one"
            )
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size = batch_size
        self.max_length = max_length

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        eos = self.tokenizer.eos_token or ""
        texts = [p + c if c.endswith(eos) else p + c + eos for p, c in zip(prompts, completions, strict=True)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.model.device)
            scores.extend(self.model(**batch).logits[:, 0].float().tolist())
        return scores


def pairwise_accuracy(scorer: RewardScorer, pairs: Sequence[dict]) -> dict:
    """How often the reward ranks ``chosen`` above ``rejected`` (ties count as errors), overall and per kind."""
    prompts = [pair["prompt"] for pair in pairs]
    chosen = scorer.score(prompts, [pair["chosen"] for pair in pairs])
    rejected = scorer.score(prompts, [pair["rejected"] for pair in pairs])
    right: dict[str, list[bool]] = defaultdict(list)
    for pair, c, r in zip(pairs, chosen, rejected):
        right[pair["kind"]].append(c > r)
    total = [ok for oks in right.values() for ok in oks]
    return {
        "accuracy": wilson(sum(total), len(total)).to_dict(),
        "by_kind": {kind: wilson(sum(oks), len(oks)).to_dict() for kind, oks in sorted(right.items())},
    }


def reward_learning_rate(run_dir: str | Path) -> float:
    """Full fine-tuning's usual 1e-5 for a pretrained model; 1e-3 when the run started from the tiny model."""
    return 1e-3 if RunDir(run_dir).stage("sft").read_json("config.json")["model"] == TINY else 1e-5


def fit_reward_model(run_dir: str | Path, options: RewardOptions) -> str:
    """Bradley-Terry training from the SFT model (TRL adds the one-label head and sets its pad token); returns the
    saved model's path (``RUN/reward/model``)."""
    run = RunDir(run_dir)
    stage = run.stage("reward")
    arguments = trainer_arguments(
        stage.path / "trainer",
        epochs=options.epochs,
        learning_rate=options.learning_rate or reward_learning_rate(run_dir),
        batch_size=options.batch_size,
        seed=options.seed,
    )
    trainer = RewardTrainer(
        model=str(run.stage("sft").model_dir),
        args=RewardConfig(**arguments, max_length=options.max_length),
        train_dataset=datasets.Dataset.from_list(read_jsonl(pairs_file(run_dir, "train"))),
    )
    trainer.train()
    trainer.save_model(str(stage.model_dir))
    return str(stage.model_dir)


def reward_stage(run_dir: str | Path, options: RewardOptions) -> dict:
    """Train (or take) the reward model, measure its held-out pairwise accuracy, record which model it is."""
    stage = RunDir(run_dir).stage("reward")
    with timed({}) as summary:
        summary["reward_model"] = options.model or fit_reward_model(run_dir, options)
        scorer = RewardScorer(summary["reward_model"], batch_size=options.batch_size, max_length=options.max_length)
        summary["heldout"] = pairwise_accuracy(scorer, read_jsonl(pairs_file(run_dir, "heldout")))
    stage.write_config(options)
    stage.write_json("summary.json", summary)
    return summary


def reward_model_of(run_dir: str | Path) -> str:
    """The reward model a run uses (trained or pretrained), as its reward stage recorded it."""
    return RunDir(run_dir).stage("reward").read_json("summary.json")["reward_model"]
