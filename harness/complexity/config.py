"""A complexity sweep's settings (:class:`ComplexityConfig`), their check, and the constants of the protocol."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from methods.errors import one_line as _one_line

from ..errors import ComplexityError
from .layers import AttentionLayer, _meta_network, attention_layers

REPO_ROOT = Path(__file__).resolve().parents[2]
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
"""``dtype`` name → autocast dtype of the forward (None: plain fp32, no autocast)."""
DEFAULT_METHODS = ["styA2K", "styA2K-noDA", "styA2K-noPA", "styA2K-noPA1", "styA2K-1head", "all2all", "adain"]
DEFAULT_SIZES = [256, 512, 768, 1024, 1536, 2048]
DONE_STATUSES = ("ok", "oom", "timeout")
SKIPPED = "skipped"
OOM_MARKERS = ("out of memory", "can't allocate", "cannot allocate memory", "bad_alloc", "not enough memory")
PRIME_SIZE = 64
WORKER_MODES = ("auto", "method", "cell")
"""``worker`` settings: one worker process per method (its sizes in turn), a fresh one per cell, or ``auto``."""
KEY = ("method", "size", "dtype", "device")
COLUMNS = [
    "method", "size", "pixels", "dtype", "device", "status", "note",
    "latency_ms", "p10_ms", "p90_ms", "peak_memory_mib", "baseline_memory_mib", "memory_kind",
    "gflops_total", "gflops_attention", "gflops_attention_core", "impl_gflops_attention_core",
    "eq15_gflops_attention", "attention_ms", "attention_share", "hooked_latency_ms", "attention_ms_by_layer",
    "batch_size", "repeats", "warmup", "attention_repeats", "max_memory_mib", "max_seconds", "threads",
    "device_name", "torch", "options", "cell_seconds", "load_before", "worker", "estimated_memory_mib",
]
"""Columns of ``complexity.csv`` (units in the names: ms, MiB, GFLOPs = 1e9 FLOPs; ``pixels`` = S²;
``load_before``: the machine's 1-minute load average when the cell started — other work competing for the CPU;
``worker``: the ``worker`` setting the cell ran under; ``estimated_memory_mib``: the traced estimate of the working
set, :func:`harness.complexity.estimate.estimate_working_set`, for every cell whatever its status)."""
LARGEST_COLUMNS = [
    "method", "dtype", "device", "budget_mib", "largest_side", "estimated_mib", "next_side", "next_estimated_mib",
    "limited", "largest_measured_size", "measured_mib", "estimated_mib_at_measured", "measured_over_estimated",
]
"""Columns of ``largest.csv`` (:func:`harness.complexity.sweep.largest_table`): per method and dtype the largest
square side (a multiple of ``largest_multiple``) whose *estimated* working set is within ``budget_mib``, the
estimate there and at the next multiple (over the budget; ``limited``: the search reached ``largest_limit`` still
within it), and the check of the estimate against the measurement at the largest size measured ``ok``."""


@dataclass
class ComplexityConfig:
    """One complexity sweep (the ``complexity:`` section of ``studies/complexity.yaml``; YAML-friendly types).

    ``sizes``: square input sides S (content and style both S×S), run in ascending order. ``dtype``: ``"fp32"``,
    ``"bf16"`` (autocast on the forward) or a list of both. ``max_memory_mib``: memory the warm-up and timed
    forwards may add on top of the worker's state after model building and the priming forward (None: no cap).
    ``max_seconds``: wall clock per cell worker (None: no limit). ``threads``: torch intra-op threads in the worker
    (None: torch's default). ``attention_repeats``: hooked forwards for the attention time (0: skip).
    ``count_flops``: run the FLOP counter (one extra forward). ``skip_larger_after_failure``: record the sizes above
    an ``oom`` / ``timeout`` as such without running them. ``min_fit_size``: fit slopes only over sizes ≥ this
    (None: all ok sizes). ``ratio_pairs``: [numerator, denominator] method pairs of the per-size ratio table.
    ``force``: recompute cells already in ``complexity.csv``. ``progress``: tqdm bar over the cells.
    ``estimate_memory``: add the traced working-set estimate (``estimated_memory_mib``, seconds per cell, nothing
    computed) to every cell, run or not — the estimate of an ``oom`` cell says by how much it was over.
    ``largest_within_mib``: also find, from the estimate, the largest square side each method reaches within this
    many MiB (``largest.csv``; a multiple of ``largest_multiple`` up to ``largest_limit``; None: not searched).
    ``worker``: ``"method"`` — one worker process measures a method's sizes one after another (torch, the FLOP
    counter and the thread pools start once per method: a 4-method × 3-size CPU sweep at 64–256² took 68 s instead of
    118 s); ``"cell"`` — a fresh process per cell, the strictest isolation; ``"auto"`` (default) — ``method`` on CUDA,
    whose peak memory comes from the allocator's own counters, and ``cell`` on the CPU, whose peak memory is the
    growth of the resident set and so depends on what earlier cells left mapped (measured: MicroAST 0 vs 13 MiB at
    128², adain 136 vs 64 MiB at 256², reused vs fresh). Timing-only CPU sweeps can set ``method``.
    """

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    out: Path = Path("results/complexity")
    repeats: int = 5
    warmup: int = 1
    device: str = "cpu"
    dtype: str | list[str] = "fp32"
    batch_size: int = 1
    max_memory_mib: float | None = None
    max_seconds: float | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    threads: int | None = None
    attention_repeats: int = 3
    count_flops: bool = True
    skip_larger_after_failure: bool = True
    min_fit_size: int | None = None
    ratio_pairs: list[list[str]] = field(default_factory=lambda: [["all2all", "styA2K"]])
    force: bool = False
    progress: bool = True
    worker: str = "auto"
    estimate_memory: bool = True
    largest_within_mib: float | None = None
    largest_multiple: int = 64
    largest_limit: int = 32768

    def __post_init__(self) -> None:
        """Coerce the YAML/CLI spellings ("a,b" lists, "256,512" sizes); range checks are in :func:`check_config`."""
        self.out = Path(self.out)
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        try:
            if isinstance(self.sizes, (int, str)):
                self.sizes = [int(s) for s in str(self.sizes).split(",")]
            self.methods, self.sizes = list(self.methods), list(self.sizes)
            self.method_options = {str(k): dict(v or {}) for k, v in (self.method_options or {}).items()}
        except (TypeError, ValueError) as exc:
            raise ComplexityError(f"bad complexity configuration: {_one_line(exc)}") from None

    @property
    def dtypes(self) -> list[str]:
        """The dtype names as a list (``dtype`` may be one name or a list)."""
        return [self.dtype] if isinstance(self.dtype, str) else list(self.dtype)

    @property
    def worker_mode(self) -> str:
        """``worker`` with ``auto`` resolved: ``method`` on CUDA, ``cell`` on the CPU (see the class docstring)."""
        if self.worker != "auto":
            return self.worker
        return "method" if str(self.device).startswith("cuda") else "cell"

    def options_for(self, method: str) -> dict[str, Any]:
        """``method_options`` of ``method`` (keys matched ignoring case)."""
        for key, value in self.method_options.items():
            if key.lower() == method.lower():
                return dict(value)
        return {}


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ComplexityError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _positive_or_none(value: Any, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                              or not math.isfinite(value)):
        raise ComplexityError(f"{name} must be a positive number or null, got {value!r}")


def check_config(config: ComplexityConfig) -> dict[str, list[AttentionLayer]]:
    """Validate ``config`` before any work; returns each method's attention layers (:func:`method_attention_layers`).

    Raises :class:`methods.UnknownMethodError` / :class:`methods.OptionError` for unknown methods and options and
    :class:`ComplexityError` for everything else (sizes below a method's minimum side, dtype, device, counts)."""
    if not config.methods:
        raise ComplexityError("no methods to measure")
    if not config.sizes:
        raise ComplexityError("no sizes to measure")
    for size in config.sizes:
        _positive_int(size, "every size")
    if len(set(config.sizes)) != len(config.sizes):
        raise ComplexityError(f"sizes must be distinct, got {config.sizes}")
    _positive_int(config.repeats, "repeats")
    _positive_int(config.warmup, "warmup", minimum=0)
    _positive_int(config.batch_size, "batch_size")
    _positive_int(config.attention_repeats, "attention_repeats", minimum=0)
    _positive_or_none(config.max_memory_mib, "max_memory_mib")
    _positive_or_none(config.max_seconds, "max_seconds")
    _positive_or_none(config.largest_within_mib, "largest_within_mib")
    _positive_int(config.largest_multiple, "largest_multiple")
    _positive_int(config.largest_limit, "largest_limit", minimum=config.largest_multiple)
    if config.largest_within_mib is not None and not config.estimate_memory:
        raise ComplexityError("largest_within_mib needs estimate_memory: true (the search uses the estimate)")
    if config.threads is not None:
        _positive_int(config.threads, "threads")
    if config.min_fit_size is not None:
        _positive_int(config.min_fit_size, "min_fit_size")
    unknown_dtypes = [d for d in config.dtypes if d not in DTYPES]
    if unknown_dtypes or not config.dtypes or len(set(config.dtypes)) != len(config.dtypes):
        raise ComplexityError(f"unknown dtype {unknown_dtypes or config.dtype!r}; choose from {', '.join(DTYPES)}")
    try:
        device = torch.device(config.device)
    except (RuntimeError, ValueError):
        raise ComplexityError(f"device {config.device!r} is not a torch device (use cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise ComplexityError(f"device {config.device!r}: only cpu and cuda are supported")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ComplexityError(f"device {config.device!r}: CUDA is not available here")
    if config.worker not in WORKER_MODES:
        raise ComplexityError(f"worker must be one of {', '.join(WORKER_MODES)}, got {config.worker!r}")
    for pair in config.ratio_pairs:
        if len(pair) != 2:
            raise ComplexityError(f"every ratio pair needs [numerator, denominator], got {pair!r}")
    lowered = [m.lower() for m in config.methods]
    if len(set(lowered)) != len(lowered):
        raise ComplexityError(f"methods must be distinct, got {config.methods}")
    stray = [k for k in config.method_options if k.lower() not in lowered]
    if stray:
        raise ComplexityError(f"method_options for method(s) not in the sweep: {', '.join(stray)}")
    layers = {}
    for method in config.methods:
        model = _meta_network(method, config.options_for(method))
        minimum = max(model.min_content_side, model.min_style_side)
        too_small = [s for s in config.sizes if s < minimum]
        if too_small:
            raise ComplexityError(f"method {method!r} needs sides ≥ {minimum} px; sizes {too_small} are too small")
        layers[method] = attention_layers(model)
    return layers
