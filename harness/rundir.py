"""The files of a run directory: the flushed row writer of ``metrics.csv`` / ``timing.csv`` (resumable after a
kill), the merge of shard files, and the run's tables (``table.csv/.md/.tex``, through :mod:`harness.tables`)."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import warnings
from datetime import datetime, timezone
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metrics.preference import tally

from .atomic import atomic_path, process_alive, write_json_atomic
from .errors import RunError, write_failed
from .io import read_votes
from .tables import METRIC_LABELS, TIMING_COLUMNS, MetricSpec, aggregate, write_tables

KEY_COLUMNS = ("method", "content", "style")
"""What identifies a row of ``metrics.csv``."""


def whole_text(path: Path) -> str:
    """A CSV the harness appends to, without a torn last line (a line a kill cut short has no newline)."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    return data.decode("utf-8")


def read_rows(path: Path, keys: Sequence[str] = KEY_COLUMNS) -> pd.DataFrame:
    """The whole, well-formed rows of a run's CSV (``metrics.csv``, ``timing.csv``): a torn last line, a row with
    the wrong number of fields, an empty key or a value that is neither empty (unavailable) nor a number is left
    out; value columns are numeric. A key written twice keeps its last row."""
    text = whole_text(path) if path.exists() else ""
    if not text.strip():
        return pd.DataFrame(columns=list(keys))
    header = next(csv.reader(io.StringIO(text)))
    rows = [r for r in csv.reader(io.StringIO(text)) if r][1:]
    frame = pd.DataFrame([r for r in rows if len(r) == len(header)], columns=header, dtype=str)
    frame = frame.fillna("")
    ok = pd.Series(True, index=frame.index)
    for key in keys:
        ok &= frame[key].str.len() > 0 if key in frame else False
    text_columns = set(keys) | {"untrained", "device", "memory_kind", "note", "status", "options"}
    numbers = {}
    for column in (c for c in frame.columns if c not in text_columns):
        values = pd.to_numeric(frame[column].replace("", "nan"), errors="coerce")
        ok &= values.notna() | (frame[column] == "") | (frame[column].str.lower() == "nan")
        numbers[column] = values
    for column, values in numbers.items():
        frame[column] = values
    frame = frame[ok]
    return frame.drop_duplicates(subset=[k for k in keys if k in frame], keep="last").reset_index(drop=True)


def read_done(path: Path) -> set[tuple[str, str, str]]:
    """Keys (method, content, style) of the rows already in a metrics CSV: whole rows whose values all parse
    (:func:`read_rows`); a torn or malformed row is computed again."""
    frame = read_rows(path)
    return {tuple(row) for row in frame[list(KEY_COLUMNS)].itertuples(index=False)} if len(frame) else set()


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
        try:
            self.writer.writerow(row)
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as exc:  # a full disk: the torn row is dropped when the run resumes
            raise write_failed(exc, self.path) from exc

    def close(self) -> None:
        self.file.close()


def _drop_torn_last_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def merge_shards(run_dir: Path) -> dict[str, int]:
    """Combine ``metrics.shard-*.csv`` / ``timing.shard-*.csv`` of ``run_dir`` into ``metrics.csv`` / ``timing.csv``
    (whole rows, de-duplicated by key, shard order), written atomically; the shard files are kept."""
    counts = {}
    for stem, keys in (("metrics", list(KEY_COLUMNS)), ("timing", ["method", "size"])):
        parts = sorted(run_dir.glob(f"{stem}.shard-*.csv"))
        if not parts:
            continue
        frames = [read_rows(p, keys) for p in parts]  # whole rows only: a shard killed mid-row adds no torn one
        existing = run_dir / f"{stem}.csv"
        if existing.exists():
            frames.insert(0, read_rows(existing, keys))
        merged = pd.concat(frames, ignore_index=True).drop_duplicates(subset=keys, keep="first")
        with atomic_path(existing) as tmp:
            merged.to_csv(tmp, index=False)
        counts[stem] = len(merged)
    if not counts:
        raise RunError(f"{run_dir}: no shard files (metrics.shard-I-of-N.csv) to merge")
    manifests = sorted(run_dir.glob("manifest.shard-*.json"))
    if manifests:
        write_json_atomic(run_dir / "manifest.json", merged_manifest([json.loads(p.read_text()) for p in manifests],
                                                                     [p.name for p in manifests]))
    return counts


