"""Chat RLHF through `agentic corpus`: chat prompts and a preference dataset, a reward model trained from an instruct
(chat-template) model, PPO with the smollm-rlhf recipe on one-turn chat episodes, the before/after report. A small
ChatML Llama (`tests/chat_model.py`) stands in for SmolLM2-135M-Instruct and runs the same code in seconds."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from agentic import cli
from agentic.run_dir import read_jsonl
from agentic.tasks.corpora import standin_path
from agentic.training.corpus.reward import RewardScorer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def chat_run(chat_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "chat"
    small = "--eval-size 8 --heldout-size 24 --train-size 32 --reward-epochs 1 --reward-max-length 128"
    small += " --ppo-iterations 2 --ppo-episodes 8 --ppo-max-new-tokens 6 --no-ppo-progress"
    small += " --eval-max-new-tokens 6 --eval-table-prompts 4"
    command = f"corpus run --model {chat_model_dir} --corpus chat --preferences chat --standin --recipe smollm-rlhf"
    assert cli.main([*command.split(), "--out-dir", str(out), *small.split()]) == 0
    return out


def test_prompts_only_keep_the_chat_model_dir_as_the_policy(chat_run, chat_model_dir):
    summary = json.loads((chat_run / "sft" / "summary.json").read_text())
    assert summary["trained"] is False and (chat_run / "sft" / "model").resolve() == chat_model_dir.resolve()


def test_the_reward_model_reads_chats_and_reports_accuracy_and_margin_with_intervals(chat_run):
    summary = json.loads((chat_run / "reward" / "summary.json").read_text())
    assert summary["chat"] is True
    accuracy, margin = summary["heldout"]["accuracy"], summary["heldout"]["margin"]
    assert accuracy["n"] == margin["n"] == 24
    assert margin["low"] <= margin["mean"] <= margin["high"] and accuracy["low"] <= accuracy["value"]
    assert set(summary["heldout"]["by_kind"]) == {"off_topic", "repetitive", "refusal", "terse"}


def test_the_reward_model_scores_a_chat_as_reward_trainer_tokenizes_it(chat_model_dir, tmp_path):
    """TRL's RewardTrainer trains on ``apply_chat_template(prompt + chosen)``: the scorer must read the same ids."""
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(chat_model_dir, num_labels=1).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(chat_model_dir)
    tokenizer.save_pretrained(tmp_path)
    scorer = RewardScorer(tmp_path, chat=True)
    messages = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello!"}]
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    expected = scorer.model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert scorer.score(["Hi?"], ["Hello!"]) == pytest.approx([expected], abs=1e-5)
    assert scorer.texts(["Hi?"], ["Hello!"]) == [
        "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    ]


def test_ppo_plays_one_turn_chat_episodes_with_the_recipe(chat_run):
    config = json.loads((chat_run / "ppo" / "config.json").read_text())
    assert (config["learning_rate"], config["kl_coef"], config["missing_eos_penalty"]) == (2e-6, 0.02, 1.0)
    assert (config["critic"], config["critic_model"]) == ("reward-model", str(chat_run / "reward" / "model"))
    train_prompts = {row["prompt"] for row in read_jsonl(chat_run / "prepare" / "train.jsonl")}
    eos = AutoTokenizer.from_pretrained(chat_run / "sft" / "model").convert_tokens_to_ids("<|im_end|>")
    for sample in read_jsonl(chat_run / "ppo" / "samples" / "update-000001.jsonl"):
        assert sample["mode"] == "chat"
        user = sample["prompt"].removeprefix("<|im_start|>user\n").removesuffix("<|im_end|>\n<|im_start|>assistant\n")
        assert user in train_prompts, "the train prompt is the template's user message, then the assistant's turn opens"
        (turn,) = sample["turns"]
        assert turn["end"] - turn["start"] == 6 or sample["token_ids"][turn["end"] - 1] == eos
    metrics = read_jsonl(chat_run / "ppo" / "metrics.jsonl")
    assert all(0 <= row["missing_eos"] <= 1 for row in metrics if "score" in row)
    assert (chat_run / "ppo" / "plots" / "training.png").is_file() and any((chat_run / "ppo" / "tensorboard").iterdir())


def test_the_report_compares_ppo_with_the_chat_model_dir_before_and_after(chat_run):
    results = json.loads((chat_run / "eval" / "results.json").read_text())
    assert list(results["stages"]) == ["base", "ppo"]
    win = results["stages"]["ppo"]["win_rate"]
    assert win["against"] == "base" and win["n"] == 8 and win["low"] <= win["value"] <= win["high"]
    assert "perplexity" not in results["stages"]["ppo"], "chat prompts have no reference to measure it on"
    generations = read_jsonl(chat_run / "eval" / "generations.jsonl")
    table = (chat_run / "eval" / "before_after.md").read_text().splitlines()
    assert table[0].startswith("| prompt | before PPO (base) | reward | after PPO | reward |") and len(table) == 2 + 4
    evaluation = [row["prompt"] for row in read_jsonl(chat_run / "prepare" / "eval.jsonl")]
    for line, prompt in zip(table[2:], evaluation):
        before, after = (g for g in generations if g["prompt"] == prompt)
        assert (
            line.startswith(f"| {prompt} |") and f"{before['reward']:.3f}" in line and f"{after['reward']:.3f}" in line
        )
    shipped = {json.loads(line)["messages"][0]["content"] for line in standin_path("chat").read_text().splitlines()}
    assert set(evaluation) <= shipped
