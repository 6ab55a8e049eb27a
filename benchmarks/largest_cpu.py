"""The largest square image each method stylises within 16 GiB, on a 2-core CPU, as committed in results/largest_cpu/.

Running every method up to its limit here takes many hours (all2all's and StyTr²'s attention is quadratic: a
2048² all2all forward is ~20 min), so the limit comes from the traced working-set estimate
(:mod:`harness.complexity.estimate`, seconds per size, nothing computed) and the estimate is checked against the
measured working set where a measurement is affordable: every method at 512² and 1024², and the five methods whose
forward takes minutes, not tens of minutes, at 2048². Each measured cell runs in a fresh worker (one forward for
the working set, one timed forward: read the latency as an order of magnitude). On a GPU, or with hours to spare,
run studies/highres.yaml instead, which measures the large sizes themselves.

With ``--verify MicroAST`` (a comma list) the methods named are then also measured at the side found for them,
so the estimate is checked at the limit itself, not only below it (MicroAST's forward is seconds at 1024², so its
limit is affordable here); largest.csv then compares with those cells.

    python benchmarks/largest_cpu.py [--out results/largest_cpu] [--budget-mib 16384] [--verify MicroAST]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.complexity import ComplexityConfig, run_complexity
from harness.complexity.estimate import estimate_working_set, largest_square_side
from methods import create_method

ALL = ["styA2K", "all2all", "AdaAttN", "SANet", "StyTr2", "MicroAST", "adain"]
AT_2048 = ["styA2K", "AdaAttN", "SANet", "MicroAST", "adain"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/largest_cpu"))
    parser.add_argument("--budget-mib", type=float, default=16384)
    parser.add_argument("--verify", default="", help="comma list of methods to measure at their largest side too")
    args = parser.parse_args()
    common = dict(out=args.out, repeats=1, warmup=0, attention_repeats=0, count_flops=False, worker="cell",
                  max_seconds=1800, ratio_pairs=[["all2all", "styA2K"]])
    run_complexity(ComplexityConfig(methods=AT_2048, sizes=[512, 1024, 2048], **common))
    run_complexity(ComplexityConfig(methods=ALL, sizes=[512, 1024], **common))
    for method in [m for m in args.verify.split(",") if m]:
        model = create_method(method, init="random", seed=0).model
        side = largest_square_side(lambda s: estimate_working_set(model, (1, 3, s, s)).peak_mib, args.budget_mib).side
        run_complexity(ComplexityConfig(methods=[method], sizes=[side], **common))
    # every cell kept; the estimates recomputed; the largest side of all seven methods searched (largest.csv) and
    # compared with each method's largest measured size
    frame = run_complexity(ComplexityConfig(methods=ALL, sizes=[512, 1024], largest_within_mib=args.budget_mib,
                                            **common))
    print(frame[["method", "size", "status", "latency_ms", "peak_memory_mib", "estimated_memory_mib"]].to_string())
    print((args.out / "largest.csv").read_text())


if __name__ == "__main__":
    main()
