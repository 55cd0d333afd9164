"""When a sampled action is over.

A turn is over when the text so far is a complete action: the grammar has read a closing
sentinel (``</tool>``, ``</ask>``, ``</finish>``; a ``</tool>`` inside a JSON string does not
count) or a malformed tag that nothing after it can repair (`turn_is_over`). Sentinels may span
several tokens, so this is judged on the decoded text, and only after a token containing ``<`` or
``>`` (`StopRule`); ``eos`` also ends a turn (the end-of-sequence token, or in chat mode the token that
closes an assistant message), and so does the turn's token limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

from agentic.actions import ActionKind
from agentic.parsing import parse_action


def turn_is_over(text: str) -> bool:
    """Whether ``text`` is a complete action: no further text could change how it parses.

    Plain text may still grow a sentinel. An invalid action is final unless its fault runs to
    the end of the text unclosed: a sentinel still waiting for its closing tag (the parser
    reports it at the end of the text) or a tag-like ``<tool name="x`` not yet ended by ``>``
    or ``<``.
    """
    action = parse_action(text)
    if action.kind is ActionKind.TEXT:
        return False
    if action.kind is ActionKind.INVALID and action.position is not None:
        rest = text[action.position + 1 :]
        return "<" in rest or ">" in rest
    return True


class StopRule:
    """Why an action of one tokenizer's tokens stops: ``eos``, a complete ``action``, or its ``length`` limit.

    ``vocabulary_size`` is the model's (its output embedding may have more rows than the
    tokenizer has tokens; those never end an action). ``end_of_turn_id``, the token that closes an
    assistant message in chat mode, stops an action as the end-of-sequence token does.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, vocabulary_size: int, end_of_turn_id: int | None = None):
        self.tokenizer = tokenizer
        self.stop_ids = {tokenizer.eos_token_id, end_of_turn_id} - {None}
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.may_end = [any(c in (piece or "") for c in "<>") for piece in pieces]  # can this token end an action?
        self.may_end += [False] * (vocabulary_size - len(pieces))

    def decode(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids``, special tokens included: what the grammar judges."""
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def reason(self, tokens: list[int], limit: int) -> str | None:
        """Why an action of these ``tokens`` (the last one just sampled) stops, at most ``limit`` long; None: it goes on."""
        if tokens[-1] in self.stop_ids:
            return "eos"
        if self.may_end[tokens[-1]] and turn_is_over(self.decode(tokens)):
            return "action"
        return "length" if len(tokens) >= limit else None
