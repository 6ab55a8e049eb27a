"""Benchmark the main job: a Table-1-shaped run (contents × styles × methods, the paper's metrics) with the encoding
cache off (both images encoded for every pair) and on (each method encodes each image once), in one process.

Prints, per setting, the seconds per output of the stylise stage and of the metrics stage, the harness overhead share
((metrics + image I/O) / stylise) and the stylise speed-up of reuse. Protocol: one warm-up job (untimed), then
``--repeats`` jobs per setting, alternating off / on so that drift hits both alike; medians over the repeats. Weights
are random (``init="random"``): speed does not depend on the values, and the outputs of both settings are checked to
be identical. The timing rows (a separate full forward per method) are not part of the job.

    python benchmarks/bench_run.py                                  # 5 × 5 × styA2K, adain, all2all at 512²
    python benchmarks/bench_run.py --size 256 --contents 3 --styles 3 --out results/bench_run_cpu
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from report import write_report  # benchmarks/report.py (scripts run from this folder)

from harness.environment import machine_info
from harness.images import list_images
from harness.run import RunConfig, execute_run

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "images" / "eval" / "stya2k"


def job(args: argparse.Namespace, contents: list[str], styles: list[str], budget: float, out: Path) -> dict:
    config = RunConfig(methods=args.methods, content=contents, style=styles, size=args.size, init="random",
                       metrics=["content_loss", "style_loss", "lpips"], out=out, force=True, progress=False,
                       report=False, feature_cache_mib=budget, device=args.device)
    summary = execute_run(config)
    outputs = summary["computed"]
    seconds = summary["seconds"]
    return {"stylise_s_per_output": seconds["stylize"] / outputs, "metrics_s_per_output": seconds["metrics"] / outputs,
            "io_s_per_output": seconds["io"] / outputs, "outputs": outputs, "encodings": summary["encodings"],
            "metrics_csv": (out / "metrics.csv").read_text()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="styA2K,adain,all2all")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--contents", type=int, default=5)
    parser.add_argument("--styles", type=int, default=5)
    parser.add_argument("--content-dir", type=Path, default=ASSETS / "content")
    parser.add_argument("--style-dir", type=Path, default=ASSETS / "style")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-mib", type=float, default=1024, help="feature_cache_mib of the reuse setting")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="folder for bench.json / bench.md")
    args = parser.parse_args()
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    contents = [str(p) for p in list_images([str(args.content_dir)])[:args.contents]]
    styles = [str(p) for p in list_images([str(args.style_dir)])[:args.styles]]
    results: dict[str, list[dict]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        job(args, contents[:1], styles[:1], args.budget_mib, Path(tmp) / "warmup")
        for repeat in range(args.repeats):
            for setting, budget in (("off", 0), ("on", args.budget_mib)):
                results[setting].append(job(args, contents, styles, budget, Path(tmp) / f"{setting}-{repeat}"))
    identical = all(r["metrics_csv"] == results["off"][0]["metrics_csv"] for rs in results.values() for r in rs)
    rows = []
    for setting, runs in results.items():
        median = {k: statistics.median(r[k] for r in runs)
                  for k in ("stylise_s_per_output", "metrics_s_per_output", "io_s_per_output")}
        overhead = (median["metrics_s_per_output"] + median["io_s_per_output"]) / median["stylise_s_per_output"]
        rows.append({"method": f"reuse {setting}", **median, "overhead_share": overhead,
                     "hit_rate": runs[-1]["encodings"].get("hit_rate", 0.0)})
    speedup = rows[0]["stylise_s_per_output"] / rows[1]["stylise_s_per_output"]
    protocol = (f"{len(contents)} contents × {len(styles)} styles × {', '.join(args.methods)} at {args.size}², "
                f"random weights, metrics content_loss, style_loss, lpips; 1 warm-up job, {args.repeats} jobs per "
                f"setting alternating, medians; reuse budget {args.budget_mib:g} MiB; metrics.csv identical across "
                f"settings: {identical}; stylise speed-up {speedup:.2f}×")
    for row in rows:
        print(f"{row['method']}: stylise {row['stylise_s_per_output']:.3f} s/output, metrics "
              f"{row['metrics_s_per_output']:.3f} s/output, io {row['io_s_per_output']:.3f} s/output, overhead "
              f"{100 * row['overhead_share']:.0f} %, cache hit rate {100 * row['hit_rate']:.0f} %")
    print(protocol)
    if args.out is not None:
        write_report(args.out, {"machine": machine_info(), "protocol": protocol, "speedup": speedup,
                                "identical": identical, "rows": rows},
                     ["setting", "stylise s/output", "metrics s/output", "I/O s/output", "overhead", "hit rate"],
                     lambda r: [r["method"], f"{r['stylise_s_per_output']:.3f}", f"{r['metrics_s_per_output']:.3f}",
                                f"{r['io_s_per_output']:.3f}", f"{100 * r['overhead_share']:.0f} %",
                                f"{100 * r['hit_rate']:.0f} %"])


if __name__ == "__main__":
    main()
