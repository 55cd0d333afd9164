"""`parse_action`: agent text to an `Action`, through the Lark grammar in `grammar.lark`.

It never raises: anything that is not a well-formed action becomes an ``invalid``
action whose ``error`` names the character position and what was expected there,
in words a small model can learn from.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from agentic.actions import Action, ActionKind

_DESCRIBE = {
    "TOOL_BODY": "a JSON object of arguments",
    "TOOL_CLOSE": "</tool>",
    "ASK_CLOSE": "</ask>",
    "FINISH_CLOSE": "</finish>",
    "ASK_TEXT": "the question",
    "FINISH_TEXT": "the answer",
    "$END": "the end of the text",
}
_OPENERS = {"tool_call": ("<tool>", "</tool>"), "ask": ("<ask>", "</ask>"), "finish": ("<finish>", "</finish>")}
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


def _decode_arguments(body: str) -> dict:
    """The arguments object; `_BadArguments` says why the body is not one, and where."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise _BadArguments(f"the tool arguments are not valid JSON: {err.msg}", err.pos) from None
    except (ValueError, RecursionError) as err:
        raise _BadArguments(f"the tool arguments are not usable JSON: {err}") from None
    if not isinstance(value, dict):
        raise _BadArguments(f"the tool arguments must be a JSON object {{...}}, got {type(value).__name__}")
    return value


def _from_syntax_error(text: str, err: UnexpectedInput) -> Action:
    if isinstance(err, UnexpectedCharacters):
        position, expected, found = err.pos_in_stream, err.allowed, repr(text[err.pos_in_stream : err.pos_in_stream + 12])
    elif isinstance(err, UnexpectedToken) and err.token.type != "$END":
        position, expected, found = err.token.start_pos, err.expected, repr(err.token.value[:12])
    else:  # UnexpectedEOF, or UnexpectedToken at $END
        position, expected, found = len(text), getattr(err, "expected", set()), "the end of the text"
    interactive = getattr(err, "interactive_parser", None)
    if interactive is not None:  # exact follow set; the lexer's own set is LALR-merged
        expected = interactive.accepts()
    expected_words = tuple(sorted({_DESCRIBE.get(name, name) for name in expected if name != "WS"}))
    opening = _open_sentinel_before(text, position)
    if opening is not None and found == "the end of the text":
        open_tag, close_tag = opening[1]
        message = f"{open_tag} opened at char {opening[0]} is never closed: expected {close_tag} (was the text cut off?)"
        if open_tag == "<tool>":
            body_start = text.index(">", opening[0]) + 1
            try:
                _decode_arguments(text[body_start:])
            except _BadArguments as problem:
                message += f"; {problem} (char {body_start + problem.offset})"
    else:
        message = f"expected {' or '.join(expected_words) or 'nothing more'}, found {found}"
    thought = text[: opening[0]].strip() if opening is not None else ""
    return _invalid(text, position, message, expected_words, thought)


def _open_sentinel_before(text: str, position: int) -> tuple[int, tuple[str, str]] | None:
    """The sentinel being parsed when the error happened: its start and its tag pair."""
    best = None
    for data, (open_tag, close_tag) in _OPENERS.items():
        start = text.rfind(open_tag[:-1], 0, position)
        if start >= 0 and (best is None or start > best[0]):
            best = (start, (open_tag, close_tag))
    return best


def _stray_tag_message(tag: str) -> str:
    name = tag.lstrip("</").split(None, 1)[0].rstrip(">").lower()
    if name in ("result", "user", "sys"):
        return f"{tag!r} is written by the environment, not the agent; act with {_TAG_FORMS}"
    if tag.startswith("</"):
        return f"closing tag {tag!r} has no opening <{name}>"
    if name == "tool":
        return f'malformed tool tag {tag!r}: write <tool name="NAME"> with NAME made of letters, digits, _ . -'
    return f"malformed tag {tag!r}: write <{name}>...</{name}>"


def _invalid(text: str, position: int, message: str, expected: tuple[str, ...], thought: str = "") -> Action:
    return Action(
        ActionKind.INVALID,
        thought=thought.strip(),
        error=f"invalid action at char {position}: {message}",
        position=position,
        expected=expected,
        raw=text,
    )
