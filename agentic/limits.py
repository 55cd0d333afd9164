"""One rule for size: every piece of text an episode carries has a bound, and all the bounds are here.

| text                         | bound                                                                  |
|------------------------------|------------------------------------------------------------------------|
| an action (one agent turn)   | `ACTION_CHARS` characters, and the budget's ``max_action_tokens``       |
|                              | tokens (whitespace counts); longer is an invalid action, not parsed     |
| tool arguments               | part of the action, so within its bound                                 |
| a tool's output              | the tool's ``max_output_chars`` (default `TOOL_OUTPUT_CHARS`), never    |
|                              | more than `TOOL_OUTPUT_CHARS_MAX`; longer is cut with a marker          |
| an error message             | `ERROR_CHARS` (schema errors, a tool's exception, parse errors), cut    |
|                              | with a marker; quoted model text inside is cut first                    |
| a user's reply to ``<ask>``  | `USER_REPLY_CHARS`, cut with a marker                                   |
| the observation (context)    | `OBSERVATION_CHARS`: an episode whose context comes within one turn's   |
|                              | maximum (`TURN_CHARS`) of it is truncated, so it can never pass it     |

Text is also made valid Unicode at the same boundary (`clean_text`): a lone UTF-16 surrogate,
which a JSON escape such as ``"\\ud800"`` produces, cannot be encoded by a tokenizer.
"""

from __future__ import annotations

import re

ACTION_CHARS = 16_384
TOOL_OUTPUT_CHARS = 2_000
TOOL_OUTPUT_CHARS_MAX = 32_768
"""Room for the longest tool output a built-in task needs: BFCL multi_turn_long_context results reach 31,706."""
ERROR_CHARS = 500
QUOTE_CHARS = 60
USER_REPLY_CHARS = 2_000
OBSERVATION_CHARS = 1_000_000
TURN_CHARS = ACTION_CHARS + TOOL_OUTPUT_CHARS_MAX + 512
"""The most one step can add to the context: an action, the longest reply, and the environment's tags."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a marker saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """``repr(text)`` of at most about ``limit`` characters, for quoting model text in a message."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}…[{len(text)} chars]"


def clean_text(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, so that it encodes as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None
