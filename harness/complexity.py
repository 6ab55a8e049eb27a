"""Complexity study: latency, peak memory and FLOPs of every method against image size, beside the paper's Eq. 15.

One *cell* = (method, size S, dtype): square S×S content and style, batch ``batch_size``, random weights
(``init="random"``: speed and memory do not depend on the values). Every cell runs in a **fresh subprocess**
(``python -m harness.complexity --cell JSON --result PATH``) so that its CPU peak memory is its own and an
out-of-memory crash cannot take the sweep down. Inside the worker (:func:`measure_cell`):

1. build the method and the seeded inputs; run one *priming* forward at a small size (thread pools, allocator
   arenas and kernel caches exist before anything is measured or capped);
2. reset the memory high-water mark and, when ``max_memory_mib`` is set, cap the memory the warm-up and timed
   forwards may add (CPU: ``RLIMIT_AS = VmSize + cap`` — a cap on *virtual* address-space growth, a conservative
   proxy for RSS; CUDA: ``torch.cuda.set_per_process_memory_fraction((memory_reserved + cap) / total)``); the cap is
   lifted again before steps 5–6, which only repeat a forward that fitted (FlopCounterMode's lazy imports alone
   need more address space than a small cap allows);
3. latency: :func:`metrics.timing.measure_latency` — ``warmup`` untimed then ``repeats`` timed forwards
   (``torch.inference_mode``, autocast to bf16 when ``dtype="bf16"``, CUDA synchronised); median, p10, p90 (ms);
4. peak memory (MiB) over warm-up + timed runs — CPU: growth of the resident-set high-water mark
   (``VmHWM`` after a reset through ``/proc/self/clear_refs`` − ``VmRSS`` at the reset), i.e. the forward's own
   working set; CUDA: ``max_memory_allocated`` during the timed runs − ``memory_allocated`` before them (the working
   set; resident weights and inputs are excluded and reported as ``baseline_memory_mib``);
5. time inside the attention modules (:func:`time_modules`): ``attention_repeats`` *extra* forwards with pre/post
   forward hooks on each attention module (synchronising on CUDA) — separate from the timed runs so that the hooks'
   synchronisation cannot perturb the latency; ``attention_share`` = median over those runs of
   (time inside attention modules / wall time of the same run). Hook timing sees the modules in their real context
   (caches, allocator state, the input layout the model feeds them), which is why it is preferred to calling each
   module alone on captured inputs;
6. FLOPs of one forward with ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply–accumulate;
   convolutions, matmuls/bmm/einsum and SDPA counted; elementwise ops, softmax, norms, pooling, gathers not):
   ``gflops_total`` (whole forward), ``gflops_attention`` (inside the attention modules: :class:`A2KAttention` /
   :class:`AllToAllAttention` sub-modules, their 1×1 q/k/v/fusion convolutions included) and
   ``gflops_attention_core`` (the same without the convolutions: only the attention matmuls — the part Eq. 15
   describes).

FLOP columns, like with like (all in GFLOPs = 2·MACs / 1e9):

* ``gflops_attention_core`` (measured) must equal ``impl_gflops_attention_core``, the hand count of the matmuls the
  implementation performs (:class:`Eq15Layer` ``impl_macs``);
* ``eq15_gflops_attention`` is the paper's Eq. 15 arithmetic (spec §7.1) ×2: for A2K layers
  ``Ω = (5 + 2n + r)·HWC`` MACs with the terms counted the paper's way (QKᵀ-type products only, no A·V);
  for all-to-all layers ``(HW)²C`` (QKᵀ only). The implementation additionally computes the A·V products (and 3
  instead of the paper's "5" HWC aggregation MACs), so it is ≈ 1.5× (A2K) and exactly 2× (all-to-all) the Eq. 15
  figure; see :class:`Eq15Layer`. With the official fixed block sides, n = HW/r grows with the image, so Eq. 15 is
  itself quadratic in HW and the all-to-all / A2K ratio ``HW / (5 + 2n + r)`` saturates at ``r/2`` per layer
  (32 at relu3_1/relu4_1, 8 at relu5_1) instead of growing like √(HW).

Status of a cell: ``ok``, ``oom`` (torch.OutOfMemoryError, MemoryError, a RuntimeError saying "can't allocate" /
"out of memory" / "bad_alloc", or the worker killed by SIGKILL — and, under a memory cap, by any other signal),
``timeout`` (the worker ran past ``max_seconds`` of wall clock, imports and model building included), or
``error: <one line>``. With ``skip_larger_after_failure`` a method that went ``oom`` (``timeout``) at size S is not
run at larger sizes: those rows get the same status and a ``note`` ``skipped: …``, and are re-derived (not trusted)
on resume.

Outputs in ``out``: ``complexity.csv`` (one row per method × size × dtype × device, rewritten atomically after
every cell: resumable — cells already ``ok``/``oom``/``timeout`` are kept unless ``force``), ``slopes.csv``
(:func:`fit_slopes`), ``eq15.csv`` (:func:`eq15_table`), ``ratios.csv`` (:func:`ratio_table`),
``complexity.md`` / ``complexity.tex`` (:func:`write_summary`), ``complexity_time.png/.pdf`` and
``complexity_memory.png/.pdf`` (:func:`plot_complexity`) and ``complexity.json`` (config, environment, protocol).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from methods import OptionError, create_method, get_method_info
from methods.a2k import A2KAttention
from methods.all2all import AllToAllAttention
from methods.vgg import feature_size

from .atomic import write_json_atomic, write_text_atomic
from .environment import device_name, git_commit, machine_info, versions
from .run import RunError

__all__ = [
    "ATTENTION_LAYER_PATHS",
    "COLUMNS",
    "AttentionLayer",
    "Cell",
    "ComplexityConfig",
    "ComplexityError",
    "Eq15Layer",
    "ModuleTimes",
    "attention_layers",
    "attention_modules",
    "check_config",
    "count_attention_flops",
    "eq15_attention_flops",
    "eq15_table",
    "fit_slopes",
    "is_oom",
    "measure_cell",
    "method_attention_layers",
    "plot_complexity",
    "ratio_table",
    "run_cell",
    "run_complexity",
    "time_modules",
    "write_summary",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
"""``dtype`` name → autocast dtype of the forward (None: plain fp32, no autocast)."""
DEFAULT_METHODS = ["styA2K", "styA2K-noDA", "styA2K-noPA", "styA2K-noPA1", "styA2K-1head", "all2all", "adain"]
DEFAULT_SIZES = [256, 512, 768, 1024, 1536, 2048]
DONE_STATUSES = ("ok", "oom", "timeout")
SKIPPED = "skipped"
ATTENTION_TYPES: tuple[type[nn.Module], ...] = (A2KAttention, AllToAllAttention)
ATTENTION_LAYER_PATHS: dict[str, str] = {
    "A2K": "relu3_1", "transform.attn_adain_4_1": "relu4_1", "transform.attn_adain_5_1": "relu5_1",
}
"""Sub-module path of each attention module in :class:`methods.stya2k.AttentionTransferNet` → the VGG tap it
attends on (spec §4.2–4.3: the relu3_1 module is the top-level ``A2K``; relu4_1/5_1 live in the Transform)."""
OOM_MARKERS = ("out of memory", "can't allocate", "cannot allocate memory", "bad_alloc", "not enough memory")
PRIME_SIZE = 64
KEY = ("method", "size", "dtype", "device")
COLUMNS = [
    "method", "size", "pixels", "dtype", "device", "status", "note",
    "latency_ms", "p10_ms", "p90_ms", "peak_memory_mib", "baseline_memory_mib", "memory_kind",
    "gflops_total", "gflops_attention", "gflops_attention_core", "impl_gflops_attention_core",
    "eq15_gflops_attention", "attention_ms", "attention_share", "hooked_latency_ms", "attention_ms_by_layer",
    "batch_size", "repeats", "warmup", "attention_repeats", "max_memory_mib", "max_seconds", "threads",
    "device_name", "torch", "options", "cell_seconds", "load_before",
]
"""Columns of ``complexity.csv`` (units in the names: ms, MiB, GFLOPs = 1e9 FLOPs; ``pixels`` = S²;
``load_before``: the machine's 1-minute load average when the cell started — other work competing for the CPU)."""


class ComplexityError(RunError):
    """A bad complexity-study configuration; one line, raised before any work is done."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ====================================================================================================================
# Configuration
# ====================================================================================================================
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


# ====================================================================================================================
# Attention modules and the paper's Eq. 15
# ====================================================================================================================
@dataclass(frozen=True)
class AttentionLayer:
    """What Eq. 15 needs of one attention module: where it sits, its tap and channels, and its configuration."""

    path: str
    layer: str
    kind: str  # "a2k" | "all2all"
    channels: int
    heads: int
    block_side: int | None = None
    use_da: bool = False
    use_pa: bool = False
    pa_step1: bool = False
    remainder: str = "zeros"


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The outermost :data:`ATTENTION_TYPES` sub-modules of ``model`` by path (``named_modules`` order)."""
    found: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        if isinstance(module, ATTENTION_TYPES) and not any(path.startswith(p + ".") for p in found):
            found[path] = module
    return found


def attention_layers(model: nn.Module) -> list[AttentionLayer]:
    """:class:`AttentionLayer` of every attention module of ``model`` (empty for AdaIN)."""
    out = []
    for path, module in attention_modules(model).items():
        if path not in ATTENTION_LAYER_PATHS:
            raise ComplexityError(f"attention module at an unknown path {path!r}; "
                                  f"known: {', '.join(ATTENTION_LAYER_PATHS)}")
        layer = ATTENTION_LAYER_PATHS[path]
        if isinstance(module, A2KAttention):
            out.append(AttentionLayer(path, layer, "a2k", module.channels, module.heads, module.block_side,
                                      module.use_da, module.use_pa, module.pa_step1, module.remainder))
        else:
            out.append(AttentionLayer(path, layer, "all2all", module.channels, module.heads))
    return out


def _meta_network(method: str, options: Mapping[str, Any]) -> nn.Module:
    """The method's network built on the meta device (no memory, no weights): validates name and options."""
    info = get_method_info(method)
    known = info.options
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(f"method {info.name!r} has no option(s) {', '.join(unknown)}; its options are: "
                          + ", ".join(f"{k}={v!r}" for k, v in known.items()))
    try:
        with torch.device("meta"):
            return info.factory(**{**known, **options})
    except (ValueError, TypeError) as exc:
        raise OptionError(f"method {info.name!r}: invalid options: {_one_line(exc)}") from None


def method_attention_layers(method: str, options: Mapping[str, Any] | None = None) -> list[AttentionLayer]:
    """:func:`attention_layers` of a registered method with ``options`` (built on the meta device, instantly)."""
    return attention_layers(_meta_network(method, dict(options or {})))


@dataclass(frozen=True)
class Eq15Layer:
    """Attention cost of one layer at input side ``size``, in multiply–accumulates (MACs; 1 MAC = 2 FLOPs).

    ``H = W = feature_size(size, layer)`` (S/4, S/8, S/16, ceil-mode), ``C`` channels; A2K: block side p,
    ``r = p²`` points per block, ``n = ⌊H/p⌋·⌊W/p⌋`` blocks (``remainder="reflect"``: ⌈·⌉).

    Paper Eq. 15 (spec §7.1; b² = n blocks, (H/b)(W/b) = r points), only the terms the variant keeps:
    ``D1 = 5·HWC`` (aggregation, DA), ``D2 = n·HWC`` (queries vs n block keys, DA), ``P1 = n·HWC`` (block
    matching, PA step 1), ``P2 = r·HWC`` (attention inside the matched block, PA); ``macs = D1 + D2 + P1 + P2``.
    All-to-all (spec table, QKᵀ only): ``all2all_macs = (HW)²·C``; for an all-to-all layer ``macs = all2all_macs``.
    ``ratio = all2all_macs / macs``. Neither counts the 1×1 convolutions (8·HW·C² MACs per A2K module).

    ``impl_macs``: the matmul MACs the implementation performs (what ``FlopCounterMode`` sees inside the module,
    convolutions excluded, ÷2), with ``L = n·r`` attended positions: DA step 1 three einsums (similarity, weighted
    keys, weighted values) ``3·L·C``; DA step 2 QKᵀ and A·V ``2·L·n·C``; PA step 1 ``n²·r·C``; PA step 2 QKᵀ and
    A·V ``2·L·r·C``; all-to-all ``2·(HW)²·C``. Heads do not change any count (h heads of d = C/h channels).
    All-to-all layers have no blocks: ``n = r = None``.

    With fixed p, ``n = HW/r`` grows with the image: ``ratio = HW/(5 + 2n + r) → r/2`` for large images.
    """

    layer: str
    kind: str
    size: int
    H: int
    W: int
    C: int
    n: int | None
    r: int | None
    D1: int
    D2: int
    P1: int
    P2: int
    macs: int
    all2all_macs: int
    impl_macs: int

    @property
    def ratio(self) -> float:
        return self.all2all_macs / self.macs if self.macs else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _eq15_layer(spec: AttentionLayer, size: int) -> Eq15Layer:
    h, w, c = feature_size(size, spec.layer), feature_size(size, spec.layer), spec.channels
    hwc = h * w * c
    all2all = (h * w) ** 2 * c
    if spec.kind == "all2all":
        return Eq15Layer(spec.layer, "all2all", size, h, w, c, None, None, 0, 0, 0, 0, all2all, all2all, 2 * all2all)
    p = int(spec.block_side)
    grid = (-(-h // p), -(-w // p)) if spec.remainder == "reflect" else (h // p, w // p)
    n, r = grid[0] * grid[1], p * p
    d1 = 5 * hwc if spec.use_da else 0
    d2 = n * hwc if spec.use_da else 0
    p1 = n * hwc if spec.use_pa and spec.pa_step1 else 0
    p2 = r * hwc if spec.use_pa else 0
    attended = n * r
    impl = 0
    if spec.use_da:
        impl += 3 * attended * c + 2 * attended * n * c
    if spec.use_pa:
        impl += (n * n * r * c if spec.pa_step1 else 0) + 2 * attended * r * c
    return Eq15Layer(spec.layer, "a2k", size, h, w, c, n, r, d1, d2, p1, p2, d1 + d2 + p1 + p2, all2all, impl)


def eq15_attention_flops(
    method: str | Sequence[AttentionLayer], size: int, options: Mapping[str, Any] | None = None
) -> dict[str, Eq15Layer]:
    """Eq. 15 arithmetic per attention layer (tap → :class:`Eq15Layer`) of ``method`` (a registered name with
    ``options``, or its :class:`AttentionLayer` list) at input side ``size``; empty for AdaIN."""
    specs = method_attention_layers(method, options) if isinstance(method, str) else list(method)
    return {spec.layer: _eq15_layer(spec, int(size)) for spec in specs}


def eq15_table(layers: Mapping[str, Sequence[AttentionLayer]], sizes: Sequence[int]) -> pd.DataFrame:
    """One row per method × size × layer (:meth:`Eq15Layer.to_dict`, plus ``method``), and a ``layer="total"`` row
    per method × size summing the MAC columns (``ratio`` of the sums). ``layers``: method → its attention layers."""
    rows = []
    for method, specs in layers.items():
        for size in sorted(sizes):
            per_layer = eq15_attention_flops(specs, size)
            if not per_layer:
                continue
            rows += [{"method": method, **v.to_dict()} for v in per_layer.values()]
            total = {k: sum(getattr(v, k) for v in per_layer.values())
                     for k in ("D1", "D2", "P1", "P2", "macs", "all2all_macs", "impl_macs")}
            rows.append({"method": method, "layer": "total", "kind": next(iter(per_layer.values())).kind,
                         "size": size, **total, "ratio": total["all2all_macs"] / total["macs"]})
    frame = pd.DataFrame(rows)
    for column in ("H", "W", "C", "n", "r"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")  # empty on the total rows and for all-to-all n, r
    return frame


def _eq15_columns(specs: Sequence[AttentionLayer], size: int) -> dict[str, float]:
    per_layer = eq15_attention_flops(specs, size).values()
    return {"eq15_gflops_attention": 2 * sum(v.macs for v in per_layer) / 1e9,
            "impl_gflops_attention_core": 2 * sum(v.impl_macs for v in per_layer) / 1e9}


# ====================================================================================================================
# Measurement helpers (in-process)
# ====================================================================================================================
def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` means "out of memory": torch.OutOfMemoryError, MemoryError, or a RuntimeError whose message
    says so (the CPU allocator's "can't allocate memory", CUDA's "out of memory", "std::bad_alloc")."""
    oom_type = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, (MemoryError, oom_type)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MARKERS)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class ModuleTimes:
    """Result of :func:`time_modules`; all times in ms, medians over the hooked runs (``share``: a fraction), and
    the per-run samples (``total_runs``; ``module_runs``: label → per-run time inside that module)."""

    total_ms: float
    module_ms: dict[str, float]
    inside_ms: float
    share: float
    runs: int
    total_runs: tuple[float, ...] = ()
    module_runs: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def share_of(self, labels: Sequence[str]) -> float:
        """Median over the runs of (time inside the modules ``labels``) / (run time)."""
        return statistics.median(sum(self.module_runs[k][i] for k in labels) / total
                                 for i, total in enumerate(self.total_runs))

    @property
    def outside_ms(self) -> float:
        """Median over the runs of the time outside every hooked module."""
        return statistics.median(total - sum(v[i] for v in self.module_runs.values())
                                 for i, total in enumerate(self.total_runs))


def time_modules(
    fn: Callable[[], Any],
    modules: Mapping[str, nn.Module],
    *,
    repeats: int = 3,
    warmup: int = 0,
    device: str | torch.device = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> ModuleTimes:
    """Time ``fn()`` and, inside it, every module of ``modules`` (label → module; modules must not nest) with
    forward pre/post hooks: ``warmup`` untimed then ``repeats`` timed calls, synchronising CUDA at every hook and
    around each call. Per call: ``inside = Σ_label Σ_calls (t_post − t_pre)`` (a module called twice, e.g. the
    encoder on content and style, adds both); returned: median per label, median total wall time, median inside
    time and ``share`` = median over calls of inside / total."""
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    device = torch.device(device)
    spent: dict[str, float] = {}
    started: dict[str, list[float]] = {label: [] for label in modules}
    handles = []

    def pre(label: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            _sync(device)
            started[label].append(clock())
        return hook

    def post(label: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            _sync(device)
            spent[label] = spent.get(label, 0.0) + clock() - started[label].pop()
        return hook

    for label, module in modules.items():
        handles.append(module.register_forward_pre_hook(pre(label)))
        handles.append(module.register_forward_hook(post(label)))
    per_label: dict[str, list[float]] = {label: [] for label in modules}
    totals, insides, shares = [], [], []
    try:
        for i in range(warmup + repeats):
            spent.clear()
            _sync(device)
            start = clock()
            fn()
            _sync(device)
            total = clock() - start
            if i < warmup:
                continue
            inside = sum(spent.values())
            for label in modules:
                per_label[label].append(spent.get(label, 0.0) * 1e3)
            totals.append(total * 1e3)
            insides.append(inside * 1e3)
            shares.append(inside / total if total > 0 else math.nan)
    finally:
        for handle in handles:
            handle.remove()
    return ModuleTimes(
        total_ms=statistics.median(totals), module_ms={k: statistics.median(v) for k, v in per_label.items()},
        inside_ms=statistics.median(insides), share=statistics.median(shares), runs=repeats,
        total_runs=tuple(totals), module_runs={k: tuple(v) for k, v in per_label.items()},
    )


def count_attention_flops(fn: Callable[[], Any], root: nn.Module, modules: Mapping[str, nn.Module]) -> dict[str, float]:
    """FLOPs of one ``fn()`` by ``FlopCounterMode`` (2 per MAC): ``total``, and summed over the attention
    ``modules`` (path in ``root`` → module) ``attention`` (everything inside them) and ``attention_core`` (inside
    them minus ``aten.convolution``, i.e. without the 1×1 q/k/v/fusion convs). The counter names a module
    ``<root class>.<path>``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    counts = counter.get_flop_counts()
    attention = core = 0
    for path in modules:
        key = f"{type(root).__name__}.{path}"
        if key not in counts:
            matches = [k for k in counts if k.endswith("." + path)]
            if len(matches) != 1:
                raise RuntimeError(f"FlopCounterMode has no entry for attention module {path!r}")
            key = matches[0]
        per_op = counts[key]
        attention += sum(per_op.values())
        core += sum(v for op, v in per_op.items() if "convolution" not in str(op))
    return {"total": float(counter.get_total_flops()), "attention": float(attention), "attention_core": float(core)}


def _proc_status_kib(field_name: str) -> int | None:
    try:
        match = re.search(rf"^{field_name}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Reset the resident-set high-water mark (VmHWM, and with it ru_maxrss) to the current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _memory_cap(cap_mib: float | None, device: torch.device) -> Iterator[None]:
    """Cap the memory the block may add (see the module docstring); restores the previous limit on exit."""
    if cap_mib is None:
        yield
        return
    cap = int(cap_mib * 2**20)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        total = torch.cuda.get_device_properties(index).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved(index) + cap) / total), index)
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, index)
        return
    import resource

    vm_kib = _proc_status_kib("VmSize")
    if vm_kib is None:
        raise ComplexityError("a CPU memory cap needs /proc/self/status (Linux)")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm_kib * 1024 + cap
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ====================================================================================================================
# One cell: the worker
# ====================================================================================================================
@dataclass
class Cell:
    """Everything one worker needs (JSON-serialisable)."""

    method: str
    size: int
    dtype: str = "fp32"
    device: str = "cpu"
    repeats: int = 5
    warmup: int = 1
    batch_size: int = 1
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    max_memory_mib: float | None = None
    threads: int | None = None
    attention_repeats: int = 3
    count_flops: bool = True


def measure_cell(cell: Cell) -> dict[str, Any]:
    """Measure one cell in *this* process (the worker; see the module docstring for the protocol). Returns the
    result columns; raises on failure (out-of-memory included: the worker classifies it with :func:`is_oom`)."""
    from metrics.timing import measure_latency

    if cell.threads:
        torch.set_num_threads(cell.threads)
    device = torch.device(cell.device)
    method = create_method(cell.method, init="random", seed=cell.seed, device=device, **cell.options)
    model = method.model
    generator = torch.Generator().manual_seed(cell.seed)
    shape = (cell.batch_size, 3, cell.size, cell.size)
    content = torch.rand(shape, generator=generator).to(device)
    style = torch.rand(shape, generator=generator).to(device)
    modules = attention_modules(model)
    labelled = {ATTENTION_LAYER_PATHS.get(path, path): module for path, module in modules.items()}
    autocast_dtype = DTYPES[cell.dtype]

    def run(c: torch.Tensor, s: torch.Tensor) -> None:
        with torch.inference_mode():
            if autocast_dtype is None:
                model(c, s)
            else:
                with torch.autocast(device.type, dtype=autocast_dtype):
                    model(c, s)

    forward = lambda: run(content, style)  # noqa: E731
    prime = max(PRIME_SIZE, model.min_content_side, model.min_style_side)
    prime_input = torch.rand(1, 3, prime, prime, generator=generator).to(device)
    run(prime_input, prime_input)
    del prime_input
    gc.collect()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    notes = []
    if device.type == "cpu":
        exact = _reset_peak_rss()
        baseline = (_proc_status_kib("VmRSS") or 0) / 1024
        kind = ("cpu resident-set high-water growth (VmHWM after reset − VmRSS) over warm-up + timed runs, "
                "fresh process" if exact else
                "cpu peak RSS (ru_maxrss) growth over warm-up + timed runs (no HWM reset: 0 if under an earlier peak)")
    with _memory_cap(cell.max_memory_mib, device):  # the cap guards the measured forwards only
        timing = measure_latency(forward, warmup=cell.warmup, repeats=cell.repeats, device=device,
                                 batch_size=cell.batch_size)
    if device.type == "cuda":
        baseline = timing.baseline_memory_mib or 0.0
        peak = (timing.peak_memory_mib or 0.0) - baseline
        kind = ("cuda max_memory_allocated during the timed runs − memory_allocated before them (working set; "
                "weights and inputs excluded, in baseline_memory_mib)")
    else:
        peak = timing.peak_memory_mib
    row: dict[str, Any] = {
        "status": "ok", "latency_ms": timing.median_s * 1e3, "p10_ms": timing.p10_s * 1e3,
        "p90_ms": timing.p90_s * 1e3, "peak_memory_mib": peak, "baseline_memory_mib": baseline,
        "memory_kind": kind, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "device_name": device_name(device),
    }
    if not labelled:
        row.update(attention_ms=0.0, attention_share=0.0, attention_ms_by_layer="{}")
    elif cell.attention_repeats > 0:
        try:
            times = time_modules(forward, labelled, repeats=cell.attention_repeats, device=device)
        except Exception as exc:
            if not is_oom(exc):
                raise
            notes.append("attention timing ran out of memory")
        else:
            row.update(attention_ms=times.inside_ms, attention_share=times.share, hooked_latency_ms=times.total_ms,
                       attention_ms_by_layer=json.dumps({k: round(v, 3) for k, v in times.module_ms.items()}))
    if cell.count_flops:
        try:
            flops = count_attention_flops(forward, model, modules)
        except Exception as exc:
            if not is_oom(exc):
                raise
            notes.append("FLOP count ran out of memory")
        else:
            row.update(gflops_total=flops["total"] / 1e9, gflops_attention=flops["attention"] / 1e9,
                       gflops_attention_core=flops["attention_core"] / 1e9)
    row["note"] = "; ".join(notes)
    return row


def _worker_main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.complexity --cell JSON --result PATH``: measure one cell, write its result JSON."""
    parser = argparse.ArgumentParser(description="Complexity-study worker: measures one cell (internal).")
    parser.add_argument("--cell", required=True, help="the Cell as JSON")
    parser.add_argument("--result", required=True, type=Path, help="where to write the result JSON")
    args = parser.parse_args(argv)
    cell = Cell(**json.loads(args.cell))
    try:
        result = measure_cell(cell)
    except Exception as exc:  # classify, then let the frames (and their tensors) go before writing
        if is_oom(exc):
            result = {"status": "oom", "note": _one_line(exc)[:300]}
        else:
            result = {"status": f"error: {type(exc).__name__}: {_one_line(exc)[:300]}"}
    gc.collect()
    write_json_atomic(args.result, result)
    return 0


def run_cell(cell: Cell, timeout: float | None = None) -> dict[str, Any]:
    """Run ``cell`` in a fresh ``python -m harness.complexity`` worker; returns its result columns plus
    ``cell_seconds``. Never raises for the cell's own failures: they become a status (see the module docstring)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    if cell.threads:  # size the OpenMP pool before torch starts (torch.set_num_threads follows in the worker)
        env["OMP_NUM_THREADS"] = str(cell.threads)
    with tempfile.TemporaryDirectory(prefix="complexity-cell-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "harness.complexity", "--cell", json.dumps(asdict(cell)),
                   "--result", str(result_path)]
        start = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO_ROOT)
        except subprocess.TimeoutExpired:
            return {"status": "timeout", "note": f"worker ran past max_seconds={timeout:g} s",
                    "cell_seconds": time.perf_counter() - start}
        seconds = time.perf_counter() - start
        if result_path.exists():
            return {**json.loads(result_path.read_text()), "cell_seconds": seconds}
    last = _one_line((done.stderr.strip().splitlines() or ["no output"])[-1])[:300]
    if done.returncode < 0:
        number = -done.returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        if number == signal.SIGKILL or cell.max_memory_mib is not None:
            return {"status": "oom", "note": f"worker killed by {name} ({last})", "cell_seconds": seconds}
        return {"status": f"error: worker killed by {name}: {last}", "cell_seconds": seconds}
    if is_oom(RuntimeError(done.stderr)):
        return {"status": "oom", "note": last, "cell_seconds": seconds}
    return {"status": f"error: worker exit code {done.returncode}: {last}", "cell_seconds": seconds}


# ====================================================================================================================
# The sweep
# ====================================================================================================================
def _key(row: Mapping[str, Any]) -> tuple[str, int, str, str]:
    return (str(row["method"]), int(row["size"]), str(row["dtype"]), str(row["device"]))


def _is_done(row: Mapping[str, Any]) -> bool:
    note = row.get("note")
    note = "" if note is None or (isinstance(note, float) and math.isnan(note)) else str(note)
    return str(row.get("status")) in DONE_STATUSES and not note.startswith(SKIPPED)


def _read_rows(path: Path) -> dict[tuple[str, int, str, str], dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        frame = pd.read_csv(path, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ComplexityError(f"{path}: unreadable complexity table ({_one_line(exc)}); remove it") from None
    missing = [c for c in KEY + ("status",) if c not in frame.columns]
    if missing:
        raise ComplexityError(f"{path}: not a complexity table (missing columns {', '.join(missing)})")
    return {_key(r): r for r in frame.to_dict("records")}


def _frame(rows: Mapping[Any, Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows.values()))
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = np.nan
    extra = [c for c in frame.columns if c not in COLUMNS]
    return frame[COLUMNS + extra].reset_index(drop=True)


def _write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


def run_complexity(config: ComplexityConfig) -> pd.DataFrame:
    """Run the sweep of ``config`` (see the module docstring) and write every output; returns the full
    ``complexity.csv`` table (this sweep's cells and any other cells already in the folder)."""
    from tqdm import tqdm

    layers = check_config(config)  # every bad input fails here, before anything is written
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "complexity.csv"
    rows = _read_rows(csv_path)
    device = torch.device(config.device)
    sizes = sorted(int(s) for s in config.sizes)
    cells = [(m, d, s) for m in config.methods for d in config.dtypes for s in sizes]
    failed: dict[tuple[str, str], tuple[str, int]] = {}
    computed = kept = skipped = 0
    with tqdm(total=len(cells), desc="complexity", unit="cell", disable=not config.progress) as bar:
        for method, dtype, size in cells:
            bar.set_postfix_str(f"{method} {size}² {dtype}")
            key = (method, size, dtype, device.type)
            base = {"method": method, "size": size, "pixels": size * size, "dtype": dtype, "device": device.type,
                    "batch_size": config.batch_size, "repeats": config.repeats, "warmup": config.warmup,
                    "attention_repeats": config.attention_repeats, "max_memory_mib": config.max_memory_mib,
                    "max_seconds": config.max_seconds,
                    "options": json.dumps(config.options_for(method), sort_keys=True),
                    **_eq15_columns(layers[method], size)}
            previous = rows.get(key)
            if previous is not None and _is_done(previous) and not config.force:
                row = {**previous, **{k: base[k] for k in ("eq15_gflops_attention", "impl_gflops_attention_core")}}
                kept += 1
            elif config.skip_larger_after_failure and (method, dtype) in failed:
                status, at = failed[(method, dtype)]
                row = {**base, "status": status, "note": f"{SKIPPED}: a smaller size ({at}) was already {status}"}
                skipped += 1
            else:
                cell = Cell(method, size, dtype, config.device, config.repeats, config.warmup, config.batch_size,
                            config.seed, config.options_for(method), config.max_memory_mib, config.threads,
                            config.attention_repeats, config.count_flops)
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
                row = {**base, "load_before": load, **run_cell(cell, config.max_seconds)}
                computed += 1
            if row["status"] in ("oom", "timeout") and (method, dtype) not in failed:
                failed[(method, dtype)] = (row["status"], size)
            rows[key] = row
            _write_csv_atomic(_frame(rows), csv_path)
            bar.update(1)
    frame = _frame(rows)
    slopes = fit_slopes(frame, config.min_fit_size)
    _write_csv_atomic(slopes, out / "slopes.csv")
    _write_csv_atomic(eq15_table(layers, sizes), out / "eq15.csv")
    ratios = ratio_table(frame, config.ratio_pairs)
    _write_csv_atomic(ratios, out / "ratios.csv")
    write_summary(frame, slopes, ratios, out)
    for quantity in ("time", "memory"):
        plot_complexity(frame, slopes, out / f"complexity_{quantity}", quantity)
    write_json_atomic(out / "complexity.json", {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cells": {"computed": computed, "kept": kept, "skipped": skipped},
        "versions": versions(), "git_commit": git_commit(), "device": device_name(device), "machine": machine_info(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "weights": "random (init='random', seeded): speed, memory and FLOPs do not depend on the values",
        "protocol": (f"fresh worker process per cell; priming forward at {PRIME_SIZE}²; {config.warmup} warm-up + "
                     f"{config.repeats} timed forwards (median, p10, p90); {config.attention_repeats} extra hooked "
                     "forwards for the attention time; one FlopCounterMode forward; batch "
                     f"{config.batch_size}, square S×S content and style"),
        "attention_layers": {m: [asdict(s) for s in v] for m, v in layers.items()},
    })
    return frame


# ====================================================================================================================
# Analysis: slopes, ratios
# ====================================================================================================================
QUANTITIES = {"time": ("latency_ms", "latency (ms)"), "memory": ("peak_memory_mib", "peak memory (MiB)")}


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"].astype(str) == "ok"]


def fit_slopes(df: pd.DataFrame, min_size: int | None = None) -> pd.DataFrame:
    """Least-squares fit ``ln y = slope · ln(pixels) + intercept`` per method × dtype × device, for
    y = ``latency_ms`` and y = ``peak_memory_mib``, over the ``ok`` rows with y > 0 (and size ≥ ``min_size``);
    groups with < 2 points are omitted. Columns: method, dtype, device, quantity (the y column), slope, intercept
    (natural log), r2, n_points, sizes (the sizes used, ``;``-joined)."""
    out = []
    ok = _ok(df)
    if min_size is not None:
        ok = ok[ok["size"].astype(int) >= min_size]
    for (method, dtype, device), group in ok.groupby(["method", "dtype", "device"], sort=False):
        for column in ("latency_ms", "peak_memory_mib"):
            values = pd.to_numeric(group[column], errors="coerce")
            use = group[values.gt(0)].sort_values("size")
            if len(use) < 2:
                continue
            x = np.log(use["pixels"].astype(float).to_numpy())
            y = np.log(pd.to_numeric(use[column]).to_numpy(dtype=float))
            slope, intercept = np.polyfit(x, y, 1)
            residual = y - (slope * x + intercept)
            spread = float(((y - y.mean()) ** 2).sum())
            out.append({"method": method, "dtype": dtype, "device": device, "quantity": column,
                        "slope": float(slope), "intercept": float(intercept),
                        "r2": 1 - float((residual**2).sum()) / spread if spread > 0 else math.nan,
                        "n_points": len(use), "sizes": ";".join(str(int(s)) for s in use["size"])})
    return pd.DataFrame(out, columns=["method", "dtype", "device", "quantity", "slope", "intercept", "r2",
                                      "n_points", "sizes"])


RATIO_COLUMNS = {"latency_ms": "time", "peak_memory_mib": "memory", "gflops_total": "gflops_total",
                 "gflops_attention": "gflops_attention", "eq15_gflops_attention": "eq15_attention",
                 "attention_ms": "attention_time"}


def ratio_table(df: pd.DataFrame, pairs: Sequence[Sequence[str]] = (("all2all", "styA2K"),)) -> pd.DataFrame:
    """Per size (and dtype, device) the ratios numerator / denominator of each pair (e.g. all2all / styA2K) of
    latency (``time_ratio``), peak memory (``memory_ratio``), whole-forward and attention GFLOPs, Eq. 15 attention
    and attention time; NaN where either cell is not ``ok``."""
    out = []
    frame = df.copy()
    for numerator, denominator in pairs:
        num = frame[frame["method"] == numerator]
        den = frame[frame["method"] == denominator]
        if num.empty or den.empty:
            continue
        merged = num.merge(den, on=["size", "dtype", "device"], suffixes=("_num", "_den"))
        for _, r in merged.sort_values("size").iterrows():
            row = {"numerator": numerator, "denominator": denominator, "size": int(r["size"]), "dtype": r["dtype"],
                   "device": r["device"], "status_num": r["status_num"], "status_den": r["status_den"]}
            both_ok = r["status_num"] == "ok" and r["status_den"] == "ok"
            for column, name in RATIO_COLUMNS.items():
                a, b = (float(pd.to_numeric(r.get(f"{column}_{side}", math.nan), errors="coerce"))
                        for side in ("num", "den"))
                static = column == "eq15_gflops_attention"  # arithmetic: defined whatever the cells' status
                row[f"{name}_ratio"] = a / b if (both_ok or static) and b and not math.isnan(b) else math.nan
            out.append(row)
    return pd.DataFrame(out)


# ====================================================================================================================
# Summary tables
# ====================================================================================================================
def _fmt(value: Any, pattern: str) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else pattern.format(number)


def _cell_text(row: Mapping[str, Any], column: str, pattern: str) -> str:
    status = str(row["status"])
    if status != "ok":
        return "OOM" if status == "oom" else ("timeout" if status == "timeout" else "error")
    return _fmt(row.get(column), pattern)


def _pivot(df: pd.DataFrame, column: str, pattern: str) -> pd.DataFrame:
    """Rows method (+ dtype/device when several), columns ``S²``, cells formatted values or the failure status."""
    frame = df.copy()
    label_parts = ["method"] + [c for c in ("dtype", "device") if frame[c].nunique() > 1]
    frame["label"] = frame[label_parts].astype(str).agg(" ".join, axis=1)
    frame["text"] = [_cell_text(r, column, pattern) for r in frame.to_dict("records")]
    table = frame.pivot_table(index="label", columns="size", values="text", aggfunc="first", sort=False)
    table = table.reindex(columns=sorted(table.columns)).fillna("")
    table.columns = [f"{s}²" for s in table.columns]
    table.index.name = "method"
    return table


def _markdown(table: pd.DataFrame) -> str:
    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in table.iterrows():
        lines.append("| " + " | ".join([str(index)] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


def _latex(table: pd.DataFrame, caption: str) -> str:
    from .tables import latex_escape

    header = [table.index.name or ""] + [str(c) for c in table.columns]
    lines = [r"\begin{table}[t]", r"\centering", r"\caption{" + latex_escape(caption) + "}",
             r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
             " & ".join(latex_escape(h).replace("²", r"$^2$") for h in header) + r" \\", r"\midrule"]
    for index, row in table.iterrows():
        lines.append(" & ".join(latex_escape(v) for v in [index, *row.tolist()]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


SUMMARY_TABLES = [
    ("latency_ms", "{:.1f}", "Latency (ms, median) of the full forward (both VGG encodings, transform, decoder)"),
    ("peak_memory_mib", "{:.0f}", "Peak memory of the forward (MiB; see memory_kind)"),
    ("gflops_total", "{:.1f}", "GFLOPs of the whole forward (FlopCounterMode, 2 per MAC)"),
    ("gflops_attention", "{:.2f}", "GFLOPs inside the attention modules (1×1 convs included)"),
    ("gflops_attention_core", "{:.2f}", "GFLOPs of the attention matmuls only (measured; convs excluded)"),
    ("eq15_gflops_attention", "{:.2f}",
     "Paper Eq. 15 attention arithmetic ×2 (GFLOPs; A2K: (5+2n+r)HWC, all-to-all: (HW)²C)"),
    ("attention_share", "{:.1%}", "Share of the forward's time inside the attention modules (hooked runs)"),
]


def write_summary(df: pd.DataFrame, slopes: pd.DataFrame, ratios: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Write ``complexity.md`` and ``complexity.tex``: one method × size table per quantity of
    :data:`SUMMARY_TABLES` (failed cells show OOM / timeout / error), the per-size ratio table and the slopes."""
    out = Path(out)
    devices = sorted({str(d) for d in df["device_name"].dropna()}) if "device_name" in df else []
    md = ["# Complexity against image size", "", f"Device: {'; '.join(devices) or 'n/a'}. Random weights; "
          "sizes are square S×S content and style.", ""]
    tex = ["% generated by harness.complexity; needs \\usepackage{booktabs}"]
    for column, pattern, caption in SUMMARY_TABLES:
        if df.empty:
            break
        table = _pivot(df, column, pattern)
        md += [f"**{caption}**", "", _markdown(table), ""]
        tex.append(_latex(table, caption))
    if not ratios.empty:
        shown = ratios.copy()
        shown["pair"] = shown["numerator"] + " / " + shown["denominator"]
        keep = ["pair", "size", "dtype", "time_ratio", "memory_ratio", "gflops_total_ratio", "gflops_attention_ratio",
                "eq15_attention_ratio", "attention_time_ratio"]
        shown = shown[keep].set_index("pair")
        for c in keep[3:]:
            shown[c] = [_fmt(v, "{:.2f}") for v in shown[c]]
        caption = "Ratios per size (numerator / denominator; — where a cell is not ok)"
        md += [f"**{caption}**", "", _markdown(shown), ""]
        tex.append(_latex(shown, caption))
    if not slopes.empty:
        shown = slopes.copy()
        shown["fit"] = shown["method"] + " " + shown["dtype"] + " " + shown["quantity"]
        shown = shown.set_index("fit")[["slope", "r2", "sizes"]]
        shown["slope"] = [f"{v:.2f}" for v in shown["slope"]]
        shown["r2"] = [_fmt(v, "{:.3f}") for v in shown["r2"]]
        caption = "Log-log slopes against pixel count (ln y = slope ln(HW) + c)"
        md += [f"**{caption}**", "", _markdown(shown), ""]
        tex.append(_latex(shown, caption))
    paths = {"md": out / "complexity.md", "tex": out / "complexity.tex"}
    write_text_atomic(paths["md"], "\n".join(md))
    write_text_atomic(paths["tex"], "\n".join(tex))
    return paths


# ====================================================================================================================
# Plots
# ====================================================================================================================
def _pixels_text(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} Mpx" if pixels >= 1e6 else f"{pixels / 1e3:.3g} kpx"


def plot_complexity(df: pd.DataFrame, slopes: pd.DataFrame, out_stem: str | os.PathLike | None,
                    quantity: str = "time"):
    """Log-log plot of latency (``quantity="time"``) or peak memory (``"memory"``) against pixels, one line per
    method (× dtype × device when several), the fitted slope in the legend; a cell that went OOM (timed out) is an
    ×  (◆) at the top of the axes at its size. Saved as ``<out_stem>.png`` and ``.pdf`` (atomically) unless
    ``out_stem`` is None; returns the (pyplot-free) Figure."""
    from matplotlib import rcParams
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullLocator

    from .figures import save_figure

    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {', '.join(QUANTITIES)}, got {quantity!r}")
    column, ylabel = QUANTITIES[quantity]
    fig = Figure(figsize=(7.0, 4.6), layout="tight")  # no pyplot: no global state, no backend switch
    ax = fig.subplots()
    several = {c: df[c].nunique() > 1 for c in ("dtype", "device")} if not df.empty else {}
    top = ax.get_xaxis_transform()
    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    failures = set()
    for i, ((method, dtype, device), group) in enumerate(df.groupby(["method", "dtype", "device"], sort=False)):
        colour = colours[i % len(colours)]
        label = " ".join([str(method)] + [str(v) for v, c in ((dtype, "dtype"), (device, "device")) if several.get(c)])
        fit = slopes[(slopes["method"] == method) & (slopes["dtype"] == dtype) & (slopes["device"] == device)
                     & (slopes["quantity"] == column)] if not slopes.empty else slopes
        if not fit.empty:
            label += f" (slope {fit['slope'].iloc[0]:.2f})"
        positive = pd.to_numeric(group[column], errors="coerce") > 0
        ok = group[(group["status"] == "ok") & positive].sort_values("pixels")
        ax.plot(ok["pixels"].astype(float), pd.to_numeric(ok[column]), "o-", color=colour, label=label)
        for status, marker in (("oom", "x"), ("timeout", "D")):
            bad = group[group["status"] == status]
            if not bad.empty:
                failures.add(status)
                ax.plot(bad["pixels"].astype(float), [0.97] * len(bad), marker, color=colour, transform=top,
                        markersize=9, clip_on=False, linestyle="none")
    sizes = sorted({int(s) for s in df["size"]}) if not df.empty else []
    ax.set_xscale("log")
    ax.set_yscale("log")
    if not any(len(line.get_xdata()) for line in ax.get_lines() if line.get_transform() != top):
        ax.set_ylim(1, 10)  # nothing positive to show (e.g. CPU memory growth 0 at tiny sizes)
    elif failures:  # head room for the failure markers drawn at 97 % of the height
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * (high / low) ** 0.15)
    if sizes:
        ax.set_xticks([s * s for s in sizes])
        ax.set_xticklabels([f"{s}²\n{_pixels_text(s * s)}" for s in sizes], fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(sizes[0] ** 2 / 1.4, sizes[-1] ** 2 * 1.4)
    ax.set_xlabel("pixels H·W (side²)")
    ax.set_ylabel(ylabel)
    devices = sorted({str(d) for d in df.get("device_name", pd.Series(dtype=str)).dropna()})
    title = f"{ylabel.split(' (')[0].capitalize()} against image size"
    ax.set_title(title + (f" — {devices[0]}" if len(devices) == 1 else ""), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    for status, marker, text in (("oom", "x", "out of memory"), ("timeout", "D", "timeout")):
        if status in failures:
            handles.append(Line2D([], [], marker=marker, color="grey", linestyle="none"))
            labels.append(text)
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no ok cells", ha="center", va="center", transform=ax.transAxes)
    ax.grid(True, which="major", alpha=0.3)
    if out_stem is not None:
        save_figure(fig, out_stem, clear=False)
    return fig


if __name__ == "__main__":
    raise SystemExit(_worker_main())
