"""Your own data into agentic SFT (`agentic sft --dataset`, `run_sft(options, dataset=...)`): trajectories this project
wrote, chat `messages` with tool turns and prompt/completion pairs, each encoded as the project encodes its episodes
for the model (raw text for the tiny model, its template for a chat model), with the loss on the agent's tokens only.

The data are made from oracle episodes of MissingQuantity (a tool call, a question to the user and an answer), so
the tokens the agent wrote are known: every test counts the label tokens of what the trainer gets against them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agentic import AgenticEnvironment, parse_action
from agentic.cli import main
from agentic.encoding import prompt_messages
from agentic.rollout import oracle_trajectories
from agentic.run_dir import write_jsonl
from agentic.training.sft import run_sft, sft_trainer
from agentic.training.sft_config import DEMO_SEED_START, SFTOptions
from agentic.training.sft_data import load_sft_dataset, sft_rows
from agentic.training.tiny_model import build_tiny_model
from agentic.trajectory import Trajectory

pytestmark = pytest.mark.usefixtures("one_thread")

TASK = "MissingQuantity"
SEEDS = range(DEMO_SEED_START, DEMO_SEED_START + 6)
FORMATS = ["trajectories", "messages", "prompt-completion", "conversational prompt-completion"]
REPLY = re.compile(r"<(result|user|sys)>(.*)</\1>", re.DOTALL)


@pytest.fixture(scope="module", params=["raw", "chat"])
def model(request, small_arithmetic_model, chat_model_dir) -> str:
    """The tiny model (raw text, no template) or the chat Llama (ChatML template)."""
    return str(small_arithmetic_model if request.param == "raw" else chat_model_dir)


def episodes(model: str) -> list[Trajectory]:
    """The oracle's episodes as the environment encodes them for ``model``: what the agent wrote is their loss mask."""
    return oracle_trajectories(TASK, SEEDS, AutoTokenizer.from_pretrained(model))


def as_messages(episode: Trajectory) -> list[dict]:
    """An episode as an OpenAI-style chat: the task's system and user messages, tool calls with JSON-text arguments
    and their tool messages, the question to the user (written in the action grammar) and the answer as text."""
    env = AgenticEnvironment(TASK)
    env.reset(seed=episode.seed)
    messages = prompt_messages(env.task, env.instance)
    for turn in episode.turns:
        action = parse_action(turn.action.removesuffix("<|im_end|>"))
        if action.kind == "tool":
            call = {"type": "function", "function": {"name": action.tool, "arguments": json.dumps(action.arguments)}}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            content = action.content if action.kind == "finish" else turn.action.removesuffix("<|im_end|>")
            messages.append({"role": "assistant", "content": content, "tool_calls": None})
        reply = REPLY.search(turn.reply)
        if reply:
            role = {"result": "tool", "user": "user", "sys": "system"}[reply[1]]
            messages.append({"role": role, "content": reply[2], "tool_calls": None})
    return messages


def dataset_rows(raw_episodes: list[Trajectory], model_episodes: list[Trajectory], fmt: str) -> list[dict]:
    """One format's rows for the episodes: trajectories are the model's own; the other formats are written from the
    raw-text episodes (the environment's text), as a user holding no tokens would write them."""
    if fmt == "trajectories":
        return [episode.to_dict() for episode in model_episodes]
    if fmt == "messages":
        return [{"messages": as_messages(episode)} for episode in raw_episodes]
    if fmt == "prompt-completion":
        return [{"prompt": e.prompt, "completion": e.transcript.removeprefix(e.prompt)} for e in raw_episodes]
    chats = [as_messages(episode) for episode in raw_episodes]
    return [{"prompt": chat[:2], "completion": chat[2:]} for chat in chats]


