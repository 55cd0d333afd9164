"""Stage 3: the reward model, and scoring with any sequence-classification reward model.

Trained: `AutoModelForSequenceClassification` (one label) initialised from the SFT model, fitted
with the Bradley-Terry loss by TRL's `RewardTrainer` on ``RUN/prepare/pairs_train.jsonl``; its loss, pairwise
accuracy and margin on the training batches are plotted in ``RUN/reward/plots/training.png``.
Pretrained: a hub id or local path given as ``model`` replaces training. Either way the
held-out pairwise accuracy and the mean reward margin (chosen - rejected), each with a 95% interval, are measured
on ``pairs_heldout.jsonl`` (built from a held-out part of the train split, or held out of a preference dataset;
never from evaluation text) with the same `RewardScorer` the evaluation and PPO use.

Chats: when the run's pairs are conversational and the reward model's tokenizer has a chat template, the reward
model is trained on, and scores, the conversation (user prompt, assistant response) as the template renders it, as
TRL's `RewardTrainer` does for conversational data; otherwise the plain text ``prompt + response + eos``. The
reward stage records which (``chat``), so that PPO and the evaluation ask the model as it was trained.
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
from agentic.models import resolve_model
from agentic.run_dir import Panel, RunDir, read_jsonl, timed
from agentic.training.corpus.chat import as_conversation, exchange
from agentic.training.corpus.metrics import mean_interval
from agentic.training.corpus.options import TINY, RewardOptions
from agentic.training.corpus.prepare import pairs_file, plot_trainer_log
from agentic.training.options import trainer_arguments

REWARD_PLOT = (
    Panel(("loss",), "Bradley–Terry loss on the training pairs (lower is better)"),
    Panel(("accuracy",), "training pairs ranked right: chosen scored above rejected (higher is better)"),
    Panel(("margin",), "reward margin, chosen − rejected (> 0: the right order)"),
)


class RewardScorer:
    """A scalar reward for (prompt, completion), read from a sequence-classification model.

    The text scored is exactly what `RewardTrainer` trains on: ``prompt + completion + eos``, or with ``chat`` the
    tokenizer's chat template over the user message ``prompt`` and the assistant message ``completion``.
    """

    def __init__(self, name_or_path: str | Path, *, batch_size: int = 16, max_length: int = 512, chat: bool = False):
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        self.chat = chat
        if chat and not self.tokenizer.chat_template:
            raise ValueError(f"{name_or_path} has no chat template: it cannot score chats")
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

    def texts(self, prompts: Sequence[str], completions: Sequence[str]) -> list[str]:
        """What is scored for each (prompt, completion): the rendered chat, or the plain text ended by eos."""
        if self.chat:
            return [
                self.tokenizer.apply_chat_template(exchange(p, c), tokenize=False)
                for p, c in zip(prompts, completions, strict=True)
            ]
        eos = self.tokenizer.eos_token or ""
        return [p + c if c.endswith(eos) else p + c + eos for p, c in zip(prompts, completions, strict=True)]

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        texts = self.texts(prompts, completions)
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=not self.chat,  # a rendered chat has its special tokens already
                return_tensors="pt",
            ).to(self.model.device)
            scores.extend(self.model(**batch).logits[:, 0].float().tolist())
        return scores


def pairwise_accuracy(scorer: RewardScorer, pairs: Sequence[dict]) -> dict:
    """How often the reward ranks ``chosen`` above ``rejected`` (ties count as errors) and the mean margin
    ``reward(chosen) - reward(rejected)`` (`mean_interval`), overall and per kind."""
    prompts = [pair["prompt"] for pair in pairs]
    chosen = scorer.score(prompts, [pair["chosen"] for pair in pairs])
    rejected = scorer.score(prompts, [pair["rejected"] for pair in pairs])
    margins: dict[str, list[float]] = defaultdict(list)
    for pair, c, r in zip(pairs, chosen, rejected):
        margins[pair["kind"]].append(c - r)

    def measured(values: list[float]) -> dict:
        return {"accuracy": wilson(sum(m > 0 for m in values), len(values)).to_dict(), "margin": mean_interval(values)}

    overall = measured([m for values in margins.values() for m in values])
    return overall | {"by_kind": {kind: measured(values) for kind, values in sorted(margins.items())}}


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
    start = str(run.stage("sft").model_dir)
    pairs = read_jsonl(pairs_file(run_dir, "train"))
    rows = [as_conversation(pair) for pair in pairs] if reads_chats(run_dir, start) else pairs
    trainer = RewardTrainer(
        model=start,
        args=RewardConfig(**arguments, max_length=options.max_length),
        train_dataset=datasets.Dataset.from_list(
            [{k: row[k] for k in ("prompt", "chosen", "rejected")} for row in rows]
        ),
    )
    trainer.train()
    plot_trainer_log(run_dir, "reward", trainer, "reward model", start, *REWARD_PLOT)
    trainer.save_model(str(stage.model_dir))
    return str(stage.model_dir)


def reads_chats(run_dir: str | Path, reward_model: str | Path) -> bool:
    """Whether the reward model reads chats: the run's pairs are conversational and its tokenizer has a template."""
    conversational = RunDir(run_dir).stage("prepare").read_json("summary.json").get("conversational", False)
    return conversational and bool(AutoTokenizer.from_pretrained(reward_model).chat_template)


def reward_stage(run_dir: str | Path, options: RewardOptions) -> dict:
    """Train (or take) the reward model, measure its held-out pairwise accuracy, record which model it is."""
    stage = RunDir(run_dir).stage("reward")
    with timed({}) as summary:
        summary["reward_model"] = resolve_model(options.model) if options.model else fit_reward_model(run_dir, options)
        summary["chat"] = reads_chats(run_dir, summary["reward_model"])
        scorer = reward_scorer(run_dir, summary, batch_size=options.batch_size, max_length=options.max_length)
        summary["heldout"] = pairwise_accuracy(scorer, read_jsonl(pairs_file(run_dir, "heldout")))
    stage.write_config(options)
    stage.write_json("summary.json", summary)
    return summary


def reward_model_of(run_dir: str | Path) -> str:
    """The reward model a run uses (trained or pretrained), as its reward stage recorded it."""
    return RunDir(run_dir).stage("reward").read_json("summary.json")["reward_model"]


def reward_scorer(run_dir: str | Path, summary: dict | None = None, **settings: int) -> RewardScorer:
    """The run's reward model as a scorer, reading chats or plain text as its reward stage recorded
    (``summary``: that record, when it is not written yet)."""
    summary = summary or RunDir(run_dir).stage("reward").read_json("summary.json")
    return RewardScorer(summary["reward_model"], chat=summary.get("chat", False), **settings)
