"""Decoding batches: sequences sampled together over one KV cache that persists across turns.

Sampling is a small explicit loop over the model's KV cache rather than ``model.generate``:
the rollout engine keeps one batch of episodes across turns, appends environment tokens to
sequences of different lengths without re-encoding anything, stops each sequence where its
action ends (`agentic.stopping`), and records the log-prob of every sampled token
(`agentic.sampling`). Padding inside the cache is masked out and positions count real tokens
only, so each sequence is computed as if it were alone.

`DecodingBatch` is that turn loop; how the cache holds rows of different lengths is up to its
two subclasses, and `decoding_batch` picks the one the model allows:

- `RaggedBatch` (every layer attends to the full context, with SDPA, eager or `cpu_attention`):
  a `RaggedCache`, each row at its own length, rows kept in an order that spares work;
- `PaddedBatch` (any other model, e.g. one with sliding-window layers): the model's own
  `DynamicCache`, every row fed at every step, padding columns masked out.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel

from agentic.constraint import BatchConstraint, GrammarFor
from agentic.kv_cache import RaggedCache, ragged_cache_fits
from agentic.sampling import Sampling, sample
from agentic.stopping import StopRule


@dataclass(frozen=True)
class Generation:
    """One sampled action: its tokens, their log-probs, its text, why it stopped (``action``, ``eos`` or ``length``)
    and the grammar it was drawn from under constrained sampling (else "")."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    stop: str
    grammar: str = ""


def decoding_batch(
    model: PreTrainedModel,
    contexts: Sequence[Sequence[int]],
    sampling: Sampling = Sampling(),
    *,
    pad_id: int,
    stop_rule: StopRule,
) -> DecodingBatch:
    """A `RaggedBatch` where the model allows a ragged cache, else a `PaddedBatch`."""
    batch_class = RaggedBatch if ragged_cache_fits(model) else PaddedBatch
    return batch_class(model, contexts, sampling, pad_id=pad_id, stop_rule=stop_rule)


