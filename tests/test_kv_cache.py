"""The rollout engine's ragged cache and its CPU attention: same numbers as PyTorch's SDPA, stock models on disk."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from agentic import kv_cache
from agentic.kv_cache import CPU_ATTENTION, RaggedLayer, cpu_attention
from agentic.policy import Policy
from agentic.training.tiny_model import build_tiny_model


class Attention(torch.nn.Module):
    """What transformers' SDPA path reads off an attention module."""

    is_causal = True

    def __init__(self, num_key_value_groups: int = 1):
        super().__init__()
        self.num_key_value_groups = num_key_value_groups


@pytest.mark.parametrize("heads, key_heads", [(4, 4), (8, 2), (9, 3)])
@pytest.mark.parametrize("queries, mask_kind", [(1, "bool"), (1, "additive"), (1, None), (5, "bool"), (5, "additive")])
def test_cpu_attention_matches_sdpa(heads, key_heads, queries, mask_kind, monkeypatch):
    """(Several queries without a mask mean SDPA's causal flag: those go to SDPA itself.)"""
    monkeypatch.setattr(
        kv_cache, "SCORES_PER_CHUNK", 2 * heads * queries * 23
    )  # two rows at a time: chunks, and a short last one
    generator = torch.Generator().manual_seed(0)
    batch, length, dim = 5, 23, 16
    query = torch.randn(batch, heads, queries, dim, generator=generator)
    key = torch.randn(batch, key_heads, length, dim, generator=generator)
    value = torch.randn(batch, key_heads, length, dim, generator=generator)
    mask = torch.rand(batch, 1, queries, length, generator=generator) > 0.3
    mask[..., -1] = True
    groups = heads // key_heads
    expected = F.scaled_dot_product_attention(
        query,
        key.repeat_interleave(groups, 1),
        value.repeat_interleave(groups, 1),
        attn_mask=mask if mask_kind else None,
        scale=0.3,
    ).transpose(1, 2)
    given = {
        "bool": mask,
        "additive": torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min),
        None: None,
    }[mask_kind]
    stored_key, stored_value = (
        t.transpose(-1, -2).contiguous().transpose(-1, -2) for t in (key, value)
    )  # as a transposed RaggedLayer returns them
    for k, v in [(key, value), (stored_key, stored_value)]:
        output, _ = cpu_attention(Attention(groups), query, k, v, given, scaling=0.3)
        assert output.shape == (batch, queries, heads, dim)
        torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)


def test_cpu_attention_gives_a_query_with_nothing_to_attend_to_a_finite_output():
    query, key, value = torch.randn(2, 2, 3, 4), torch.randn(2, 2, 6, 4), torch.randn(2, 2, 6, 4)
    mask = torch.ones(2, 1, 3, 6, dtype=torch.bool)
    mask[0, 0, 0] = False  # a padding query in a left-padded batch
    output, _ = cpu_attention(Attention(), query, key, value, mask)
    assert torch.isfinite(output).all()
    torch.testing.assert_close(
        output[1], F.scaled_dot_product_attention(query[1:], key[1:], value[1:]).transpose(1, 2)[0]
    )


@pytest.mark.parametrize("transpose", [True, False])
def test_ragged_layer_keeps_each_row_at_its_own_columns(transpose):
    layer = RaggedLayer(batch_size=3, transpose=transpose)
    first = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    keys, values = layer.write(*first, columns=torch.arange(4).expand(3, 4), read=4, capacity=6)
    torch.testing.assert_close(keys, first[0])
    torch.testing.assert_close(values, first[1])
    if transpose:  # stored (batch, heads, head_dim, positions), contiguous: what makes cpu_attention fast
        assert all(buffer.shape == (3, 2, 5, 6) and buffer.is_contiguous() for buffer in layer.buffers)
    new = torch.randn(2, 2, 2, 5), torch.randn(2, 2, 2, 5)  # two tokens for the first two rows, at different columns
    keys, values = layer.write(*new, columns=torch.tensor([[2, 3], [4, 5]]), read=6, capacity=6)
    assert keys.shape == values.shape == (2, 2, 6, 5)
    torch.testing.assert_close(keys[0, :, 2:4], new[0][0])
    torch.testing.assert_close(values[1, :, 4:6], new[1][1])
    torch.testing.assert_close(keys[1, :, :4], first[0][1], msg="a row's earlier columns stay as they were")
    torch.testing.assert_close(layer.values[2, :, 4:], torch.zeros(2, 2, 5), msg="an unfed row's columns stay zero")
    layer.move_rows(torch.tensor([0, 2]), torch.tensor([2, 0]), columns=6)
    torch.testing.assert_close(layer.keys[0, :, :4], first[0][2])
    torch.testing.assert_close(layer.keys[2, :, 2:4], new[0][0])
    layer.write(
        torch.randn(3, 2, 3, 5), torch.randn(3, 2, 3, 5), columns=torch.arange(6, 9).expand(3, 3), read=9, capacity=7
    )
    assert layer.get_seq_length() == 9, "past its capacity: grows to what is read"
    torch.testing.assert_close(layer.keys[0, :, :4], first[0][2], msg="growing keeps what it had")
    layer.batch_select_indices(torch.tensor([2]))
    torch.testing.assert_close(layer.keys[0, :, 2:4], new[0][0])


def test_a_cpu_policy_decodes_with_it_and_saves_a_stock_model(tmp_path):
    policy = Policy.from_pretrained(build_tiny_model(["Arithmetic"], tmp_path / "tiny", seeds=range(20)), device="cpu")
    assert policy.model.config._attn_implementation == CPU_ATTENTION
    policy.model.save_pretrained(tmp_path / "saved")
    assert CPU_ATTENTION not in (tmp_path / "saved" / "config.json").read_text()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    ids = torch.tensor([policy.encode("Task: compute 1 + 2.\n")])
    torch.testing.assert_close(reloaded(ids).logits, policy.model(ids).logits)
