"""`parse_action`: agent text to an `Action`, through the Lark grammar in `grammar.lark`.

It never raises: anything that is not a well-formed action becomes an ``invalid``
action whose ``error`` names the character position and what was expected there,
in words a small model can learn from.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from agentic.actions import Action, ActionKind
from agentic.limits import ERROR_CHARS, cap, has_surrogate, quote

_CLOSING_TAG = {"TOOL_OPEN": "</tool>", "ASK_OPEN": "</ask>", "FINISH_OPEN": "</finish>"}
_TAG_FORMS = '<tool name="NAME">{...}</tool>, <ask>...</ask> or <finish>...</finish>'


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("agentic").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", maybe_placeholders=False)


def parse_action(text: str) -> Action:
    """Parse one agent turn. Never raises for a ``str``."""
    if not isinstance(text, str):
        return _invalid(repr(text), 0, f"an action must be text, got {type(text).__name__}", ())
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        return _from_syntax_error(text, err)
    except RecursionError:
        return _invalid(text, 0, "the action is nested too deeply to parse", ())
    return _from_tree(text, tree)


def _from_tree(text: str, tree: Tree) -> Action:
    thought, sentinel, rest = "", None, ""
    for child in tree.children:
        if child.data == "thought":
            thought = child.children[0].value
        elif child.data == "rest":
            rest = child.children[0].value
        else:
            sentinel = child
    if sentinel is None:
        return Action(ActionKind.TEXT, content=text.strip(), raw=text)
    if sentinel.data == "stray_tag":
        tag: Token = sentinel.children[0]
        return _invalid(text, tag.start_pos, _stray_tag_message(tag.value), (_TAG_FORMS,), thought)

    opening: Token = sentinel.children[0]
    closing: Token = sentinel.children[-1]
    thought = thought.strip()
    if sentinel.data == "tool_call":
        body_start = opening.end_pos
        try:
            arguments = _decode_arguments(text[body_start : closing.start_pos])
        except _BadArguments as err:
            return _invalid(text, body_start + err.offset, str(err), ("a JSON object",), thought)
        name = opening.value.split('"')[1]
        return Action(ActionKind.TOOL, thought=thought, tool=name, arguments=arguments, raw=text, discarded=rest)
    content = text[opening.end_pos : closing.start_pos].strip()
    kind = ActionKind.ASK if sentinel.data == "ask" else ActionKind.FINISH
    return Action(kind, thought=thought, content=content, raw=text, discarded=rest)


class _BadArguments(ValueError):
    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.offset = offset


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """JSON numbers as floats, refusing those too large for one (``1e400`` would be inf, which has no JSON form)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {quote(text)} is too large")
    return value


def _decode_arguments(body: str) -> dict:
    """The arguments object; `_BadArguments` says why the body is not one, and where."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as err:
        raise _BadArguments(f"the tool arguments are not valid JSON: {err.msg}", err.pos) from None
    except (ValueError, RecursionError) as err:
        raise _BadArguments(f"the tool arguments are not usable JSON: {cap(str(err), 200)}") from None
    if not isinstance(value, dict):
        raise _BadArguments(f"the tool arguments must be a JSON object {{...}}, got {type(value).__name__}")
    if has_surrogate(body) or has_surrogate(json.dumps(value, ensure_ascii=False)):
        raise _BadArguments(
            "the tool arguments hold a lone UTF-16 surrogate escape such as \\ud800: write whole characters"
        )
    return value


def _from_syntax_error(text: str, err: UnexpectedInput) -> Action:
    """The grammar has a terminal for every character in every state, so the only syntax
    error is a sentinel whose closing tag never came: a truncated generation."""
    stack = getattr(getattr(err, "state", None), "value_stack", [])
    opener = next((t for t in stack if isinstance(t, Token) and t.type in _CLOSING_TAG), None)
    if opener is None:  # not reachable with this grammar; kept so parse_action cannot raise
        return _invalid(text, len(text), f"cannot parse the action ({type(err).__name__})", ())
    close_tag = _CLOSING_TAG[opener.type]
    message = f"{opener.value.split()[0].rstrip('>')}> opened at char {opener.start_pos} is never closed: expected {close_tag} (was the text cut off?)"
    if opener.type == "TOOL_OPEN":
        try:
            _decode_arguments(text[opener.end_pos :])
        except _BadArguments as problem:
            message += f"; {problem} (char {opener.end_pos + problem.offset})"
    return _invalid(text, len(text), message, (close_tag,), text[: opener.start_pos])


def _stray_tag_message(tag: str) -> str:
    name = tag.lstrip("</").split(None, 1)[0].rstrip(">").lower()[:20]
    closing, tag = tag.startswith("</"), quote(tag)
    if name in ("result", "user", "sys"):
        return f"{tag} is written by the environment, not the agent; act with {_TAG_FORMS}"
    if closing:
        return f"closing tag {tag} has no opening <{name}>"
    if name == "tool":
        return f'malformed tool tag {tag}: write <tool name="NAME"> with NAME made of letters, digits, _ . -'
    return f"malformed tag {tag}: write <{name}>...</{name}>"


def _invalid(text: str, position: int, message: str, expected: tuple[str, ...], thought: str = "") -> Action:
    return Action(
        ActionKind.INVALID,
        thought=thought.strip(),
        error=cap(f"invalid action at char {position}: {message}", ERROR_CHARS),
        position=position,
        expected=expected,
        raw=text,
    )
