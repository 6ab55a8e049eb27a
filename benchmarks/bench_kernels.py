"""Kernel options for StyA2K's forward on this machine: channels_last, bf16 autocast, torch.compile, and the network
with its three attention modules replaced by identity (the floor the attention overhead is measured against).

All variants live in one process and are timed in interleaved rounds (variant order rotated every round), so slow
drift of a shared machine spreads over all of them; each variant gets one warm-up forward first (for
``torch.compile``, the compile itself and a second warm-up). Latency: median over ``--repeats`` (≥ 5) rounds of the
full forward (both VGG encodings, attention, decoder) under ``torch.inference_mode()``, random weights, square
content and style of ``--size``.

``--real-weights DIR`` also measures what bf16 autocast costs in accuracy on the real official path that exists
here: ``vgg_r31.pth`` (VGG-19 up to relu3_1) and ``latest_net_A2K.pth`` (the relu3_1 A2K module) on the eval images,
relative to the fp32 result: relative L2 error ‖bf16 − fp32‖ / ‖fp32‖ and max |bf16 − fp32| / std(fp32).

    python benchmarks/bench_kernels.py --size 512 --repeats 5 --real-weights ../shared/assets/weights \\
        --images ../shared/assets/images/eval/stya2k --out results/bench_kernels_cpu

On a CPU without native bf16 (no AVX512-BF16 / AMX) bf16 autocast is emulated and two orders of magnitude slower
than fp32 (measured on the 2-core EPYC here: 9.35 s vs 0.09 s, ≈100×, at 64²): time it at a small ``--size`` only, and pass ``--no-bf16``
for the large sizes; ``--error-size`` sets the side of the bf16 error measurement apart from ``--size``.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from report import write_report  # benchmarks/report.py (scripts run from this folder)

from harness.environment import machine_info
from methods import create_method


class IdentityAttention(nn.Module):
    """Stands in for an attention module: returns the content feature (the residual path alone)."""

    def forward(self, fc: Tensor, fs: Tensor) -> Tensor:
        return fc


def build_variants(size: int, compile_model: bool, bf16: bool = True,
                   channels_last: bool = True) -> dict[str, Callable[[], Tensor]]:
    """Variant name → a zero-argument forward, each on its own copy of the same seeded network and inputs."""
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, size, size, generator=generator)
    style = torch.rand(1, 3, size, size, generator=generator)

    def network() -> nn.Module:
        return create_method("styA2K", init="random", seed=0).model.eval()

    def run(model: nn.Module, c: Tensor, s: Tensor, autocast: bool = False) -> Callable[[], Tensor]:
        def forward() -> Tensor:
            with torch.inference_mode(), (torch.autocast("cpu", dtype=torch.bfloat16) if autocast
                                          else contextlib.nullcontext()):
                return model(c, s)
        return forward

    variants = {"fp32": run(network(), content, style)}
    last = torch.channels_last
    if channels_last:
        variants["fp32 channels_last"] = run(network().to(memory_format=last), content.contiguous(memory_format=last),
                                             style.contiguous(memory_format=last))
    if bf16:
        variants["bf16 autocast"] = run(network(), content, style, autocast=True)
    if compile_model:
        variants["fp32 torch.compile"] = run(torch.compile(network()), content, style)
    def without_attention() -> nn.Module:
        identity = network()
        identity.A2K = IdentityAttention()
        identity.transform.attn_adain_4_1 = IdentityAttention()
        identity.transform.attn_adain_5_1 = IdentityAttention()
        return identity

    variants["fp32, attention = identity"] = run(without_attention(), content, style)
    if channels_last:
        variants["fp32 channels_last, attention = identity"] = run(
            without_attention().to(memory_format=last), content.contiguous(memory_format=last),
            style.contiguous(memory_format=last))
    return variants


def time_variants(variants: dict[str, Callable[[], Tensor]], repeats: int) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for name, forward in variants.items():
        start = time.perf_counter()
        forward()
        warm = time.perf_counter() - start
        if "compile" in name:
            forward()
        rows[name] = {"variant": name, "first_call_s": warm, "times_s": []}
    names = list(variants)
    for round_index in range(repeats):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            start = time.perf_counter()
            variants[name]()
            rows[name]["times_s"].append(time.perf_counter() - start)
        print(f"round {round_index + 1}/{repeats}: " + ", ".join(
            f"{n} {rows[n]['times_s'][-1]:.2f} s" for n in names), flush=True)
    for row in rows.values():
        row["median_s"] = statistics.median(row["times_s"])
    for name, row in rows.items():  # each layout against the identity network of the same layout
        floor = "fp32 channels_last, attention = identity" if "channels_last" in name else "fp32, attention = identity"
        row["vs_identity"] = row["median_s"] / rows[floor]["median_s"]
    return rows


def bf16_error(weights: Path, images: Path, size: int) -> dict:
    """bf16-autocast error of the real relu3_1 path (vgg_r31.pth + latest_net_A2K.pth) against fp32."""
    from harness.images import load_image_tensor
    from methods.a2k import A2KAttention
    from methods.weights import load_state_dict
    from methods.vgg import VGGEncoder, map_vgg_r31_state_dict

    encoder = VGGEncoder()
    encoder.layers.load_state_dict(
        map_vgg_r31_state_dict(load_state_dict(weights / "vgg19_normalised_upto_relu3_1" / "vgg_r31.pth")), strict=False)
    module = A2KAttention(256, 8)
    module.load_state_dict(load_state_dict(weights / "StyA2K" / "latest_net_A2K.pth"))
    contents = sorted((images / "content").glob("*"))[:5]
    styles = sorted((images / "style").glob("*"))[:5]
    relative, worst = [], []
    for content_path, style_path in zip(contents, styles):
        c = load_image_tensor(content_path, size=size)
        s = load_image_tensor(style_path, size=size)
        with torch.inference_mode():
            reference = module(encoder(c, ["relu3_1"])["relu3_1"], encoder(s, ["relu3_1"])["relu3_1"])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = module(encoder(c, ["relu3_1"])["relu3_1"], encoder(s, ["relu3_1"])["relu3_1"]).float()
        relative.append(((low - reference).norm() / reference.norm()).item())
        worst.append(((low - reference).abs().max() / reference.std()).item())
    return {"pairs": len(relative), "size": size, "relative_l2_median": statistics.median(relative),
            "relative_l2_max": max(relative), "max_abs_over_std_max": max(worst)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="square content and style side (default 512)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (≥ 5; default 5)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--no-bf16", action="store_true", help="skip timing the bf16-autocast variant")
    parser.add_argument("--no-channels-last", action="store_true",
                        help="skip the channels_last variants (e.g. at 2048², where each forward takes a minute)")
    parser.add_argument("--error-size", type=int, help="side of the bf16 error measurement (default: --size)")
    parser.add_argument("--real-weights", type=Path, help="folder with vgg19_normalised_upto_relu3_1/ and StyA2K/")
    parser.add_argument("--images", type=Path, help="folder with content/ and style/ for the bf16 error")
    parser.add_argument("--out", type=Path, help="write bench.json and bench.md here")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    rows = time_variants(build_variants(args.size, not args.no_compile, not args.no_bf16, not args.no_channels_last),
                         args.repeats)
    error_size = args.error_size or args.size
    error = bf16_error(args.real_weights, args.images, error_size) if args.real_weights and args.images else None
    machine = machine_info()
    protocol = (f"StyA2K, random weights, {args.size}² content and style, one process, {args.repeats} interleaved "
                f"rounds after one warm-up per variant, median; torch {torch.__version__}, "
                f"{torch.get_num_threads()} threads")
    header = ["variant", "median (s)", "× identity-attention net (same layout)", "first call (s)"]
    cells = lambda row: [row["variant"], f"{row['median_s']:.2f}", f"{row['vs_identity']:.3f}",  # noqa: E731
                         f"{row['first_call_s']:.1f}"]
    print(" | ".join(header))
    for row in rows.values():
        print(" | ".join(cells(row)))
    if error:
        protocol += (f". bf16 autocast error on the real relu3_1 path (vgg_r31.pth + latest_net_A2K.pth, "
                     f"{error['pairs']} eval pairs at {error['size']} px): relative L2 median "
                     f"{error['relative_l2_median']:.2e}, max {error['relative_l2_max']:.2e}; max |error| / std "
                     f"{error['max_abs_over_std_max']:.2e}")
    print(protocol)
    if args.out:
        write_report(args.out, {"machine": machine, "protocol": protocol, "size": args.size,
                                "rows": list(rows.values()), "bf16_error": error}, header, cells)

if __name__ == "__main__":
    main()