def learnt_batch(model: str, rows: datasets.Dataset, tmp_path: Path) -> tuple[list[list[int]], list[list[int]]]:
    """The input ids and labels of the batch TRL's `SFTTrainer` collates from ``rows``, in order."""
    options = SFTOptions(model=model, out_dir=str(tmp_path / "labels"), batch_size=len(rows), progress=False)
    tokenizer = AutoTokenizer.from_pretrained(model)
    trainer = sft_trainer(
        AutoModelForCausalLM.from_pretrained(model), tokenizer, rows, options, train_sampling_strategy="sequential"
    )
    batch = next(iter(trainer.get_train_dataloader()))
    return batch["input_ids"].tolist(), batch["labels"].tolist()


@pytest.fixture(scope="module")
def raw_episodes(small_arithmetic_model) -> list[Trajectory]:
    return episodes(small_arithmetic_model)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_puts_the_loss_on_the_agents_tokens_and_nowhere_else(model, raw_episodes, fmt, tmp_path):
    expected = episodes(model)
    path = tmp_path / "data.jsonl"
    write_jsonl(dataset_rows(raw_episodes, expected, fmt), path)
    tokenizer = AutoTokenizer.from_pretrained(model)
    data = sft_rows(load_sft_dataset(str(path)), tokenizer, max_length=1024)
    assert data.summary["format"] == fmt.split()[-1] and data.summary["kept"] == len(expected)

    input_ids, labels = learnt_batch(model, data.rows, tmp_path)
    for row, episode in enumerate(expected):
        learnt = [token for token in labels[row] if token != -100]
        assert len(learnt) == sum(episode.loss_mask), "as many loss tokens as the agent wrote"
        assert tokenizer.decode(learnt) == "".join(turn.action for turn in episode.turns), "and they are its actions"
        if fmt != "prompt-completion" or tokenizer.chat_template is None:  # a text prompt is one user message in chat
            assert input_ids[row][: len(episode.token_ids)] == episode.token_ids, "the episode as the environment's"
    assert data.summary["agent_tokens"] == sum(sum(episode.loss_mask) for episode in expected)


def test_a_prompt_completion_run_learns_the_agents_tokens_not_the_environments_replies(
    small_arithmetic_model, raw_episodes, tmp_path
):
    """The issue's case: a completion holds the agent's actions and the environment's replies; only the actions
    carry the loss, through the command line, as the run's config records."""
    path = tmp_path / "pairs.jsonl"
    rows = dataset_rows(raw_episodes, raw_episodes, "prompt-completion")
    write_jsonl(rows, path)
    out = tmp_path / "run"
    flags = ["--max-steps", "1", "--batch-size", "2", "--no-progress", "--out-dir", str(out)]
    assert main(["sft", "--model", small_arithmetic_model, "--dataset", str(path), *flags]) == 0
    recorded = json.loads((out / "config.json").read_text())["training_data"]
    tokenizer = AutoTokenizer.from_pretrained(small_arithmetic_model)
    completion_tokens = sum(len(tokenizer(row["completion"])["input_ids"]) for row in rows)
    agent_tokens = sum(sum(episode.loss_mask) for episode in raw_episodes)
    assert recorded["agent_tokens"] == agent_tokens < completion_tokens - 20, "replies are not the agent's"
    assert recorded["source"] == str(path) and recorded["rows"] == recorded["kept"] == len(rows)
    assert not (out / "demos.jsonl").exists(), "no demonstrations were made"
    assert (out / "model" / "config.json").is_file()


