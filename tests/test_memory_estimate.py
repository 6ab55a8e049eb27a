"""The traced working-set estimate (harness.complexity.estimate): hand-counted bytes, the fake trace against the
same count on a real run of every method, the convolution-scratch model against hand values and a measured
convolution, the largest-side search against brute force, and its place in the complexity sweep."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch

from harness.complexity import ComplexityConfig, ComplexityError, run_complexity
from harness.complexity.estimate import (LiveTensorBytes, estimate_working_set, largest_square_side,
                                         onednn_convolution_scratch)
from methods import create_method

MIB = 2**20
FAST = dict(repeats=1, warmup=0, attention_repeats=0, count_flops=False, threads=1, progress=False, seed=0)


class _Steps(torch.nn.Module):
    """A forward whose tensor peak is known by hand (ignores the style): (B, 3, H, W) float32."""

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        a = content * 2  # +1 image
        b = a + 1  # +1 image (peak so far: 2)
        del a  # −1
        c = torch.cat([b, b], dim=1)  # +2 images: live b + c = 3 images, the peak
        view = c[:, :3]  # a view: no new storage
        view.add_(1)  # in place: no new storage
        del b
        return c.sum(dim=(1, 2, 3))  # +B floats; c freed after return


def test_hand_counted_peak_views_and_in_place_ops_count_once():
    image = 2 * 3 * 16 * 16 * 4  # bytes of one (2, 3, 16, 16) float32 tensor
    estimate = estimate_working_set(_Steps(), (2, 3, 16, 16), convolution_scratch=None)
    assert estimate.peak_mib * MIB == 3 * image
    assert estimate.output_mib * MIB == 2 * 4  # the (2,) sums
    assert estimate.allocations == 4
    real = LiveTensorBytes()  # the same count on real tensors
    content = torch.rand(2, 3, 16, 16)
    real.adopt([content])
    with real:
        out = _Steps()(content, content)
    assert real.peak == 3 * image and real.live == out.nbytes


@pytest.mark.parametrize("name", ["styA2K", "adain", "all2all", "AdaAttN", "SANet", "StyTr2", "MicroAST"])
def test_fake_trace_equals_the_real_forward_byte_for_byte(name):
    """The estimate (fake tensors, nothing computed) holds exactly the bytes the real forward's tensors hold, at a
    non-square content batch of 2 with a style of another size: the meta kernels allocate what the real ones do,
    the SDPA choice is the real one (all2all, StyTr², AdaAttN, SANet run fused SDPA, not the chunked path), and views
    of weights are not allocations."""
    torch.manual_seed(0)
    model = create_method(name, init="random", seed=0).model
    content, style = torch.rand(2, 3, 96, 128), torch.rand(1, 3, 80, 64)
    real = LiveTensorBytes()
    real.adopt([content, style, *model.parameters(), *model.buffers()])
    with torch.inference_mode(), real:
        model(content, style)
    estimate = estimate_working_set(model, content.shape, style.shape, convolution_scratch=None)
    assert estimate.peak_mib * MIB == real.peak
    assert estimate.output_mib * MIB == 2 * 3 * 96 * 128 * 4


def test_a_shapes_only_trace_skips_the_value_check_but_a_real_tensor_does_not():
    model = create_method("adain", init="random", seed=0).model
    estimate_working_set(model, (1, 3, 64, 64))  # fake inputs: no range check possible, none attempted
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        model(torch.full((1, 3, 64, 64), 2.0), torch.rand(1, 3, 64, 64))


def test_convolution_scratch_model_hand_values():
    """NCHW: max(blocked input + blocked output + weight, blocked output + output) − output, channels padded to 8;
    a ≤ 4-channel input to a 3×3 kernel and a grouped convolution's input are read directly; channels_last: the
    weight only."""
    meta = dict(device="meta")
    x, w = torch.empty(1, 64, 34, 34, **meta), torch.empty(128, 64, 3, 3, **meta)
    out = torch.empty(1, 128, 32, 32, **meta)
    in_b, out_b, w_b = 64 * 34 * 34 * 4, 128 * 32 * 32 * 4, 128 * 64 * 9 * 4
    assert onednn_convolution_scratch((x, w), out) == max(in_b + out_b + w_b, 2 * out_b) - out_b
    rgb, first = torch.empty(1, 3, 66, 66, **meta), torch.empty(64, 3, 3, 3, **meta)
    out = torch.empty(1, 64, 64, 64, **meta)
    assert onednn_convolution_scratch((rgb, first), out) == max(64 * 4096 * 4 + 64 * 27 * 4, 2 * 64 * 4096 * 4) \
        - 64 * 4096 * 4
    to_rgb, last = torch.empty(1, 64, 18, 18, **meta), torch.empty(3, 64, 3, 3, **meta)
    out = torch.empty(1, 3, 16, 16, **meta)  # 3 output channels padded to 8 in the blocked layout
    assert onednn_convolution_scratch((to_rgb, last), out) == \
        max(64 * 324 * 4 + 8 * 256 * 4 + 3 * 64 * 9 * 4, 8 * 256 * 4 + 3 * 256 * 4) - 3 * 256 * 4
    grouped_in, grouped = torch.empty(1, 32, 34, 34, **meta), torch.empty(16, 2, 3, 3, **meta)  # groups 16
    out = torch.empty(1, 16, 32, 32, **meta)  # a grouped convolution reads its input directly
    assert onednn_convolution_scratch((grouped_in, grouped), out) == \
        max(16 * 1024 * 4 + 16 * 18 * 4, 2 * 16 * 1024 * 4) - 16 * 1024 * 4
    nhwc = torch.empty(1, 64, 34, 34, **meta).contiguous(memory_format=torch.channels_last)
    assert onednn_convolution_scratch((nhwc, w), torch.empty(1, 128, 32, 32, **meta)) == w_b


_CONVOLUTION_PROBE = """
import json, torch
from harness.complexity.measure import _working_set_mib
from harness.complexity.estimate import estimate_working_set
torch.set_num_threads(1)
result = []
for c_in, c_out, groups, side, layout in [(64, 64, 1, 512, "nchw"), (256, 3, 1, 512, "nchw"),
                                          (32, 16, 16, 512, "nchw"), (64, 64, 1, 512, "nhwc")]:
    conv = torch.nn.Conv2d(c_in, c_out, 3, groups=groups)
    x = torch.rand(1, c_in, side + 2, side + 2)
    if layout == "nhwc":
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    def forward():
        with torch.inference_mode():
            conv(x)
    forward()
    measured = _working_set_mib(forward)
    run = lambda m, c, s: m(c.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else c)
    estimate = estimate_working_set(conv, x.shape, forward=run).peak_mib
    extra = x.numel() * 4 / 2**20 if layout == "nhwc" else 0.0  # the trace's own input copy to channels_last
    result.append(None if measured is None else [measured[0], estimate - extra])
