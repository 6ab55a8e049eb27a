"""Memory-lean forward passes (issue 13): chunked DA/PA step 2, the blocked A2K module, row-band convolution stacks.

Each lean path is checked against the plain computation it replaces: the chunked and blocked attention bit for bit
(same kernels on the same values); the row bands in float64 to 1e-12, since in fp32 they agree only to rounding
(oneDNN picks its convolution algorithm by the tensor's shape), and a wrong halo row would show far above that.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import harness
from methods import a2k, bands
from methods.a2k import A2KAttention, head_blocks, progressive_attention_tokens
from methods.ops import (from_blocks, from_tokens, mean_variance_norm, normalised_tokens, split_heads, to_blocks,
                         to_tokens)
from methods.stya2k import Decoder
from methods.vgg import VGGEncoder, feature_size
from .reference_impls import ref_a2k_forward


def _seeded_module(**kw) -> A2KAttention:
    module = A2KAttention(32, 4, heads=4, **kw)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    return module


@pytest.mark.parametrize("kw", [{}, {"pa_step1": False}, {"use_da": False}, {"use_pa": False},
                                {"remainder": "reflect"}])
def test_a2k_chunked_step2_is_bit_identical_to_one_chunk(monkeypatch, kw):
    module = _seeded_module(**kw)
    fc, fs = torch.randn(2, 32, 26, 30), torch.randn(2, 32, 18, 22)
    with torch.inference_mode():
        whole = module(fc, fs)
        monkeypatch.setattr(a2k, "STEP2_CHUNK_ELEMENTS", 4 * 16 * 8)  # a few blocks per chunk
        chunked = module(fc, fs)
    assert torch.equal(chunked, whole)


def test_a2k_blocked_module_matches_the_loop_reference_in_training_mode():
    module = _seeded_module()
    fc = torch.randn(1, 32, 22, 17, dtype=torch.float64, requires_grad=True)
    fs = torch.randn(1, 32, 13, 19, dtype=torch.float64)
    module = module.double()
    out = module(fc, fs)
    reference = ref_a2k_forward(module, fc.detach(), fs, 4, 4)
    torch.testing.assert_close(out, reference, rtol=1e-10, atol=1e-11)
    out.square().sum().backward()  # the blocked path keeps autograd (in-place adds only under no-grad)
    assert fc.grad is not None and torch.isfinite(fc.grad).all()


def test_pa_gathers_only_one_chunk_of_keys_at_a_time(monkeypatch):
    qt, kt, vt = (to_tokens(torch.randn(1, 32, 32, 32), 4) for _ in range(3))  # 64 blocks of 16 positions
    keys, values = head_blocks(kt, 8), head_blocks(vt, 8)
    budget = 8 * 16 * 4  # 8 heads × 16 positions × 4 channels → one block per 512 elements: 1 block per chunk
    with torch.inference_mode():
        whole = progressive_attention_tokens(qt, keys, values)  # default budget: one chunk
    monkeypatch.setattr(a2k, "STEP2_CHUNK_ELEMENTS", budget * 8)  # 8 blocks per chunk
    sizes, original = [], torch.index_select

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(a2k.torch, "index_select", recording)
    with torch.inference_mode():
        chunked = progressive_attention_tokens(qt, keys, values)
    monkeypatch.setattr(a2k.torch, "index_select", original)
    assert torch.equal(chunked, whole)
    assert len(sizes) == 2 * 8 and max(sizes) <= budget * 8 < keys.numel()


@pytest.mark.parametrize("hw", [(67, 45), (64, 64), (33, 90)])
@pytest.mark.parametrize("budget", [1 << 12, 1 << 15])
def test_vgg_stack_in_row_bands_equals_the_whole_map(hw, budget):
    encoder = VGGEncoder()
    encoder.reset_random(torch.Generator().manual_seed(0))
    encoder.double()
    x = torch.rand(2, 3, *hw, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.inference_mode():
        for start, end in ((0, 4), (4, 11), (0, 18), (11, 31)):
            stack = encoder.layers[start:end]
            source = x if start == 0 else bands.run_whole(encoder.layers[:start], x)
            banded = bands.run_in_bands(stack, source, max_elements=budget)
            assert banded is not None, "the test must exercise the bands"
            torch.testing.assert_close(banded, bands.run_whole(stack, source), rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("size", [(67, 45), (64, 64), (37, 70)])
def test_decoder_in_row_bands_equals_the_whole_map(size):
    decoder = Decoder()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in decoder.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    decoder.double()
    h3, w3 = (feature_size(s, "relu3_1") for s in size)
    x = torch.rand(1, 512, h3, w3, generator=generator, dtype=torch.float64)
    crops = [[feature_size(s, "relu2_1") for s in size], list(size)]
    with torch.inference_mode():
        banded = bands.run_in_bands(decoder.decoder_layer_2, x, crops, max_elements=1 << 12)
        assert banded is not None and banded.shape[-2:] == size
        torch.testing.assert_close(banded, bands.run_whole(decoder.decoder_layer_2, x, crops), rtol=1e-12, atol=1e-12)


def test_small_inputs_unsupported_layers_and_training_run_whole():
    encoder = VGGEncoder()
    x = torch.rand(1, 3, 32, 32)
    assert bands.run_in_bands(encoder.layers[:18], x) is None  # under the default budget
    assert bands.run_in_bands([nn.Conv2d(3, 3, 3, padding=1)], x, max_elements=1) is None  # zero-padded conv
    stack = encoder.layers[:4]
    calls = []
    stack[1].register_forward_hook(lambda *_: calls.append(1))  # the 3×3 conv
    with torch.enable_grad():
        bands.banded_or_whole(stack, x.requires_grad_(True))
    assert calls == [1]  # one call on the whole map: bands only run without autograd


def test_full_network_in_bands_matches_whole(monkeypatch):
    method = harness.create_method("styA2K", init="random", seed=0)
    content, style = torch.rand(1, 3, 70, 52), torch.rand(1, 3, 64, 64)
    whole = method.stylize(content, style)
    monkeypatch.setattr(bands, "BAND_ELEMENTS", 1 << 14)
    banded = method.stylize(content, style)
    torch.testing.assert_close(banded, whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("normaliser", ["r+1", "n", "p"])
@pytest.mark.parametrize("bias", [True, False])
def test_da_step1_without_projecting_each_position_equals_aggregating_the_projections(normaliser, bias):
    """aggregate_projected folds the key/value 1×1 convolutions into the block sums; in float64 it must equal
    aggregate_blocks on the projected maps (the official order) to rounding, for a value width other than the keys'."""
    generator = torch.Generator().manual_seed(3)
    key_conv, value_conv = nn.Conv2d(12, 12, 1, bias=bias).double(), nn.Conv2d(12, 8, 1, bias=bias).double()
    with torch.no_grad():
        for p in [*key_conv.parameters(), *value_conv.parameters()]:
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * 0.3)
    ns, fs = (torch.randn(2, 12, 12, 8, generator=generator, dtype=torch.float64) for _ in range(2))
    alpha, beta = torch.tensor([0.7], dtype=torch.float64), torch.tensor([-0.2], dtype=torch.float64)
    with torch.no_grad():
        folded = a2k.aggregate_projected(to_tokens(ns, 4), to_tokens(fs, 4), key_conv, value_conv, 4, alpha, beta,
                                         normaliser)
        keys, values = (split_heads(to_blocks(conv(x), 4), 4) for conv, x in ((key_conv, ns), (value_conv, fs)))
        official = a2k.aggregate_blocks(keys, values, alpha, beta, normaliser)
    for got, want in zip(folded, official):
        assert got.shape == want.shape == (2, 4, want.shape[2], 6)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_pa_on_a_style_broadcast_over_the_batch_reads_its_one_copy():
    """Keys and values of one style expanded over a content batch (batch stride 0) give exactly the result of the
    materialised copies (the rows are read from the single copy instead of a batch-sized one)."""
    generator = torch.Generator().manual_seed(4)
    q = to_tokens(torch.randn(3, 16, 16, 12, generator=generator), 4)
    keys, values = (head_blocks(to_tokens(torch.randn(1, 16, 8, 12, generator=generator), 4), 2) for _ in range(2))
    broadcast = [t.expand(3, *t.shape[1:]) for t in (keys, values)]
    with torch.inference_mode():
        shared = progressive_attention_tokens(q, *broadcast)
        copied = progressive_attention_tokens(q, *(t.contiguous() for t in broadcast))
    assert broadcast[0].stride(0) == 0 and torch.equal(shared, copied)