def test_a_runs_demonstrations_train_again_through_dataset_as_the_same_rows(small_arithmetic_model, tmp_path):
    """``demos.jsonl`` (and the same trajectories as parquet and saved to disk) give the rows the built-in path trained on."""
    common = f"--model {small_arithmetic_model} --task {TASK} --max-steps 1 --batch-size 4 --no-progress".split()
    assert main(["sft", *common, "--n-demos", "8", "--out-dir", str(tmp_path / "built-in")]) == 0
    built_in = json.loads((tmp_path / "built-in" / "config.json").read_text())["training_data"]
    demos = tmp_path / "built-in" / "demos.jsonl"
    trajectories = load_sft_dataset(str(demos))
    trajectories.to_parquet(str(tmp_path / "demos.parquet"))
    trajectories.save_to_disk(str(tmp_path / "saved"))
    for source in [demos, tmp_path / "demos.parquet", tmp_path / "saved"]:
        out = tmp_path / source.name.replace(".", "-")
        assert main(["sft", *common, "--dataset", str(source), "--out-dir", str(out)]) == 0
        again = json.loads((out / "config.json").read_text())["training_data"]
        assert again["format"] == "trajectories" and again["task"] == TASK, "the trajectories' task is recorded"
        assert [again[key] for key in ("kept", "tokens", "agent_tokens")] == [
            8,
            built_in["tokens"],
            built_in["agent_tokens"],
        ]
        assert again["sha256"] == built_in["sha256"], "the same token rows and masks"


def test_a_dataset_object_trains_a_chat_model_and_the_task_is_still_evaluated(chat_model_dir, raw_episodes, tmp_path):
    chats = datasets.Dataset.from_list(dataset_rows(raw_episodes, raw_episodes, "messages"))
    options = SFTOptions(
        model=str(chat_model_dir),
        task=TASK,
        out_dir=str(tmp_path / "run"),
        max_steps=3,
        batch_size=3,
        learning_rate=0.05,
        n_eval=2,
        progress=False,
    )
    result = run_sft(options, dataset=chats)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["mode"] == "chat" and config["training_data"]["format"] == "messages"
    assert config["training_data"]["source"] == "a datasets.Dataset given to run_sft"
    assert result.report["dataset"]["kept"] == len(chats) and result.report["evaluation"] is not None
    assert json.loads((result.run_dir / "eval.json").read_text())["task"] == TASK
    assert f"({config['training_data']['format']}), 6 of 6 rows" in (result.run_dir / "report.md").read_text()
    before, after = (
        AutoModelForCausalLM.from_pretrained(chat_model_dir),
        AutoModelForCausalLM.from_pretrained(result.model_dir),
    )
    assert not torch.equal(before.lm_head.weight, after.lm_head.weight), "it trained"
    with pytest.raises(ValueError, match="a dataset or options.dataset, not both"):
        run_sft(SFTOptions(model=str(chat_model_dir), dataset="x.jsonl", out_dir=str(tmp_path / "no")), dataset=chats)


def test_rows_too_long_or_not_episodes_are_dropped_and_counted_never_cut(small_arithmetic_model, raw_episodes, caplog):
    tokenizer = AutoTokenizer.from_pretrained(small_arithmetic_model)
    chats = [as_messages(episode) for episode in raw_episodes]
    longest = max(len(episode.token_ids) for episode in raw_episodes)
    broken = [
        chats[0][1:],  # no system message: an episode all the same, kept
        [chats[0][2], *chats[0]],  # starts with the assistant
        [*chats[0][:2], {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "calculator"}}]}],
        [*chats[0][:2], {"role": "assistant", "content": '<tool name="calculator">{"expression": </tool>'}],
        chats[0][:2],  # no assistant message: nothing to learn
    ]
    rows = datasets.Dataset.from_list([{"messages": chat} for chat in chats + broken])
    data = sft_rows(rows, tokenizer, max_length=longest - 1, source="chats")
    too_long = sum(len(episode.token_ids) == longest for episode in raw_episodes)
    assert data.summary["dropped"] == {
        f"longer than max_length ({longest - 1})": too_long,
        "not an episode": 3,
        "without agent tokens": 1,
    }
    assert data.summary["kept"] == len(chats) - too_long + 1 and data.summary["rows"] == len(rows)
    assert all(len(ids) < longest for ids in data.rows["input_ids"])
    assert f"dropped {too_long + 4} of {len(rows)} rows of chats" in caplog.text


