"""The rollout engine's KV cache, and the attention that reads it fastest on CPU.

`RaggedCache` keeps every row of a batch at its own length (a row's token at position ``p``
in column ``p``), so rows that have run different numbers of turns, actions and replies
attend over no padding columns, and a forward pass may cover only the first rows of the
batch. On CPU it stores keys and values transposed (head_dim x positions), and
`cpu_attention`, registered as the attention implementation ``"agentic_cpu"``, computes
inference attention with batched matrix products over them, a few rows at a time.
PyTorch's CPU SDPA kernel instead pays per head and per block, which dominates when heads
are narrow (the tiny model's are 8 wide), and it would need the transposed cache copied.
Training (gradients) and any GPU go to transformers' SDPA unchanged; `agentic bench
rollout` measures the whole engine.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface, DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

CPU_ATTENTION = "agentic_cpu"

SCORES_PER_CHUNK = 1_500_000
"""How many attention scores `cpu_attention` computes at once: about 6 MB, so they stay in the CPU's caches."""


def cpu_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA's result; for inference on CPU, computed as ``softmax(q kᵀ) v`` with batched matmuls, a few rows at a time.

    ``attention_mask`` is as SDPA takes it: boolean (True: attend) or additive. A query with
    nothing to attend to gets a finite average, not NaN. Grouped-query heads share their key
    head's matmul. Keys and values stored transposed (`RaggedLayer` on CPU) are read without
    a copy: the matmuls run fastest so. Several queries over keys in the usual layout (a
    whole sequence scored at once) are faster in SDPA and go there, as do training
    (gradients), a mask left to SDPA's causal flag, soft-capping and other devices.
    """
    several_queries_over_plain_keys = query.shape[2] > 1 and (attention_mask is None or key.stride(-1) == 1)
    if (
        query.device.type != "cpu"
        or query.requires_grad
        or kwargs.get("softcap") is not None
        or several_queries_over_plain_keys
    ):
        return sdpa_attention_forward(
            module, query, key.contiguous(), value.contiguous(), attention_mask, scaling=scaling, **kwargs
        )
    batch, heads, queries, head_dim = query.shape
    scale = head_dim**-0.5 if scaling is None else scaling
    rows = max(1, SCORES_PER_CHUNK // (heads * queries * key.shape[2]))
    output = query.new_empty(batch, queries, heads, head_dim)
    for start in range(0, batch, rows):
        chunk = slice(start, start + rows)
        mask = None if attention_mask is None else attention_mask[chunk if attention_mask.shape[0] > 1 else slice(None)]
        output[chunk] = _attend(query[chunk], key[chunk], value[chunk], mask, scale)
    return output, None


def _attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None, scale: float
) -> torch.Tensor:
    """Attention of (batch, heads, queries, head_dim) queries as (batch, queries, heads, head_dim)."""
    batch, heads, queries, head_dim = query.shape
    key_heads, length = key.shape[1], key.shape[2]
    groups = heads // key_heads
    keys_t = key.transpose(-1, -2).reshape(batch * key_heads, head_dim, length)
    scaled_queries = (query * scale).reshape(batch * key_heads, groups * queries, head_dim)
    scores = torch.bmm(scaled_queries, keys_t).view(batch, key_heads, groups, queries, length)
    if mask is not None and mask.dtype == torch.bool:
        scores.masked_fill_(~mask[:, :, None, :, :length], torch.finfo(scores.dtype).min)
    elif mask is not None:
        scores.add_(mask[:, :, None, :, :length])
    weights = scores.softmax(-1).view(batch * key_heads, groups * queries, length)
    output = torch.bmm(weights, value.reshape(batch * key_heads, length, head_dim))
    return output.view(batch, heads, queries, head_dim).transpose(1, 2)


AttentionInterface.register(CPU_ATTENTION, cpu_attention)
AttentionMaskInterface.register(CPU_ATTENTION, sdpa_mask)


def use_cpu_attention(model: PreTrainedModel) -> None:
    """Switch a CPU model that attends with SDPA to `cpu_attention` (other models are left as they are)."""
    if next(model.parameters()).device.type == "cpu" and model.config._attn_implementation == "sdpa":
        model.set_attn_implementation(CPU_ATTENTION)


class RaggedLayer(DynamicLayer):
    """A cache layer in which every row of the batch has its own length: a row's token at
    position ``p`` is stored at column ``p``, so rows of different lengths share the buffer
    without gaps (no padding columns to attend over) and a forward pass may cover only the
    first rows of the batch (`agentic.decoding.RaggedBatch` parks the others).

    `write` stores each new token at the column it is given and returns the first ``read``
    columns of the rows fed; what lies past a row's own length there is for the attention
    mask to hide. The buffers have room to spare and grow (to ``capacity``, at least) only
    when ``read`` would pass their end, so a decoding step copies one token's keys and values,
    not the whole cache. With ``transpose`` the buffers are laid out (batch, heads, head_dim,
    positions) and what is returned are transposed views of them, for `cpu_attention`.
    """

    def __init__(self, batch_size: int, transpose: bool = False):
        super().__init__()
        self.batch_size = batch_size
        self.transpose = transpose
        self.position_dim = -1 if transpose else -2  # of the buffers

    def write(
        self, key_states: torch.Tensor, value_states: torch.Tensor, columns: torch.Tensor, read: int, capacity: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store token ``t`` of row ``r`` (of the first rows) at ``columns[r, t]``; return those rows' first ``read`` columns."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.buffers = [self._buffer(states, 0) for states in (key_states, value_states)]
        if read > self.buffers[0].shape[self.position_dim]:
            self.buffers = [self._grown(buffer, max(read, capacity)) for buffer in self.buffers]
        rows = torch.arange(len(columns), device=columns.device)[:, None]
        for buffer, states in zip(self.buffers, (key_states, value_states)):
            # indexing puts the (row, token) pairs first: (front, tokens, heads, head_dim)
            target = (rows, slice(None), slice(None), columns) if self.transpose else (rows, slice(None), columns)
            buffer[target] = states.transpose(1, 2)
        self.keys, self.values = (self._columns(buffer, read) for buffer in self.buffers)
        return self.keys[: len(rows)], self.values[: len(rows)]

    def _buffer(self, states: torch.Tensor, capacity: int) -> torch.Tensor:
        """An uninitialised buffer for ``capacity`` positions of every row, in this layer's layout."""
        batch, heads, _, head_dim = states.shape
        shape = (
            (self.batch_size, heads, head_dim, capacity)
            if self.transpose
            else (self.batch_size, heads, capacity, head_dim)
        )
        return states.new_empty(shape)

    def _columns(self, buffer: torch.Tensor, end: int) -> torch.Tensor:
        """The first ``end`` columns of a buffer, as (batch, heads, positions, head_dim)."""
        first = buffer.narrow(self.position_dim, 0, end)
        return first.transpose(-1, -2) if self.transpose else first

    def _grown(self, buffer: torch.Tensor, capacity: int) -> torch.Tensor:
        used = buffer.shape[self.position_dim]
        grown = self._buffer(self._columns(buffer, used), capacity)
        grown.narrow(self.position_dim, 0, used).copy_(buffer)
        grown.narrow(self.position_dim, used, capacity - used).zero_()  # finite, for the mask to hide
        return grown

    def move_rows(self, to: torch.Tensor, source: torch.Tensor, columns: int) -> None:
        """Copy the first ``columns`` columns of the rows at ``source`` to the positions ``to`` (all read before any is written; a source may repeat)."""
        for buffer in self.buffers if self.is_initialized else []:
            used = buffer.narrow(self.position_dim, 0, columns)
            used[to] = used[source]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.batch_size = len(indices)
        if self.is_initialized:
            read = self.keys.shape[-2]
            self.buffers = [buffer[indices] for buffer in self.buffers]
            self.keys, self.values = (self._columns(buffer, read) for buffer in self.buffers)


