"""Video: stylise every frame of a clip independently and measure temporal consistency (the paper's Table 3).

Each frame is stylised on its own (no temporal smoothing, no flow at inference — spec §12); the style is encoded once
per method (:meth:`methods.Method.prepare_style`) and reused for every frame. Temporal consistency is the warping
error of :mod:`metrics.temporal` (Lai et al. 2018, Ruder et al.'s occlusion mask), with the optical flow estimated on
the **input** frames at the processing resolution (or read from ``.flo`` files and resampled to it), for
consecutive frames and for a long-range lag k; the same error of the unstylised input frames is the floor.

Layout of an output folder::

    OUT/
      manifest.json                config, versions, git commit, device, method provenance, inputs, seconds per step
      temporal.csv/.md/.tex        rows = methods + "input (floor)"; columns = clips, mean, long-range mean (lower is better)
      per_frame.csv                clip, method ("input" = the floor), frame, error (t−1→t), long_range_error (t−k→t)
      per_frame_error.png/.pdf     per-frame error of every method, one panel per clip
      <clip>/<method>/frame_0001.png ...   stylised frames (1-based position in the clip)
      <clip>/<method>.mp4 | .gif   previews (and <clip>/input.mp4)

Frames already in ``OUT/<clip>/<method>/`` are reused when their settings (``.settings.json``: style, size, weights,
options, source frames) match, unless ``force``; the flow and the metric are recomputed (cheap next to stylisation).
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from methods import Method, load_method
from methods.weights import Loading, sha256_file
from metrics.base import summarize
from metrics.temporal import (
    FLOW_BACKENDS,
    DEFINITIONS as WARPING_DEFINITIONS,
    OcclusionConfig,
    pair_error,
    pair_mask,
)

from .atomic import write_json_atomic, write_text_atomic
from .environment import device_name, git_commit, versions
from .errors import FlowFileError, VideoError
from .figures import plot_per_frame_error
from .images import load_image, resize_image, save_image, tensor_to_image
from .errors import ImageError
from .io import Clip, FlowSource, clip_name, frame_to_tensor, read_clip, write_preview
from .tables import MetricSpec, write_tables

__all__ = [
    "FLOOR_LABEL",
    "INPUT",
    "PREVIEW_FORMATS",
    "FlowSource",
    "VideoConfig",
    "clip_name",
    "run_video",
    "temporal_aggregate",
    "write_temporal_tables",
]

PREVIEW_FORMATS = ("mp4", "gif", "none")
INPUT = "input"
"""The ``method`` of the floor rows in ``per_frame.csv`` (the unstylised input frames)."""
FLOOR_LABEL = "input (floor)"
"""The floor row's label in ``temporal.csv/.md/.tex``."""


