"""Measuring one cell in this process: latency, peak memory (with a cap), time inside the attention modules (hooks)
and FLOPs (see :mod:`harness.complexity` for the protocol)."""
from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from methods import create_method
from metrics.timing import flop_counter, measure_latency

from ..environment import device_name
from ..errors import ComplexityError
from .config import DTYPES, OOM_MARKERS, PRIME_SIZE
from .layers import ATTENTION_LAYER_PATHS, attention_modules


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
    with flop_counter() as counter:
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


def _release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim``), so that the RSS at the high-water reset
    is the live set and a cell that follows a larger one in the same worker still sees its own growth."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: fresh workers (worker: cell) keep the cells apart instead
        pass


def _reset_peak_rss() -> bool:
    """Reset the resident-set high-water mark (VmHWM, and with it ru_maxrss) to the current RSS (Linux ≥ 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


@contextlib.contextmanager
def _exact_heap() -> Iterator[bool]:
    """Map every allocation of 64 KiB or more on its own, unmapped when freed (glibc ``mallopt``), so the resident
    set follows the live tensors and a forward's RSS high-water growth is its working set, the same at every run.
    (Under glibc's dynamic threshold, freed mid-sized blocks stay in the heap and the mark depends on fragmentation:
    StyA2K at 1024² read 1,018–1,202 MiB over repeated measurements here, 996 MiB every time under this.) It slows
    allocation (a page fault per fresh page: +35 % latency for StyA2K at 512²), so only the memory pass runs under
    it; on exit the thresholds are the values glibc's dynamic rule reaches after large frees (32 MiB mmap, 64 MiB
    trim). Exact in a fresh process (the CPU worker's ``worker: cell``): a heap that earlier work left full of large
    free blocks serves allocations from them, and those stay resident when freed. Yields False (and changes
    nothing) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        exact = bool(libc.mallopt(_M_MMAP_THRESHOLD, 64 * 2**10)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 0))
    except (OSError, AttributeError):
        yield False
        return
    try:
        yield exact
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)


def _working_set_mib(forward: Callable[[], None]) -> tuple[float, float] | None:
    """(working set, baseline) in MiB of one ``forward()`` on the CPU: the growth of the RSS high-water mark over
    the RSS at its reset (the baseline: weights, inputs, the interpreter), under :func:`_exact_heap`; None where
    that or the high-water reset is not available (not glibc / not Linux)."""
    with _exact_heap() as exact:
        gc.collect()
        _release_free_heap()
        if not exact or not _reset_peak_rss():
            return None
        baseline = (_proc_status_kib("VmRSS") or 0) / 1024
        forward()
        peak = (_proc_status_kib("VmHWM") or 0) / 1024
    return max(0.0, peak - baseline), baseline


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
    content_size: tuple[int, int] | None = None
    """Content (height, width) where it differs from the square ``size`` × ``size`` style (high-resolution runs)."""


def _attention_columns(cell: Cell, forward: Callable[[], None], model: nn.Module, modules: Mapping[str, nn.Module],
                       labelled: Mapping[str, nn.Module], device: torch.device, notes: list[str]) -> dict[str, Any]:
    """The hooked attention time and the FLOP counts of one cell (steps 5–6 of the protocol); a step that runs out
    of memory is left out with a note."""
    row: dict[str, Any] = {}
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
    return row


def measure_cell(cell: Cell) -> dict[str, Any]:
    """Measure one cell in *this* process (the worker; see the module docstring for the protocol). Returns the
    result columns; raises on failure (out-of-memory included: the worker classifies it with :func:`is_oom`)."""
    if cell.threads:
        torch.set_num_threads(cell.threads)
    device = torch.device(cell.device)
    method = create_method(cell.method, init="random", seed=cell.seed, device=device, **cell.options)
    model = method.model
    generator = torch.Generator().manual_seed(cell.seed)
    shape = (cell.batch_size, 3, cell.size, cell.size)
    content_shape = shape if cell.content_size is None else (cell.batch_size, 3, *cell.content_size)
    content = torch.rand(content_shape, generator=generator).to(device)
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
    working_set = None
    with _memory_cap(cell.max_memory_mib, device):  # the cap guards the measured forwards only
        if device.type == "cpu":
            working_set = _working_set_mib(forward)
            if working_set is None:  # the fallback: the high-water mark over the timed runs themselves
                _release_free_heap()
                exact = _reset_peak_rss()
                baseline = (_proc_status_kib("VmRSS") or 0) / 1024
        timing = measure_latency(forward, warmup=cell.warmup, repeats=cell.repeats, device=device,
                                 batch_size=cell.batch_size)
    if device.type == "cuda":
        baseline = timing.baseline_memory_mib or 0.0
        peak = (timing.peak_memory_mib or 0.0) - baseline
        kind = ("cuda max_memory_allocated during the timed runs − memory_allocated before them (working set; "
                "weights and inputs excluded, in baseline_memory_mib)")
    elif working_set is not None:
        peak, baseline = working_set
        kind = ("cpu working set: resident-set high-water growth (VmHWM after reset − VmRSS) of one forward before "
                "the timed runs, every allocation ≥ 64 KiB mapped on its own so that the resident set follows the "
                "live tensors (glibc mallopt)")
    else:
        peak = timing.peak_memory_mib
        kind = ("cpu resident-set high-water growth (VmHWM after reset − VmRSS, free heap trimmed) over warm-up + "
                "timed runs" if exact else
                "cpu peak RSS (ru_maxrss) growth over warm-up + timed runs (no HWM reset: 0 if under an earlier peak)")
    row: dict[str, Any] = {
        "status": "ok", "latency_ms": timing.median_s * 1e3, "p10_ms": timing.p10_s * 1e3,
        "p90_ms": timing.p90_s * 1e3, "peak_memory_mib": peak, "baseline_memory_mib": baseline,
        "memory_kind": kind, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "device_name": device_name(device),
    }
    row.update(_attention_columns(cell, forward, model, modules, labelled, device, notes))
    row["note"] = "; ".join(notes)
    return row
