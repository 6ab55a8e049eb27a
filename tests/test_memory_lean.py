"""The attention kernels must never build an L×S score matrix through SDPA's math kernel (spec §10.1, issue #2).

PyTorch silently picks its materialising math kernel for strided or 5-D inputs; this pins that every SDPA call the
methods make goes to a fused kernel, and that the chunked path bounds the score tensor.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import harness
from methods import ops
from methods.a2k import distributed_attention, progressive_attention
from methods.all2all import all_to_all_attention

pytestmark = pytest.mark.skipif(not hasattr(torch, "_fused_sdp_choice"), reason="this torch cannot report its SDPA choice")


@pytest.fixture
def sdpa_calls(monkeypatch):
    calls = []
    original = F.scaled_dot_product_attention

    def checked(q, k, v, *args, scale=None, **kwargs):
        calls.append(int(torch._fused_sdp_choice(q, k, v, scale=scale)))
        return original(q, k, v, *args, scale=scale, **kwargs)

    monkeypatch.setattr(ops.F, "scaled_dot_product_attention", checked)
    return calls


def test_every_sdpa_call_is_fused(sdpa_calls):
    q, k, v = torch.randn(1, 64, 24, 40), torch.randn(1, 64, 16, 32), torch.randn(1, 64, 16, 32)
    distributed_attention(q, k, v, side=8, heads=8)
    progressive_attention(q, k, v, side=8, heads=8)
    all_to_all_attention(q, k, v, heads=8)
    harness.create_method("styA2K", init="random").model(torch.rand(1, 3, 64, 96), torch.rand(1, 3, 80, 64))
    assert sdpa_calls and 0 not in sdpa_calls  # 0 = SDPBackend.MATH


def test_unequal_value_width_goes_to_chunks(sdpa_calls, monkeypatch):
    seen = []
    original = ops.naive_attention
    monkeypatch.setattr(ops, "naive_attention", lambda q, k, v, scale=1.0: seen.append(q.shape[-2] * k.shape[-2]) or original(q, k, v, scale))
    q, k, v = torch.randn(2, 4, 100, 8), torch.randn(2, 4, 50, 8), torch.randn(2, 4, 50, 3)
    out = ops.attention(q, k, v, max_score_elements=2 * 4 * 50 * 10)
    assert not sdpa_calls and max(seen) <= 10 * 50 and out.shape == (2, 4, 100, 3)
