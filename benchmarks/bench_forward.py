"""Benchmark the full forward pass (both VGG encodings + attention + decoder) of each method.

Each (method, size) runs in a fresh worker process of :mod:`harness.complexity` (:func:`harness.complexity.run_cell`,
the same measurement as the complexity study, without its FLOP count and attention timing), so that its peak memory
is its own: CPU resident-set high-water growth over the worker's state after the model, the inputs and one priming
forward at 64² (the high-water mark is reset first), or CUDA max allocated over the resident weights and inputs.
Protocol: warm-up runs, then ``--repeats`` (≥ 5) timed runs under ``torch.inference_mode()``; median / p10 / p90
latency. Weights are random (``init="random"``): speed and memory do not depend on the values (StyA2K has no
data-dependent control flow besides PA's argmax, whose cost does not depend on which block wins). A size that runs
out of memory is reported as ``OOM``. For the whole size sweep with FLOPs, Eq. 15 and plots use the complexity study
(``studies/complexity.yaml``).

    python benchmarks/bench_forward.py --methods styA2K,all2all,adain --sizes 256,512,1024 --out results/bench
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from report import write_report  # benchmarks/report.py (scripts run from this folder)

from harness.complexity import Cell, run_cell
from harness.environment import machine_info


def measure(method_name: str, size: int, repeats: int, warmup: int, device: str, threads: int | None,
            options: dict, timeout: float | None = None) -> dict:
    """One (method, size) in a fresh worker; returns a result row (``error`` set when it did not run)."""
    cell = Cell(method_name, size, "fp32", device, repeats, warmup, options=options, threads=threads,
                attention_repeats=0, count_flops=False)
    result = run_cell(cell, timeout)
    status = result["status"]
    if status != "ok":
        error = {"oom": "OOM", "timeout": f"timeout after {timeout} s"}.get(status, status)
        return {"method": method_name, "size": size, "error": error}
    return {
        "method": method_name, "size": size, "device": device, "threads": result["threads"],
        "repeats": repeats, "warmup": warmup, "median_s": result["latency_ms"] / 1e3,
        "p10_s": result["p10_ms"] / 1e3, "p90_s": result["p90_ms"] / 1e3,
        "peak_mem_mib": round(result["peak_memory_mib"], 1), "memory_kind": result["memory_kind"], "options": options,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="styA2K,all2all,adain")
    parser.add_argument("--sizes", default="256,512,1024")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--option", action="append", default=[], help="KEY=VALUE method option (JSON value)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per (method, size) before giving up")
    parser.add_argument("--out", type=Path, default=None, help="folder for bench.json and bench.md")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}

    rows = []
    for name in args.methods.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(name, size, args.repeats, args.warmup, args.device, args.threads, options, args.timeout)
            rows.append(row)
            if "error" in row:
                print(f"{name:>14} {size:>5}²  {row['error']}", flush=True)
            else:
                print(f"{name:>14} {size:>5}²  median {row['median_s'] * 1000:9.1f} ms  p10 {row['p10_s'] * 1000:9.1f}"
                      f"  p90 {row['p90_s'] * 1000:9.1f}  peak +{row['peak_mem_mib']:8.1f} MiB", flush=True)
    report = {"machine": machine_info(), "protocol": f"{args.warmup} warm-up + {args.repeats} timed runs, median",
              "rows": rows}
    if args.out:
        write_report(args.out, report, ["method", "size", "median (ms)", "p10", "p90", "peak memory (MiB)"],
                     lambda r: [r["method"], r["size"], f"{r['median_s'] * 1000:.1f}", f"{r['p10_s'] * 1000:.1f}",
                                f"{r['p90_s'] * 1000:.1f}", f"{r['peak_mem_mib']:.0f}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
