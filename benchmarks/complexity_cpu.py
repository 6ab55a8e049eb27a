"""The complexity study as measured for results/complexity_cpu/ on a 2-core CPU, in three phases so that it fits in
about an hour: every method and ablation at 256² and 512² and the three methods at 768² and 1024² with the full
protocol (1 warm-up, 5 timed runs, median), then 1536² and 2048² with ONE timed run each (marked by repeats = 1 in
complexity.csv) and a 1000 s limit per cell (400 s for all2all at 2048²). On a machine with time to spare, run studies/complexity.yaml instead.

    python benchmarks/complexity_cpu.py [--out results/complexity_cpu]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.complexity import ComplexityConfig, run_complexity

ALL = ["styA2K", "styA2K-noDA", "styA2K-noPA", "styA2K-noPA1", "styA2K-1head", "all2all", "adain"]
MAIN = ["styA2K", "all2all", "adain"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/complexity_cpu"))
    args = parser.parse_args()
    common = dict(out=args.out, min_fit_size=512, ratio_pairs=[["all2all", "styA2K"]], attention_repeats=1)
    phases = [
        ComplexityConfig(methods=ALL, sizes=[256, 512], repeats=5, warmup=1, **common),
        ComplexityConfig(methods=MAIN, sizes=[256, 512, 768, 1024], repeats=5, warmup=1, **common),
        ComplexityConfig(methods=MAIN, sizes=[1536], repeats=1, warmup=0, max_seconds=1000, **common),
        ComplexityConfig(methods=["styA2K", "adain"], sizes=[2048], repeats=1, warmup=0, max_seconds=1000, **common),
        # all2all at 1536² took 243 s per forward, so 2048² (≈ 3× the attention work) cannot finish its forwards in
        # 400 s: recorded as a timeout rather than spending the 20 min.
        ComplexityConfig(methods=["all2all"], sizes=[2048], repeats=1, warmup=0, max_seconds=400, **common),
    ]
    for config in phases:  # each phase skips the cells an earlier one measured
        frame = run_complexity(config)
    print(frame.to_string())


if __name__ == "__main__":
    main()