print(json.dumps(result))
"""


def test_convolution_scratch_model_matches_a_measured_convolution():
    """The CPU model against the resident-set working set of real convolutions (fresh process, one thread): within
    10 % for a 64→64, a 256→3 and a grouped 32→16 NCHW 3×3 convolution at 512² and a channels_last one."""
    result = subprocess.run([sys.executable, "-c", _CONVOLUTION_PROBE], capture_output=True, text=True, check=True)
    pairs = json.loads(result.stdout.strip().splitlines()[-1])
    if any(p is None for p in pairs):
        pytest.skip("needs glibc and /proc/self/clear_refs (Linux) to measure the working set")
    for measured, estimated in pairs:
        assert estimated == pytest.approx(measured, rel=0.10), pairs


def test_largest_side_search_against_brute_force():
    memory = lambda side: (side / 64) ** 2 * 3.0 + 10  # noqa: E731 — MiB, grows with the side
    for budget in (13, 500, 2000, 77777):
        found = largest_square_side(memory, budget, multiple=64, start=512, limit=8192)
        fits = [s for s in range(64, 8193, 64) if memory(s) <= budget]
        assert found.side == (max(fits) if fits else None)
        assert found.peak_mib == (memory(found.side) if fits else None)
        if not found.limited:
            assert found.next_side == (found.side or 0) + 64 and found.next_peak_mib > budget
        assert found.estimates <= 2 * math.log2(8192 / 64) + 2
    capped = largest_square_side(memory, 1e9, limit=8192)
    assert capped.limited and capped.side == 8192
    nothing = largest_square_side(memory, 5)
    assert nothing.side is None and nothing.next_side == 64
    with pytest.raises(ComplexityError, match="positive"):
        largest_square_side(memory, 0)


def test_sweep_adds_the_estimate_to_every_cell_and_the_largest_side(tmp_path):
    """A capped sweep: the oom and skipped cells carry an estimate too (how far over they were); largest.csv holds
    the search within the budget and the measured/estimated check at the largest ok size; the summary shows both."""
    config = ComplexityConfig(methods=["adain"], sizes=[64, 256, 512], out=tmp_path, max_memory_mib=32,
                              largest_within_mib=256, largest_limit=4096, **FAST)
    df = run_complexity(config).set_index("size")
    assert list(df["status"]) == ["ok", "oom", "oom"]
    model = create_method("adain", init="random", seed=0).model
    for size in (64, 256, 512):
        assert df.loc[size, "estimated_memory_mib"] == estimate_working_set(model, (1, 3, size, size)).peak_mib
    assert df.loc[256, "estimated_memory_mib"] > 32  # the cap it ran out of
    largest = pd.read_csv(tmp_path / "largest.csv").iloc[0]
    expected = largest_square_side(lambda s: estimate_working_set(model, (1, 3, s, s)).peak_mib, 256)
    assert largest["largest_side"] == expected.side and largest["estimated_mib"] == expected.peak_mib
    assert largest["largest_measured_size"] == 64
    assert largest["measured_over_estimated"] == pytest.approx(df.loc[64, "peak_memory_mib"]
                                                               / df.loc[64, "estimated_memory_mib"])
    summary = (tmp_path / "complexity.md").read_text()
    assert "Estimated working set" in summary and "Largest square side S within 256 MiB" in summary
    assert f"| AdaIN | {expected.side} |" in summary


def test_largest_needs_the_estimate(tmp_path):
    with pytest.raises(ComplexityError, match="needs estimate_memory"):
        run_complexity(ComplexityConfig(methods=["adain"], sizes=[64], out=tmp_path, estimate_memory=False,
                                        largest_within_mib=100, **FAST))
