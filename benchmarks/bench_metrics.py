"""Benchmark the cost of each metric per pair, and CFSD's peak memory against the materialised reference.

Per metric: warm-up, then ``--repeats`` (≥ 5) timed calls on one seeded random (output, content, style) triple at
``--size``² (median / p10 / p90), its network built with ``init="random"`` (cost does not depend on the weights).
FID and ArtFID are set-level: their per-pair cost is one Inception forward of the output (the style image's features
are computed once per style and reused); the Fréchet distance itself is timed on 300 × 2048 features.

CFSD memory: each measurement runs in a fresh Python process, which
loads precomputed relu3_1 features (random VGG-19, scaled to trained-VGG magnitudes), then samples its resident set
(``/proc/self/statm``, every millisecond) during the CFSD call; reported is the peak over the resident set before it. ``chunked`` is :func:`metrics.cfsd.cfsd_from_features` (64 MiB per step),
``materialised`` the reference's full (HW)² matrices.

    python benchmarks/bench_metrics.py --size 512 --repeats 5 --out results/bench_metrics_cpu
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from harness.environment import machine_info

_MEMORY_CHILD = r"""
import os, sys, threading, time, torch, torch.nn.functional as F
from metrics.cfsd import cfsd_from_features
path, mode = sys.argv[1], sys.argv[2]
out, con = torch.load(path)
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
peak, running = [0], [True]
def sample():
    while running[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.001)
with torch.inference_mode():
    before = rss()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if mode == "chunked":
        value = cfsd_from_features(out, con).item()
    else:  # StyleID's PatchSimi: the whole (HW)² similarity matrices, float32
        def rows(x, log):
            b, c, h, w = x.shape
            f = torch.transpose(x, 1, 3).reshape(b, h * w, c).div(c)
            s = torch.bmm(f, torch.transpose(f, 1, 2))
            return (F.log_softmax(s, dim=-1) if log else F.softmax(s, dim=-1)).reshape(b, -1)
        value = F.kl_div(rows(out, True), rows(con, False), reduction="batchmean").item()
    running[0] = False
    sampler.join()
print((peak[0] - before) / 2**20, value)
"""


def _time(fn, repeats: int, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    runs.sort()
    return {"median_s": statistics.median(runs), "p10_s": runs[max(0, int(0.1 * len(runs)))],
            "p90_s": runs[min(len(runs) - 1, int(0.9 * len(runs)))], "repeats": repeats}


def per_pair_costs(size: int, repeats: int) -> dict[str, dict[str, float]]:
    from methods.weights import Loading
    from metrics.collection import build_metrics
    from metrics.fid import frechet_distance
    from metrics.inception import load_art_inception, load_fid_inception

    loading = Loading(init="random", download=False)
    generator = torch.Generator().manual_seed(0)
    output, content, style = (torch.rand(1, 3, size, size, generator=generator) for _ in range(3))
    suite = build_metrics(["content_loss", "style_loss", "lpips", "ssim", "cfsd", "gram_loss"], loading)
    costs = {}
    with torch.inference_mode():
        for name, metric in [("lpips", suite.lpips), *suite.others.items()]:
            costs[name] = _time(lambda m=metric: m.values(output, content, style), repeats)
        keys = [("content", "style")]
        suite.update(output, content, style, keys)  # keeps the content's LPIPS side, as in a run
        costs["lpips (in a run: content side kept)"] = _time(lambda: suite.lpips_values(output, content, keys), repeats)
        encoder = suite.content_style.cache.encoder
        costs["content_loss+style_loss"] = _time(
            lambda: encoder(output, {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}), repeats)
        fid_net, _ = load_fid_inception(loading)
        costs["fid (per pair: one Inception forward)"] = _time(lambda: fid_net(output), repeats)
        art_net, _ = load_art_inception(loading)
        costs["artfid (per pair: Inception at native size)"] = _time(lambda: art_net(output), repeats)
        a, b = torch.randn(300, 2048, dtype=torch.float64), torch.randn(300, 2048, dtype=torch.float64)
        costs["Fréchet distance, 300 × 2048 (once per method)"] = _time(lambda: frechet_distance(a, b), repeats)
    return costs


def cfsd_memory(sizes: list[int], folder: Path, memory_limit_gib: float) -> list[dict]:
    """CFSD's peak-RSS growth per size and implementation, each in a fresh process that loads precomputed relu3_1
    features (so the VGG forward's own peak does not hide the metric's); the reference is skipped where its four
    (HW)² float32 matrices alone would exceed ``memory_limit_gib``."""
    from torchvision import models

    rows = []
    torch.manual_seed(0)
    vgg = models.vgg19(weights=None).features[:12].eval()
    for size in sizes:
        with torch.inference_mode():
            features = [vgg(torch.rand(1, 3, size, size)) * 30 for _ in range(2)]  # ~relu3_1 magnitudes of trained VGG
        path = folder / f"features_{size}.pt"
        torch.save(features, path)
        for mode in ("chunked", "materialised"):
            needed_gib = 4 * (size // 4) ** 4 * 4 / 2**30
            if mode == "materialised" and needed_gib > memory_limit_gib:
                rows.append({"size": size, "mode": mode, "error": f"not run: needs ≥ {needed_gib:.0f} GiB"})
                continue
            done = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(path), mode], capture_output=True,
                                  text=True, cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                rows.append({"size": size, "mode": mode, "error": f"exit {done.returncode} (killed: out of memory?)"})
                continue
            growth, value = done.stdout.split()
            rows.append({"size": size, "mode": mode, "peak_growth_mib": round(float(growth), 1), "cfsd": float(value)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-sizes", default="512,1024")
    parser.add_argument("--memory-limit-gib", type=float, default=18.0,
                        help="skip the materialised reference where it alone needs more (default 18)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    report = {"machine": machine_info(), "torch_threads": torch.get_num_threads(), "size": args.size,
              "per_pair": per_pair_costs(args.size, args.repeats),
              "cfsd_memory": None}
    with tempfile.TemporaryDirectory() as folder:
        report["cfsd_memory"] = cfsd_memory([int(s) for s in args.memory_sizes.split(",")], Path(folder),
                                            args.memory_limit_gib)
    for name, cost in report["per_pair"].items():
        print(f"{name:50s} {cost['median_s'] * 1e3:9.1f} ms (p10 {cost['p10_s'] * 1e3:.1f}, p90 {cost['p90_s'] * 1e3:.1f})")
    for row in report["cfsd_memory"]:
        print(f"CFSD {row['size']}² {row['mode']:12s} " + (f"+{row['peak_growth_mib']} MiB peak RSS, value "
                                                          f"{row['cfsd']:.6g}" if "error" not in row else str(row["error"])))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench_metrics.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
