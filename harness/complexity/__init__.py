"""Complexity study: latency, peak memory and FLOPs of every method against image size, beside the paper's Eq. 15.

One *cell* = (method, size S, dtype): square S×S content and style, batch ``batch_size``, random weights
(``init="random"``: speed and memory do not depend on the values). Cells run in a **worker subprocess**
(``python -m harness.complexity.worker``, :class:`CellWorker`) so that an out-of-memory crash cannot take the sweep
down: one worker per method measures its sizes in ascending order (``worker: method``; torch, the FLOP counter and
the thread pools start once), or a fresh process per cell (``worker: cell``), the strictest isolation; ``auto``
(default) picks ``method`` on CUDA and ``cell`` on the CPU, whose resident-set memory measure depends on what earlier
cells left mapped (see :class:`ComplexityConfig`). Inside the worker (:func:`measure_cell`):

1. build the method and the seeded inputs; run one *priming* forward at a small size (thread pools, allocator
   arenas and kernel caches exist before anything is measured or capped);
2. hand the free C heap back to the OS (glibc ``malloc_trim``), reset the memory high-water mark and, when ``max_memory_mib`` is set, cap the memory the warm-up and timed
   forwards may add (CPU: ``RLIMIT_AS = VmSize + cap`` — a cap on *virtual* address-space growth, a conservative
   proxy for RSS; CUDA: ``torch.cuda.set_per_process_memory_fraction((memory_reserved + cap) / total)``); the cap is
   lifted again before steps 5–6, which only repeat a forward that fitted (FlopCounterMode's lazy imports alone
   need more address space than a small cap allows);
3. latency: :func:`metrics.timing.measure_latency` — ``warmup`` untimed then ``repeats`` timed forwards
   (``torch.inference_mode``, autocast to bf16 when ``dtype="bf16"``, CUDA synchronised); median, p10, p90 (ms);
4. peak memory (MiB) — CPU: one forward before the warm-up, with every allocation of 64 KiB or more mapped on its
   own (glibc ``mallopt``), so that the resident set follows the live tensors: the growth of the resident-set
   high-water mark (``VmHWM`` after a reset through ``/proc/self/clear_refs`` − ``VmRSS`` at the reset), i.e. the
   forward's working set, the same at every run (over the timed runs themselves glibc's heap keeps freed blocks and
   the mark varies by ±10 %; that is the fallback where the C library is not glibc); CUDA: ``max_memory_allocated``
   during the timed runs − ``memory_allocated`` before them (the working
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
``timeout`` (the cell ran past ``max_seconds`` of wall clock — a fresh worker's start, imports and model building
included), or ``error: <one line>``. With ``skip_larger_after_failure`` a method that went ``oom`` (``timeout``) at size S is not
run at larger sizes: those rows get the same status and a ``note`` ``skipped: …``, and are re-derived (not trusted)
on resume.

Outputs in ``out``: ``complexity.csv`` (one row per method × size × dtype × device, rewritten atomically after
every cell: resumable — cells already ``ok``/``oom``/``timeout`` are kept unless ``force``), ``slopes.csv``
(:func:`fit_slopes`), ``eq15.csv`` (:func:`eq15_table`), ``ratios.csv`` (:func:`ratio_table`),
``complexity.md`` / ``complexity.tex`` (:func:`write_summary`), ``complexity_time.png/.pdf`` and
``complexity_memory.png/.pdf`` (:func:`harness.figures.plot_complexity`) and ``complexity.json`` (config,
environment, protocol).

Modules: :mod:`.config` (settings, checks, protocol constants), :mod:`.layers` (attention modules, Eq. 15),
:mod:`.measure` (one cell in this process), :mod:`.worker` (cells in a worker process), :mod:`.sweep` (all cells,
slopes, ratios), :mod:`.report` (Markdown and LaTeX tables).
"""
from __future__ import annotations

from ..errors import ComplexityError
from ..figures.charts import plot_complexity
from .config import COLUMNS, DEFAULT_METHODS, DEFAULT_SIZES, DTYPES, ComplexityConfig, check_config
from .layers import (ATTENTION_LAYER_PATHS, AttentionLayer, Eq15Layer, attention_layers, attention_modules,
    eq15_attention_flops, eq15_table, method_attention_layers)
from .measure import Cell, ModuleTimes, count_attention_flops, is_oom, measure_cell, time_modules
from .report import write_summary
from .sweep import fit_slopes, ratio_table, run_complexity
from .worker import CellWorker, run_cell

__all__ = [
    "ATTENTION_LAYER_PATHS",
    "COLUMNS",
    "DEFAULT_METHODS",
    "DEFAULT_SIZES",
    "DTYPES",
    "AttentionLayer",
    "Cell",
    "CellWorker",
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
