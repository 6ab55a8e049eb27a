"""The sweep: every (method, size, dtype) cell in a worker process (one per method, or one per cell), resumable, then slopes, ratios, tables and plots."""
from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from datetime import datetime, timezone
from tqdm import tqdm

from ..atomic import write_json_atomic, write_text_atomic
from ..environment import device_name, git_commit, machine_info, versions
from ..errors import ComplexityError
from ..figures.charts import plot_complexity
from methods import create_method

from .config import (COLUMNS, DONE_STATUSES, DTYPES, KEY, LARGEST_COLUMNS, PRIME_SIZE, SKIPPED, ComplexityConfig,
    _one_line, check_config)
from .estimate import estimate_working_set, largest_square_side
from .layers import _eq15_columns, eq15_table
from .measure import Cell
from .report import write_summary
from .worker import CellWorker


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


class _Estimator:
    """The working-set estimates of a sweep's cells (:func:`estimate_working_set`), one random-weight CPU model per
    method built on first use; ``convolution_scratch`` follows the sweep's device (the oneDNN model on the CPU only)."""

    def __init__(self, config: ComplexityConfig) -> None:
        self.config = config
        self._models: dict[str, Any] = {}
        self._scratch = "auto" if torch.device(config.device).type == "cpu" else None

    def __call__(self, method: str, dtype: str, size: int) -> float:
        if method not in self._models:
            self._models[method] = create_method(method, init="random", seed=self.config.seed, device="cpu",
                                                 **self.config.options_for(method)).model
        shape = (self.config.batch_size, 3, size, size)
        return estimate_working_set(self._models[method], shape, autocast_dtype=DTYPES[dtype],
                                    convolution_scratch=self._scratch).peak_mib

    def safe(self, method: str, dtype: str, size: int) -> tuple[float, str | None]:
        """(estimate, None), or (NaN, why) where the trace fails (e.g. an op without a shape rule): the cell's
        measurement still stands."""
        try:
            return self(method, dtype, size), None
        except Exception as exc:  # noqa: BLE001 — an estimate is an extra column, never a reason to lose a cell
            return math.nan, f"memory estimate failed: {type(exc).__name__}: {_one_line(exc)[:200]}"


def run_complexity(config: ComplexityConfig) -> pd.DataFrame:
    """Run the sweep of ``config`` (see the module docstring) and write every output; returns the full
    ``complexity.csv`` table (this sweep's cells and any other cells already in the folder)."""
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
    worker, worker_method = None, None
    estimator = _Estimator(config) if config.estimate_memory else None
    with contextlib.ExitStack() as stack, \
            tqdm(total=len(cells), desc="complexity", unit="cell", disable=not config.progress) as bar:
        stack.callback(lambda: worker is not None and worker.close())  # the worker current at the end
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
                if worker is None or config.worker_mode == "cell" or worker_method != method:
                    if worker is not None:
                        worker.close()
                    worker, worker_method = CellWorker(config.threads), method
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
                row = {**base, "load_before": load, "worker": config.worker_mode, **worker.run(cell, config.max_seconds)}
                computed += 1
            if estimator is not None:  # recomputed for kept cells too: seconds, and always today's code
                bar.set_postfix_str(f"{method} {size}² {dtype}: estimating")
                row["estimated_memory_mib"], why = estimator.safe(method, dtype, size)
                if why is not None:
                    note = row.get("note")
                    row["note"] = f"{note}; {why}" if isinstance(note, str) and note else why
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
    largest = None
    if config.largest_within_mib is not None:
        largest = largest_table(frame, estimator, config)
        _write_csv_atomic(largest, out / "largest.csv")
    write_summary(frame, slopes, ratios, out, largest)
    for quantity in ("time", "memory"):
        plot_complexity(frame, slopes, out / f"complexity_{quantity}", quantity)
    write_json_atomic(out / "complexity.json", _manifest(config, layers, started, computed, kept, skipped))
    return frame


def _manifest(config: ComplexityConfig, layers: Mapping[str, Any], started: str, computed: int, kept: int,
              skipped: int) -> dict[str, Any]:
    """``complexity.json``: the settings, the cells' fate, versions, machine and protocol."""
    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cells": {"computed": computed, "kept": kept, "skipped": skipped},
        "versions": versions(), "git_commit": git_commit(), "device": device_name(torch.device(config.device)),
        "machine": machine_info(),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "weights": "random (init='random', seeded): speed, memory and FLOPs do not depend on the values",
        "memory_estimate": ("estimated_memory_mib: harness.complexity.estimate (fake-tensor trace; oneDNN "
                            "convolution scratch modelled on the CPU)" if config.estimate_memory else None),
        "protocol": (("one worker process per method, its sizes in turn (free heap trimmed before each memory "
                      "reset)" if config.worker_mode == "method" else "fresh worker process per cell")
                     + f"; priming forward at {PRIME_SIZE}²; {config.warmup} warm-up + "
                     f"{config.repeats} timed forwards (median, p10, p90); {config.attention_repeats} extra hooked "
                     "forwards for the attention time; one FlopCounterMode forward; batch "
                     f"{config.batch_size}, square S×S content and style"),
        "attention_layers": {m: [asdict(s) for s in v] for m, v in layers.items()},
    }


def _number(value: Any) -> bool:
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def largest_table(frame: pd.DataFrame, estimate: Any, config: ComplexityConfig) -> pd.DataFrame:
    """``largest.csv`` (columns :data:`~harness.complexity.config.LARGEST_COLUMNS`): per method and dtype of the
    sweep, :func:`largest_square_side` over ``estimate(method, dtype, side)`` within ``config.largest_within_mib``,
    beside the measured working set at the largest ``ok`` size of ``frame`` (with the estimate there and their
    ratio: how far to trust the extrapolation)."""
    out = []
    device = torch.device(config.device).type
    for method in config.methods:
        for dtype in config.dtypes:
            found = largest_square_side(lambda side: estimate(method, dtype, side), config.largest_within_mib,
                                        multiple=config.largest_multiple, limit=config.largest_limit)
            row = {"method": method, "dtype": dtype, "device": device, "budget_mib": config.largest_within_mib,
                   "largest_side": found.side, "estimated_mib": found.peak_mib, "next_side": found.next_side,
                   "next_estimated_mib": found.next_peak_mib, "limited": found.limited}
            cells = _ok(frame[(frame["method"] == method) & (frame["dtype"] == dtype) & (frame["device"] == device)])
            cells = cells[pd.to_numeric(cells["peak_memory_mib"], errors="coerce").gt(0)]
            if not cells.empty:
                top = cells.sort_values("size").iloc[-1]
                measured, estimated = float(top["peak_memory_mib"]), float(top.get("estimated_memory_mib", math.nan))
                row.update(largest_measured_size=int(top["size"]), measured_mib=measured,
                           estimated_mib_at_measured=estimated,
                           measured_over_estimated=measured / estimated if _number(estimated) and estimated else
                           math.nan)
            out.append(row)
    return pd.DataFrame(out, columns=LARGEST_COLUMNS)


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
