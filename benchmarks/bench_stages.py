"""Where the time goes: a StyA2K / all2all forward split into encoder, attention modules and decoder, per backend.

    python benchmarks/bench_stages.py --size 512 --backends sdpa,chunked,naive

One warm-up, then ``--repeats`` (≥ 5) full forwards under ``torch.inference_mode()`` with forward hooks on each stage
(:func:`harness.complexity.time_modules`, the complexity study's attention timing): per stage the median over the runs
of the time spent inside it (the encoder runs twice per forward, content and style: both count), the median full
forward, and the attention share = median over runs of (time inside the attention modules / forward time).
"other" (median over runs) is the forward time outside the hooked stages (input checks, the relu5_1 upsample and
sum). Random weights (``init="random"``): timings do not depend on the values.
"""
from __future__ import annotations

import argparse

import torch

import harness
from harness.complexity import ATTENTION_LAYER_PATHS, attention_modules, time_modules


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
        attention = {f"attention {ATTENTION_LAYER_PATHS[p]}": m for p, m in attention_modules(net).items()}
        stages = {"encode both": net.encoder, **attention, "merge conv": net.transform.merge_conv,
                  "decode": net.decoder}

        def forward() -> None:
            with torch.inference_mode():
                net(c, s)

        times = time_modules(forward, stages, repeats=args.repeats, warmup=1)
        print(f"[{backend}] " + ", ".join(f"{k} {v:.1f}" for k, v in times.module_ms.items())
              + f", other {times.outside_ms:.1f}, full forward {times.total_ms:.1f}"
              + f"; attention share {times.share_of(list(attention)):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
