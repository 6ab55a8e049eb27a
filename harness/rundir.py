"""The files of a run directory: the flushed row writer of ``metrics.csv`` / ``timing.csv`` (resumable after a
kill), the merge of shard files, and the run's tables (``table.csv/.md/.tex``, through :mod:`harness.tables`)."""
from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metrics.preference import tally

from .atomic import atomic_path
from .errors import RunError
from .io import read_votes
from .tables import METRIC_LABELS, TIMING_COLUMNS, MetricSpec, aggregate, write_tables

KEY_COLUMNS = ("method", "content", "style")
"""What identifies a row of ``metrics.csv``."""


def read_done(path: Path) -> set[tuple[str, str, str]]:
    """Keys (method, content, style) of the rows already in a metrics CSV (a torn last line is ignored)."""
    if not path.exists():
        return set()
    with open(path, newline="") as f:
        return {tuple(row[k] for k in KEY_COLUMNS) for row in csv.DictReader(f) if row.get("style")}


class RowWriter:
    """Appends rows to a CSV and flushes each one, so a killed run keeps everything it computed."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path, self.columns = path, list(columns)
        if path.exists() and path.stat().st_size:
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
            if header != self.columns:
                raise RunError(f"{path}: existing columns {header} differ from this run's {self.columns}; "
                               "use a new output folder or force=True")
            _drop_torn_last_line(path)
            self.file = open(path, "a", newline="")
            self.writer = csv.DictWriter(self.file, self.columns)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", newline="")
            self.writer = csv.DictWriter(self.file, self.columns)
            self.writer.writeheader()
        self.file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def _drop_torn_last_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def merge_shards(run_dir: Path) -> dict[str, int]:
    """Combine ``metrics.shard-*.csv`` / ``timing.shard-*.csv`` of ``run_dir`` into ``metrics.csv`` / ``timing.csv``
    (rows de-duplicated by key, shard order), written atomically; the shard files are kept."""
    counts = {}
    for stem, keys in (("metrics", list(KEY_COLUMNS)), ("timing", ["method", "size"])):
        parts = sorted(run_dir.glob(f"{stem}.shard-*.csv"))
        if not parts:
            continue
        frames = [pd.read_csv(p) for p in parts]
        existing = run_dir / f"{stem}.csv"
        if existing.exists():
            frames.insert(0, pd.read_csv(existing))
        merged = pd.concat(frames, ignore_index=True).drop_duplicates(subset=keys, keep="first")
        with atomic_path(existing) as tmp:
            merged.to_csv(tmp, index=False)
        counts[stem] = len(merged)
    if not counts:
        raise RunError(f"{run_dir}: no shard files (metrics.shard-I-of-N.csv) to merge")
    return counts


def _read_run(run_dir: Path):
    path = run_dir / "metrics.csv"
    if not path.exists():
        shards = sorted(run_dir.glob("metrics.shard-*.csv"))
        if not shards:
            raise RunError(f"{run_dir}: no metrics.csv (is it a run directory? shards are combined by harness.rundir.merge_shards)")
        raise RunError(f"{run_dir}: only shard files; combine them first with harness.rundir.merge_shards")
    metrics = pd.read_csv(path)
    timing = pd.read_csv(run_dir / "timing.csv") if (run_dir / "timing.csv").exists() else None
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return metrics, timing, manifest


def write_run_tables(run_dirs: Sequence[Path], out_dir: Path | None = None, votes: str | None = None) -> dict[str, Path]:
    """Aggregate one or more run directories into ``table.csv/.md/.tex`` (in ``out_dir``, default the first run).

    Per-pair metrics: mean ± std and 95 % CI per method. Timing (one measurement per method and size): the median
    latency, images/s, peak memory and GFLOPs of ``timing.csv``. ``votes``: a user-study CSV whose preference shares
    are added as columns."""
    frames, timings, manifests = [], [], []
    for run_dir in run_dirs:
        metrics, timing, manifest = _read_run(Path(run_dir))
        frames.append(metrics)
        manifests.append(manifest)
        if timing is not None:
            timings.append(timing)
    df = pd.concat(frames, ignore_index=True)
    metric_names = [c for c in df.columns if c in METRIC_LABELS]
    specs = {n: MetricSpec(n, METRIC_LABELS[n][0], METRIC_LABELS[n][1], METRIC_LABELS[n][2]) for n in metric_names}
    agg = aggregate(df, specs)
    sizes = sorted({str(m.get("config", {}).get("size")) for m in manifests})
    if timings:
        timing = pd.concat(timings, ignore_index=True).drop_duplicates(subset=["method", "size"], keep="last")
        timing = timing.groupby("method", sort=False).last()
        for column, (label, higher, fmt) in TIMING_COLUMNS.items():
            agg[f"{column}_mean"] = agg["method"].map(timing[column]).astype("float64")
            agg[f"{column}_std"] = math.nan
            agg[f"{column}_n"] = agg["method"].map(timing["repeats"]).fillna(0).astype(int)
            agg[f"{column}_ci95"] = math.nan
            specs[column] = MetricSpec(column, label, higher, fmt)
    extra = None
    if votes:
        vote_frame, _problems = read_votes(votes, methods=list(agg["method"]))
        extra = tally(vote_frame, methods=list(agg["method"]))
    devices = sorted({m.get("device", "?") for m in manifests})
    flags = sorted({f"{n}: {d['flag']}" for m in manifests for n, d in m.get("methods", {}).items() if d.get("flag")})
    weights = "untrained rows flagged" if flags else "pretrained weights"
    metric_flags = sorted({cfg.get("flag") or cfg.get("encoder", {}).get("flag", "")
                           for m in manifests for cfg in m.get("metrics", {}).values() if isinstance(cfg, dict)} - {""})
    if metric_flags:
        weights += f"; metric networks: {', '.join(metric_flags)}"
    caption = (f"Content and style loss (StyTr² definitions) and LPIPS (vs content): mean ± std over pairs at "
               f"{'/'.join(sizes)} px. Time: median full forward (both VGG encodings, attention, decoding; file I/O "
               f"excluded), batch 1, on {'; '.join(devices)}. Weights: {weights}.")
    return write_tables(agg, specs, out_dir or Path(run_dirs[0]), caption=caption, extra_rows=extra)
