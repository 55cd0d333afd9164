"""The corpus chain end to end on a very small tiny model and the CNN/DailyMail stand-in (no hub)."""

import json
import shutil

import pytest
from PIL import Image
from transformers import GPTNeoXConfig, GPTNeoXForSequenceClassification

from agentic.training.corpus import reward as reward_module
from agentic.training.corpus.evaluate import evaluate_run
from agentic.training.corpus.options import (
    CorpusEvalOptions,
    CorpusSFTOptions,
    PrepareOptions,
    RewardOptions,
    TinyBaseOptions,
    corpus_ppo_options,
)
from agentic.training.corpus.pipeline import run_pipeline
from agentic.training.corpus.reward import RewardScorer, reward_stage
from agentic.training.corpus.sft import lora_rank
from agentic.training.tiny_model import train_tokenizer

SMALL = dict(
    prepare_options=PrepareOptions(eval_size=8, heldout_size=8, train_size=24, max_prompt_words=40),
    tiny_options=TinyBaseOptions(vocab_size=300, hidden_size=32, num_hidden_layers=1, epochs=1.0),
    sft_options=CorpusSFTOptions(epochs=1.0),
    reward_options=RewardOptions(epochs=1.0),
    eval_options=CorpusEvalOptions(max_new_tokens=8),
)
TRAINED_ON = []


