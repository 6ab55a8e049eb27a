"""Latency, throughput, peak memory and FLOPs of a callable (spec §7.2: time the full forward with synchronisation).

Protocol of :func:`measure_latency`: ``warmup`` untimed calls, then ``repeats`` timed calls, each bracketed by
``torch.cuda.synchronize`` on CUDA; the median and the 10th / 90th percentiles (linear interpolation between sorted
samples, as ``numpy.percentile``'s default) of the timed calls are reported, and images/s = batch size / median.

Peak memory:

* CUDA: ``torch.cuda.max_memory_allocated`` over the timed calls (its counter is reset right before them). It is the
  absolute peak of live tensors, so it includes the resident weights and inputs (``baseline_memory_mib`` is what was
  allocated before the timed calls; the forward's own working set is the difference).
* CPU: growth of the process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) from the start
  of :func:`measure_latency` (before the warm-up, where a first call allocates its buffers) to the end of the timed
  calls. Limitation: ``ru_maxrss`` is a process-lifetime high-water mark that cannot be reset, so a forward that
  fits under a peak reached earlier (loading weights, a previous larger measurement, the test suite) reports 0,
  and allocations freed back to the allocator are invisible. For meaningful CPU numbers, measure each configuration
  in a fresh process (as ``benchmarks/bench_forward.py`` does). ``None`` where ``resource`` is unavailable (Windows).
"""
from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch.utils import flop_counter as _flop_counter
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "TimingResult",
    "count_flops",
    "flop_counter",
    "measure_latency",
    "percentile",
    "time_method",
]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0 ≤ q ≤ 100) of ``samples``, linearly interpolated between the sorted samples:
    rank ``(q/100)·(n−1)`` (``numpy.percentile``'s default)."""
    if not samples:
        raise ValueError("percentile of an empty sample list")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    ordered = sorted(float(s) for s in samples)
    rank = q / 100.0 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


@dataclass(frozen=True)
class TimingResult:
    """Latency statistics (seconds per call) of the timed runs, throughput, peak memory (MiB) and optional FLOPs.

    :attr:`HIGHER_IS_BETTER` says, per numeric field, which direction is better (latencies, memory and FLOPs lower;
    images/s higher).
    """

    median_s: float
    p10_s: float
    p90_s: float
    images_per_s: float
    peak_memory_mib: float | None
    runs: tuple[float, ...]
    warmup: int = 0
    batch_size: int = 1
    device: str = "cpu"
    memory_kind: str = ""
    baseline_memory_mib: float | None = None
    threads: int | None = None
    flops: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    HIGHER_IS_BETTER: ClassVar[MappingProxyType] = MappingProxyType({
        "median_s": False, "p10_s": False, "p90_s": False, "images_per_s": True, "peak_memory_mib": False,
        "flops": False,
    })

    @classmethod
    def from_samples(cls, runs: Sequence[float], batch_size: int = 1, **fields: Any) -> TimingResult:
        """Statistics of the timed samples (seconds per call): median, p10, p90, images/s = batch_size / median."""
        if not runs:
            raise ValueError("no timed runs")
        median = statistics.median(float(r) for r in runs)
        fields.setdefault("peak_memory_mib", None)
        return cls(
            median_s=median, p10_s=percentile(runs, 10), p90_s=percentile(runs, 90),
            images_per_s=batch_size / median if median > 0 else math.inf,
            runs=tuple(float(r) for r in runs), batch_size=batch_size, **fields,
        )

    @classmethod
    def higher_is_better(cls, name: str) -> bool:
        if name not in cls.HIGHER_IS_BETTER:
            raise KeyError(f"{name!r} is not a comparable timing field; known: {', '.join(cls.HIGHER_IS_BETTER)}")
        return cls.HIGHER_IS_BETTER[name]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["runs"] = list(self.runs)
        return out


def _rss_peak_mib() -> float | None:
    """The process's peak RSS so far in MiB (ru_maxrss: KiB on Linux, bytes on macOS), or None."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def measure_latency(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    repeats: int = 10,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> TimingResult:
    """Call ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed; see the module docstring.

    ``device``: where ``fn`` runs (CUDA → synchronisation and CUDA memory); ``batch_size``: images per call (for
    images/s). ``fn`` is called as is: wrap it in ``torch.inference_mode()`` yourself if wanted.
    """
    if warmup < 0:
        raise ValueError(f"warmup must be ≥ 0, got {warmup}")
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    device = torch.device(device)
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    rss_start = None if cuda else _rss_peak_mib()
    for _ in range(warmup):
        fn()
    sync()
    baseline = None
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device) / 2**20
    runs = []
    for _ in range(repeats):
        sync()
        start = clock()
        fn()
        sync()
        runs.append(clock() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        kind = "cuda max_memory_allocated during the timed runs (includes resident weights and inputs)"
        label = f"{device} ({torch.cuda.get_device_name(device)})"
    else:
        end = _rss_peak_mib()
        peak = None if rss_start is None or end is None else max(0.0, end - rss_start)
        kind = "cpu peak RSS (ru_maxrss) growth over warm-up + timed runs; 0 if under an earlier process peak"
        label = "cpu"
    return TimingResult.from_samples(
        runs, batch_size=batch_size, peak_memory_mib=peak, warmup=warmup, device=label,
        memory_kind=kind, baseline_memory_mib=baseline, threads=None if cuda else torch.get_num_threads(),
    )


def _missing_attention_formulas() -> dict[Any, Callable[..., int]]:
    """SDPA kernels without a FLOP formula in this torch (the CPU flash kernel has none before torch 2.15), counted
    with torch's own SDPA formula (its two matmuls: 2·B·H·L·S·(d + e) FLOPs)."""
    aten = torch.ops.aten
    kernels = [getattr(aten, name, None) for name in ("_scaled_dot_product_flash_attention_for_cpu",)]
    return {k: _sdpa_formula for k in kernels
            if k is not None and k not in _flop_counter.flop_registry and k.default not in _flop_counter.flop_registry}


def _sdpa_formula(query_shape, key_shape, value_shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of one SDPA call from its input shapes (FlopCounterMode passes shapes): torch's own count."""
    return _flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def flop_counter() -> FlopCounterMode:
    """A ``FlopCounterMode`` (no display) that also counts the SDPA kernels this torch has no formula for, so that
    attention FLOPs do not silently count as 0 on the CPU."""
    return FlopCounterMode(display=False, custom_mapping=_missing_attention_formulas())


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn()`` counted by ``torch.utils.flop_counter.FlopCounterMode``.

    A matmul / convolution counts 2 FLOPs per multiply–accumulate (``nn.Linear(4, 3)`` on a batch of 2: 2·2·4·3 =
    48); elementwise ops, normalisations, softmax, pooling, bias additions and data movement are NOT counted, so the
    number is a lower bound dominated by the convolutions and attention matmuls (``scaled_dot_product_attention`` is
    counted as its two matmuls).
    """
    with flop_counter() as counter:
        fn()
    return int(counter.get_total_flops())


def time_method(
    method,
    size: int | tuple[int, int] = 512,
    batch_size: int = 1,
    *,
    style_size: int | tuple[int, int] | None = None,
    warmup: int = 2,
    repeats: int = 10,
    seed: int = 0,
    flops: bool = False,
) -> TimingResult:
    """Time ``method.model(content, style)`` — both VGG encodings + the method's transform + decoding, no file I/O —
    under ``torch.inference_mode`` on seeded random inputs: content (batch_size, 3, *size), style (batch_size, 3,
    *style_size) (default: the content size), on the method's device. ``flops=True`` also counts the FLOPs of one
    call (:func:`count_flops`). The method and options are recorded in ``extra``.
    """
    def hw(s: int | tuple[int, int]) -> tuple[int, int]:
        return (s, s) if isinstance(s, int) else (int(s[0]), int(s[1]))

    content_hw = hw(size)
    style_hw = hw(style_size) if style_size is not None else content_hw
    device = method.device
    generator = torch.Generator().manual_seed(seed)
    layout = getattr(method, "memory_format", torch.contiguous_format)
    content = torch.rand(batch_size, 3, *content_hw, generator=generator).to(device, memory_format=layout)
    style = torch.rand(batch_size, 3, *style_hw, generator=generator).to(device, memory_format=layout)
    model = method.model

    @torch.inference_mode()
    def forward() -> None:
        model(content, style)

    result = measure_latency(forward, warmup=warmup, repeats=repeats, device=device, batch_size=batch_size)
    counted = count_flops(forward) if flops else None
    extra = {"method": getattr(method, "name", type(model).__name__), "content_size": list(content_hw),
             "style_size": list(style_hw), "options": dict(getattr(method, "options", {}) or {})}
    flag = getattr(getattr(method, "provenance", None), "flag", None)
    if callable(flag):
        extra["weights_flag"] = flag()
    return replace(result, flops=counted, extra=extra)
