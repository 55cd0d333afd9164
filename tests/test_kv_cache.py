"""The rollout engine's cache and its CPU decode attention: same numbers as PyTorch's SDPA, stock models on disk."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from agentic.kv_cache import CPU_DECODE_ATTENTION, GrowingLayer, cpu_decode_attention
from agentic.policy import Policy
from training.tiny_model import build_tiny_model


class Attention(torch.nn.Module):
    is_causal = True
    num_key_value_groups = 1


@pytest.mark.parametrize("heads, key_heads", [(4, 4), (8, 2)])
@pytest.mark.parametrize("masked", [True, False])
def test_decode_attention_matches_sdpa(heads, key_heads, masked):
    generator = torch.Generator().manual_seed(0)
    batch, length, dim = 5, 23, 16
    query = torch.randn(batch, heads, 1, dim, generator=generator)
    key = torch.randn(batch, key_heads, length, dim, generator=generator)
    value = torch.randn(batch, key_heads, length, dim, generator=generator)
    mask = torch.rand(batch, 1, 1, length, generator=generator) > 0.3 if masked else None
    if mask is not None:
        mask[..., -1] = True
    groups = heads // key_heads
    expected = F.scaled_dot_product_attention(
        query, key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1), attn_mask=mask, scale=0.3
    ).transpose(1, 2)
    output, _ = cpu_decode_attention(Attention(), query, key, value, mask, scaling=0.3)
    assert output.shape == (batch, 1, heads, dim)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
    stored = key.transpose(-1, -2).contiguous().transpose(-1, -2)  # keys as a transposed GrowingLayer returns them
    torch.testing.assert_close(cpu_decode_attention(Attention(), query, stored, value, mask, scaling=0.3)[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("transpose_keys", [True, False])
def test_growing_layer_returns_what_was_written_for_the_rows_fed(transpose_keys):
    layer = GrowingLayer(batch_size=3, transpose_keys=transpose_keys)
    first = torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    layer.planned_length = 6
    keys, values = layer.update(*first)
    torch.testing.assert_close(keys, first[0])
    torch.testing.assert_close(values, first[1])
    front = torch.randn(2, 2, 1, 5), torch.randn(2, 2, 1, 5)  # only the first two rows are fed
    keys, values = layer.update(*front)
    assert keys.shape == values.shape == (2, 2, 5, 5)
    torch.testing.assert_close(keys[:, :, 4:], front[0])
    torch.testing.assert_close(layer.keys[2, :, 4], torch.zeros(2, 5), msg="an unfed row's new column stays zero")
    layer.move_rows(torch.tensor([0, 2]), torch.tensor([2, 0]))
    torch.testing.assert_close(layer.keys[0, :, :4], first[0][2])
    torch.testing.assert_close(layer.values[2, :, 4], front[1][0, :, 0])
    layer.update(torch.randn(3, 2, 3, 5), torch.randn(3, 2, 3, 5))  # past planned_length: grows, keeps what it had
    torch.testing.assert_close(layer.keys[0, :, :4], first[0][2])
    assert layer.get_seq_length() == 8


def test_a_cpu_policy_decodes_with_it_and_saves_a_stock_model(tmp_path):
    policy = Policy.from_pretrained(build_tiny_model(["Arithmetic"], tmp_path / "tiny", seeds=range(20)), device="cpu")
    assert policy.model.config._attn_implementation == CPU_DECODE_ATTENTION
    policy.model.save_pretrained(tmp_path / "saved")
    assert CPU_DECODE_ATTENTION not in (tmp_path / "saved" / "config.json").read_text()
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    ids = torch.tensor([policy.encode("Task: compute 1 + 2.\n")])
    torch.testing.assert_close(reloaded(ids).logits, policy.model(ids).logits)
