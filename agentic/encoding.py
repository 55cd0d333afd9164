"""How an episode becomes tokens: raw text, or the model's own chat template.

An episode is a prompt, then per turn the agent's action and the environment's reply; each segment is
encoded once, on its own, and appended (token-in/token-out: the transcript is never re-tokenized). The
mode decides what the segments are:

- **raw** (base models, the tiny model): the segments are the environment's text as it is, the
  observation ``env.context`` first, then each action and each reply (``info["delta"]``);
- **chat** (a tokenizer with a chat template): the task's `instructions` and `question` are the template's
  system and user messages, each action an assistant message, each reply (``<result>…</result>``,
  ``<user>…</user>``, ``<sys>…</sys>``, stripped of the newlines around it) the next user message. The
  framing text around the messages is cut out of the template itself (`ChatEncoding`), never written here.

`episode_encoding` picks the mode: chat when the tokenizer has a chat template, unless the caller says
``mode="raw"`` (or ``"chat"``). The mode is recorded in every `Trajectory`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedTokenizerBase

from agentic.limits import clean_text
from agentic.task import Task
from agentic.trajectory import MODES

MODE_CHOICES = ("auto", *MODES)
"""What a caller may ask for: ``auto`` is chat when the tokenizer has a chat template, raw otherwise."""


class ChatTemplateError(ValueError):
    """Chat mode asked of a tokenizer without a chat template, or with one that cannot frame episodes."""


@dataclass(frozen=True)
class Segment:
    """A piece of an episode: its text and the token ids it was encoded to (``decode(ids) == text``)."""

    text: str
    ids: list[int]


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of ``text`` alone, without special tokens added: raw-text segments are encoded this way."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def episode_mode(tokenizer: PreTrainedTokenizerBase, mode: str = "auto") -> str:
    """``"chat"`` or ``"raw"``: what ``mode`` (one of `MODE_CHOICES`) means for this tokenizer."""
    if mode not in MODE_CHOICES:
        raise ValueError(f"mode must be one of {', '.join(MODE_CHOICES)}, got {mode!r}")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if mode == "chat" and not has_template:
        raise ChatTemplateError("chat mode needs a tokenizer with a chat template, and this one has none: use raw mode")
    return mode if mode != "auto" else "chat" if has_template else "raw"


def episode_encoding(tokenizer: PreTrainedTokenizerBase, mode: str = "auto") -> EpisodeEncoding:
    """The encoding of episodes for this tokenizer in ``mode`` (`episode_mode`)."""
    return ChatEncoding(tokenizer) if episode_mode(tokenizer, mode) == "chat" else EpisodeEncoding(tokenizer)


def prompt_messages(task: Task, instance: Any) -> list[dict[str, str]]:
    """The chat's first messages: the task's instructions (system) and question (user).

    A task that implements `Task.prompt` but not `Task.question` gets its whole prompt as one user message.
    """
    if type(task).question is Task.question:
        return [{"role": "user", "content": clean_text(task.prompt(instance)).strip()}]
    return [
        {"role": "system", "content": clean_text(task.instructions(instance)).strip()},
        {"role": "user", "content": clean_text(task.question(instance)).strip()},
    ]


class EpisodeEncoding:
    """Raw-text episodes, and the base of `ChatEncoding`: every segment is the environment's own text, encoded
    as it is, so the context is the observation text as a base model continues it."""

    mode = "raw"
    end_of_turn_id: int | None = None
    """The token that closes an assistant message (chat mode, when the template has one): sampling stops at it."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer

    def prompt(self, env: Any) -> Segment:
        """The episode's first segment, from an environment just reset."""
        return Segment(env.context, encode(self.tokenizer, env.context))

    def conversation_prompt(self, messages: Sequence[dict[str, str]]) -> Segment:
        """The first segment of an episode that starts with these messages (`prompt_messages`' form: the system
        message, then the user's), as `prompt` encodes a task's: in raw text each content ends a line."""
        text = "".join(message["content"] + "\n" for message in messages)
        return Segment(text, encode(self.tokenizer, text))

    def action(self, text: str) -> Segment:
        """A scripted (not sampled) action as the agent's tokens: all of them are learnt."""
        return Segment(text, encode(self.tokenizer, text))

    def environment_text(self, text: str, token_ids: Sequence[int]) -> str:
        """What the environment reads of an action whose tokens decode to ``text``."""
        return text

    def reply(self, delta: str, action_ids: Sequence[int]) -> Segment:
        """The environment's segment after an action of ``action_ids`` to which it appended ``delta``."""
        return Segment(delta, encode(self.tokenizer, delta))


