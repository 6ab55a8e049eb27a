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
import io
import math
import random
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from methods import Method, get_method_info
from methods.errors import literal, spell_settings
from methods.weights import Loading
from metrics.collection import METRIC_OPTIONS, SET_METRICS, MetricCollection, build_metrics, build_set_metrics
from metrics.timing import time_method

from .atomic import remove_stale_temporaries, write_json_atomic, write_text_atomic
from .config import listify
from .demo import demo_content, demo_styles
from .encodings import RunEncodings
from .environment import device_name, git_commit, versions
from .errors import ConfigError, RunError
from .images import list_images, load_image_tensor, save_image
from .pairs import ImageCache, Pair, decode_inputs
from .run_methods import build_methods, parse_init
from .run_settings import DEFAULT_METRICS, KNOWN_METRICS, RUN_SETTINGS, parse_shard
from .rundir import KEY_COLUMNS, SET_METRICS_NAME, RowWriter, RunLock, check_identity, read_done, write_run_tables

__all__ = [
    "DEFAULT_METRICS", "KNOWN_METRICS", "RUN_SETTINGS", "ImageCache", "Pair", "RunConfig", "build_methods",
    "execute_run", "parse_shard", "resolve_pairs",
]

def _split_options(options: dict[str, Any], entries: Mapping[str, tuple[str, Mapping[str, Any]]]
                   ) -> dict[str, dict[str, Any]]:
    """Options shared by several rows → each row's own (those its method declares, then the entry's own)."""
    declared = {label: get_method_info(method).options for label, (method, _) in entries.items()}
    unused = [k for k in options if not any(k in known for known in declared.values())]
    if unused:
        methods = ", ".join(dict.fromkeys(method for method, _ in entries.values()))
        raise ConfigError(f"{{options}}: {literal(', '.join(unused))} belong to none of the methods {literal(methods)}")
    return {label: {**{k: v for k, v in options.items() if k in declared[label]}, **dict(own)}
            for label, (_, own) in entries.items()}


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
    """``"random"`` / ``"pretrained"`` for every method (and, ``"random"``, the metric networks); None: pretrained."""
    method_init: dict[str, str] = field(default_factory=dict)
    """Row label → its own init (``{"all2all": "random"}``: one untrained, flagged row beside pretrained ones)."""
    download: bool | None = None
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    method_names: dict[str, str] = field(default_factory=dict)
    """Row label → registered method, where they differ (a study's entries: e.g. ``lambda2=0.5`` → ``styA2K``)."""
    method_weights: dict[str, str] = field(default_factory=dict)
    """Row label → that entry's weights (a harness checkpoint or a folder of official files); always loaded, also
    under ``init="random"`` (which then applies to the other methods and to the metric networks)."""
    lpips_net: str = "alex"
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Metric → its definitional options (``{"artfid": {"variant": "styleid"}}``; see
    :data:`metrics.collection.METRIC_OPTIONS`)."""
    timing_repeats: int = 10
    timing_warmup: int = 2
    force: bool = False
    shard: tuple[int, int] | None = None
    votes: str | None = None
    skip_unreadable: bool = False
    """Leave out input images that cannot be decoded (and the pairs they are in) instead of refusing the run."""
    progress: bool = True
    report: bool = True
    """Write ``report.html`` (:mod:`harness.report`) after the tables."""
    feature_cache_mib: float = 1024
    """Memory for encodings reused across a run's pairs (:mod:`harness.encodings`): each content and each style is
    encoded once per encoder (methods with the same VGG-19 share it) while they fit (least recently used dropped
    first); 0 encodes both images per pair. Outputs are bit-identical either way; with ``batch_size`` > 1 pairs are
    encoded in their batches (no reuse)."""
    metric_cache_mib: float = 1024
    """Memory for the inputs' side of the per-pair metrics (:attr:`metrics.collection.MetricCollection.cache`:
    content features, style statistics, LPIPS content features, ≈ 21 MB per content image at 512²), least recently
    used dropped first; 0 computes them per pair. The values are the same either way."""
    channels_last: bool = False
    """Run the methods' convolutions in NHWC (:attr:`methods.Method.memory_format`): faster on CPUs with oneDNN, values
    equal to the default's up to float rounding (~1e-6 relative; recorded in the run's identity). The metric networks
    keep the default layout."""

    def loading(self, label: str | None = None) -> Loading:
        """How the networks of this run get their weights; with ``label``, that method's (its entry's weights are
        always loaded, also under ``init="random"``)."""
        weights = self.method_weights.get(label) if label is not None else None
        init = None if weights is not None else self.method_init.get(label, self.init) if label else self.init
        return Loading(weights, self.weights_dir, init, self.device, self.seed, self.download)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], entries: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None
                      ) -> RunConfig:
        """The config of ``settings`` — keys of :data:`RUN_SETTINGS`, None meaning "not given" (the field's default)
        — with list settings given as lists or comma-separated strings, ``keep_size`` clearing ``size``, ``shard``
        as ``"i/n"`` or ``(i, n)`` and ``options`` given to the methods that declare them (an option no method
        declares is an error). ``entries``: row label → (registered method, the entry's own options), for a study
        whose rows are not plain method names (default: one row per ``methods`` name, no own options)."""
        given = {k: v for k, v in settings.items() if v is not None}
        unknown = sorted(set(given) - set(RUN_SETTINGS))
        if unknown:
            raise ConfigError(f"unknown run setting(s) {literal(', '.join(unknown))}; known: "
                              f"{', '.join(sorted(RUN_SETTINGS))}")
        labels = listify(given.pop("methods", None)) or (list(entries) if entries else [])
        if not labels:
            raise ConfigError("no methods given: {methods} styA2K,adain,all2all")
        entries = entries or {label: (label, {}) for label in labels}
        method_options = _split_options(dict(given.pop("options", None) or {}), entries)
        for key in ("content", "style", "metrics"):
            if key in given:
                given[key] = listify(given[key])
        if given.pop("keep_size", False):
            given["size"] = None
        if isinstance(given.get("shard"), str):
            given["shard"] = parse_shard(given["shard"])
        if given.get("shard") is not None:
            given["shard"] = tuple(int(v) for v in given["shard"])
        given["out"] = Path(given["out"]) if given.get("out") else Path("results") / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        for key in ("weights_dir", "votes"):
            if key in given:
                given[key] = str(given[key])
        names = {label: method for label, (method, _) in entries.items() if label != method}
        given["init"], method_init = parse_init(given.get("init"), labels)
        return cls(methods=labels, method_options=method_options, method_names=names, method_init=method_init,
                   **given)


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
            raise RunError(f"shard {index}/{count}: expected i/n with 0 <= i < n")
        pairs = pairs[index::count]
    return contents, styles, pairs


def _suffix(config: RunConfig) -> str:
    return f".shard-{config.shard[0]}-of-{config.shard[1]}" if config.shard else ""


def metrics_path(config: RunConfig) -> Path:
    return config.out / f"metrics{_suffix(config)}.csv"


def quantise(image: torch.Tensor) -> torch.Tensor:
    """What the saved PNG holds: clamp, ×255, truncate to uint8 (official rule), back to [0, 1]. Metrics are computed
    on this, so re-evaluating the saved files gives the same numbers."""
    return (image.clamp(0, 1) * 255).to(torch.uint8).to(torch.float32) / 255


@dataclass
class StageClock:
    """Wall time per stage of a run (seconds), for the run's own timing summary."""

    seconds: dict[str, float] = field(default_factory=lambda: {"stylize": 0.0, "metrics": 0.0, "io": 0.0,
                                                               "timing": 0.0, "setup": 0.0})
    encodings: dict[str, Any] = field(default_factory=dict)
    """The encoding cache's hits, misses, hit rate, budget and the methods sharing a VGG
    (:meth:`harness.encodings.RunEncodings.stats`)."""

    def add(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - start
        return now


# ----------------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------------
def check_config(config: RunConfig) -> None:
    unknown = [m for m in config.metrics if m not in KNOWN_METRICS]
    if unknown:
        raise RunError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(KNOWN_METRICS)}")
    if not config.methods:
        raise RunError("no methods given (e.g. methods=['styA2K', 'adain', 'all2all'])")
    dupes = sorted({m for m in config.methods if config.methods.count(m) > 1})
    if dupes:
        raise RunError(f"method label(s) {', '.join(dupes)} given twice: every table row needs its own label")
    for name, options in (config.metric_options or {}).items():
        known = METRIC_OPTIONS.get(name)
        if known is None:
            raise ConfigError(f"metric options: {literal(repr(name))} has no options; metrics with options: "
                              f"{', '.join(METRIC_OPTIONS)}")
        if not isinstance(options, Mapping):
            raise ConfigError(f"metric options: {literal(name)} must map option names to values")
        for key, value in options.items():
            if key not in known:
                raise ConfigError(f"metric option {literal(f'{name}.{key}')}: unknown; {literal(name)}'s options: "
                                  f"{', '.join(known)}")
            if isinstance(value, bool) != (bool in known[key]) or not isinstance(value, known[key]):
                raise ConfigError(f"metric option {literal(f'{name}.{key}')} must be "
                                  f"{'/'.join(t.__name__ for t in known[key])}, got {literal(repr(value))}")
    for key, minimum in (("batch_size", 1), ("size", 1), ("pairs", 1), ("timing_repeats", 1), ("timing_warmup", 0)):
        value = getattr(config, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise ConfigError(f"{{{key}}} must be an integer ≥ {minimum}, got {literal(repr(value))}")
    for key in ("feature_cache_mib", "metric_cache_mib"):
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ConfigError(f"{{{key}}} must be a number of MiB ≥ 0, got {literal(repr(value))}")


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
    todo = {name: method for name, method in methods.items() if (name, str(size)) not in done}
    try:
        for name, method in tqdm(todo.items(), total=len(todo), desc="timing", unit="method",
                                 disable=not config.progress or not todo):
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


def _stylise_pairs(config: RunConfig, methods: dict[str, Method], suite: MetricCollection, pairs: list[Pair],
                   images: ImageCache, clock: StageClock) -> int:
    """Every (method, pair) not yet in ``metrics.csv``: stylise, save the image, compute the metrics, append the row
    (flushed); returns how many were computed."""
    path = metrics_path(config)
    if config.force and path.exists():
        path.unlink()
    columns = [*KEY_COLUMNS, "untrained", *suite.columns]
    writer = RowWriter(path, columns)  # drops a torn last row; read_done never counts one
    done = read_done(path)
    todo = [(name, pair) for name in methods for pair in pairs if (name, pair.content.name, pair.style.name) not in done]
    computed = 0
    reuse = config.batch_size == 1 and config.feature_cache_mib > 0
    encodings = RunEncodings(methods, config.feature_cache_mib if reuse else 0)
    try:
        with tqdm(total=len(todo), desc="stylise + metrics", unit="output", disable=not config.progress) as bar:
            for name, method in methods.items():
                pending = [pair for n, pair in todo if n == name]
                for batch in _batches(pending, images, config.batch_size):
                    t = time.perf_counter()
                    content = torch.cat([images(p.content) for p in batch])
                    style = torch.cat([images(p.style) for p in batch])
                    t = clock.add("io", t)
                    if reuse:
                        pair = batch[0]
                        output = method.stylize(encodings.content(name, method, pair.content, content),
                                                encodings.style(name, method, pair.style, style))
                    else:
                        output = method.stylize(content, style)
                    output = quantise(output.cpu())
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
    clock.encodings = encodings.stats()
    return computed


SET_COLUMNS = ("method", "metric", "value", "n", "ci_low", "ci_high", "bootstrap", "untrained")


def _set_metric_rows(config: RunConfig, methods: dict[str, Method], set_metrics: Mapping[str, Any],
                     pairs: list[Pair], images: ImageCache, clock: StageClock) -> None:
    """FID / ArtFID per method over all its pairs, from the saved outputs (so a resumed run gets them too), into
    ``set_metrics.csv`` (rewritten whole)."""
    start = time.perf_counter()
    rows = []
    total = len(methods) * len(pairs)
    with tqdm(total=total, desc="set metrics", unit="output", disable=not config.progress) as bar:
        for name, method in methods.items():
            for metric in set_metrics.values():
                metric.reset()
            for pair in pairs:
                output = load_image_tensor(config.out / name / f"{pair.stem}.png", size=None)
                for metric in set_metrics.values():
                    metric.update(output, images(pair.content), images(pair.style), [(pair.content, pair.style)])
                bar.update(1)
            for metric_name, metric in set_metrics.items():
                summary = metric.compute()
                rows.append({"method": name, "metric": metric_name, "value": summary.value, "n": summary.n,
                             "ci_low": summary.ci_low, "ci_high": summary.ci_high, "bootstrap": summary.bootstrap,
                             "untrained": method.untrained})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SET_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(config.out / SET_METRICS_NAME, buffer.getvalue())
    clock.add("metrics", start)


def run_identity(config: RunConfig, methods: Mapping[str, Method], suite: MetricCollection) -> dict[str, Any]:
    """What a run directory's numbers depend on: the image size and resizing, the pair sample, the metrics and their
    definitions (weight files by sha256, not by path), and per method its options and weights."""
    return {
        "size": config.size, "keep_aspect": config.keep_aspect, "pairs": config.pairs,
        "seed": config.seed if config.pairs is not None or config.init == "random"
        or "random" in config.method_init.values() else None,
        "metrics": sorted(config.metrics), "lpips_net": config.lpips_net if "lpips" in config.metrics else None,
        "metric_definitions": _without_paths(suite.configs),
        **({"channels_last": True} if config.channels_last else {}),
        "methods": {label: {"method": m.name, "options": _without_paths(m.options),
                            "weights": {f: (r or {}).get("sha256") for f, r in m.provenance.files.items()},
                            "flag": m.provenance.flag()} for label, m in methods.items()},
    }


def _manifest(config: RunConfig, methods: dict[str, Method], suite: MetricCollection, images: ImageCache,
              inputs: tuple[list[Path], list[Path]], identity: dict[str, Any], started: str, command: str,
              summary: dict[str, Any]) -> dict[str, Any]:
    contents, styles = inputs
    return {
        "command": command or " ".join(sys.argv),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": config.seed, "versions": versions(), "git_commit": git_commit(),
        "device": device_name(config.device),
        "methods": {n: {"method": m.name, "options": m.options, "provenance": m.provenance.to_dict(),
                        "flag": m.provenance.flag()} for n, m in methods.items()},
        "metrics": suite.configs,
        "metric_inputs": "stylised outputs quantised as saved (clamp, ×255, truncate to uint8)",
        "images": {"content": {p.name: images.hashes[p] for p in contents},
                   "style": {p.name: images.hashes[p] for p in styles}},
        "identity": identity,
        "summary": summary,
    }


def execute_run(config: RunConfig, command: str = "") -> dict[str, Any]:
    """Run ``config`` into ``config.out``; returns the summary (also stored in the manifest).

    Everything that can be checked is checked before any work: the settings, the images (every one decoded), the
    weights, and that the output folder is not being written by another process (:class:`~harness.rundir.RunLock`)
    nor holds a run of other settings (:func:`~harness.rundir.check_identity`; ``force`` recomputes)."""
    clock = StageClock()
    start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    check_config(config)
    contents, styles, pairs = resolve_pairs(config)  # bad folders / images fail here, before any work
    skipped_templates: dict[str, str] = {}
    methods = build_methods(config, skipped_templates)
    if config.channels_last:
        for method in methods.values():
            method.to(memory_format=torch.channels_last)
    skipped_methods = {label: spell_settings(t) for label, t in skipped_templates.items()}
    try:
        suite = build_metrics(config.metrics, config.loading(), config.lpips_net, config.metric_options,
                              config.metric_cache_mib)
        set_metrics, unavailable, set_configs = build_set_metrics(
            config.metrics if config.shard is None else [], config.loading(), config.metric_options, suite.lpips,
            config.seed)
    except ValueError as exc:
        raise ConfigError(f"metric options: {literal(exc)}") from exc
    suite.unavailable.update(unavailable)
    suite.configs.update(set_configs)
    if config.shard is not None:
        suite.unavailable.update({name: "a set-level metric needs every pair: run again without shard into the "
                                        "merged folder (done pairs are reused)" for name in SET_METRICS
                                  if name in config.metrics})
    if config.out.exists() and not config.out.is_dir():
        raise RunError(f"{config.out}: exists and is not a folder; give a new output folder")
    images = ImageCache(config.size, config.keep_aspect)
    contents, styles, pairs, unreadable = decode_inputs(images, contents, styles, pairs, config.skip_unreadable)
    config.out.mkdir(parents=True, exist_ok=True)
    with RunLock(config.out, _suffix(config)):
        for folder in (config.out, *(config.out / name for name in methods)):
            remove_stale_temporaries(folder)  # left by a killed run
        identity = run_identity(config, methods, suite)
        check_identity(config.out, identity, force=config.force)
        clock.add("setup", start)
        computed = _stylise_pairs(config, methods, suite, pairs, images, clock)
        if set_metrics:
            _set_metric_rows(config, methods, set_metrics, pairs, images, clock)
        if "timing" in config.metrics:
            _timing_rows(config, methods, clock)
        summary = {
            "pairs": len(pairs), "methods": list(methods), "computed": computed,
            "skipped": len(pairs) * len(methods) - computed,
            "seconds": {k: round(v, 3) for k, v in clock.seconds.items()}, "encodings": clock.encodings,
            "unavailable": suite.unavailable,
            "unreadable": unreadable, "skipped_methods": skipped_methods,
        }
        manifest = _manifest(config, methods, suite, images, (contents, styles), identity, started, command,
                             summary)
        write_json_atomic(config.out / f"manifest{_suffix(config)}.json", manifest)
        if config.shard is None:
            summary["tables"] = {k: str(v) for k, v in write_run_tables([config.out], votes=config.votes).items()}
            if config.report:
                from .report import write_report  # matplotlib only when a report is written

                summary["report"] = str(write_report(config.out))
    summary["skipped_methods_flags"] = {label: spell_settings(t, flags=True) for label, t in skipped_templates.items()}
    return summary


def _without_paths(value: Any) -> Any:
    """``value`` without the keys that name where a file lies (``path``, ``source``): the same run may be resumed
    on a machine whose weights are elsewhere."""
    if isinstance(value, Mapping):
        return {k: _without_paths(v) for k, v in value.items() if k not in ("path", "source")}
    if isinstance(value, (list, tuple)):
        return [_without_paths(v) for v in value]
    return value
