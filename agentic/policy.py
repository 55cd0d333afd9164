"""`Policy`: any transformers causal LM as an agent, sampling batches of actions with their log-probs.

Sampling is a small explicit loop over the model's KV cache rather than ``model.generate``:
the rollout engine keeps one cache per batch of episodes across turns (a `DecodingBatch`),
appending environment tokens to sequences of different lengths without re-encoding
anything, stops each sequence where its action ends, and records the log-prob of every
sampled token. Padding inside the cache is masked out and positions count real tokens only,
so each sequence is computed as if it were alone.

A turn is over when the text so far is a complete action: the grammar has read a closing
sentinel (``</tool>``, ``</ask>``, ``</finish>``; a ``</tool>`` inside a JSON string does not
count) or a malformed tag that nothing after it can repair (`turn_is_over`). That is checked
only after a token containing ``<`` or ``>``; ``eos`` also ends a turn.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from agentic.actions import ActionKind
from agentic.kv_cache import RaggedCache, rollout_cache, use_cpu_attention
from agentic.parsing import parse_action


@dataclass(frozen=True)
class Sampling:
    """How actions are drawn.

    ``temperature=0`` is greedy. The recorded log-prob of a token is under the distribution it
    was drawn from: ``softmax(logits / temperature)``, restricted to the ``top_p`` nucleus and
    renormalised (0.0 for greedy, a point mass). At the defaults (temperature 1, top_p 1) that
    is the policy's own log-prob, the quantity PPO's ratio and KL need.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError(f"need temperature >= 0, 0 < top_p <= 1 and max_new_tokens >= 1, got {self}")