class RaggedCache(DynamicCache):
    """A `DynamicCache` of `RaggedLayer`s. Before each forward pass, `plan` says where the new
    tokens go and how many columns attention reads (the model's layers call `update` with no
    say in that). ``capacity`` is the room a layer makes when it must grow: the rollout sets
    it, each turn, to what the turn can write."""

    def __init__(self, model: PreTrainedModel, batch_size: int):
        super().__init__(config=model.config)
        transpose = model.config._attn_implementation == CPU_ATTENTION
        self.layers = [RaggedLayer(batch_size, transpose) for _ in self.layers]
        self.columns, self.read, self.capacity = torch.zeros(0, 0, dtype=torch.long), 0, 0

    def plan(self, columns: torch.Tensor, read: int) -> None:
        """The next forward's token ``t`` of row ``r`` goes to column ``columns[r, t]``; attention reads ``read`` columns."""
        self.columns, self.read = columns, read

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layers[layer_idx].write(key_states, value_states, self.columns, self.read, self.capacity)

    def move_rows(self, to: torch.Tensor, source: torch.Tensor, columns: int) -> None:
        for layer in self.layers:
            layer.move_rows(to, source, columns)


RAGGED_ATTENTION = ("sdpa", "eager", CPU_ATTENTION)
"""Attention implementations that take a ready 4D additive mask as it is, which a ragged cache needs."""


def ragged_cache_fits(model: PreTrainedModel) -> bool:
    """Whether a `RaggedCache` can stand in for the model's own cache: every layer attends to the full context
    (a plain `DynamicLayer`), with one of `RAGGED_ATTENTION`."""
    layers = DynamicCache(config=model.config).layers
    return (
        model.config._attn_implementation in RAGGED_ATTENTION
        and bool(layers)
        and all(type(layer) is DynamicLayer for layer in layers)
    )
