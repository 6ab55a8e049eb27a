"""StyA2K's three attention modules of this checkout against those of another revision, in one process.

The other revision's ``methods`` package is imported under another name from a checkout of it (``git worktree add
/tmp/base <rev>``), each module gets the same random weights, and both run on the same random feature maps of a
``--size``² image (relu3_1: 256 ch, block 8; relu4_1: 512 ch, block 8; relu5_1: 512 ch, block 4) in interleaved
rounds (order alternated); the maximum difference of their outputs is printed first. Median and range over
``--repeats`` (≥ 5) rounds after one warm-up each, under ``torch.inference_mode()``.

    git worktree add /tmp/base HEAD~1
    python benchmarks/bench_a2k_revisions.py --baseline /tmp/base --size 512 --repeats 15
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

from methods.a2k import A2KAttention

LAYERS = ((256, 8, 4), (512, 8, 8), (512, 4, 16))
"""(channels, block side, downsampling) of the relu3_1, relu4_1 and relu5_1 modules."""


def import_baseline(checkout: Path):
    """The ``methods.a2k`` module of another checkout, imported as the package ``baseline_methods``."""
    spec = importlib.util.spec_from_file_location("baseline_methods", checkout / "methods" / "__init__.py",
                                                  submodule_search_locations=[str(checkout / "methods")])
    package = importlib.util.module_from_spec(spec)
    sys.modules["baseline_methods"] = package
    spec.loader.exec_module(package)
    return importlib.import_module("baseline_methods.a2k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="checkout of the revision to compare against")
    parser.add_argument("--size", type=int, default=512, help="image side the feature maps belong to (default 512)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (≥ 5; default 15)")
    args = parser.parse_args()
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    baseline = import_baseline(args.baseline.resolve())
    torch.manual_seed(0)
    current, other, inputs = [], [], []
    for channels, side, down in LAYERS:
        module = A2KAttention(channels, side).eval()
        base = baseline.A2KAttention(channels, side).eval()
        base.load_state_dict(module.state_dict())
        current.append(module)
        other.append(base)
        h = args.size // down
        inputs.append((torch.randn(1, channels, h, h), torch.randn(1, channels, h, h)))
    runs = {"this checkout": current, f"baseline {args.baseline}": other}

    def run(modules):
        return [m(fc, fs) for m, (fc, fs) in zip(modules, inputs)]

    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        difference = max((a - b).abs().max().item() for a, b in zip(*(run(m) for m in runs.values())))
        print(f"max |this − baseline| over the three outputs: {difference:.3g}")
        names = list(runs)
        for round_index in range(args.repeats):
            for name in names if round_index % 2 else names[::-1]:
                start = time.perf_counter()
                run(runs[name])
                times[name].append(time.perf_counter() - start)
    print(f"{args.size}², {torch.get_num_threads()} threads, torch {torch.__version__}, {args.repeats} rounds:")
    for name, values in times.items():
        print(f"  {name}: median {statistics.median(values) * 1e3:.1f} ms "
              f"(range {min(values) * 1e3:.1f}–{max(values) * 1e3:.1f})")


if __name__ == "__main__":
    main()
