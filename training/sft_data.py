"""Your own data for agentic SFT: a dataset loaded, its format told from its columns, and every row turned into
the pre-tokenized ``input_ids`` / ``assistant_masks`` rows `agentic.training.sft` trains on (loss on agent tokens).

Formats (`FORMATS`, detected from the columns):

- **trajectories** (``token_ids`` + ``loss_mask``): what this project writes (a run's ``demos.jsonl``, RL samples,
  evaluation episodes, `agentic.trajectory.to_dataset` saved to disk). Trained on as recorded: the exact tokens a
  rollout saw and the mask it wrote. Rows encoded otherwise than the model encodes episodes are refused, not
  re-encoded: a recorded ``mode`` (raw or chat) other than the model's, token ids outside its vocabulary, or ids
  that do not decode to the recorded ``transcript`` (another tokenizer). Re-encoding could not reproduce the
  episode: a raw record keeps its prompt as one text (the system/user split a chat template needs is gone), and
  the point of this format is to train on the tokens as they were.
- **messages** (``messages``): OpenAI-style chats with roles system, user, assistant and tool; an assistant
  message carries ``content`` and/or ``tool_calls`` (``[{"function": {"name", "arguments"}}]``, arguments a JSON
  object or its text). Each becomes an episode of this project (`Episode`): the first system and user messages
  are the prompt; each tool call is the action ``<tool name="X">{json}</tool>`` (the message's content its
  thought) and its tool message the reply ``<result>…</result>``; several calls in one message become as many
  turns, each followed by its tool message; an assistant message without calls is kept as it is when it already
  is an action of the grammar, and is otherwise the answer ``<finish>…</finish>``; later user messages are
  ``<user>…</user>`` replies and later system messages ``<sys>…</sys>``.
- **prompt-completion** (``prompt`` + ``completion``): plain strings, the completion in the environment's own
  text (agent text, then replies ``<result>…</result>``, ``<user>…</user>``, ``<sys>…</sys>`` exactly as the
  environment appends them, which carry no loss); or, as TRL takes them, lists of messages, rendered as a
  ``messages`` chat whose prompt messages carry no loss.

The rendering is written here by hand, not left to ``apply_chat_template`` / TRL's conversational datasets,
because the model must learn episodes exactly as `agentic.encoding` encodes them for rollouts and evaluation:
tool calls in the project's action grammar (a template's own tool-call format is not what the environment
parses), segments encoded one by one with the framing cut from the model's template, the end-of-turn token an
agent token, and raw text for a model without a template. TRL's assistant masks would also need a template with
``{% generation %}`` markers, which few have. Loading is `datasets`' (``load_dataset`` for data files and hub ids,
``load_from_disk`` for ``save_to_disk`` directories).

Rows that cannot be rendered, that carry no agent token, or that do not fit ``max_length`` are dropped (never
truncated mid-action), counted by reason, and logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase

from agentic.actions import ActionKind, finish, tool_call
from agentic.encoding import EpisodeEncoding, Segment, encode, episode_encoding
from agentic.env import REPLY_TAGS, reply_text
from agentic.limits import cap, clean_text
from agentic.parsing import parse_action

log = logging.getLogger(__name__)

FORMATS = {
    "trajectories": ("token_ids", "loss_mask"),
    "messages": ("messages",),
    "prompt-completion": ("prompt", "completion"),
}
"""Each format and the columns that identify it."""

DATA_FILES = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
"""The `datasets` builder of each local data file's suffix."""

_REPLY = re.compile(r"\n?<({tags})>.*?</\1>\n?".format(tags="|".join(REPLY_TAGS.values())), re.DOTALL)
"""One reply as the environment appends it (`agentic.env.reply_text`); the budget's note follows another's newline."""


class RowError(ValueError):
    """A row that cannot be rendered as an episode: dropped and counted."""