def merged_manifest(shards: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """One run's manifest from its shards' (the first shard's config and environment without its shard, every
    shard's methods and metric definitions, the summaries added up), so tables and captions of a merged run say
    what a single run's would."""
    merged = json.loads(json.dumps(shards[0]))
    merged.setdefault("config", {})["shard"] = None
    for shard in shards[1:]:
        for key in ("methods", "metrics"):
            for name, record in (shard.get(key) or {}).items():
                merged.setdefault(key, {}).setdefault(name, record)
    summaries = [s.get("summary", {}) for s in shards]
    summary = merged.setdefault("summary", {})
    for key in ("pairs", "computed", "skipped"):
        summary[key] = sum(int(s.get(key, 0)) for s in summaries)
    summary["seconds"] = {k: round(sum(s.get("seconds", {}).get(k, 0.0) for s in summaries), 3)
                          for k in dict.fromkeys(k for s in summaries for k in s.get("seconds", {}))}
    for key in ("unavailable", "skipped_methods"):
        summary[key] = {k: v for s in summaries for k, v in (s.get(key) or {}).items()}
    summary["unreadable"] = [u for s in summaries for u in (s.get("unreadable") or [])]
    merged["merged_from"] = list(names)
    return merged


SET_METRICS_NAME = "set_metrics.csv"
"""One row per method × set-level metric (FID, ArtFID): value, number of pairs, bootstrap interval."""


def _read_run(run_dir: Path):
    path = run_dir / "metrics.csv"
    if not path.exists():
        shards = sorted(run_dir.glob("metrics.shard-*.csv"))
        if not shards:
            raise RunError(f"{run_dir}: no metrics.csv (is it a run directory? shards are combined by harness.rundir.merge_shards)")
        raise RunError(f"{run_dir}: only shard files; combine them first with harness.rundir.merge_shards")
    metrics = read_rows(path)
    metrics["untrained"] = metrics["untrained"].str.lower().eq("true") if "untrained" in metrics else False
    timing_path = run_dir / "timing.csv"
    timing = read_rows(timing_path, keys=("method", "size")) if timing_path.exists() else None
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return metrics, timing, manifest


def _add_set_metrics(agg: pd.DataFrame, specs: dict[str, MetricSpec], rows: pd.DataFrame) -> None:
    """Columns of the set-level metrics: the value (no std: one value per method), n pairs, the bootstrap interval."""
    for name, group in rows.groupby("metric", sort=False):
        if name not in METRIC_LABELS:
            continue
        by_method = group.drop_duplicates("method", keep="last").set_index("method")
        agg[f"{name}_mean"] = agg["method"].map(by_method["value"]).astype("float64")
        agg[f"{name}_std"] = math.nan
        agg[f"{name}_n"] = agg["method"].map(by_method["n"]).fillna(0).astype(int)
        agg[f"{name}_ci95"] = math.nan
        agg[f"{name}_ci_low"] = agg["method"].map(by_method["ci_low"]).astype("float64")
        agg[f"{name}_ci_high"] = agg["method"].map(by_method["ci_high"]).astype("float64")
        label, higher, fmt = METRIC_LABELS[name]
        specs[name] = MetricSpec(name, label, higher, fmt)


def _caption(metric_names: Sequence[str], sizes: Sequence[str], manifests: Sequence[dict[str, Any]], timed: bool,
             devices: Sequence[str], weights: str) -> str:
    """What the table's numbers are: only the metrics it has, the image size as run, the timing protocol."""
    described = []
    if {"content_loss", "style_loss"} & set(metric_names):
        described.append("content and style loss (StyTr² definitions)")
    if "lpips" in metric_names:
        described.append("LPIPS (vs content)")
    described += [METRIC_LABELS[n][0] for n in metric_names if n not in ("content_loss", "style_loss", "lpips")]
    known = [s for s in sizes if s != "None"]
    aspect = any(m.get("config", {}).get("keep_aspect") for m in manifests)
    where = (f"at {'/'.join(known)} px{' (shorter side)' if aspect else ''}" if known else "")
    where += (" and " if known and len(known) < len(sizes) else "") + ("at the images' own sizes"
                                                                       if len(known) < len(sizes) else "")
    caption = f"{described[0][0].upper()}{', '.join(described)[1:]}: mean ± std over pairs {where}." if described \
        else ""
    if timed:
        caption += (f" Time: median full forward (encoding content and style, transfer, decoding; file I/O excluded), "
                    f"batch 1, on {'; '.join(devices)}.")
    return f"{caption} Weights: {weights}.".strip()


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
    set_rows = [pd.read_csv(Path(d) / SET_METRICS_NAME) for d in run_dirs if (Path(d) / SET_METRICS_NAME).exists()]
    if set_rows:
        _add_set_metrics(agg, specs, pd.concat(set_rows, ignore_index=True))
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
    dropped_votes = ""
    if votes is None:  # the votes the run recorded (run --votes), so that `table RUN` keeps its preference columns
        recorded = [m.get("config", {}).get("votes") for m in manifests if m.get("config", {}).get("votes")]
        if recorded and Path(recorded[0]).is_file():
            votes = recorded[0]
        elif recorded:
            warnings.warn(f"the run's votes file {recorded[0]} is gone: the table has no preference columns "
                          "(pass votes= to add them)")
    if votes:
        vote_frame, problems = read_votes(votes, methods=list(agg["method"]))
        extra = tally(vote_frame, methods=list(agg["method"]))
        if problems:
            other = sum(p.reason.startswith("unknown method") for p in problems)
            parts = ([f"{other} for methods not in this table"] if other else []) + (
                [f"{len(problems) - other} invalid"] if len(problems) > other else [])
            dropped_votes = (f" Preference: {len(vote_frame)} of {len(vote_frame) + len(problems)} vote rows used "
                             f"({', '.join(parts)} left out; shares are over the methods shown — `tally` on the file "
                             f"lists each row).")
    devices = sorted({m["device"] for m in manifests if m.get("device")}) or ["an unrecorded device"]
    flags = sorted({f"{n}: {d['flag']}" for m in manifests for n, d in m.get("methods", {}).items() if d.get("flag")})
    untrained_rows = bool(df["untrained"].any()) if "untrained" in df else False
    weights = "untrained rows flagged" if flags or untrained_rows else "pretrained weights"
    metric_flags = sorted({cfg.get("flag") or cfg.get("encoder", {}).get("flag", "")
                           or (cfg.get("weights") or {}).get("flag", "")
                           for m in manifests for cfg in m.get("metrics", {}).values() if isinstance(cfg, dict)} - {""})
    if metric_flags:
        weights += f"; metric networks: {', '.join(metric_flags)}"
    caption = _caption(metric_names, sizes, manifests, bool(timings), devices, weights) + dropped_votes
    not_run = list(dict.fromkeys(n for m in manifests for n in (m.get("summary", {}).get("skipped_methods") or {})
                                 if n not in set(agg["method"])))
    if not_run:
        caption += (f" Not run: {', '.join(not_run)} (no released weights and no harness checkpoint; the manifest "
                    "says how to train or flag it).")
    if set_rows:
        caption += (" FID and ArtFID: one value per method over all its pairs (95 % percentile-bootstrap interval "
                    "over pairs in table.csv).")
    return write_tables(agg, specs, out_dir or Path(run_dirs[0]), caption=caption, extra_rows=extra)


# ----------------------------------------------------------------------------------------------------------------------
# One writer per run directory, one configuration per run directory
# ----------------------------------------------------------------------------------------------------------------------
IDENTITY_NAME = "identity.json"


class RunLock:
    """An exclusive lock on a run directory (``.lock``; a shard locks its own ``.lock.shard-i-of-n``, so the shards
    of one run may write together): a second writer is refused with one line naming the holder; a lock left by a
    killed process (its pid gone, same host) is taken over with a warning."""

    def __init__(self, folder: Path, suffix: str = "") -> None:
        self.path = Path(folder) / f".lock{suffix}"
        self.held = False

    def _holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid, host = holder.get("pid"), holder.get("host")
                if isinstance(pid, int) and host == me["host"] and not process_alive(pid):
                    warnings.warn(f"{self.path}: a stale lock of process {pid} (no longer running) was taken over")
                    self.path.unlink(missing_ok=True)
                    continue
                raise RunError(f"{self.path.parent} is being written by process {pid} on {host} since "
                               f"{holder.get('started')}: wait for it to finish or use another output folder "
                               f"(if no such process runs, remove {self.path})") from None
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            self.held = True
            return
        raise RunError(f"{self.path}: cannot take the lock")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Human-readable differences between two identities (a method only in one of them is not a difference)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in old.keys() & new.keys() if where.endswith("methods") else old.keys() | new.keys():
            out += _differences(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return out
    return [] if old == new else [f"{where} {json.dumps(old, default=str)} (this run: {json.dumps(new, default=str)})"]


def check_identity(folder: Path, identity: Mapping[str, Any], force: bool = False) -> None:
    """A run directory holds the numbers of one configuration (:func:`harness.run.run_identity`): a run of other
    settings into it is refused with what differs (methods may be added), unless ``force`` (which recomputes).
    Writes the identity (the union of the methods) for the next run."""
    path = Path(folder) / IDENTITY_NAME
    new = json.loads(json.dumps(identity, default=str))
    try:
        old = json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        old = None  # a folder of an older harness, or a damaged file: rewritten below
    if old is not None and not force:
        differences = sorted(_differences(old, new))
        if differences:
            raise RunError(f"{folder} holds a run made with other settings: {'; '.join(differences)}; use another "
                           "output folder, or force to recompute it")
        new = {**new, "methods": {**old.get("methods", {}), **new["methods"]}}
    write_json_atomic(path, new)
