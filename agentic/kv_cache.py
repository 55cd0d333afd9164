"""The rollout engine's KV cache, and the attention that reads it fastest on CPU.

`GrowingLayer` appends into a buffer with room to spare and lets a forward pass cover only
the first rows of the batch (`agentic.policy.DecodingBatch` parks the others). On CPU it
stores keys transposed (head_dim x positions), and `cpu_decode_attention`, registered as the
attention implementation ``"agentic_cpu_decode"``, scores a single query token against them
with two batched matrix products that run over contiguous memory. PyTorch's CPU SDPA kernel
instead pays per head and per block, which dominates when a head's work is one query (and
the tiny model's heads are 8 wide); decoding is where batched rollouts spend their time
(`agentic bench rollout` measures the whole engine). Every other call (prompts, training,
any GPU) goes to transformers' SDPA unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface, DynamicCache, PreTrainedModel
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

CPU_DECODE_ATTENTION = "agentic_cpu_decode"


def cpu_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA's result; for one query token on CPU, computed as ``softmax(q kᵀ) v`` with batched matmuls.

    ``attention_mask`` is SDPA's boolean mask (True: attend) or None. Grouped-query heads
    share their key head's matmul. Keys stored transposed (`GrowingLayer` on CPU) are read
    without a copy.
    """
    if query.shape[2] != 1 or query.device.type != "cpu" or query.requires_grad or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key.contiguous(), value, attention_mask, scaling=scaling, **kwargs)
    batch, heads, _, head_dim = query.shape
    key_heads, length = key.shape[1], key.shape[2]
    groups = heads // key_heads
    queries = query.reshape(batch * key_heads, groups, head_dim)
    keys_t = key.transpose(-1, -2).reshape(batch * key_heads, head_dim, length)
    scores = torch.bmm(queries, keys_t).view(batch, key_heads, groups, length)
    scores.mul_(head_dim**-0.5 if scaling is None else scaling)
    if attention_mask is not None:
        scores.masked_fill_(~attention_mask.view(batch, 1, 1, length), float("-inf"))
    weights = scores.softmax(-1).view(batch * key_heads, groups, length)
    output = torch.bmm(weights, value.reshape(batch * key_heads, length, head_dim))
    return output.view(batch, 1, heads, head_dim), None


AttentionInterface.register(CPU_DECODE_ATTENTION, cpu_decode_attention)
AttentionMaskInterface.register(CPU_DECODE_ATTENTION, sdpa_mask)


def use_cpu_decode_attention(model: PreTrainedModel) -> None:
    """Switch a CPU model that attends with SDPA to `cpu_decode_attention` (other models are left as they are)."""
    if next(model.parameters()).device.type == "cpu" and model.config._attn_implementation == "sdpa":
        model.set_attn_implementation(CPU_DECODE_ATTENTION)


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` that appends into a buffer with room to spare instead of concatenating:
    a decoding step then copies one token's keys and values, not the whole cache (about 1.5x
    faster rollouts on CPU at batch 16-64). When full, the buffer grows to ``planned_length``
    columns: `DecodingBatch` sets that to the most the turn can write, so a turn grows it at
    most once, and the spare columns stay few (attention on CPU slows down with the buffer's
    size, not only with the columns it reads).

    An update may cover only the first rows of the batch: it returns those rows' keys and
    values; the other rows' new columns stay zero (their attention mask hides them). With
    ``transpose_keys`` the key buffer is laid out (batch, heads, head_dim, positions), and the
    keys returned are a transposed view of it, for `cpu_decode_attention`.
    """

    planned_length = 0

    def __init__(self, batch_size: int, transpose_keys: bool = False):
        super().__init__()
        self.batch_size = batch_size
        self.position_dim = -1 if transpose_keys else -2  # of the key buffer

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            empty = (self.batch_size, *key_states.shape[1:-2], 0, key_states.shape[-1])
            self.key_buffer, self.value_buffer, self.length = self._stored(key_states.new_zeros(empty)), value_states.new_zeros(empty), 0
        end = self.length + key_states.shape[-2]
        if end > self.value_buffer.shape[-2]:
            capacity = max(end, self.planned_length)
            self.key_buffer = self._grown(self.key_buffer, self.position_dim, capacity)
            self.value_buffer = self._grown(self.value_buffer, -2, capacity)
        front = key_states.shape[0]
        self._key_columns(self.key_buffer[:front], self.length, end).copy_(key_states)
        self.value_buffer[:front, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._key_columns(self.key_buffer, 0, end), self.value_buffer[:, :, :end]
        return self._key_columns(self.key_buffer[:front], 0, end), self.value_buffer[:front, :, :end]

    def _stored(self, keys: torch.Tensor) -> torch.Tensor:
        """Keys (batch, heads, positions, head_dim) in the buffer's layout (a view)."""
        return keys.transpose(-1, -2) if self.position_dim == -1 else keys

    def _key_columns(self, buffer: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Positions ``start:end`` of a key buffer, as (batch, heads, positions, head_dim) when read back through `_stored`."""
        return self._stored(buffer[..., start:end] if self.position_dim == -1 else buffer[:, :, start:end])

    def _grown(self, buffer: torch.Tensor, position_dim: int, capacity: int) -> torch.Tensor:
        shape = list(buffer.shape)
        shape[position_dim] = capacity
        grown = buffer.new_zeros(shape)
        grown.narrow(position_dim, 0, self.length).copy_(buffer.narrow(position_dim, 0, self.length))
        return grown

    def move_rows(self, to: torch.Tensor, source: torch.Tensor) -> None:
        """Copy the rows at ``source`` to the positions ``to`` (all read before any is written; a source may repeat)."""
        if self.is_initialized:
            self.key_buffer[to], self.value_buffer[to] = self.key_buffer[source], self.value_buffer[source]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.batch_size = len(indices)
        if self.is_initialized:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self.keys, self.values = self._key_columns(self.key_buffer, 0, self.length), self.value_buffer[:, :, : self.length]


def growing_cache(model: PreTrainedModel, batch_size: int) -> DynamicCache:
    """The model's usual dynamic cache, with its plain full-attention layers made `GrowingLayer`s
    (keys transposed when the model attends with `cpu_decode_attention`)."""
    cache = DynamicCache(config=model.config)
    transpose_keys = model.config._attn_implementation == CPU_DECODE_ATTENTION
    cache.layers = [GrowingLayer(batch_size, transpose_keys) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