@dataclass
class Episode:
    """A row in this project's terms: the prompt (raw text, or the system and user messages), then per turn the
    agent's action, whether the loss covers it, and the environment's reply (as `agentic.env` appends it)."""

    prompt: str | list[dict[str, str]]
    turns: list[list[Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SFTData:
    """Rows to train on (``input_ids``, ``assistant_masks``) and what `summary` says of them for the run's records."""

    rows: datasets.Dataset
    summary: dict[str, Any]


def load_sft_dataset(source: str, split: str = "train") -> datasets.Dataset:
    """The ``split`` of a local JSONL/JSON/parquet file, a directory `datasets.Dataset.save_to_disk` wrote (or a
    folder of data files), or a hub id. Any failure is one ValueError line."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix not in DATA_FILES:
        raise ValueError(f"{source}: a dataset file is one of {', '.join(DATA_FILES)}, got {path.suffix or 'none'}")
    if not path.exists() and (path.suffix in DATA_FILES or source.startswith((".", "/", "~"))):
        raise ValueError(f"no such dataset file or directory: {source}")
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict) and split not in loaded:
                raise ValueError(f"it has the splits {', '.join(loaded)}")
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        if path.is_file():
            return datasets.load_dataset(DATA_FILES[path.suffix], data_files=str(path), split=split)
        return datasets.load_dataset(str(path) if path.is_dir() else source, split=split)
    except Exception as error:  # datasets, pyarrow, the hub client: each raises its own kinds
        cause = error.__cause__ or error  # datasets wraps a reader's error (e.g. pyarrow's, for a malformed line)
        why = " ".join(str(cause).split()) or type(cause).__name__
        raise ValueError(f"cannot load the {split!r} split of the dataset {source}: {why}") from None


def data_format(dataset: datasets.Dataset) -> str:
    """The `FORMATS` name the dataset's columns identify; a ValueError naming the accepted column sets otherwise."""
    if not isinstance(dataset, datasets.Dataset):
        raise ValueError(f"the training data must be one datasets.Dataset (one split), got {type(dataset).__name__}")
    for name, columns in FORMATS.items():
        if set(columns) <= set(dataset.column_names):
            return name
    accepted = "; ".join(f"{' + '.join(columns)} ({name})" for name, columns in FORMATS.items())
    raise ValueError(f"a dataset with the columns {', '.join(dataset.column_names)} is none of: {accepted}")


def sft_rows(
    dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, *, max_length: int, source: str = ""
) -> SFTData:
    """The training rows of ``dataset`` for a model with ``tokenizer``, encoded as `agentic.encoding` encodes its
    episodes (chat with its template, raw text without); rows that cannot be used are dropped with a count logged.
    Raises ValueError when the format is none of `FORMATS`, trajectories do not match the model, or no row is left."""
    fmt = data_format(dataset)
    encoding = episode_encoding(tokenizer)
    if fmt == "trajectories":
        rows = _trajectory_rows(dataset, tokenizer, encoding.mode)
    else:
        rows = _episode_rows(dataset, fmt, encoding)
    kept: dict[str, list[list[int]]] = {"input_ids": [], "assistant_masks": []}
    dropped: Counter[str] = Counter()
    digest = hashlib.sha256()
    for index, row in enumerate(rows):
        reason = "not an episode" if isinstance(row, RowError) else _misfit(row, max_length)
        if reason:
            if not dropped:
                why = row if isinstance(row, RowError) else reason
                log.warning("dropped row %d of %s: %s", index, source or "the dataset", why)
            dropped[reason] += 1
            continue
        kept["input_ids"].append(row[0])
        kept["assistant_masks"].append(row[1])
        digest.update(json.dumps(row).encode())
    if dropped:
        log.warning("dropped %d of %d rows of %s: %s", dropped.total(), len(dataset), source, _counts(dropped))
    if not kept["input_ids"]:
        raise ValueError(f"no row of the dataset {source} can be trained on ({_counts(dropped)})")
    summary = {
        "source": source,
        "format": fmt,
        "mode": encoding.mode,
        "rows": len(dataset),
        "kept": len(kept["input_ids"]),
        "dropped": dict(dropped),
        "tokens": sum(map(len, kept["input_ids"])),
        "agent_tokens": sum(map(sum, kept["assistant_masks"])),
        "sha256": digest.hexdigest(),
    }
    if fmt == "trajectories" and "task" in dataset.column_names:  # named, so that provenance sees what was trained on
        summary["task"] = ",".join(sorted(set(dataset["task"])))
    return SFTData(datasets.Dataset.from_dict(kept), summary)


def _misfit(row: tuple[list[int], list[int]], max_length: int) -> str:
    """Why a rendered row is not trained on, or an empty string."""
    if not any(row[1]):
        return "without agent tokens"
    return f"longer than max_length ({max_length})" if len(row[0]) > max_length else ""


def _counts(dropped: Counter[str]) -> str:
    """``3 longer than max_length (1024), 1 not an episode``."""
    return ", ".join(f"{count} {reason}" for reason, count in dropped.items()) or "it is empty"


def _trajectory_rows(
    dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, mode: str
) -> Iterator[tuple[list[int], list[int]]]:
    """Each trajectory's recorded tokens and mask; a ValueError for one encoded otherwise than the model encodes."""
    vocabulary = len(tokenizer)
    for index, row in enumerate(dataset):
        ids, mask = list(row["token_ids"]), [int(m) for m in row["loss_mask"]]
        recorded = row.get("mode") or "raw"  # records written before the field existed are raw text
        if recorded != mode:
            raise ValueError(
                f"trajectory {index} is a {recorded} episode and this model encodes {mode} episodes: record "
                "demonstrations with this model, or give the conversations as messages"
            )
        if len(mask) != len(ids):
            raise ValueError(f"trajectory {index} has {len(ids)} token ids but {len(mask)} loss-mask values")
        foreign = any(not 0 <= token < vocabulary for token in ids)
        transcript = row.get("transcript")
        if foreign or (transcript is not None and _words(tokenizer.decode(ids)) != _words(transcript)):
            raise ValueError(
                f"trajectory {index} was encoded by another tokenizer (its token ids do not decode to its "
                "transcript with this model's): record demonstrations with this model"
            )
        yield ids, mask


def _words(text: str) -> list[str]:
    """The text without its spacing, which some tokenizers' decoding changes (SentencePiece's word marks, clean-up
    of spaces before punctuation); another tokenizer's ids decode to other words."""
    return text.split()


def _episode_rows(
    dataset: datasets.Dataset, fmt: str, encoding: EpisodeEncoding
) -> Iterator[tuple[list[int], list[int]] | RowError]:
    """Each row rendered as an episode (`Episode`) and encoded; a `RowError` in place of a row that cannot be."""
    specials = encoding.tokenizer.all_special_tokens
    for row in dataset:
        try:
            episode = messages_episode(row["messages"]) if fmt == "messages" else completion_episode(row, specials)
            yield episode_tokens(episode, encoding)
        except RowError as error:
            yield error


def episode_tokens(episode: Episode, encoding: EpisodeEncoding) -> tuple[list[int], list[int]]:
    """The episode's token ids and loss mask, each segment encoded on its own as a rollout encodes it."""
    prompt = _prompt_segment(episode.prompt, encoding)
    ids, mask = list(prompt.ids), [0] * len(prompt.ids)
    for action_text, learnt, reply in episode.turns:
        action = encoding.action(action_text)
        answer = encoding.reply(reply, action.ids)
        ids += action.ids + answer.ids
        mask += [int(learnt)] * len(action.ids) + [0] * len(answer.ids)
    return ids, mask


def _prompt_segment(prompt: str | list[dict[str, str]], encoding: EpisodeEncoding) -> Segment:
    """Raw text as it is for a raw-text model; a prompt text is one user message for a chat model."""
    if isinstance(prompt, str):
        if encoding.mode == "raw":
            return Segment(prompt, encode(encoding.tokenizer, prompt))
        prompt = [{"role": "user", "content": clean_text(prompt).strip()}]
    return encoding.conversation_prompt(prompt)


def completion_episode(row: dict[str, Any], special_tokens: Sequence[str] = ()) -> Episode:
    """A prompt/completion row: strings (the completion in the environment's text) or lists of messages. A text
    completion that holds one of the model's ``special_tokens`` (a chat template's framing, e.g. ``<|im_end|>``) is
    refused: its framing would be learnt as the agent's text."""
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, str) and isinstance(completion, str):
        framing = next((token for token in special_tokens if token in completion), None)
        if framing:
            raise RowError(f"the completion holds the special token {framing}: write it in the environment's text")
        return Episode(prompt, completion_turns(completion))
    if isinstance(prompt, list) and isinstance(completion, list):
        return messages_episode([*prompt, *completion], learn_from=len(prompt))
    raise RowError("prompt and completion are both text or both lists of messages")


def completion_turns(completion: str) -> list[list[Any]]:
    """The agent's pieces of a completion in the environment's text, each followed by the environment's replies
    to it (`_REPLY`): the loss covers the agent's pieces only. Replies before any agent text are refused."""
    turns: list[list[Any]] = []
    position = 0
    for reply in _REPLY.finditer(completion):
        if reply.start() > position:
            turns.append([completion[position : reply.start()], True, ""])
        elif not turns:
            raise RowError("the completion starts with an environment reply, not the agent's text")
        turns[-1][2] += reply.group(0)
        position = reply.end()
    if position < len(completion):
        turns.append([completion[position:], True, ""])
    return turns


def messages_episode(messages: Sequence[dict[str, Any]], learn_from: int = 0) -> Episode:
    """A chat as an episode (the rules are in the module's docstring); the loss covers the assistant messages
    from index ``learn_from`` on."""
    if any(not isinstance(message, dict) for message in messages):
        raise RowError("a message is not an object with a role and content")
    roles = [message.get("role") for message in messages]
    head = 2 if roles[:2] == ["system", "user"] else 1 if roles[:1] == ["user"] else 0
    if not head:
        raise RowError("a conversation starts with a user message, or a system message and a user message")
    episode = Episode([{"role": role, "content": _content(m)} for role, m in zip(roles[:head], messages)])
    index = head
    while index < len(messages):
        if roles[index] != "assistant":
            raise RowError(f"message {index} ({roles[index]}) follows no assistant message")
        learnt, calls, thought = index >= learn_from, messages[index].get("tool_calls") or [], _content(messages[index])
        for number, call in enumerate(calls, 1):
            if index + number >= len(messages) or roles[index + number] != "tool":
                raise RowError(f"tool call {number} of message {index} is not followed by its tool message")
            reply = reply_text(REPLY_TAGS["tool"], _content(messages[index + number]))
            episode.turns.append([_tool_action(call, thought if number == 1 else ""), learnt, reply])
        index += 1 + len(calls)
        if not calls:
            episode.turns.append([_plain_action(thought), learnt, ""])
        while index < len(messages) and roles[index] != "assistant":
            if roles[index] not in REPLY_TAGS:
                raise RowError(f"message {index} has the role {roles[index]!r}: not system, user, assistant or tool")
            episode.turns[-1][2] += reply_text(REPLY_TAGS[roles[index]], _content(messages[index]))
            index += 1
    return episode


def _content(message: dict[str, Any]) -> str:
    """A message's text: its content, or the text parts of a list of parts; empty when it has none."""
    content = message.get("content")
    if isinstance(content, list):
        if any(not isinstance(part, dict) or part.get("type") != "text" for part in content):
            raise RowError("a message has a part that is not text")
        content = "".join(part.get("text") or "" for part in content)
    if content is not None and not isinstance(content, str):
        raise RowError(f"a message's content is {type(content).__name__}, not text")
    return clean_text(content or "").strip()


def _tool_action(call: dict[str, Any], thought: str) -> str:
    """``<tool name="X">{json}</tool>`` for an OpenAI-style call (its ``function``'s name and arguments)."""
    function = call.get("function", call) if isinstance(call, dict) else {}
    name, arguments = function.get("name"), function.get("arguments")
    try:
        arguments = json.loads(arguments) if isinstance(arguments, str) else arguments or {}
        action = tool_call(name, arguments, thought) if isinstance(arguments, dict) and isinstance(name, str) else ""
    except ValueError:  # arguments that are not JSON, or hold NaN
        action = ""
    parsed = parse_action(action)
    if parsed.kind is not ActionKind.TOOL or parsed.tool != name:
        raise RowError(f"the tool call {cap(repr(call), 80)} is not a tool name with a JSON object of arguments")
    return action


def _plain_action(content: str) -> str:
    """An assistant message without tool calls: an action of the grammar as it is, any other text the answer."""
    parsed = parse_action(content)
    if parsed.kind is ActionKind.INVALID:
        raise RowError(f"an assistant message is not a valid action: {parsed.error}")
    if parsed.kind is ActionKind.TEXT:
        return finish(content)
    if parsed.discarded:
        raise RowError("an assistant message has text after its action")
    return content