@dataclass(frozen=True)
class Generation:
    """One sampled action: its tokens, their log-probs, its text and why it stopped (``action``, ``eos`` or ``length``)."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    stop: str


def encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Token ids of ``text`` alone, without special tokens: every segment of an episode is encoded this way."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


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


class Policy:
    """A causal LM and its tokenizer on one device (CUDA with bf16 when available, else CPU float32).

    On CPU the model attends with `agentic.kv_cache.cpu_attention` in inference (same results as SDPA, faster).
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model = model.eval()
        use_cpu_attention(model)
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_id = tokenizer.eos_token_id
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        extra = model.get_output_embeddings().weight.shape[0] - len(pieces)
        self.may_end = [any(c in (piece or "") for c in "<>") for piece in pieces] + [
            False
        ] * extra  # can this token end an action?
        base_model = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model passes it on
        parameters = inspect.signature(base_model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5.24

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | torch.device | None = None) -> Policy:
        """A hub id, a local directory or a known model's name (`agentic.models.resolve_model`); a directory with
        ``adapter_config.json`` is a PEFT adapter over its base model."""
        from agentic.models import resolve_model

        name_or_path = resolve_model(name_or_path)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        path = Path(name_or_path)
        if (path / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM, PeftConfig

            model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=dtype)
            has_tokenizer = (path / "tokenizer_config.json").is_file()
            tokenizer = AutoTokenizer.from_pretrained(
                path if has_tokenizer else PeftConfig.from_pretrained(path).base_model_name_or_path
            )
        else:
            model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        return cls(model.to(device), tokenizer)

    @property
    def context_length(self) -> int | None:
        """The longest sequence the model was built for, when its config says."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def encode(self, text: str) -> list[int]:
        return encode(self.tokenizer, text)

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def count_tokens(self, text: str) -> int:
        """The environment's per-turn token budget, measured with this policy's tokenizer."""
        return len(self.encode(text))

    def generate(self, contexts: Sequence[Sequence[int]], sampling: Sampling = Sampling()) -> list[Generation]:
        """One action for each context, sampled in one batch."""
        generations = DecodingBatch(self, contexts, sampling).generate()
        return [generations[row] for row in range(len(contexts))]


class DecodingBatch:
    """Sequences decoded together with one KV cache that persists across turns.

    Rows are numbered by their position in ``contexts``. `extend` queues tokens for a row
    (the environment's reply); `generate` samples one action for every live row, first
    feeding what is queued; `release` drops finished rows from the cache.

    Where the model allows it (every layer attends to the full context, with SDPA, eager or
    `cpu_attention`), the cache is a `RaggedCache`: each row keeps its own length, and
    rows are kept in an order that spares work. The prompts' shared start is computed once,
    for one row, and its cache copied to the others. A turn begins by feeding the queues
    longest first, in a staircase of chunks (`staircase`) so a short reply is not padded to
    the longest one; after that, rows whose action is over are parked behind the rows still
    sampling, and each step runs only that front of the batch (a parked row's last token
    waits in its queue for the next turn). Other models get the model's own cache, every row
    fed at every step, with padding columns masked out.
    """

    def __init__(self, policy: Policy, contexts: Sequence[Sequence[int]], sampling: Sampling = Sampling()):
        self.policy = policy
        self.sampling = sampling
        self.rows = list(range(len(contexts)))
        self.pending: dict[int, list[int]] = {row: list(ids) for row, ids in enumerate(contexts)}
        self.lengths = torch.zeros(len(contexts), dtype=torch.long, device=policy.device)
        self.cache = rollout_cache(policy.model, len(contexts))
        self.ragged = isinstance(self.cache, RaggedCache)
        if not self.ragged:
            self.columns_mask = torch.zeros(
                len(contexts), 0, dtype=torch.long, device=policy.device
            )  # 1 where a row has a token
        self.generator = torch.Generator(device=policy.device).manual_seed(sampling.seed)

    def length(self, row: int) -> int:
        """Tokens in ``row`` so far, queued ones included."""
        return int(self.lengths[self.rows.index(row)]) + len(self.pending[row])

    def extend(self, row: int, token_ids: Sequence[int]) -> None:
        self.pending[row].extend(token_ids)

    @torch.inference_mode()
    def release(self, rows: Sequence[int]) -> None:
        gone = set(rows)
        if not gone:
            return
        keep = [i for i, row in enumerate(self.rows) if row not in gone]
        index = torch.tensor(keep, dtype=torch.long, device=self.policy.device)
        self.cache.batch_select_indices(index)
        self.lengths = self.lengths[index]
        if not self.ragged:
            self.columns_mask = self.columns_mask[index]
        for row in gone:
            del self.pending[row]
        self.rows = [self.rows[i] for i in keep]

    @torch.inference_mode()
    def generate(self, max_new_tokens: dict[int, int] | None = None) -> dict[int, Generation]:
        """One action per live row, at most ``max_new_tokens[row]`` tokens long (never more than the sampling limit)."""
        if any(not self.pending[row] for row in self.rows):
            raise ValueError("every live row needs a context to continue from")
        limits = {
            row: min((max_new_tokens or {}).get(row, self.sampling.max_new_tokens), self.sampling.max_new_tokens)
            for row in self.rows
        }
        tokens: dict[int, list[int]] = {row: [] for row in self.rows}
        logprobs: dict[int, list[float]] = {row: [] for row in self.rows}
        stops: dict[int, str | None] = {row: None if limits[row] > 0 else "length" for row in self.rows}
        going = {row for row in self.rows if stops[row] is None}
        if self.ragged:  # room for the whole turn, so the cache grows once
            self.cache.capacity = (
                int(self.lengths.max()) + max(len(queued) for queued in self.pending.values()) + max(limits.values())
            )
        logits, front = self._feed_queues(), len(self.rows)
        while going:
            chosen, chosen_logprobs = sample(logits, self.sampling, self.generator)
            for row, token, logprob in zip(self.rows[:front], chosen.tolist(), chosen_logprobs.tolist()):
                if row in going:
                    tokens[row].append(token)
                    logprobs[row].append(logprob)
                    self.pending[row].append(token)
                    stops[row] = self._stop(tokens[row], limits[row])
            going = {row for row in going if stops[row] is None}
            if going:
                front = self._park_all_but(going)
                logits = self._feed(front)
        return {
            row: Generation(tokens[row], logprobs[row], self.policy.decode(tokens[row]), stops[row])
            for row in self.rows
        }

    def _stop(self, tokens: list[int], limit: int) -> str | None:
        if tokens[-1] == self.policy.eos_id:
            return "eos"
        if self.policy.may_end[tokens[-1]] and turn_is_over(self.policy.decode(tokens)):
            return "action"
        return "length" if len(tokens) >= limit else None

    def _feed_queues(self) -> torch.Tensor:
        """Feed every row's whole queue; returns every row's next-token logits."""
        if not self.ragged:
            return self._feed(len(self.rows))
        if int(self.lengths.max()) == 0:
            self._share_prefix()
        plan = staircase([len(self.pending[row]) for row in self.rows])
        if (
            len(plan) > 1
        ):  # the chunks need the longest queues first; one chunk does not (and a reorder copies the cache)
            order = sorted(range(len(self.rows)), key=lambda i: -len(self.pending[self.rows[i]]))
            self._move(list(range(len(order))), order)
        for front, keep in plan:
            logits = self._feed(front, keep)
        return logits

    def _share_prefix(self) -> None:
        """Run the start that every prompt shares (a task's instructions) once, for the first row, and copy its cache to the others."""
        queues = [self.pending[row] for row in self.rows]
        if len(queues) < 2:
            return
        shared, most = 0, min(len(queue) for queue in queues) - 1  # each row keeps a token to predict from
        while shared < most and len({queue[shared] for queue in queues}) == 1:
            shared += 1
        if shared == 0:
            return
        self._feed(1, keep=len(queues[0]) - shared)
        others = torch.arange(1, len(queues), device=self.policy.device)
        self.cache.move_rows(others, torch.zeros_like(others), shared)
        self.lengths[:] = shared
        for row in self.rows[1:]:
            del self.pending[row][:shared]

    def _park_all_but(self, going: set[int]) -> int:
        """Move the rows in ``going`` to the front of the batch, swapping them with parked rows; returns the front's size."""
        if not self.ragged:
            return len(self.rows)
        front = len(going)
        parked = [i for i in range(front) if self.rows[i] not in going]
        arrived = [i for i in range(front, len(self.rows)) if self.rows[i] in going]
        self._move(parked + arrived, arrived + parked)
        return front

    def _move(self, to: list[int], source: list[int]) -> None:
        """The row at position ``source[k]`` goes to position ``to[k]`` (the two lists hold the same positions)."""
        if to == source:
            return
        to_index = torch.tensor(to, dtype=torch.long, device=self.policy.device)
        source_index = torch.tensor(source, dtype=torch.long, device=self.policy.device)
        self.cache.move_rows(to_index, source_index, int(self.lengths.max()))
        self.lengths[to_index] = self.lengths[source_index]
        rows = list(self.rows)
        for i, j in zip(to, source):
            rows[i] = self.rows[j]
        self.rows = rows

    def _feed(self, front: int, keep: int = 0) -> torch.Tensor:
        """Run the queued tokens of the first ``front`` rows, all but the last ``keep``, through the model, left-padded to one chunk.

        Returns those rows' next-token logits (float32); rows with nothing fed get meaningless ones.
        """
        chunks = [self.pending[row][: max(len(self.pending[row]) - keep, 0)] for row in self.rows[:front]]
        width = max(len(chunk) for chunk in chunks)
        for row, chunk in zip(self.rows, chunks):
            self.pending[row] = self.pending[row][len(chunk) :]
        ids = torch.tensor(
            [[self.policy.pad_id] * (width - len(chunk)) + chunk for chunk in chunks], device=self.policy.device
        )
        counts = torch.tensor([len(chunk) for chunk in chunks], dtype=torch.long, device=self.policy.device)
        attention_mask, positions = (
            self._ragged_inputs(counts, width) if self.ragged else self._padded_inputs(counts, width)
        )
        self.lengths[:front] += counts
        out = self.policy.model(
            input_ids=ids,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self.policy.cache_argument: self.cache},
        )
        return out.logits[:, -1].float()

    def _ragged_inputs(self, counts: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The 4D additive attention mask and positions of a chunk for the first ``len(counts)`` rows, and the cache's plan for it.

        A row's tokens go to the columns after its own length. Its padding slots (the chunk is
        left-padded) go after those, where the row's next tokens will overwrite them; each slot
        attends to every column up to its own, so no slot is left with nothing to attend to.
        """
        front = len(counts)
        starts = self.lengths[:front, None]
        slots = torch.arange(width, device=counts.device)
        token_index = slots - (width - counts)[:, None]  # negative for padding
        columns = starts + torch.where(token_index >= 0, token_index, counts[:, None] + slots)
        read = int(starts.max()) + width
        self.cache.plan(columns, read)
        visible = torch.arange(read, device=counts.device) <= columns[:, None, :, None]
        dtype = self.policy.model.dtype
        return torch.where(visible, torch.zeros((), dtype=dtype), torch.finfo(dtype).min), columns

    def _padded_inputs(self, counts: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The 2D attention mask and positions of a chunk for every row of a cache that appends columns to all rows alike."""
        new_mask = (torch.arange(width, device=counts.device) >= (width - counts)[:, None]).long()
        positions = (self.lengths[:, None] + new_mask.cumsum(1) - 1).clamp(min=0)
        self.columns_mask = torch.cat([self.columns_mask, new_mask], dim=1)
        return self.columns_mask, positions


def sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of ``logits``, and its log-prob under the distribution it was drawn from.

    Draws by inverting each row's cumulative distribution at one uniform number (cheaper than
    `torch.multinomial`, which draws a random number per vocabulary entry); a token of
    probability zero is never drawn.
    """
    if sampling.temperature == 0:
        return logits.argmax(-1), torch.zeros(logits.shape[0])
    logits = logits / sampling.temperature
    if sampling.top_p < 1:
        logits = _nucleus(logits, sampling.top_p)
    logp = torch.log_softmax(logits, dim=-1)
    cumulative = logp.exp().cumsum(-1)
    total = cumulative[:, -1:].contiguous()
    uniform = torch.rand(logits.shape[0], 1, generator=generator, device=logits.device) * total
    last_possible = torch.searchsorted(cumulative, total)  # should rounding put ``uniform`` at the total
    chosen = torch.minimum(torch.searchsorted(cumulative, uniform, right=True), last_possible).squeeze(1)
    return chosen, logp.gather(1, chosen[:, None]).squeeze(1)


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``logits`` with everything outside the smallest set of tokens of probability mass >= ``top_p`` set to -inf."""
    ordered, order = logits.sort(dim=-1, descending=True)
    probs = ordered.softmax(-1)
    outside = probs.cumsum(-1) - probs >= top_p
    return logits.scatter(1, order, ordered.masked_fill(outside, -math.inf))


