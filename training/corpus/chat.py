"""Chat data for the corpus pipeline: prompt-only chat datasets (the PPO prompts) and preference datasets (the reward
model's pairs), in the formats TRL's trainers take.

- chat prompts: rows with a ``prompt`` column (a string, or a list of messages) or a ``messages`` column (a
  conversation; the prompt is what comes before its first assistant message). A prompt is one user message: it
  becomes the user message of a one-turn chat episode (`agentic.encoding.ChatEncoding`), rendered with the policy's
  chat template, the response sampled as the assistant message. Rows whose prompt has a system message or several
  turns are left out (the episode's chat has one user message).
- preference pairs: ``chosen`` / ``rejected`` with an explicit ``prompt``, or with the prompt implicit (the
  messages or text both share, split off by TRL's `extract_prompt`); conversational (lists of messages) or plain
  (strings). Each pair is kept as (prompt, chosen, rejected) texts and whether it was conversational, so the reward
  model is trained (`RewardTrainer`) and then asked (`RewardScorer`) in the same format.

``chat`` names the shipped stand-ins (`agentic.tasks.data.make_chat_standin`) with ``standin``, else the hub's
`CHAT_PROMPTS_HUB` / `CHAT_PREFERENCES_HUB`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import datasets
from trl.data_utils import extract_prompt, is_conversational

from agentic.tasks.corpora import load_corpus, standin_path

CHAT = "chat"
CHAT_PROMPTS_HUB = ("HuggingFaceH4/ultrachat_200k", "train_sft")
CHAT_PREFERENCES_HUB = ("trl-lib/ultrafeedback_binarized", "train")


def user_prompt(value: str | list[dict[str, str]]) -> str | None:
    """A prompt as one user message's text: a string as it is; messages up to the first assistant message when they
    are exactly one user message, else None."""
    if isinstance(value, str):
        return value
    before = []
    for message in value:
        if message["role"] == "assistant":
            break
        before.append(message)
    return before[0]["content"] if len(before) == 1 and before[0]["role"] == "user" else None


def assistant_reply(value: str | list[dict[str, str]]) -> str | None:
    """A response as text: a string as it is, or the content of exactly one assistant message, else None."""
    if isinstance(value, str):
        return value
    return value[0]["content"] if len(value) == 1 and value[0]["role"] == "assistant" else None


def is_chat_prompts(columns: set[str]) -> bool:
    """Whether rows with these columns are chat prompts (a ``messages`` column, or a ``prompt`` without reference)."""
    return "messages" in columns or ("prompt" in columns and "reference" not in columns)


def chat_prompts(rows: datasets.Dataset) -> Iterator[str]:
    """The one-user-message prompts of chat rows, in order (`user_prompt`; other rows left out)."""
    column = "prompt" if "prompt" in rows.column_names else "messages"
    for row in rows:
        prompt = user_prompt(row[column])
        if prompt and prompt.strip():
            yield prompt


def preference_rows(source: str, *, standin: bool = False, max_rows: int = 0) -> datasets.Dataset:
    """The rows of a preference dataset: ``chat`` (the stand-in with ``standin``, else the hub's), a hub id or a file."""
    if source == CHAT:
        hub_id, split = CHAT_PREFERENCES_HUB
        source, split = (str(standin_path("chat_preferences")), "train") if standin else (hub_id, split)
        return load_corpus(source, split=split, limit=max_rows or None)
    return load_corpus(source, limit=max_rows or None)


def preference_pairs(rows: datasets.Dataset) -> tuple[list[dict[str, Any]], bool]:
    """``(pairs, conversational)``: each usable row as ``prompt``, ``chosen``, ``rejected`` texts, its ``kind`` (the
    row's, else ``given``) and ``group`` (its prompt: a prompt's pairs stay on one side of the split)."""
    missing = {"chosen", "rejected"} - set(rows.column_names)
    if missing:
        raise ValueError(f"a preference dataset needs chosen and rejected columns; missing {sorted(missing)}")
    conversational = is_conversational(rows[0])
    pairs = []
    for row in rows:
        row = row if "prompt" in row else extract_prompt(row)
        prompt, chosen, rejected = (
            user_prompt(row["prompt"]),
            assistant_reply(row["chosen"]),
            assistant_reply(row["rejected"]),
        )
        if prompt is not None and chosen is not None and rejected is not None and chosen != rejected:
            kind = row.get("kind") or "given"
            pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "kind": kind, "group": prompt})
    if not pairs:
        raise ValueError("no usable preference pair: each needs one user prompt and one chosen and rejected reply")
    return pairs, conversational


def as_conversation(pair: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """A (prompt, chosen, rejected) pair in TRL's conversational format with an explicit prompt."""
    return {
        "prompt": [{"role": "user", "content": pair["prompt"]}],
        "chosen": [{"role": "assistant", "content": pair["chosen"]}],
        "rejected": [{"role": "assistant", "content": pair["rejected"]}],
    }


def exchange(prompt: str, reply: str) -> list[dict[str, str]]:
    """The chat of one user prompt and one assistant reply, as a chosen or rejected pair is rendered in training."""
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