class RecordingRewardTrainer(reward_module.RewardTrainer):
    """TRL's RewardTrainer, keeping the tokenised training set it was given for inspection."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        TRAINED_ON.append((self.train_dataset, self.processing_class))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    patch = pytest.MonkeyPatch()
    patch.setattr(reward_module, "RewardTrainer", RecordingRewardTrainer)
    try:
        ppo = corpus_ppo_options(root / "tiny-cnn", 1, iterations=1, episodes=4, max_new_tokens=4, progress=False)
        summaries = run_pipeline(
            "tiny", "cnn_dailymail", root / "tiny-cnn", standin=True, seed=1, ppo_options=ppo, **SMALL
        )
    finally:
        patch.undo()
    return root, summaries


def test_every_stage_writes_its_config_and_outputs(run):
    root, summaries = run
    run_dir = root / "tiny-cnn"
    for stage in ("prepare", "base", "sft", "reward", "ppo", "eval"):
        assert (run_dir / stage / "config.json").is_file(), stage
    for stage in ("base", "sft", "reward", "ppo"):
        assert (run_dir / stage / "model" / "config.json").is_file(), stage
    assert summaries["sft"]["lora_rank"] == 8 and summaries["ppo"]["prompts"] == 24
    titles = {
        stage: Image.open(run_dir / stage / "plots" / "training.png").info["Title"] for stage in ("reward", "ppo")
    }
    assert titles == {
        "reward": "reward model on cnn_dailymail — sft/model",
        "ppo": "PPO on RewardModel — sft/model",
    }, "the stages whose trainers logged a curve (a few steps may log none)"
    assert set(json.loads((run_dir / "pipeline.json").read_text())) == {
        "prepare",
        "base",
        "sft",
        "reward",
        "ppo",
        "eval",
    }


def test_the_reward_model_never_trains_on_evaluation_text(run):
    root, _ = run
    ((dataset, tokenizer),) = TRAINED_ON
    seen = "\n".join(tokenizer.decode(row[key]) for row in dataset for key in ("chosen_ids", "rejected_ids"))
    assert len(dataset) == 24 * 3
    evaluation = [json.loads(line) for line in (root / "tiny-cnn" / "prepare" / "eval.jsonl").read_text().splitlines()]
    for row in evaluation:
        assert row["prompt"] not in seen and row["reference"].strip() not in seen


def test_every_stage_is_evaluated_on_the_same_prompts_and_sampler(run, tmp_path):
    root, summaries = run
    results = summaries["eval"]
    assert list(results["stages"]) == ["base", "sft", "ppo"] and results["ppo"] == "ran"
    assert results["stages"]["ppo"]["win_rate"]["against"] == "sft"
    assert results["stages"]["sft"]["win_rate"]["against"] == "base"
    shutil.copytree(root / "tiny-cnn", tmp_path / "run", ignore=shutil.ignore_patterns("ppo"))
    shutil.copytree(root / "tiny-cnn" / "sft" / "model", tmp_path / "run" / "ppo" / "model")
    identical = evaluate_run(str(tmp_path / "run"), SMALL["eval_options"])["stages"]["ppo"]["win_rate"]
    assert (identical["ties"], identical["n"], identical["value"]) == (8, 8, 0.5), "SFT again: the same completions"
    for metric in ("perplexity", "rouge1", "rouge2", "rougeL", "bleu", "distinct_1", "distinct_2"):
        assert results["stages"]["sft"][metric] >= 0
    generations = (root / "tiny-cnn" / "eval" / "generations.jsonl").read_text().splitlines()
    assert len(generations) == 3 * 8


def test_the_results_table_covers_every_run_under_the_root(run):
    root, _ = run
    rows = json.loads((root / "results.json").read_text())
    assert [(r["model"], r["corpus"], r["stage"]) for r in rows] == [
        ("tiny", "cnn_dailymail (stand-in)", s) for s in ("base", "sft", "ppo")
    ]
    table = (root / "results.md").read_text().splitlines()
    assert table[0].startswith("| model | corpus | stage | PPL") and len(table) == 2 + 3


def test_sft_alone_is_labelled_when_no_ppo_ran(run, tmp_path):
    root, _ = run
    shutil.copytree(root / "tiny-cnn", tmp_path / "run", ignore=shutil.ignore_patterns("ppo"))
    results = evaluate_run(str(tmp_path / "run"), SMALL["eval_options"])
    assert list(results["stages"]) == ["base", "sft"] and results["ppo"].startswith("not run")


def save_classifier(path, texts: list[str], labels: int) -> None:
    """A one-layer sequence classifier with ``labels`` outputs and a tokenizer learnt from ``texts``, saved at ``path``."""
    tokenizer = train_tokenizer(texts, vocab_size=280)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=labels,
    )
    GPTNeoXForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)


def test_a_pretrained_reward_model_replaces_training(run, tmp_path):
    root, _ = run
    shutil.copytree(root / "tiny-cnn", tmp_path / "run", ignore=shutil.ignore_patterns("reward"))
    save_classifier(tmp_path / "rm", ["a different corpus for a reward model. it scores text."], labels=1)
    summary = reward_stage(str(tmp_path / "run"), RewardOptions(model=str(tmp_path / "rm")))
    assert summary["reward_model"] == str(tmp_path / "rm") and summary["heldout"]["accuracy"]["n"] == 8 * 3
    assert not (tmp_path / "run" / "reward" / "model").exists()
    results = evaluate_run(str(tmp_path / "run"), SMALL["eval_options"])
    assert results["reward_model"] == str(tmp_path / "rm")
    generations = [
        json.loads(line) for line in (tmp_path / "run" / "eval" / "generations.jsonl").read_text().splitlines()
    ]
    scorer = RewardScorer(tmp_path / "rm")
    assert generations[0]["reward"] == pytest.approx(
        scorer.score([generations[0]["prompt"]], [generations[0]["completion"]])[0], abs=1e-5
    )


def test_a_classifier_with_more_than_one_label_is_not_a_reward_model(tmp_path):
    save_classifier(tmp_path, ["some text to learn a tokenizer from."], labels=2)
    with pytest.raises(ValueError, match="exactly one"):
        RewardScorer(tmp_path)


@pytest.mark.parametrize(
    "parameters, rank",
    [(3_700_000, 8), (70_000_000, 8), (135_000_000, 16), (162_000_000, 16), (360_000_000, 32), (405_000_000, 32)],
)
def test_lora_rank_follows_model_size_as_in_the_paper(parameters, rank):
    assert lora_rank(parameters) == rank
