"""Benchmark the full forward pass (both VGG encodings + attention + decoder) of each method.

Each (method, size) runs in a fresh subprocess so that its peak memory is its own: CPU peak RSS growth over the
process's state right after the model and inputs were built (``ru_maxrss``), or CUDA max allocated. Protocol: warm-up
runs, then ``--repeats`` (≥ 5) timed runs under ``torch.inference_mode()``; median / p10 / p90 latency.
Weights are random (``init="random"``): speed and memory do not depend on the values (StyA2K has no data-dependent
control flow besides PA's argmax, whose cost does not depend on which block wins).

    python benchmarks/bench_forward.py --methods styA2K,all2all,adain --sizes 256,512,1024 --out results/bench
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import write_report  # benchmarks/report.py (scripts run from this folder)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(method_name: str, size: int, repeats: int, warmup: int, device: str, threads: int | None, options: dict):
    """Run inside the child process; returns one result row."""
    import torch

    import harness

    if threads:
        torch.set_num_threads(threads)
    method = harness.create_method(method_name, init="random", device=device, **options)
    content = torch.rand(1, 3, size, size, device=device)
    style = torch.rand(1, 3, size, size, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    base_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            method.model(content, style)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    if device.startswith("cuda"):
        peak_mib = (torch.cuda.max_memory_allocated() - base_alloc) / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss_kib) / 1024
    return {
        "method": method_name, "size": size, "device": device, "threads": torch.get_num_threads(),
        "repeats": repeats, "warmup": warmup,
        "median_s": statistics.median(times), "p10_s": _percentile(times, 0.1), "p90_s": _percentile(times, 0.9),
        "peak_mem_mib": round(peak_mib, 1), "options": options,
    }


def machine() -> dict:
    from harness.environment import machine_info

    return machine_info()


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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5")
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    if args.child:
        name, size = args.child.rsplit("@", 1)
        print(json.dumps(measure(name, int(size), args.repeats, args.warmup, args.device, args.threads, options)))
        return 0

    rows = []
    for name in args.methods.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            cmd = [sys.executable, __file__, "--child", f"{name}@{size}", "--repeats", str(args.repeats),
                   "--warmup", str(args.warmup), "--device", args.device] + [f"--option={o}" for o in args.option]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                row = {"method": name, "size": size, "error": f"timeout after {args.timeout} s"}
            else:
                if done.returncode == 0:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                else:
                    last = (done.stderr.strip().splitlines() or ["?"])[-1]
                    row = {"method": name, "size": size, "error": "OOM" if "memory" in last.lower() else last}
            rows.append(row)
            if "error" in row:
                print(f"{name:>14} {size:>5}²  {row['error']}", flush=True)
            else:
                print(f"{name:>14} {size:>5}²  median {row['median_s'] * 1000:9.1f} ms  p10 {row['p10_s'] * 1000:9.1f}"
                      f"  p90 {row['p90_s'] * 1000:9.1f}  peak +{row['peak_mem_mib']:8.1f} MiB", flush=True)
    report = {"machine": machine(), "protocol": f"{args.warmup} warm-up + {args.repeats} timed runs, median",
              "rows": rows}
    if args.out:
        write_report(args.out, report, ["method", "size", "median (ms)", "p10", "p90", "peak memory (MiB)"],
                     lambda r: [r["method"], r["size"], f"{r['median_s'] * 1000:.1f}", f"{r['p10_s'] * 1000:.1f}",
                                f"{r['p90_s'] * 1000:.1f}", f"{r['peak_mem_mib']:.0f}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