def test_trajectories_encoded_otherwise_are_refused_in_one_line(
    small_arithmetic_model, chat_model_dir, tmp_path, capsys
):
    chat_demos = tmp_path / "chat.jsonl"
    write_jsonl(episodes(str(chat_model_dir)), chat_demos)
    other = build_tiny_model(["TwoHop"], tmp_path / "other", seeds=range(20), hidden_size=32, num_attention_heads=2)
    tiny_demos = tmp_path / "tiny.jsonl"
    write_jsonl(episodes(small_arithmetic_model), tiny_demos)
    cases = [
        (small_arithmetic_model, chat_demos, "trajectory 0 is a chat episode and this model encodes raw episodes"),
        (str(other), tiny_demos, "trajectory 0 was encoded by another tokenizer"),
        (small_arithmetic_model, tmp_path / "missing.jsonl", "no such dataset file or directory"),
    ]
    capsys.readouterr()  # what building the other model wrote
    for model, data, message in cases:
        flags = ["--dataset", str(data), "--max-steps", "1", "--no-progress", "--out-dir", str(tmp_path / "run")]
        assert main(["sft", "--model", model, *flags]) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error


def test_a_dataset_of_no_known_format_is_refused_naming_the_accepted_columns(small_arithmetic_model, tmp_path, capsys):
    path = tmp_path / "text.jsonl"
    write_jsonl([{"text": "Task: compute 2 + 3."}], path)
    flags = ["--dataset", str(path), "--no-progress", "--out-dir", str(tmp_path / "run")]
    assert main(["sft", "--model", small_arithmetic_model, *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert "the columns text is none of: token_ids + loss_mask (trajectories); messages (messages); prompt +" in error
    assert len(error.splitlines()) == 1
    with pytest.raises(ValueError, match="one datasets.Dataset .one split., got DatasetDict"):
        sft_rows(datasets.DatasetDict({"train": load_sft_dataset(str(path))}), None, max_length=8)
    with pytest.raises(ValueError, match="sloppy_demos applies to the oracle's demonstrations"):
        SFTOptions(dataset=str(path), sloppy_demos=0.5)


def test_parallel_tool_calls_become_one_turn_each_followed_by_its_tool_message(small_arithmetic_model):
    tokenizer = AutoTokenizer.from_pretrained(small_arithmetic_model)
    calls = [
        {
            "function": {"name": "calculator", "arguments": {"expression": "2 + 3"}}
        },  # as transformers' templates take them
        {"function": {"name": "calculator", "arguments": {"expression": "4 * 5"}}},
    ]
    chat = [
        {"role": "system", "content": "Use the calculator."},
        {"role": "user", "content": "Task: compute 2 + 3 and 4 * 5."},
        {"role": "assistant", "content": "Two sums.", "tool_calls": calls},
        {"role": "tool", "content": "5"},
        {"role": "tool", "content": "20"},
        {"role": "assistant", "content": "5 and 20"},
    ]
    data = sft_rows(datasets.Dataset.from_list([{"messages": chat}]), tokenizer, max_length=1024)
    ids, mask = data.rows["input_ids"][0], data.rows["assistant_masks"][0]
    first, second = (
        '<tool name="calculator">{"expression": "2 + 3"}</tool>',
        '<tool name="calculator">{"expression": "4 * 5"}</tool>',
    )
    prompt = "Use the calculator.\nTask: compute 2 + 3 and 4 * 5.\n"
    agent = [f"Two sums.\n{first}", second, "<finish>5 and 20</finish>"]
    assert (
        tokenizer.decode(ids) == f"{prompt}{agent[0]}\n<result>5</result>\n{agent[1]}\n<result>20</result>\n{agent[2]}"
    )
    assert tokenizer.decode([t for t, m in zip(ids, mask) if m]) == "".join(agent)