CHUNK_OVERHEAD_TOKENS = 64
"""What one extra forward pass costs, in padded token slots: `staircase` trades one for the other."""


def staircase(queue_lengths: Sequence[int]) -> list[tuple[int, int]]:
    """How to feed queues of these lengths in chunks, as ``(front, keep)`` pairs, once the rows are ordered longest first.

    Each chunk feeds the first ``front`` rows all but the last ``keep`` tokens still queued; the
    last chunk has ``keep = 0`` and covers every row. Rows are padded to the longest within a
    chunk, so the chunk boundaries are chosen (exactly, by dynamic programming over the distinct
    lengths) to minimise padded token slots plus `CHUNK_OVERHEAD_TOKENS` per chunk.
    """
    levels = sorted(set(queue_lengths), reverse=True) + [0]
    fronts = [sum(length > level for length in queue_lengths) for level in levels]
    best: list[tuple[float, int]] = [(0.0, -1)]  # (cost of feeding down to levels[j], previous boundary)
    for j in range(1, len(levels)):
        best.append(
            min((best[i][0] + CHUNK_OVERHEAD_TOKENS + fronts[j] * (levels[i] - levels[j]), i) for i in range(j))
        )
    chunks, j = [], len(levels) - 1
    while j > 0:
        chunks.append((fronts[j], levels[j]))
        j = best[j][1]
    return chunks[::-1]