@pytest.mark.parametrize("hw", [(16, 24), (19, 26)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_token_layout_is_the_blocked_layout_channels_last(hw, channels_last):
    """to_tokens = to_blocks with channels moved last, from_tokens inverts it (zero strip as from_blocks), and the
    one-pass normalised tokens equal normalising then cutting, bit for bit (statistics include the strip)."""
    x = torch.randn(2, 6, *hw, generator=torch.Generator().manual_seed(5))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grid = (hw[0] // 4, hw[1] // 4)
    tokens = to_tokens(x, 4)
    assert torch.equal(tokens, to_blocks(x, 4).permute(0, 2, 3, 1))
    assert torch.equal(from_tokens(tokens, 4, grid, size=hw), from_blocks(to_blocks(x, 4), 4, grid, size=hw))
    with torch.inference_mode():
        assert torch.equal(normalised_tokens(x, 4), to_tokens(mean_variance_norm(x), 4))


def test_attention_reads_heads_of_tokens_in_place(monkeypatch):
    """Queries viewed as heads of tokens (last dim contiguous, other dims strided) go to the fused kernel as they
    are (no contiguous copy) and give the materialised softmax(q kᵀ) v."""
    from methods import ops
    generator = torch.Generator().manual_seed(6)
    tokens = torch.randn(2, 40, 3 * 8, generator=generator)
    q = tokens.reshape(2, 40, 3, 8).transpose(1, 2)  # (B, h, L, d) view, not contiguous
    k, v = (torch.randn(2, 3, 7, 8, generator=generator) for _ in range(2))
    seen, original = [], ops.F.scaled_dot_product_attention
    monkeypatch.setattr(ops.F, "scaled_dot_product_attention",
                        lambda query, *a, **kw: seen.append(query) or original(query, *a, **kw))
    with torch.inference_mode():
        out = ops.attention(q, k, v)
    assert len(seen) == 1 and seen[0] is q and not q.is_contiguous()
    torch.testing.assert_close(out, ops.naive_attention(q, k, v), rtol=1e-5, atol=1e-5)