# ----------------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class VideoConfig:
    """Everything a video run depends on (YAML-friendly: paths may be strings); recorded in the manifest.

    * ``clips``: ``{name: frames folder or video file}``, or a list of those (named by :func:`clip_name`).
    * ``style``: the style image (resized to ``size × size``, the official test protocol; its own size if None).
    * ``size``: frames are resized so that their **shorter side** is ``size`` (aspect ratio kept, bicubic); None keeps
      the native resolution. Flow, masks and errors live at this resolution.
    * ``max_frames``: only the first N frames of each clip (natural order).
    * ``flow``: ``"dis"`` | ``"farneback"`` (OpenCV, on the input frames) or a folder of ``.flo`` files named like
      artistic-videos, ``backward_<t>_<s>.flo`` (w_{t→s}) and ``forward_<s>_<t>.flo`` (w_{s→t}) with 1-based frame
      positions; with several clips, ``<folder>/<clip name>/`` is used when it exists.
    * ``long_range_k``: lag of the long-range error (pairs t−k → t, with the flow between frames t and t−k estimated
      directly, or read from ``backward_<t>_<t−k>.flo`` / ``forward_<t−k>_<t>.flo``); 0 or 1 disables it.
    * ``scale``: intensity scale σ of the error (1 → images in [0, 1]; 255 → 8-bit units, errors × 65025).
    * ``preview``: ``"mp4"`` (falls back to GIF when OpenCV cannot write it), ``"gif"`` or ``"none"``; ``fps``.
    """

    methods: list[str]
    clips: dict[str, str] | list[str]
    style: str
    out: Path | str = Path("results/video")
    size: int | None = 256
    max_frames: int | None = None
    flow: str = "dis"
    long_range_k: int = 5
    scale: float = 1.0
    definition: str = "lai2018"
    preview: str = "mp4"
    fps: float = 12.0
    device: str = "cpu"
    init: str | None = None
    seed: int = 0
    weights_dir: str | None = None
    download: bool | None = None
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = [m.strip() for m in self.methods.split(",") if m.strip()]
        self.methods = [str(m) for m in self.methods]
        if not self.methods:
            raise VideoError("no methods given (e.g. methods: [styA2K, all2all, adain])")
        if isinstance(self.clips, (str, os.PathLike)):
            self.clips = [str(self.clips)]
        if isinstance(self.clips, Mapping):
            self.clips = {str(k): str(v) for k, v in self.clips.items()}
        else:
            named: dict[str, str] = {}
            for source in self.clips:
                name = clip_name(source)
                if name in named:
                    raise VideoError(f"two clips would both be named {name!r} ({named[name]} and {source}); "
                                     "give clips as a mapping {name: path}")
                named[name] = str(source)
            self.clips = named
        if not self.clips:
            raise VideoError("no clips given (a frames folder or a video file)")
        for name in self.clips:
            if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
                raise VideoError(f"bad clip name {name!r}: it becomes a folder name (no slashes, no leading dot)")
        self.style = str(self.style)
        self.out = Path(self.out)
        for key in ("size", "max_frames"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise VideoError(f"{key} must be a positive integer or null, got {value!r}")
        if self.max_frames is not None and self.max_frames < 2:
            raise VideoError(f"max_frames must be at least 2 (the error compares frame pairs), got {self.max_frames}")
        if isinstance(self.long_range_k, bool) or not isinstance(self.long_range_k, int) or self.long_range_k < 0:
            raise VideoError(f"long_range_k must be an integer ≥ 0, got {self.long_range_k!r}")
        self.flow = str(self.flow)
        if self.flow not in FLOW_BACKENDS and not Path(self.flow).is_dir():
            raise VideoError(f"flow {self.flow!r}: expected {' or '.join(FLOW_BACKENDS)}, or an existing folder of "
                             ".flo files")
        if self.preview not in PREVIEW_FORMATS:
            raise VideoError(f"preview must be one of {', '.join(PREVIEW_FORMATS)}, got {self.preview!r}")
        if self.definition not in WARPING_DEFINITIONS:
            raise VideoError(f"definition must be one of {', '.join(WARPING_DEFINITIONS)}, got {self.definition!r}")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise VideoError(f"scale must be a positive number, got {self.scale!r}")
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise VideoError(f"fps must be a positive number, got {self.fps!r}")

    @property
    def lag(self) -> int | None:
        """The long-range lag, or None when disabled (k ≤ 1)."""
        return self.long_range_k if self.long_range_k > 1 else None


# ----------------------------------------------------------------------------------------------------------------------
# Reading clips
# ----------------------------------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------------------------------
# Outputs: previews, plot, tables
# ----------------------------------------------------------------------------------------------------------------------
def _clip_key(clip: str) -> str:
    return f"clip_{clip}"


def _table_specs(clips: Sequence[str], lag: int | None) -> dict[str, MetricSpec]:
    specs = {_clip_key(c): MetricSpec(_clip_key(c), c, higher_is_better=False, fmt="{:.4g}") for c in clips}
    specs["mean"] = MetricSpec("mean", "mean", higher_is_better=False, fmt="{:.4g}")
    if lag is not None:
        specs["long_range_mean"] = MetricSpec("long_range_mean", f"long range k={lag} (mean)", False, "{:.4g}")
    return specs


def temporal_aggregate(per_frame: pd.DataFrame, clips: Sequence[str], lag: int | None) -> pd.DataFrame:
    """One row per method (order of appearance; the floor row ``input`` labelled :data:`FLOOR_LABEL`): per clip the
    mean, std, n and 95 % CI over its frame pairs (``clip_<name>_*``); ``mean_*`` = the mean of the clip means (n =
    clips, std NaN); ``long_range_mean_*`` likewise for the long-range error."""
    rows = []
    for method in dict.fromkeys(per_frame["method"]):
        data = per_frame[per_frame["method"] == method]
        row: dict[str, Any] = {"method": FLOOR_LABEL if method == INPUT else method,
                               "untrained": bool(data["untrained"].astype(bool).any())}
        clip_means, long_means = [], []
        for clip in clips:
            values = data.loc[data["clip"] == clip, "error"].to_numpy(dtype=float)
            s = summarize(values[~np.isnan(values)].tolist())
            key = _clip_key(clip)
            row.update({f"{key}_mean": s.mean, f"{key}_std": s.std, f"{key}_n": s.n, f"{key}_ci95": s.ci95})
            clip_means.append(s.mean)
            long = data.loc[data["clip"] == clip, "long_range_error"].to_numpy(dtype=float)
            long_means.append(float(np.mean(long[~np.isnan(long)])) if (~np.isnan(long)).any() else math.nan)
        for key, means in (("mean", clip_means), ("long_range_mean", long_means if lag is not None else None)):
            if means is None:
                continue
            finite = [m for m in means if not math.isnan(m)]
            row.update({f"{key}_mean": float(np.mean(finite)) if finite else math.nan, f"{key}_std": math.nan,
                        f"{key}_n": len(finite), f"{key}_ci95": math.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def write_temporal_tables(agg: pd.DataFrame, specs: dict[str, MetricSpec], out: Path, caption: str) -> dict[str, Path]:
    """``out/temporal.csv/.md/.tex`` (:func:`harness.tables.write_tables`): best marks and untrained daggers on the
    method rows; the floor row (the unstylised input, not a method) is shown last and never ranked. Atomic."""
    order = pd.concat([agg[agg["method"] != FLOOR_LABEL], agg[agg["method"] == FLOOR_LABEL]], ignore_index=True)
    return write_tables(order, specs, out, caption=caption, label="tab:temporal", unranked=[FLOOR_LABEL],
                        stem="temporal")


# ----------------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------------
def _settings(config: VideoConfig, method: Method, clip: Clip, style_sha: str) -> dict[str, Any]:
    """What a method's stylised frames of a clip depend on; stored as ``.settings.json`` next to them."""
    return {"method": method.name, "options": method.options, "provenance": method.provenance.to_dict(),
            "style_sha256": style_sha, "style_size": config.size, "size": list(clip.size),
            "source": str(clip.source), "frames": clip.frame_names}


def _load_existing(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        array = np.asarray(load_image(path), dtype=np.uint8)
    except ImageError:
        return None
    return array if array.shape == shape else None


def _stylise_clip(config: VideoConfig, method: Method, clip: Clip, style: torch.Tensor, style_sha: str,
                  clock: dict[str, float], counts: dict[str, int]) -> np.ndarray:
    """Every frame of ``clip`` stylised by ``method`` (reusing matching frames on disk): (N, H, W, 3) uint8."""
    folder = config.out / clip.name / method.name
    settings = json.loads(json.dumps(_settings(config, method, clip, style_sha), default=str))
    settings_path = folder / ".settings.json"
    try:
        previous = json.loads(settings_path.read_text()) if settings_path.is_file() and not config.force else None
    except (OSError, ValueError):
        previous = None
    keep = 0  # frames on disk that were made with these settings from the same source frames
    if isinstance(previous, dict) and {k: v for k, v in previous.items() if k != "frames"} == {
            k: v for k, v in settings.items() if k != "frames"}:
        old_frames = previous.get("frames") or []
        while keep < min(len(old_frames), len(clip.frame_names)) and old_frames[keep] == clip.frame_names[keep]:
            keep += 1
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("frame_*.png"):  # made with other settings: removed before the new ones are recorded
        match = re.fullmatch(r"frame_(\d+)\.png", stale.name)
        if match is None or int(match[1]) > keep:
            stale.unlink()
    write_json_atomic(settings_path, settings)
    outputs = np.empty_like(clip.frames)
    prepared = None
    for i in tqdm(range(len(clip.frames)), desc=f"{clip.name}/{method.name}", unit="frame", disable=not config.progress):
        path = folder / f"frame_{i + 1:04d}.png"
        existing = _load_existing(path, clip.frames.shape[1:]) if i < keep else None
        if existing is not None:
            outputs[i] = existing
            counts[f"reused:{method.name}"] += 1
            continue
        start = time.perf_counter()
        if prepared is None:
            prepared = method.prepare_style(style)
        result = method.stylize(clip.tensor(i), prepared)
        if result.is_cuda:
            torch.cuda.synchronize(result.device)
        clock[f"stylize:{method.name}"] += time.perf_counter() - start
        counts[f"stylize:{method.name}"] += 1
        image = tensor_to_image(result)  # the official quantisation: the metric sees exactly what the PNG holds
        outputs[i] = np.asarray(image)
        save_image(image, path)
    return outputs


def _temporal_rows(config: VideoConfig, clip: Clip, series: dict[str, np.ndarray], untrained: dict[str, bool],
                   clock: dict[str, float], counts: dict[str, int], notes: list[str]) -> list[dict[str, Any]]:
    """per_frame.csv rows of one clip: for every frame t ≥ 2 and every series (input + methods) the error of the pair
    (t−1, t) and, for t > k, of (t−k, t); all series of a pair are evaluated in one batch with one flow and mask."""
    flows = FlowSource(config.flow, clip, len(config.clips))
    names = list(series)

    def batch(index: int) -> torch.Tensor:
        """Frame ``index`` of every series: (S, 3, H, W) float32 in [0, 1]."""
        return torch.from_numpy(np.stack([series[n][index] for n in names])).permute(0, 3, 1, 2).float() / 255.0

    n_frames = len(clip.frames)
    lag = config.lag if config.lag is not None and config.lag < n_frames else None
    if config.lag is not None and lag is None:
        notes.append(f"{clip.name}: {n_frames} frames, too few for the long-range lag k={config.lag}")
    pairs = [(t, t - 1, "error") for t in range(1, n_frames)]
    if lag is not None:
        long_pairs = [(t, t - lag, "long_range_error") for t in range(lag, n_frames)]
        missing = [p for p in long_pairs if not flows.available(p[0], p[1])]
        if missing:
            notes.append(f"{clip.name}: no long-range .flo files (e.g. {flows.paths(missing[0][0], missing[0][1])[0]}); "
                         "long-range error not computed")
        pairs += [p for p in long_pairs if p not in missing]
    occlusion = OcclusionConfig()
    definition = WARPING_DEFINITIONS[config.definition]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for t, s, column in tqdm(pairs, desc=f"{clip.name}/warping error", unit="pair", disable=not config.progress):
        start = time.perf_counter()
        backward, forward = flows(t, s)
        now = time.perf_counter()
        clock["flow" if column == "error" else "flow_long_range"] += now - start
        mask = pair_mask(forward, backward, occlusion, definition)  # kept for the reliable fraction
        errors = pair_error(batch(s), batch(t), forward, backward, config.scale, definition, occlusion, mask).tolist()
        clock["metric"] += time.perf_counter() - now
        counts["pairs" if column == "error" else "long_range_pairs"] += 1
        for name, value in zip(names, errors):
            row = results.setdefault((name, t), {"clip": clip.name, "method": name, "frame": t + 1,
                                                 "error": math.nan, "long_range_error": math.nan,
                                                 "reliable_fraction": math.nan, "untrained": untrained[name]})
            row[column] = value
            if column == "error":
                row["reliable_fraction"] = float(mask.to(torch.float64).mean())
    return [results[(name, t)] for name in names for t in range(1, n_frames)]


def _per_step(clock: dict[str, float], counts: dict[str, int], methods: Sequence[str]) -> dict[str, Any]:
    def per(total: float, n: int) -> float | None:
        return round(total / n, 6) if n else None

    return {
        "flow": per(clock["flow"], counts["pairs"]),
        "flow_long_range": per(clock["flow_long_range"], counts["long_range_pairs"]),
        "stylize": {m: per(clock[f"stylize:{m}"], counts[f"stylize:{m}"]) for m in methods},
        "metric": per(clock["metric"], counts["pairs"] + counts["long_range_pairs"]),
        "units": "flow: s per consecutive frame pair (forward + backward flow); flow_long_range: the same for the "
                 "t−k pairs; stylize: s per stylised frame (reused frames excluded); metric: s per frame pair "
                 "(occlusion mask + warping + error of every method and the input at once)",
    }


@dataclass
class _VideoInputs:
    """What a video run reads before any work: the clips, the style (tensor, path, sha256) and the methods."""

    clips: list[Clip]
    style: torch.Tensor
    style_path: Path
    style_sha: str
    methods: dict[str, Method]


def _read_inputs(config: VideoConfig) -> _VideoInputs:
    """Every input decoded, every ``.flo`` file present, every method built — or one error, before any work."""
    clips = [read_clip(name, source, config.size, config.max_frames) for name, source in config.clips.items()]
    style_path = Path(config.style)
    style = frame_to_tensor(np.asarray(resize_image(load_image(style_path), config.size), dtype=np.uint8))
    for clip in clips:  # consecutive-pair .flo files must all be there before any work
        flows = FlowSource(config.flow, clip, len(clips))
        for t in range(1, len(clip.frames)):
            if not flows.available(t, t - 1):
                backward, forward = flows.paths(t, t - 1)
                raise FlowFileError(f"{backward if not backward.is_file() else forward}: no such flow file "
                                    f"(clip {clip.name!r} needs backward_<t>_<t-1>.flo and forward_<t-1>_<t>.flo)")
    methods: dict[str, Method] = {}
    loading = Loading(None, config.weights_dir, config.init, config.device, config.seed, config.download)
    for name in config.methods:
        method = load_method(name, loading, **config.method_options.get(name, {}))
        if method.name in methods or method.name == INPUT:
            raise VideoError(f"method {name!r} is listed twice (or is named {INPUT!r})")
        methods[method.name] = method
    return _VideoInputs(clips, style, style_path, sha256_file(style_path), methods)


def _caption(config: VideoConfig, inputs: _VideoInputs, lag: int | None) -> str:
    flags = sorted({f"{n}: {m.provenance.flag()}" for n, m in inputs.methods.items() if m.provenance.flag()})
    size_text = ", ".join(f"{c.name} {c.size[1]}x{c.size[0]}" for c in inputs.clips)
    flow_text = f"OpenCV {config.flow}" if config.flow in FLOW_BACKENDS else f".flo files ({config.flow})"
    lai = WARPING_DEFINITIONS[config.definition].direction == "forward"
    formula = ("sum_x M(x) mean_c (s*(O_t-1 - warp(O_t, w_t-1->t)))^2 / sum_x M(x), Lai et al.'s released code"
               if lai else "sum_x M(x) sum_c (s*(O_t - warp(O_t-1, w_t->t-1)))^2 / sum_x M(x), Ruder et al.'s mask "
               "conventions with the channel sum")
    return (
        f"Warping error (Lai et al. 2018; lower is better; definition {config.definition}) of per-frame stylisation "
        f"with style {inputs.style_path.name}: per clip the mean ± std over consecutive frame pairs of {formula}, "
        f"s = {config.scale:g} (images in [0, 1] times s); mean = average of the clip columns"
        + (f"; long range: the pairs (t-{lag}, t)" if lag else "")
        + f". Flow: {flow_text} on the input frames ({size_text}); occlusion mask: forward-backward check and "
        f"motion boundaries. '{FLOOR_LABEL}': the same error of the unstylised input frames "
        "(a floor, not ranked). The scale of the paper's Table 3 numbers is unknown: compare orderings, not values."
        + (f" Weights: untrained rows flagged ({'; '.join(flags)})." if flags else " Weights: pretrained.")
    )


def _manifest(config: VideoConfig, inputs: _VideoInputs, lag: int | None, untrained: bool, started: str,
              command: str, summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": command or " ".join(sys.argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(), "git_commit": git_commit(), "device": device_name(config.device),
        "methods": {n: {"options": m.options, "provenance": m.provenance.to_dict(), "flag": m.provenance.flag()}
                    for n, m in inputs.methods.items()},
        "untrained": untrained,
        "style": {"path": str(inputs.style_path), "sha256": inputs.style_sha, "size": list(inputs.style.shape[-2:])},
        "clips": {c.name: {"source": str(c.source), "frames": c.frame_names, "native_size": list(c.native_size),
                           "size": list(c.size)} for c in inputs.clips},
        "flow": {"source": config.flow, "computed_on": "input frames at the processing size",
                 "long_range_k": lag, "convention": "w_{a->b} on frame a's grid; warp(O_b)(x) = O_b(x + w(x)), "
                                                    "bilinear"},
        "occlusion": asdict(OcclusionConfig()),
        "metric": {"name": "warping_error", "higher_is_better": False, "scale": config.scale,
                   "definition": config.definition, "choices": asdict(WARPING_DEFINITIONS[config.definition]),
                   "formula": "E_t = sum_x M(x) [mean|sum]_c (s*(target(x,c) - warp(source)(x,c)))^2 / sum_x M(x); "
                              "E = mean over pairs; O in [0, 1] (see metrics.temporal)",
                   "metric_inputs": "stylised frames quantised as saved (clamp, x255, truncate to uint8)"},
        "summary": summary,
    }


def run_video(config: VideoConfig, command: str = "") -> dict[str, Any]:
    """Stylise every clip with every method, measure the warping errors and write the outputs of the module
    docstring into ``config.out``. Bad inputs (missing/corrupt frames, unknown methods, missing weights or ``.flo``
    files) fail before any work. Returns the summary (also stored in the manifest)."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    inputs = _read_inputs(config)
    methods = inputs.methods
    config.out.mkdir(parents=True, exist_ok=True)
    clock: dict[str, float] = {"flow": 0.0, "flow_long_range": 0.0, "metric": 0.0,
                               **{f"stylize:{m}": 0.0 for m in methods}}
    counts: dict[str, int] = {"pairs": 0, "long_range_pairs": 0,
                              **{f"{k}:{m}": 0 for m in methods for k in ("stylize", "reused")}}
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    previews: dict[str, str] = {}
    untrained = {INPUT: False, **{n: m.untrained for n, m in methods.items()}}
    for clip in inputs.clips:
        series = {INPUT: clip.frames}
        for name, method in methods.items():
            series[name] = _stylise_clip(config, method, clip, inputs.style, inputs.style_sha, clock, counts)
        for name, frames in series.items():
            path, note = write_preview(frames, config.out / clip.name / name, config.preview, config.fps)
            if path is not None:
                previews[f"{clip.name}/{name}"] = str(path)
            if note:
                notes.append(note)
        rows += _temporal_rows(config, clip, series, untrained, clock, counts, notes)

    per_frame = pd.DataFrame(rows, columns=["clip", "method", "frame", "error", "long_range_error",
                                            "reliable_fraction", "untrained"])
    per_frame_path = write_text_atomic(config.out / "per_frame.csv", per_frame.to_csv(index=False, lineterminator="\n"))
    plot = plot_per_frame_error(per_frame, config.out / "per_frame_error", floor=INPUT, floor_label=FLOOR_LABEL,
                                untrained=[n for n, m in methods.items() if m.untrained])
    clip_names = [c.name for c in inputs.clips]
    lag = config.lag if per_frame["long_range_error"].notna().any() else None
    agg = temporal_aggregate(per_frame, clip_names, lag)
    tables = write_temporal_tables(agg, _table_specs(clip_names, lag), config.out, _caption(config, inputs, lag))
    summary: dict[str, Any] = {
        "clips": {c.name: {"frames": len(c.frames), "size": list(c.size)} for c in inputs.clips},
        "methods": list(methods),
        "frames_stylised": {m: counts[f"stylize:{m}"] for m in methods},
        "frames_reused": {m: counts[f"reused:{m}"] for m in methods},
        "errors": {row["method"]: {c: row[f"{_clip_key(c)}_mean"] for c in clip_names} | {"mean": row["mean_mean"]}
                   for row in agg.to_dict("records")},
        "seconds_per_frame": _per_step(clock, counts, list(methods)),
        "seconds": {k: round(v, 3) for k, v in clock.items()},
        "tables": {k: str(v) for k, v in tables.items()},
        "per_frame": str(per_frame_path),
        "plot": [str(p) for p in plot],
        "previews": previews,
        "notes": notes,
    }
    write_json_atomic(config.out / "manifest.json",
                      _manifest(config, inputs, lag, any(untrained.values()), started, command, summary))
    return summary
