"""High-resolution stylisation on this machine: one content of W×H with a style of S², peak memory and wall time.

Each (method, content, style) runs in a fresh worker process of :mod:`harness.complexity` (the complexity study's
measurement: on a CPU the working set of one forward, i.e. the resident-set high-water growth over the worker's state
after the model and the inputs, under exact heap mapping; on CUDA max allocated), so its memory is its own. At these
sizes one forward takes minutes on a CPU, so the default is one warm-up-free timed forward (``--repeats 1``) and the
table says so; memory does not depend on the repeat count. Random weights: speed and memory do not depend on the values.

    python benchmarks/bench_highres.py --methods styA2K --contents 3840x2160,7680x4320 --style 1024 \\
        --out results/bench_highres_cpu
"""
from __future__ import annotations

import argparse
from pathlib import Path

from report import write_report  # benchmarks/report.py (scripts run from this folder)

from harness.complexity import Cell, run_cell
from harness.environment import machine_info


def parse_size(text: str) -> tuple[int, int]:
    """'3840x2160' → (width 3840, height 2160)."""
    width, _, height = text.lower().partition("x")
    return int(width), int(height or width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="styA2K", help="comma-separated method names (default styA2K)")
    parser.add_argument("--contents", default="3840x2160", help="content sizes WxH, comma-separated")
    parser.add_argument("--style", type=int, default=1024, help="square style side (default 1024)")
    parser.add_argument("--repeats", type=int, default=1, help="timed forwards per case (default 1)")
    parser.add_argument("--max-memory-mib", type=float, help="memory cap per case (recorded as OOM above it)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per case (default 3600)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="write bench.json and bench.md here")
    args = parser.parse_args()
    rows = []
    for method in args.methods.split(","):
        for text in args.contents.split(","):
            width, height = parse_size(text)
            cell = Cell(method, args.style, "fp32", args.device, repeats=args.repeats, warmup=0,
                        content_size=(height, width), max_memory_mib=args.max_memory_mib,
                        attention_repeats=0, count_flops=False)
            result = run_cell(cell, args.timeout)
            row = {"method": method, "content": f"{width}×{height}", "style": f"{args.style}²"}
            if result["status"] != "ok":
                row["error"] = {"oom": "OOM", "timeout": f"timeout after {args.timeout:.0f} s"}.get(
                    result["status"], result.get("error") or result["status"])
            else:
                row.update(seconds=result["latency_ms"] / 1e3, peak_memory_mib=result["peak_memory_mib"],
                       baseline_memory_mib=result["baseline_memory_mib"], memory_kind=result["memory_kind"],
                       threads=result["threads"])
            print(row, flush=True)
            rows.append(row)
    protocol = (f"one fresh worker per case; {args.repeats} timed forward(s) without warm-up after a 64² priming "
                "forward; random weights; forward's peak memory = its own working set (see memory_kind); process peak RSS = that "
                "plus the worker's resident state before it (torch, weights, inputs)")
    header = ["method", "content", "style", "seconds", "forward's peak memory (MiB)", "process peak RSS (MiB)"]
    cells = lambda row: [row["method"], row["content"], row["style"], f"{row['seconds']:.1f}",  # noqa: E731
                         f"{row['peak_memory_mib']:.0f}", f"{row['peak_memory_mib'] + row['baseline_memory_mib']:.0f}"]
    if args.out:
        write_report(args.out, {"machine": machine_info(), "protocol": protocol, "rows": rows}, header, cells)


if __name__ == "__main__":
    main()