class ChatEncoding(EpisodeEncoding):
    """Chat-template episodes, with the framing cut out of the tokenizer's own template.

    At construction the template renders a conversation whose contents are placeholders (system,
    user, then two assistant/user rounds); the text between the placeholders is the framing:
    the prompt's, the text after an assistant message up to the next user content (``after_action``),
    and after a user message up to the next assistant content (``after_reply``, the generation
    prompt). A template that frames the second round unlike the first, or cannot be cut so, is
    refused with a message to use raw mode. A template that refuses a system message (some do)
    gets the instructions and the question as one user message.

    Framing is encoded with the tokenizer's special tokens recognised; contents (instructions,
    questions, replies, scripted actions) with special tokens split into ordinary text, so that
    text a model or a tool wrote can never forge a message boundary.

    The end-of-turn token is the special token that opens the template's closing of an assistant
    message (``<|im_end|>`` in ChatML). Sampling stops at it as well as at a complete action:

    - sampled, it is an agent token (loss mask 1, its log-prob recorded) and the reply's framing
      starts after it;
    - not sampled (the action was complete first, or hit its token limit), the reply's framing
      starts with it as an environment token (loss mask 0). So every context the model continues
      is the conversation as its template renders it, and a rollout never spends a forward pass
      to sample a token that carries no decision; the closing token is learnt in SFT instead,
      where demonstrations (`action`) end each action with it as an agent token.

    After the last action of an episode (``<finish>``: no reply), the reply is the template's
    closing of the assistant message alone, so a finished trajectory's text is exactly what the
    template renders for its messages.
    """

    mode = "chat"

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        super().__init__(tokenizer)
        rounds = ["assistant", "user", "assistant", "user"]
        try:
            pieces = self._framing(["system", "user", *rounds], True)
            self.system_prompt = pieces[:3]
        except ChatTemplateError:  # the template refuses a system message: instructions go into the user message
            pieces = [""] + self._framing(["user", *rounds], True)
            self.system_prompt = None
        self.user_prompt = self._framing(["user"], True)
        self.after_action, self.after_reply = pieces[3], pieces[4]
        if (self.after_action, self.after_reply) != (pieces[5], pieces[6]):
            raise self._unusable("it frames the second round of messages unlike the first")
        self.closing = self._framing(["user", "assistant"], False)[-1]
        self._framing_ids: dict[str, list[int]] = {}
        self.end_of_turn_id, self.end_of_turn_text = self._end_of_turn()

    def prompt(self, env: Any) -> Segment:
        return self.conversation_prompt(prompt_messages(env.task, env.instance))

    def conversation_prompt(self, messages: Sequence[dict[str, str]]) -> Segment:
        if len(messages) == 2 and self.system_prompt is None:
            messages = [{"role": "user", "content": f"{messages[0]['content']}\n{messages[1]['content']}"}]
        framing = self.system_prompt if len(messages) == 2 else self.user_prompt
        return self._join(framing, [message["content"] for message in messages])

    def action(self, text: str) -> Segment:
        if self.end_of_turn_id is None:
            return Segment(text, self._encode_content(text))
        return Segment(text + self.end_of_turn_text, [*self._encode_content(text), self.end_of_turn_id])

    def environment_text(self, text: str, token_ids: Sequence[int]) -> str:
        """The action without the end-of-turn or end-of-sequence token that stopped it (that is framing, not action)."""
        if token_ids and token_ids[-1] in (self.end_of_turn_id, self.tokenizer.eos_token_id):
            return self.tokenizer.decode(list(token_ids[:-1]), skip_special_tokens=False)
        return text

    def reply(self, delta: str, action_ids: Sequence[int]) -> Segment:
        closed = self.end_of_turn_id is not None and bool(action_ids) and action_ids[-1] == self.end_of_turn_id
        content = delta.strip()
        framing = [self.closing] if not content else [self.after_action, self.after_reply]
        if closed:
            framing[0] = framing[0][len(self.end_of_turn_text) :]
        return self._join(framing, [content] if content else [])

    def _join(self, framing: Sequence[str], contents: Sequence[str]) -> Segment:
        """``framing[0] + contents[0] + framing[1] + …``, each piece encoded on its own."""
        text, ids = "", []
        for index, piece in enumerate(framing):
            text += piece
            ids += self._encode_framing(piece)
            if index < len(contents):
                text += contents[index]
                ids += self._encode_content(contents[index])
        return Segment(text, ids)

    def _encode_framing(self, text: str) -> list[int]:
        """The ids of a piece of framing, special tokens recognised (a handful of fixed pieces, each encoded once)."""
        if text not in self._framing_ids:
            self._framing_ids[text] = encode(self.tokenizer, text) if text else []
        return self._framing_ids[text]

    def _encode_content(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def _framing(self, roles: Sequence[str], add_generation_prompt: bool) -> list[str]:
        """The template's text around messages of these ``roles``: ``len(roles) + 1`` pieces, contents cut out."""
        markers = [f"AgenticContent{index}Marker" for index in range(len(roles))]
        messages = [{"role": role, "content": marker} for role, marker in zip(roles, markers)]
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        except Exception as error:  # jinja's TemplateError from the template's raise_exception, or any fault in it
            raise self._unusable(f"it refuses the messages {roles}: {' '.join(str(error).split())}") from None
        pieces = []
        for marker in markers:
            before, found, text = text.partition(marker)
            if not found or marker in text:
                raise self._unusable("it does not render each message's content once, as it is")
            pieces.append(before)
        return [*pieces, text]

    def _end_of_turn(self) -> tuple[int | None, str]:
        """The special token that starts the closing of an assistant message, when there is one, and its text."""
        ids = self._encode_framing(self.closing)
        if not ids or ids[0] not in self.tokenizer.added_tokens_decoder:
            return None, ""
        text = self.tokenizer.decode(ids[:1], skip_special_tokens=False)
        return (ids[0], text) if self.closing.startswith(text) and self.after_action.startswith(text) else (None, "")

    @staticmethod
    def _unusable(why: str) -> ChatTemplateError:
        return ChatTemplateError(f"chat mode cannot use this tokenizer's chat template ({why}): use raw mode")
