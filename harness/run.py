"""The benchmark runner: methods × (content, style) pairs → stylised images, per-pair metrics, timing, tables.

Layout of a run directory::

    RUN_DIR/
      manifest.json            command, resolved config, versions, git commit, device, weights and image sha256s
      metrics.csv              one row per method × pair (appended and flushed row by row: resumable)
      timing.csv               one row per method × size (latency median/p10/p90, images/s, peak memory, FLOPs)
      table.csv/.md/.tex       aggregated (mean ± std, 95 % CI) — ``harness.tables``
      <method>/<content>__<style>.png

Resuming: rows already in ``metrics.csv`` (same method, content, style) and their images are skipped; ``force``
recomputes. Shards: ``shard=(i, n)`` takes every n-th pair starting at i and writes ``metrics.shard-i-of-n.csv`` and
``manifest.shard-i-of-n.json``, so n processes can fill one run directory; :func:`merge_shards` combines them.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from methods import Method, create_method

from .atomic import write_json_atomic
from .demo import demo_content, demo_styles
from .environment import device_name, git_commit, versions
from .images import list_images, load_image_tensor, save_image

KEY_COLUMNS = ("method", "content", "style")
DEFAULT_METRICS = ("content_loss", "style_loss", "lpips", "timing")


class RunError(ValueError):
    """A bad run configuration (unknown metric, bad shard, …): one line, raised before any work is done."""


@dataclass
class RunConfig:
    """Everything a run depends on; recorded in the manifest. ``content``/``style`` None → the embedded demo set.

    ``methods`` are the row labels of the tables; a label is a registered method name unless ``method_names`` maps it
    to one (so the same method can appear twice, e.g. with two checkpoints)."""

    methods: list[str]
    out: Path
    content: list[str] | None = None
    style: list[str] | None = None
    size: int | None = 512
    keep_aspect: bool = False
    pairs: int | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 1
    weights_dir: str | None = None
    init: str | None = None
    download: bool | None = None
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_names: dict[str, str] = field(default_factory=dict)
    """Row label → registered method, where they differ (a study's entries: e.g. ``lambda2=0.5`` → ``styA2K``)."""
    method_weights: dict[str, str] = field(default_factory=dict)
    """Row label → that entry's weights (a harness checkpoint or a folder of official files); always loaded, also
    under ``init="random"`` (which then applies to the other methods and to the metric networks)."""
    lpips_net: str = "alex"
    timing_repeats: int = 10
    timing_warmup: int = 2
    force: bool = False
    shard: tuple[int, int] | None = None
    votes: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class Pair:
    content: Path
    style: Path

    @property
    def stem(self) -> str:
        return f"{self.content.stem}__{self.style.stem}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_pairs(config: RunConfig) -> tuple[list[Path], list[Path], list[Pair]]:
    """Content and style images and the ordered pair list (content-major, as the official test loop), optionally a
    seeded sample of ``config.pairs`` pairs and this process's shard."""
    contents = list_images(config.content) if config.content else demo_content()
    styles = list_images(config.style) if config.style else demo_styles()
    for role, paths in (("content", contents), ("style", styles)):
        stems = [p.stem for p in paths]
        dupes = sorted({s for s in stems if stems.count(s) > 1})
        if dupes:
            raise RunError(f"{role} images share file stems {dupes}: output names <content>__<style>.png would clash")
    pairs = [Pair(c, s) for c in contents for s in styles]
    if config.pairs is not None and config.pairs < len(pairs):
        keep = sorted(random.Random(config.seed).sample(range(len(pairs)), config.pairs))
        pairs = [pairs[i] for i in keep]
    if config.shard is not None:
        index, count = config.shard
        if not (count >= 1 and 0 <= index < count):
            raise RunError(f"--shard {index}/{count}: expected i/n with 0 <= i < n")
        pairs = pairs[index::count]
    return contents, styles, pairs


def _suffix(config: RunConfig) -> str:
    return f".shard-{config.shard[0]}-of-{config.shard[1]}" if config.shard else ""


def metrics_path(config: RunConfig) -> Path:
    return config.out / f"metrics{_suffix(config)}.csv"


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
                               "use a new --out or --force")
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


class ImageCache:
    """Loads each input image once per run (resized as configured) and remembers its sha256."""

    def __init__(self, size: int | None, keep_aspect: bool):
        self.size, self.keep_aspect = size, keep_aspect
        self.tensors: dict[Path, torch.Tensor] = {}
        self.hashes: dict[Path, str] = {}

    def __call__(self, path: Path) -> torch.Tensor:
        if path not in self.tensors:
            self.tensors[path] = load_image_tensor(path, size=self.size, keep_aspect=self.keep_aspect)
            self.hashes[path] = sha256_file(path)
        return self.tensors[path]