class DecodingBatch(ABC):
    """Sequences decoded together with one KV cache that persists across turns: the turn loop both caches share.

    Rows are numbered by their position in ``contexts``. `extend` queues tokens for a row
    (the environment's reply); `generate` samples one action for every live row, first
    feeding what is queued; `release` drops finished rows from the cache. A subclass owns the
    cache: it makes it (`_open_cache`), starts each turn (`_start_turn`), says which rows each step feeds
    (`_front_for`) and builds each chunk's attention mask and positions (`_chunk_inputs`).
    """

    cache: DynamicCache

    def __init__(
        self,
        model: PreTrainedModel,
        contexts: Sequence[Sequence[int]],
        sampling: Sampling = Sampling(),
        *,
        pad_id: int,
        stop_rule: StopRule,
    ):
        self.model = model
        self.sampling = sampling
        self.pad_id = pad_id
        self.stop_rule = stop_rule
        self.device = next(model.parameters()).device
        self.rows = list(range(len(contexts)))
        self.pending: dict[int, list[int]] = {row: list(ids) for row, ids in enumerate(contexts)}
        self.lengths = torch.zeros(len(contexts), dtype=torch.long, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(sampling.seed)
        base_model = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model passes it on
        parameters = inspect.signature(base_model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5.24
        self._open_cache(len(contexts))

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
        self._keep(torch.tensor(keep, dtype=torch.long, device=self.device))
        for row in gone:
            del self.pending[row]
        self.rows = [self.rows[i] for i in keep]

    @torch.inference_mode()
    def generate(
        self, max_new_tokens: dict[int, int] | None = None, grammar: GrammarFor | None = None
    ) -> dict[int, Generation]:
        """One action per live row, at most ``max_new_tokens[row]`` tokens long (never more than the sampling limit).

        Under constrained sampling ``grammar(row, limit)`` gives each row's grammar, for its limit: each row
        draws only tokens its grammar allows, and stops once its action is complete (`agentic.constraint`).
        """
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
        grammars = self._grammars(going, limits, grammar)
        constraint = BatchConstraint(self.stop_rule.tokenizer, grammars) if grammars else None
        logits, front = self._start_turn(max(limits.values())), len(self.rows)
        while going:
            if constraint:
                logits = constraint.mask(logits, self.rows[:front])
            chosen, chosen_logprobs = sample(logits, self.sampling, self.generator, self.rows[:front])
            for row, token, logprob in zip(self.rows[:front], chosen.tolist(), chosen_logprobs.tolist()):
                if row in going:
                    tokens[row].append(token)
                    logprobs[row].append(logprob)
                    self.pending[row].append(token)
                    stops[row] = self._stop(row, tokens[row], limits[row], constraint)
            going = {row for row in going if stops[row] is None}
            if going:
                front = self._front_for(going)
                logits = self._feed(front)
        return {
            row: Generation(
                tokens[row], logprobs[row], self.stop_rule.decode(tokens[row]), stops[row], grammars.get(row, "")
            )
            for row in self.rows
        }

    def _grammars(self, rows: set[int], limits: dict[int, int], grammar: GrammarFor | None) -> dict[int, str]:
        """Each row's grammar under constrained sampling (else none)."""
        if not self.sampling.constrained:
            return {}
        if grammar is None:
            raise ValueError("constrained sampling needs the grammar of each row's action")
        return {row: grammar(row, limits[row]) for row in rows}

    def _stop(self, row: int, tokens: list[int], limit: int, constraint: BatchConstraint | None) -> str | None:
        """Why ``row``'s action of ``tokens`` (the last one just drawn) stops; None: it goes on. Under a
        constraint the action is over when the row's matcher has read a complete action."""
        if constraint is None:
            return self.stop_rule.reason(tokens, limit)
        if constraint.advance(row, tokens[-1]):
            return "action"
        return "length" if len(tokens) >= limit else None

    def _keep(self, index: torch.Tensor) -> None:
        """Keep only the rows at the positions ``index``, in that order."""
        self.cache.batch_select_indices(index)
        self.lengths = self.lengths[index]

    @abstractmethod
    def _open_cache(self, batch_size: int) -> None:
        """Make ``self.cache`` (and what the batch keeps beside it) for ``batch_size`` empty rows."""

    @abstractmethod
    def _start_turn(self, most_new_tokens: int) -> torch.Tensor:
        """Feed every row's whole queue before a turn of at most ``most_new_tokens`` per row; returns every row's next-token logits."""

    @abstractmethod
    def _front_for(self, going: set[int]) -> int:
        """How many rows, from the first, the next step feeds, so as to cover the rows in ``going``."""

    @abstractmethod
    def _chunk_inputs(self, counts: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention mask and positions of a left-padded chunk holding ``counts[r]`` tokens of each of the first rows."""

    def _feed(self, front: int, keep: int = 0) -> torch.Tensor:
        """Run the queued tokens of the first ``front`` rows, all but the last ``keep``, through the model, left-padded to one chunk.

        Returns those rows' next-token logits (float32); rows with nothing fed get meaningless ones.
        """
        chunks = [self.pending[row][: max(len(self.pending[row]) - keep, 0)] for row in self.rows[:front]]
        width = max(len(chunk) for chunk in chunks)
        for row, chunk in zip(self.rows, chunks):
            self.pending[row] = self.pending[row][len(chunk) :]
        ids = torch.tensor([[self.pad_id] * (width - len(chunk)) + chunk for chunk in chunks], device=self.device)
        counts = torch.tensor([len(chunk) for chunk in chunks], dtype=torch.long, device=self.device)
        attention_mask, positions = self._chunk_inputs(counts, width)
        self.lengths[:front] += counts
        out = self.model(
            input_ids=ids,
            attention_mask=attention_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self.cache_argument: self.cache},
        )
        return out.logits[:, -1].float()


class RaggedBatch(DecodingBatch):
    """A batch over a `RaggedCache`: each row keeps its own length, and rows are kept in an order that spares work.

    The prompts' shared start is computed once, for one row, and its cache copied to the
    others. A turn begins by feeding the queues longest first, in a staircase of chunks
    (`staircase`) so a short reply is not padded to the longest one; after that, rows whose
    action is over are parked behind the rows still sampling, and each step runs only that
    front of the batch (a parked row's last token waits in its queue for the next turn).
    """

    cache: RaggedCache

    def _open_cache(self, batch_size: int) -> None:
        self.cache = RaggedCache(self.model, batch_size)

    def _start_turn(self, most_new_tokens: int) -> torch.Tensor:
        queued = [len(self.pending[row]) for row in self.rows]
        self.cache.capacity = int(self.lengths.max()) + max(queued) + most_new_tokens  # the cache grows once a turn
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
        others = torch.arange(1, len(queues), device=self.device)
        self.cache.move_rows(others, torch.zeros_like(others), shared)
        self.lengths[:] = shared
        for row in self.rows[1:]:
            del self.pending[row][:shared]

    def _front_for(self, going: set[int]) -> int:
        """Move the rows in ``going`` to the front of the batch, swapping them with parked rows; returns the front's size."""
        front = len(going)
        parked = [i for i in range(front) if self.rows[i] not in going]
        arrived = [i for i in range(front, len(self.rows)) if self.rows[i] in going]
        self._move(parked + arrived, arrived + parked)
        return front

    def _move(self, to: list[int], source: list[int]) -> None:
        """The row at position ``source[k]`` goes to position ``to[k]`` (the two lists hold the same positions)."""
        if to == source:
            return
        to_index = torch.tensor(to, dtype=torch.long, device=self.device)
        source_index = torch.tensor(source, dtype=torch.long, device=self.device)
        self.cache.move_rows(to_index, source_index, int(self.lengths.max()))
        self.lengths[to_index] = self.lengths[source_index]
        rows = list(self.rows)
        for i, j in zip(to, source):
            rows[i] = self.rows[j]
        self.rows = rows

    def _chunk_inputs(self, counts: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
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
        dtype = self.model.dtype
        return torch.where(visible, torch.zeros((), dtype=dtype), torch.finfo(dtype).min), columns


class PaddedBatch(DecodingBatch):
    """A batch over the model's own `DynamicCache`, which appends every chunk's columns to all rows alike:
    every row is fed at every step, and a 2D mask hides each row's padding columns."""

    def _open_cache(self, batch_size: int) -> None:
        self.cache = DynamicCache(config=self.model.config)
        self.columns_mask = torch.zeros(batch_size, 0, dtype=torch.long, device=self.device)  # 1: a row's token

    def _keep(self, index: torch.Tensor) -> None:
        super()._keep(index)
        self.columns_mask = self.columns_mask[index]

    def _start_turn(self, most_new_tokens: int) -> torch.Tensor:
        return self._feed(len(self.rows))

    def _front_for(self, going: set[int]) -> int:
        return len(self.rows)

    def _chunk_inputs(self, counts: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        new_mask = (torch.arange(width, device=counts.device) >= (width - counts)[:, None]).long()
        positions = (self.lengths[:, None] + new_mask.cumsum(1) - 1).clamp(min=0)
        self.columns_mask = torch.cat([self.columns_mask, new_mask], dim=1)
        return self.columns_mask, positions


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
