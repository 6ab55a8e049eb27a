"""Benchmark training throughput (images/s) per method and precision.

One training step = what ``harness.train`` does per batch: zero_grad → ``model.training_loss`` (VGG encodings,
the method's forward, the loss terms) under the run's autocast → backward → Adam step. Inputs are random crops
(``--crop``, default 256, the official training crop) in a batch of ``--batch-size`` (default 8, the official batch);
data loading is not timed (the training loop overlaps it with ``--workers``). Weights are random (``init="random"``):
the cost does not depend on their values.

Each (method, precision) runs in a fresh subprocess: ``--warmup`` steps, then ``--steps`` (≥ 5) timed steps; the
median step time gives images/s = batch / median. Precisions: ``fp32`` and ``bf16`` (autocast; CPU or CUDA), and
``fp16`` (CUDA only, with a GradScaler, as in training).

    python benchmarks/bench_train.py --methods styA2K,all2all,adain --precisions fp32,bf16 --out results/bench_train
    python benchmarks/bench_train.py --methods styA2K-noPA --batch-size 2 --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import write_report  # benchmarks/report.py (scripts run from this folder)


def measure(method_name: str, precision: str, crop: int, batch: int, steps: int, warmup: int, device: str,
            threads: int | None) -> dict:
    """Run inside the child process; returns one result row."""
    import torch

    import harness
    from harness.train import LossModule, _autocast

    if threads:
        torch.set_num_threads(threads)
    method = harness.create_method(method_name, init="random", device=device, download=False)
    model = method.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    weights = dict(method.info.recipe.loss_weights)
    runner = LossModule(model, weights)
    optimizer = torch.optim.Adam(params, lr=method.info.recipe.lr, betas=tuple(method.info.recipe.betas))
    amp = {"fp32": "off"}.get(precision, precision)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=amp == "fp16")
    generator = torch.Generator().manual_seed(0)
    content = torch.rand(batch, 3, crop, crop, generator=generator).to(device)
    style = torch.rand(batch, 3, crop, crop, generator=generator).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times, last = [], {}
    for i in range(warmup + steps):
        sync()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with _autocast(amp, torch.device(device)):
            terms = runner(content, style)
        scaler.scale(terms["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        sync()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
        last = {k: float(v.detach()) for k, v in terms.items()}
    median = statistics.median(times)
    row = {
        "method": method_name, "precision": precision, "crop": crop, "batch": batch, "device": device,
        "threads": torch.get_num_threads(), "warmup": warmup, "steps": steps,
        "median_step_s": median, "min_step_s": min(times), "max_step_s": max(times),
        "images_per_s": batch / median, "final_terms": last,
    }
    if device.startswith("cuda"):
        row["peak_mem_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return row


def machine() -> dict:
    from harness.environment import machine_info

    return machine_info()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="styA2K,all2all,adain", help="comma-separated method names")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated: fp32, bf16, fp16 (CUDA)")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (≥ 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per (method, precision) before giving up")
    parser.add_argument("--out", type=Path, default=None, help="folder for bench.json and bench.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 5:
        parser.error("--steps must be at least 5")
    if args.child:
        name, precision = args.child.rsplit("@", 1)
        row = measure(name, precision, args.crop, args.batch_size, args.steps, args.warmup, args.device, args.threads)
        print(json.dumps(row))
        return 0

    info = machine()
    print(f"machine: {json.dumps(info)}", flush=True)
    rows = []
    for name in args.methods.split(","):
        for precision in args.precisions.split(","):
            cmd = [sys.executable, __file__, "--child", f"{name}@{precision}", "--crop", str(args.crop),
                   "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                                      env=dict(os.environ, HARNESS_OFFLINE="1"))
            except subprocess.TimeoutExpired:
                row = {"method": name, "precision": precision, "error": f"timeout after {args.timeout} s"}
            else:
                if done.returncode == 0:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                else:
                    last = (done.stderr.strip().splitlines() or ["?"])[-1]
                    row = {"method": name, "precision": precision, "error": last}
            rows.append(row)
            if "error" in row:
                print(f"{name:>14} {precision:>5}  {row['error']}", flush=True)
            else:
                print(f"{name:>14} {precision:>5}  crop {row['crop']} batch {row['batch']}  median step "
                      f"{row['median_step_s']:8.3f} s  ({row['min_step_s']:.3f}–{row['max_step_s']:.3f})  "
                      f"{row['images_per_s']:8.2f} img/s", flush=True)
    report = {"machine": info, "protocol": f"{args.warmup} warm-up + {args.steps} timed training steps, median; "
              "random inputs, data loading not timed", "rows": rows}
    if args.out:
        write_report(args.out, report, ["method", "precision", "crop", "batch", "median step (s)", "images/s"],
                     lambda r: [r["method"], r["precision"], r["crop"], r["batch"], f"{r['median_step_s']:.3f}",
                                f"{r['images_per_s']:.2f}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
