"""Constrained actions: every sampled action drawn from a grammar of valid actions, with exact log-probs for RL.

`action_grammar` writes, for one episode state, the grammar of the actions valid in it, in llguidance's Lark
dialect: a free-text thought, then exactly one of ``<tool name="T">`` + T's arguments (``%json`` with T's JSON
Schema) + ``</tool>`` for each tool offered, ``<ask>…</ask>`` where the task allows asking
(`agentic.task.Task.allows_ask`), and ``<finish>…</finish>``. Every string it admits parses
(`agentic.parse_action`) as a valid action of that kind whose arguments pass the tool's schema, and fits the
turn's token limit. It is narrower than the parser in documented ways: the thought and the ask/finish text hold
no ``<`` (llguidance's lexer is greedy and never backtracks, so a thought that may hold ``<`` would swallow the
sentinel's first byte); arguments are JSON laid out as `json.dumps` writes it or compactly (`JSON_FORMAT`), keys
in the schema's order, no ``\\uXXXX`` escapes; numbers lie within ±`NUMBER_BOUND` with at most 6 decimals
(``1e400`` is JSON that Python reads as infinity, which `parse_action` refuses); a value the schema leaves open
is a scalar or a flat array or object of them (`OPEN_VALUE`); and lengths are bounded.

Lengths: every token holds at least one byte, so the grammar bounds an action of the turn's limit of L tokens
by construction. The thought gets at most L / `THOUGHT_SHARE` tokens and each ask/finish text what the tags
(counted a token a byte) leave, both with llguidance's ``max_tokens``, which is exact for text any prefix of
which is still valid. JSON cannot be bounded that way (``max_tokens`` cuts a lexeme wherever the count runs out,
which inside a JSON string would leave it open), so tool arguments are bounded in bytes: the bytes left after
the tags, keys and numbers are shared among the string fields as ``maxLength`` at `BYTES_PER_CHARACTER` bytes a
character. That bound is safe but four times too tight for plain text: at the tasks' 256 tokens a string
argument holds some 35 characters, too few for a story or summary draft.

Sampling under the constraint (`agentic.sampling.Sampling.constrained`): `BatchConstraint` holds one llguidance
matcher per row of a decoding batch; at each step it masks the rows' logits with their allowed tokens (one
bitmask per row, computed in parallel by llguidance) before temperature and top-p, and each row's matcher
advances by the token drawn; a row whose matcher has read a complete action stops. The behaviour policy is then
the masked, renormalised distribution, and the recorded log-probs are under it.

For RL, a trajectory stores each distinct grammar once (``Trajectory.grammars``) and, per turn, which one it was
sampled under (``Trajectory.turn_grammars``); the masks are not stored but replayed: the matcher's state is a
function of the grammar and the tokens, so `constrained_bitmasks` (packed) and `constrained_masks` (boolean)
recompute each position's mask exactly. PPO and GRPO replay them once per rollout batch
(`agentic.training.ppo.batch.collate`) and take the ratio, the KL to the reference and the entropy under them.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from agentic.encoding import encode

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from agentic.env import AgenticEnvironment
    from agentic.task import Task
    from agentic.tooling import Tool
    from agentic.trajectory import Trajectory

THOUGHT_SHARE = 4
"""The thought may take at most a quarter of the turn's tokens: the rest is kept for the sentinel and its content."""
NUMBER_BOUND = 10**15
"""Numbers in constrained arguments lie within ±10**15 (llguidance then writes them without an exponent)."""
BYTES_PER_CHARACTER = 4
"""The most bytes, so tokens, one character of a JSON string can take: 4 in UTF-8, 2 escaped (``\\n``);
``\\uXXXX`` escapes (6 bytes) are not offered."""
_SCALAR_BYTES = {
    "integer": len("-1000000000000000"),
    "number": len("-1000000000000000.000000"),
    "boolean": 5,
    "null": 4,
}
JSON_FORMAT = {
    "whitespace_flexible": False,
    "item_separator": ", ?",
    "key_separator": ": ?",
    "json_allowed_escapes": 'nrbtf\\"',
}
"""llguidance's JSON layout: `json.dumps`'s separators or compact ones, no other whitespace (which would be
unbounded), and no ``\\uXXXX`` escapes."""
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_SINGLE = ("items", "additionalProperties", "not", "contains", "if", "then", "else")
_SCALARS = [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
OPEN_VALUE = {
    "anyOf": [
        *_SCALARS,
        {"type": "array", "items": {"anyOf": _SCALARS}},
        {"type": "object", "additionalProperties": {"anyOf": _SCALARS}},
    ]
}
"""What a constrained argument may hold where its schema says nothing (an untyped value, an array without
``items``, an object open to other properties): a scalar, or an array or object of scalars, so that its numbers
and strings are bounded like the typed ones (any JSON there would admit ``1e400``, which `parse_action` refuses)."""
_SCHEMA_KEYWORDS = ("type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "not", "properties", "items")
GrammarFor = Callable[[int, int], str]
"""The grammar of a batch row's action, given the row and the action's token limit."""


def action_grammar(tools: Sequence[Tool], *, ask: bool, max_tokens: int) -> str:
    """The grammar (llguidance Lark) of the actions valid with these ``tools`` offered, ``<ask>`` allowed or not,
    in at most ``max_tokens`` tokens (see the module's docstring for how the limit is shared).

    ``<finish>`` is always offered; an alternative whose tags alone do not fit in the limit is left out (and
    below 17 tokens even ``<finish></finish>`` may not fit). Raises ValueError for a tool whose name the action
    grammar cannot write.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    key = tuple((t.name, json.dumps(t.parameters)) for t in tools)
    return _grammar(key, ask, max_tokens)


def task_grammar(task: Task, instance: Any, max_tokens: int) -> str:
    """The grammar of the actions in ``instance``'s episode of ``task`` with all its tools (`Task.instance_tools`)
    offered."""
    return action_grammar(task.instance_tools(instance), ask=task.allows_ask, max_tokens=max_tokens)


def episode_grammar(env: AgenticEnvironment, max_tokens: int) -> str:
    """The grammar of the actions valid in ``env``'s current state: its tools until the tool-call budget is
    spent (a call beyond it ends the episode), ``<ask>`` where the task allows it, ``<finish>``."""
    tools = list(env.tools) if env.tool_calls < env.budget.max_tool_calls else []
    return action_grammar(tools, ask=env.task.allows_ask, max_tokens=max_tokens)


def tools_left_out(tools: Sequence[Tool], max_tokens: int) -> list[str]:
    """The names of the ``tools`` a call to which cannot fit in an action of ``max_tokens`` tokens: the grammar
    leaves them out, so a constrained policy can never call them (raise the limit)."""
    room = _room(max_tokens)
    return [tool.name for tool in tools if _tool_rule("tool", tool.name, tool.parameters, room) is None]


def admits(grammar: str, tokenizer: PreTrainedTokenizerBase, text: str) -> bool:
    """Whether ``text``, encoded as a policy encodes it, is a complete action of ``grammar``."""
    matcher = Grammars.of(tokenizer).matcher(grammar)
    return matcher.consume_tokens(encode(tokenizer, text)) and matcher.is_stopped()


def _room(max_tokens: int) -> int:
    """The tokens an action of ``max_tokens`` keeps for its sentinel and content, after the thought's share."""
    return max_tokens - min(max_tokens // THOUGHT_SHARE, max(max_tokens - len("<finish></finish>"), 0))


@lru_cache(maxsize=256)
def _grammar(tools: tuple[tuple[str, str], ...], ask: bool, max_tokens: int) -> str:
    room = _room(max_tokens)
    thought = max_tokens - room
    rules = [_tool_rule(f"tool_{i}", name, json.loads(schema), room) for i, (name, schema) in enumerate(tools)]
    rules = [rule for rule in rules if rule is not None]
    if ask and room >= len("<ask></ask>"):
        rules.append(_text_rule("ask", room))
    rules.append(_text_rule("finish", room))
    names = [rule.split(":", 1)[0] for rule in rules]
    lines = [f"start: {'thought? ' if thought else ''}({' | '.join(names)})", *rules]
    if thought:
        lines.append(f"thought[max_tokens={thought}]: TEXT")
    return "\n".join([*lines, "TEXT: /[^<]+/", ""])


def _text_rule(kind: str, room: int) -> str:
    """``<kind>`` + at most ``room`` tokens minus the tags' bytes of text without ``<`` + ``</kind>``."""
    opening, closing = f"<{kind}>", f"</{kind}>"
    tokens = room - len(opening) - len(closing)
    if tokens < 1:
        return f"{kind}: {json.dumps(opening)} {json.dumps(closing)}"
    return f"{kind}: {json.dumps(opening)} {kind}_text? {json.dumps(closing)}\n{kind}_text[max_tokens={tokens}]: TEXT"


def _tool_rule(rule: str, name: str, parameters: dict[str, Any], room: int) -> str | None:
    """The alternative calling tool ``name`` in at most ``room`` tokens, or None when even its tags and shortest
    arguments may not fit."""
    if not _TOOL_NAME.fullmatch(name):
        raise ValueError(f'tool name {name!r} cannot be written as <tool name="NAME">: use letters, digits, _ . -')
    opening = f'<tool name="{name}">'
    schema = bounded_arguments(parameters, room - len(opening) - len("</tool>"))
    if schema is None:
        return None
    line = f"{rule}: {json.dumps(opening)} %json {json.dumps(schema, ensure_ascii=True)} {json.dumps('</tool>')}"
    # Bounds the byte count cannot foresee (a string of format "date" needs 10 characters) may leave no argument
    # that fits: llguidance then finds the schema unsatisfiable, and the tool does not fit, as above.
    return line if not _llguidance().LLMatcher.validate_grammar(f"start: {rule}\n{line}\n") else None


def size_bounded(parameters: dict[str, Any]) -> bool:
    """Whether `bounded_arguments` can guarantee its byte bound for this schema: every array has ``maxItems`` and
    every object is closed to properties it does not list (BFCL's functions often are not; the built-in tools are)."""
    for node in _subschemas(parameters):
        if _has_type(node, "array") and "maxItems" not in node:
            return False
        if _has_type(node, "object") and node.get("additionalProperties", True) is not False:
            return False
    return True


def bounded_arguments(parameters: dict[str, Any], max_bytes: int) -> dict[str, Any] | None:
    """A copy of a tool's parameter schema whose arguments, in llguidance's JSON, take at most ``max_bytes``
    bytes (so tokens), or None when they cannot.

    Unconstrained values get `OPEN_VALUE`'s schema; numbers lie within ±`NUMBER_BOUND` with at most 6 decimals;
    the bytes left after everything else are shared among the string fields as ``maxLength`` at
    `BYTES_PER_CHARACTER` a character; arrays count at their
    ``maxItems``. A schema whose size has no bound (an array without ``maxItems``, an object open to other
    properties) gets the same limits but no guarantee.
    """
    schema = copy.deepcopy(parameters)
    for node in list(_subschemas(schema)):
        _close_open_values(node)
    for node in _subschemas(schema):
        if _has_type(node, "integer") or _has_type(node, "number"):
            node["minimum"] = max(node.get("minimum", -NUMBER_BOUND), -NUMBER_BOUND)
            node["maximum"] = min(node.get("maximum", NUMBER_BOUND), NUMBER_BOUND)
        if _has_type(node, "number"):
            node.setdefault("multipleOf", 1e-6)
    fixed, per_character = _size(schema)
    share = (max_bytes - fixed) // per_character if per_character else max_bytes - fixed
    if share < 0:
        return None
    for node in _subschemas(schema):
        if _has_type(node, "string") and "enum" not in node and "const" not in node:  # those are sized as values
            if node.get("minLength", 0) > share:
                return None
            node["maxLength"] = min(node.get("maxLength", share), share)
    schema["x-guidance"] = dict(JSON_FORMAT)
    return schema


def _close_open_values(node: dict[str, Any]) -> None:
    """Gives ``node``'s unconstrained values the `OPEN_VALUE` schema, in place."""
    if not any(key in node for key in _SCHEMA_KEYWORDS):
        node.update(copy.deepcopy(OPEN_VALUE))
    if _has_type(node, "object") and node.get("additionalProperties", True) is True:
        node["additionalProperties"] = copy.deepcopy(OPEN_VALUE)
    if _has_type(node, "array") and node.get("items", True) is True:
        node["items"] = copy.deepcopy(OPEN_VALUE)


def _size(node: Any) -> tuple[int, int]:
    """The most bytes a value of ``node`` takes in `JSON_FORMAT`, as (fixed bytes, bytes per character of each
    string field); unbounded parts count as nothing (see `bounded_arguments`)."""
    if not isinstance(node, dict):
        return 0, 0
    if "const" in node or "enum" in node:
        values = [node["const"]] if "const" in node else node["enum"]
        return max(len(json.dumps(v, ensure_ascii=False).encode()) for v in values), 0
    sizes = [_size(child) for child in node.get("anyOf", []) + node.get("oneOf", [])]
    kinds = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
    sizes += [_type_size(node, kind) for kind in kinds if kind is not None]
    return max((f for f, _ in sizes), default=0), max((c for _, c in sizes), default=0)


def _type_size(node: dict[str, Any], kind: str) -> tuple[int, int]:
    if kind == "string":
        return 2, BYTES_PER_CHARACTER
    if kind == "object":
        fields = [
            (len(json.dumps(key, ensure_ascii=False).encode()) + len(": "), _size(child))
            for key, child in node.get("properties", {}).items()
        ]
        separators = len(", ") * max(len(fields) - 1, 0)
        return 2 + separators + sum(k + f for k, (f, _) in fields), sum(c for _, (_, c) in fields)
    if kind == "array":
        items, count = _size(node.get("items")), node.get("maxItems", 0)
        return 2 + len(", ") * max(count - 1, 0) + count * items[0], count * items[1]
    return _SCALAR_BYTES.get(kind, 0), 0


def _has_type(node: dict[str, Any], name: str) -> bool:
    kind = node.get("type")
    return kind == name or (isinstance(kind, list) and name in kind)


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """``schema`` and every schema nested in it (through the keywords that hold schemas, not values)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for key in _SUBSCHEMA_MAPS:
        for child in (schema.get(key) or {}).values():
            yield from _subschemas(child)
    for key in _SUBSCHEMA_LISTS:
        for child in schema.get(key) or ():
            yield from _subschemas(child)
    for key in _SUBSCHEMA_SINGLE:
        yield from _subschemas(schema.get(key))


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.hf
        import llguidance.numpy
    except ImportError:
        raise ImportError("constrained sampling needs llguidance: pip install 'agentic-slm[constrained]'") from None
    return llguidance


class _TokenTable:
    """A tokenizer as llguidance's `TokenizerWrapper` reads it: each token's bytes, eos, and which tokens are special."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, token_bytes: list[bytes]):
        self.tokenizer = tokenizer
        self.tokens = token_bytes
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id
        self.special_token_ids = sorted(i for i, t in tokenizer.added_tokens_decoder.items() if t.special)

    def __call__(self, text: bytes) -> list[int]:
        return self.tokenizer(text.decode("utf-8", errors="replace"), add_special_tokens=False)["input_ids"]


class Grammars:
    """llguidance matchers for one tokenizer: each grammar compiled once, a fresh matcher per use.

    The tokenizer is read the llguidance way (`llguidance.hf.from_tokenizer`, which gives each token's bytes),
    except which tokens are special: there llguidance also counts every added token that looks like a tag,
    such as the tiny model's ``</tool>``, which could then never be drawn inside an action; here only the
    tokenizer's own special tokens (eos, pad, chat markers) are, and those never appear in an action.
    """

    _by_tokenizer: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        llguidance = _llguidance()
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("constrained sampling needs a fast (Rust) tokenizer, as llguidance reads one")
        base = llguidance.hf.from_tokenizer(tokenizer)
        table = _TokenTable(tokenizer, [base.decode_bytes([i]) for i in range(base.vocab_size)])
        self.vocabulary = llguidance.LLTokenizer(llguidance.TokenizerWrapper(table))
        self.vocab_size: int = self.vocabulary.vocab_size
        self.executor = llguidance.LLExecutor()
        self.seconds = 0.0
        """Time the decoding batches spent in the constraint (masks and matchers), for benchmarks."""
        self._compiled: dict[str, Any] = {}

    @classmethod
    def of(cls, tokenizer: PreTrainedTokenizerBase) -> Grammars:
        """The one `Grammars` of ``tokenizer`` (reading a tokenizer takes a second or so for a large vocabulary)."""
        if tokenizer not in cls._by_tokenizer:
            cls._by_tokenizer[tokenizer] = cls(tokenizer)
        return cls._by_tokenizer[tokenizer]

    def matcher(self, grammar: str) -> Any:
        """A fresh llguidance matcher at the start of ``grammar``; ValueError if llguidance cannot compile it."""
        if grammar not in self._compiled:
            llguidance = _llguidance()
            compiled = llguidance.LLMatcher(self.vocabulary, llguidance.grammar_from("lark", grammar), log_level=0)
            if compiled.is_error():
                raise ValueError(f"llguidance cannot compile the action grammar: {compiled.get_error()[:500]}")
            self._compiled[grammar] = compiled
        return self._compiled[grammar].deep_copy()

    def fill(self, matchers: Sequence[tuple[Any, int]], bitmask: np.ndarray) -> None:
        """Write each matcher's next-token bitmask into row ``index`` of ``bitmask``, in parallel."""
        _llguidance().numpy.fill_next_token_bitmask_par(self.executor, list(matchers), bitmask)

    def bitmask(self, rows: int) -> np.ndarray:
        """An all-allowed bitmask for ``rows`` rows (32 tokens a word)."""
        return np.full((rows, (self.vocab_size + 31) // 32), -1, dtype=np.int32)


_BITS = torch.arange(32, dtype=torch.int32)


def unpack(bitmask: np.ndarray | torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Bool ``[rows, vocab_size]`` from llguidance's bitmask (bit ``t % 32`` of word ``t // 32`` allows token ``t``),
    on the bitmask's device; tokens past the bitmask are not allowed (a model's output layer may be wider than its
    tokenizer)."""
    words = torch.as_tensor(bitmask)
    allowed = ((words.unsqueeze(-1) >> _BITS.to(words.device)) & 1).view(words.shape[0], -1).bool()
    if allowed.shape[1] >= vocab_size:
        return allowed[:, :vocab_size]
    return torch.nn.functional.pad(allowed, (0, vocab_size - allowed.shape[1]), value=False)


class BatchConstraint:
    """One matcher per row of a decoding batch, each at its own place in its own grammar (rows' states differ).

    `mask` sets to -inf, in the logits of one step's rows, every token a row's grammar does not allow there
    (the bitmasks computed by llguidance in parallel, applied in one operation); `advance` moves a row's matcher
    on by the token drawn and says whether the row's action is complete, after which the row allows anything
    (a finished row may still be fed in a padded batch; what it draws is thrown away).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, grammars: Mapping[int, str]):
        self.grammars = Grammars.of(tokenizer)
        start = time.perf_counter()
        self.matchers = {row: self.grammars.matcher(grammar) for row, grammar in grammars.items()}
        self.grammars.seconds += time.perf_counter() - start

    def mask(self, logits: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
        """``logits`` (one row per entry of ``rows``) with every token the row may not draw next set to -inf."""
        start = time.perf_counter()
        bitmask = self.grammars.bitmask(len(rows))
        live = [(self.matchers[row], i) for i, row in enumerate(rows) if row in self.matchers]
        self.grammars.fill(live, bitmask)
        allowed = unpack(bitmask, logits.shape[1]).to(logits.device)
        allowed[[i for i, row in enumerate(rows) if row not in self.matchers]] = True
        masked = logits.masked_fill(~allowed, -math.inf)
        self.grammars.seconds += time.perf_counter() - start
        return masked

    def advance(self, row: int, token: int) -> bool:
        """Feed ``token`` to ``row``'s matcher; True when the row now holds a complete action."""
        start = time.perf_counter()
        matcher = self.matchers[row]
        if not matcher.consume_token(token):
            raise RuntimeError(f"row {row}: token {token} is outside its grammar ({matcher.get_error()[:300]})")
        complete = matcher.is_stopped()
        if complete:
            del self.matchers[row]
        self.grammars.seconds += time.perf_counter() - start
        return complete


def record_grammar(trajectory: Trajectory, grammar: str) -> None:
    """Note that the turn just added to ``trajectory`` was sampled under ``grammar`` (stored once per trajectory)."""
    if grammar not in trajectory.grammars:
        trajectory.grammars.append(grammar)
    trajectory.turn_grammars.append(trajectory.grammars.index(grammar))


def constrained_masks(
    trajectory: Trajectory, tokenizer: PreTrainedTokenizerBase, vocab_size: int | None = None
) -> torch.Tensor | None:
    """Bool ``[len(token_ids), vocab_size]``: row ``t`` holds the tokens that could be drawn at position ``t``.

    So it masks the logits computed from the tokens before ``t`` (``logits[t - 1]`` of a forward pass over
    ``token_ids``). Every token is allowed outside the turns sampled under a grammar. None when no turn was
    constrained (see `constrained_bitmasks`). ``vocab_size`` defaults to llguidance's count of the tokenizer's
    tokens (pass the model's, if wider).
    """
    replayed = constrained_bitmasks(trajectory, tokenizer)
    if replayed is None:
        return None
    positions, bitmask = replayed
    masks = torch.ones(len(trajectory.token_ids), vocab_size or Grammars.of(tokenizer).vocab_size, dtype=torch.bool)
    masks[positions] = unpack(bitmask, masks.shape[1])
    return masks


def constrained_bitmasks(
    trajectory: Trajectory, tokenizer: PreTrainedTokenizerBase
) -> tuple[list[int], np.ndarray] | None:
    """The positions sampled under a grammar and, packed as llguidance writes it (`unpack` reads it), the mask of
    the tokens that could be drawn at each: ``(positions, int32 [len(positions), words])``; None when no turn was
    constrained. Recomputed by replaying each constrained turn's tokens through its grammar's matcher.
    """
    if not trajectory.turn_grammars:
        return None
    if len(trajectory.turn_grammars) != len(trajectory.turns):
        raise ValueError(
            f"the trajectory has {len(trajectory.turns)} turns but {len(trajectory.turn_grammars)} grammar indices"
        )
    grammars = Grammars.of(tokenizer)
    turns = [(turn, index) for turn, index in zip(trajectory.turns, trajectory.turn_grammars) if index >= 0]
    positions = [position for turn, _ in turns for position in range(turn.start, turn.end)]
    bitmask = grammars.bitmask(len(positions))
    row = 0
    for turn, index in turns:
        matcher = grammars.matcher(trajectory.grammars[index])
        for position in range(turn.start, turn.end):
            grammars.fill([(matcher, row)], bitmask)
            if not matcher.consume_token(trajectory.token_ids[position]):
                raise ValueError(f"token {position} of the trajectory is outside its turn's grammar: wrong tokenizer?")
            row += 1
    return positions, bitmask
