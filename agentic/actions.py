"""What an agent can do in one turn, and the exact text form of each action."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any


class ActionKind(str, enum.Enum):
    TOOL = "tool"
    ASK = "ask"
    FINISH = "finish"
    TEXT = "text"
    INVALID = "invalid"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Action:
    """One parsed agent turn.

    ``thought`` is the free text before the sentinel (stripped); ``content`` is the
    question (ask), the answer (finish) or the whole text (text). ``raw`` is the text
    that was parsed and ``discarded`` whatever followed the first sentinel; neither
    takes part in equality, so an action equals its re-parsed rendering.
    """

    kind: ActionKind
    thought: str = ""
    content: str = ""
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    position: int | None = None
    expected: tuple[str, ...] = ()
    raw: str = field(default="", compare=False)
    discarded: str = field(default="", compare=False)

    @property
    def is_valid(self) -> bool:
        return self.kind is not ActionKind.INVALID

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "thought": self.thought,
            "content": self.content,
            "tool": self.tool,
            "arguments": self.arguments,
            "error": self.error,
            "position": self.position,
            "expected": list(self.expected),
            "raw": self.raw,
            "discarded": self.discarded,
        }


def render_action(action: Action) -> str:
    """The canonical text of an action: ``parse_action(render_action(a)) == a`` for valid ``a``."""
    if action.kind is ActionKind.INVALID:
        return action.raw
    if action.kind is ActionKind.TEXT:
        return action.content
    if action.kind is ActionKind.TOOL:
        body = json.dumps(action.arguments, ensure_ascii=False, allow_nan=False)
        sentinel = f'<tool name="{action.tool}">{body}</tool>'
    elif action.kind is ActionKind.ASK:
        sentinel = f"<ask>{action.content}</ask>"
    else:
        sentinel = f"<finish>{action.content}</finish>"
    return f"{action.thought}\n{sentinel}" if action.thought else sentinel


def tool_call(tool: str, arguments: dict[str, Any] | None = None, thought: str = "") -> str:
    """Text of a tool call, e.g. for oracles and hand-written demonstrations."""
    return render_action(Action(ActionKind.TOOL, thought=thought, tool=tool, arguments=arguments or {}))


def ask(question: str, thought: str = "") -> str:
    return render_action(Action(ActionKind.ASK, thought=thought, content=question))


def finish(answer: str, thought: str = "") -> str:
    return render_action(Action(ActionKind.FINISH, thought=thought, content=answer))