def quantise(image: torch.Tensor) -> torch.Tensor:
    """What the saved PNG holds: clamp, ×255, truncate to uint8 (official rule), back to [0, 1]. Metrics are computed
    on this, so re-evaluating the saved files gives the same numbers."""
    return (image.clamp(0, 1) * 255).to(torch.uint8).to(torch.float32) / 255


@dataclass
class StageClock:
    """Wall time per stage of a run (seconds), for the run's own timing summary."""

    seconds: dict[str, float] = field(default_factory=lambda: {"stylize": 0.0, "metrics": 0.0, "io": 0.0,
                                                               "timing": 0.0, "setup": 0.0})

    def add(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - start
        return now


# ----------------------------------------------------------------------------------------------------------------------
# Metrics of a run
# ----------------------------------------------------------------------------------------------------------------------
METRIC_LABELS = {
    "content_loss": ("content loss", False, "{:.3f}"),
    "style_loss": ("style loss", False, "{:.3f}"),
    "lpips": ("LPIPS", False, "{:.3f}"),
}
TIMING_COLUMNS = {  # timing.csv column → (table label, higher is better, format)
    "latency_ms": ("time (ms)", False, "{:.1f}"),
    "images_per_s": ("images/s", True, "{:.2f}"),
    "peak_memory_mib": ("peak mem. (MiB)", False, "{:.0f}"),
    "gflops": ("GFLOPs", False, "{:.1f}"),
}
KNOWN_METRICS = (*METRIC_LABELS, "timing")


@dataclass
class MetricSuite:
    """The per-pair metrics of a run, their definitions (for the manifest) and the ones that are unavailable.

    Inputs recur across pairs and methods (each content image meets every style and every method), so their side of
    the content/style losses is computed once per image and kept: relu4_1/relu5_1 features of content images and the
    per-channel mean/std of style images (a few MB per image at 512²). Only the stylised output is encoded per pair.
    """

    content_style: Any = None
    lpips: Any = None
    unavailable: dict[str, str] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    _content_features: dict[Any, dict[str, torch.Tensor]] = field(default_factory=dict)
    _style_statistics: dict[Any, dict[str, tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        names = []
        if self.content_style is not None:
            names += list(self.content_style.names)
        if self.lpips is not None:
            names.append("lpips")
        return names + [n for n in self.unavailable if n not in names]

    def _content_style(self, output, content, style, keys) -> dict[str, torch.Tensor]:
        from metrics.base import check_triplet
        from metrics.content_style import content_loss, style_loss_from_statistics, style_statistics

        check_triplet(output, content, style)
        settings = self.content_style.settings
        encoder = self.content_style.cache.encoder
        for i, (content_key, style_key) in enumerate(keys):
            if content_key not in self._content_features:
                self._content_features[content_key] = encoder(content[i : i + 1], settings.content_layers)
            if style_key not in self._style_statistics:
                features = encoder(style[i : i + 1], settings.style_layers)
                self._style_statistics[style_key] = style_statistics(features, settings.style_layers)
        out = encoder(output, set(settings.content_layers) | set(settings.style_layers))
        con = {t: torch.cat([self._content_features[c][t] for c, _ in keys]) for t in settings.content_layers}
        sty = {t: tuple(torch.cat([self._style_statistics[s][t][j] for _, s in keys]) for j in (0, 1))
               for t in settings.style_layers}
        return {
            "content_loss": content_loss(out, con, layers=settings.content_layers,
                                         normalize=settings.content_normalize, reduction=settings.reduction),
            "style_loss": style_loss_from_statistics(out, sty, layers=settings.style_layers,
                                                     reduction=settings.reduction),
        }

    @torch.inference_mode()
    def update(self, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
               keys: Sequence[tuple[Any, Any]]) -> dict[str, list[float]]:
        """Per-image metric values of a batch; ``keys`` identify each row's (content, style) inputs for the caches."""
        values: dict[str, torch.Tensor] = {}
        if self.content_style is not None:
            values.update(self._content_style(output, content, style, keys))
        if self.lpips is not None:
            values["lpips"] = self.lpips.update(output, content, style)
        return {k: v.detach().cpu().tolist() for k, v in values.items()}


def build_metrics(config: RunConfig) -> MetricSuite:
    """Construct the requested per-pair metrics; a metric whose weights are missing is recorded as unavailable."""
    from metrics.content_style import ContentStyleLoss
    from metrics.perceptual import LPIPS, MetricUnavailable

    suite = MetricSuite()
    wanted = set(config.metrics)
    if wanted & {"content_loss", "style_loss"}:
        try:
            suite.content_style = ContentStyleLoss.from_weights(
                config.weights_dir, init=config.init, device=config.device, seed=config.seed, download=config.download
            )
            suite.configs["content_style"] = suite.content_style.content.config()
        except MetricUnavailable as exc:
            for name in ("content_loss", "style_loss"):
                if name in wanted:
                    suite.unavailable[name] = str(exc)
    if "lpips" in wanted:
        try:
            suite.lpips = LPIPS(config.lpips_net, weights_dir=config.weights_dir, init=config.init,
                                device=config.device, seed=config.seed, download=config.download)
            suite.configs["lpips"] = suite.lpips.provenance
        except MetricUnavailable as exc:
            suite.unavailable["lpips"] = str(exc)
    return suite


# ----------------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------------
def check_config(config: RunConfig) -> None:
    unknown = [m for m in config.metrics if m not in KNOWN_METRICS]
    if unknown:
        raise RunError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(KNOWN_METRICS)}")
    if not config.methods:
        raise RunError("no methods given (e.g. --methods styA2K,adain,all2all)")
    dupes = sorted({m for m in config.methods if config.methods.count(m) > 1})
    if dupes:
        raise RunError(f"method label(s) {', '.join(dupes)} given twice: every table row needs its own label")
    if config.batch_size < 1:
        raise RunError(f"--batch-size must be ≥ 1, got {config.batch_size}")


def build_methods(config: RunConfig) -> dict[str, Method]:
    """Every method with its weights, before any work: a missing weight stops the run with the resolver's message."""
    return {
        label: create_method(config.method_names.get(label, label), weights=config.method_weights.get(label),
                             init=None if label in config.method_weights else config.init, device=config.device,
                             weights_dir=config.weights_dir, seed=config.seed, download=config.download,
                             **config.method_options.get(label, {}))
        for label in config.methods
    }


def _batches(pairs: list[Pair], images: ImageCache, batch_size: int) -> list[list[Pair]]:
    """Consecutive pairs grouped into batches whose content and style tensors have equal shapes."""
    out: list[list[Pair]] = []
    for pair in pairs:
        shape = (tuple(images(pair.content).shape), tuple(images(pair.style).shape))
        if out and len(out[-1]) < batch_size and shape == (
            tuple(images(out[-1][0].content).shape), tuple(images(out[-1][0].style).shape)
        ):
            out[-1].append(pair)
        else:
            out.append([pair])
    return out


def _timing_rows(config: RunConfig, methods: dict[str, Method], clock: StageClock) -> None:
    from metrics.timing import time_method

    path = config.out / f"timing{_suffix(config)}.csv"
    size = config.size or 512
    done = set()
    if path.exists() and not config.force:
        with open(path, newline="") as f:
            done = {(r["method"], r["size"]) for r in csv.DictReader(f)}
    columns = ["method", "size", "device", "batch_size", "warmup", "repeats", "latency_ms", "p10_ms", "p90_ms",
               "images_per_s", "peak_memory_mib", "memory_kind", "gflops", "untrained"]
    if config.force and path.exists():
        path.unlink()
    writer = RowWriter(path, columns)
    try:
        for name, method in methods.items():
            if (name, str(size)) in done:
                continue
            start = time.perf_counter()
            result = time_method(method, size, batch_size=1, warmup=config.timing_warmup,
                                 repeats=config.timing_repeats, seed=config.seed, flops=True)
            writer.write({
                "method": name, "size": size, "device": device_name(config.device), "batch_size": 1,
                "warmup": config.timing_warmup, "repeats": config.timing_repeats,
                "latency_ms": result.median_s * 1e3, "p10_ms": result.p10_s * 1e3, "p90_ms": result.p90_s * 1e3,
                "images_per_s": result.images_per_s,
                # In-process CPU peak-RSS growth hides behind earlier peaks of the run: only CUDA's counter is kept
                # (CPU peak memory: benchmarks/bench_forward.py measures each method in a fresh process).
                "peak_memory_mib": result.peak_memory_mib if config.device.startswith("cuda") else None,
                "memory_kind": result.memory_kind, "gflops": (result.flops or 0) / 1e9,
                "untrained": method.untrained,
            })
            clock.add("timing", start)
    finally:
        writer.close()


def execute_run(config: RunConfig, command: str = "") -> dict[str, Any]:
    """Run ``config`` into ``config.out``; returns the summary (also stored in the manifest)."""
    clock = StageClock()
    start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    check_config(config)
    contents, styles, pairs = resolve_pairs(config)  # bad folders / images fail here, before any work
    methods = build_methods(config)
    suite = build_metrics(config)
    config.out.mkdir(parents=True, exist_ok=True)
    images = ImageCache(config.size, config.keep_aspect)
    for path in (*contents, *styles):  # decode every input up front: a corrupt file stops the run before any work
        images(path)
    path = metrics_path(config)
    if config.force and path.exists():
        path.unlink()
    done = read_done(path)
    columns = [*KEY_COLUMNS, "untrained", *suite.columns]
    writer = RowWriter(path, columns)
    todo = [(name, pair) for name in methods for pair in pairs if (name, pair.content.name, pair.style.name) not in done]
    clock.add("setup", start)
    computed = 0
    try:
        with tqdm(total=len(todo), desc="stylising", unit="pair", disable=not config.progress) as bar:
            for name, method in methods.items():
                pending = [pair for n, pair in todo if n == name]
                for batch in _batches(pending, images, config.batch_size):
                    t = time.perf_counter()
                    content = torch.cat([images(p.content) for p in batch])
                    style = torch.cat([images(p.style) for p in batch])
                    t = clock.add("io", t)
                    output = quantise(method.stylize(content, style).cpu())
                    t = clock.add("stylize", t)
                    values = suite.update(output.to(config.device), content.to(config.device),
                                          style.to(config.device), [(p.content, p.style) for p in batch])
                    t = clock.add("metrics", t)
                    for i, pair in enumerate(batch):
                        save_image(output[i], config.out / name / f"{pair.stem}.png")
                        row = {"method": name, "content": pair.content.name, "style": pair.style.name,
                               "untrained": method.untrained}
                        row.update({k: v[i] for k, v in values.items()})
                        row.update({k: "" for k in suite.unavailable})
                        writer.write(row)
                    clock.add("io", t)
                    computed += len(batch)
                    bar.update(len(batch))
    finally:
        writer.close()
    if "timing" in config.metrics:
        _timing_rows(config, methods, clock)
    summary = {
        "pairs": len(pairs), "methods": list(methods), "computed": computed, "skipped": len(pairs) * len(methods) - computed,
        "seconds": {k: round(v, 3) for k, v in clock.seconds.items()},
        "unavailable": suite.unavailable,
    }
    manifest = {
        "command": command or " ".join(sys.argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": config.seed, "versions": versions(), "git_commit": git_commit(),
        "device": device_name(config.device),
        "methods": {n: {"method": m.name, "options": m.options, "provenance": m.provenance.to_dict(), "flag": m.provenance.flag()}
                    for n, m in methods.items()},
        "metrics": suite.configs,
        "metric_inputs": "stylised outputs quantised as saved (clamp, ×255, truncate to uint8)",
        "images": {"content": {p.name: images.hashes[p] for p in contents},
                   "style": {p.name: images.hashes[p] for p in styles}},
        "summary": summary,
    }
    write_json_atomic(config.out / f"manifest{_suffix(config)}.json", manifest)
    if config.shard is None:
        summary["tables"] = {k: str(v) for k, v in write_run_tables([config.out], votes=config.votes).items()}
    return summary


# ----------------------------------------------------------------------------------------------------------------------
# Shards and tables
# ----------------------------------------------------------------------------------------------------------------------
def merge_shards(run_dir: Path) -> dict[str, int]:
    """Combine ``metrics.shard-*.csv`` / ``timing.shard-*.csv`` of ``run_dir`` into ``metrics.csv`` / ``timing.csv``
    (rows de-duplicated by key, shard order), written atomically; the shard files are kept."""
    import pandas as pd

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
        tmp = existing.with_name(f".{existing.name}.tmp-{os.getpid()}")
        merged.to_csv(tmp, index=False)
        os.replace(tmp, existing)
        counts[stem] = len(merged)
    if not counts:
        raise RunError(f"{run_dir}: no shard files (metrics.shard-I-of-N.csv) to merge")
    return counts


def _read_run(run_dir: Path):
    import pandas as pd

    path = run_dir / "metrics.csv"
    if not path.exists():
        shards = sorted(run_dir.glob("metrics.shard-*.csv"))
        if not shards:
            raise RunError(f"{run_dir}: no metrics.csv (is it a run directory? shards are combined by `harness merge`)")
        raise RunError(f"{run_dir}: only shard files; combine them first with `python -m harness merge {run_dir}`")
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
    import pandas as pd

    from .tables import MetricSpec, aggregate, write_tables

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
        from metrics.preference import read_votes, tally

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
