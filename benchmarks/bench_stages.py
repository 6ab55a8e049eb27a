"""Where the time goes: a StyA2K / all2all forward split into encoder, attention modules and decoder, per backend.

    python benchmarks/bench_stages.py --size 512 --backends sdpa,chunked,naive

Warm-up, then ``--repeats`` (≥ 5) timed runs of each stage under ``torch.inference_mode()``; medians in ms.
Random weights (``init="random"``): timings do not depend on the values.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import harness


def timed(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="styA2K")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--backends", default="sdpa,chunked,naive")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    print(f"{args.method} {args.size}², torch {torch.__version__}, {torch.get_num_threads()} threads; median ms")
    c, s = torch.rand(1, 3, args.size, args.size), torch.rand(1, 3, args.size, args.size)
    for backend in args.backends.split(","):
        net = harness.create_method(args.method, init="random", attention_backend=backend).model
        with torch.inference_mode():
            fc, fs = net.encode(c), net.encode(s)
            tr = net.transform
            stages = {
                "encode both": lambda: (net.encode(c), net.encode(s)),
                "attention relu3_1": lambda: net.A2K(fc["relu3_1"], fs["relu3_1"]),
                "attention relu4_1": lambda: tr.attn_adain_4_1(fc["relu4_1"], fs["relu4_1"]),
                "attention relu5_1": lambda: tr.attn_adain_5_1(fc["relu5_1"], fs["relu5_1"]),
            }
            features = net.transfer(fc, fs)
            stages["merge + decode"] = lambda: (tr.merge_conv(tr.merge_conv_pad(fc["relu4_1"])),
                                                net.decode(features, (args.size, args.size)))
            stages["full forward"] = lambda: net(c, s)
            times = {name: timed(fn, args.repeats) for name, fn in stages.items()}
        attention = sum(v for k, v in times.items() if k.startswith("attention"))
        print(f"[{backend}] " + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
              + f"; attention share {attention / times['full forward']:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
