"""The figures a run study can draw (its ``figures:`` section): each a function of a :class:`FigureContext` and the
parameters the study gives it, registered in :data:`FIGURES` by name."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.attention_maps import attention_maps

from ..errors import StudyError
from ..labels import method_label
from ..figures import attention_figure, comparison_grid_from_run, interpolation_strip, loss_curves, metric_bars, save_figure
from ..tables import METRIC_LABELS
from ..run import ImageCache, RunConfig, build_methods, resolve_pairs
from .model import Study, StudyEntry


@dataclass
class FigureContext:
    study: Study
    out: Path
    config: RunConfig
    table: Any = None
    figure_root: Path | None = None
    """Where the figures go (default ``out/figures``; the notebooks regenerate them elsewhere)."""

    @property
    def figure_dir(self) -> Path:
        path = self.figure_root or self.out / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path


FIGURES: dict[str, Callable[..., list[Path]]] = {}


def _figure(name: str):
    def register(fn):
        FIGURES[name] = fn
        return fn
    return register


def _entry(context: FigureContext, label: str | None) -> StudyEntry:
    entries = context.study.entries
    if label is None:
        return entries[0]
    for entry in entries:
        if entry.label == label:
            return entry
    raise StudyError(f"{context.study.source}: figures: {label!r} is not one of the study's methods "
                     f"({', '.join(context.study.labels)})")


def _method(context: FigureContext, label: str):
    return build_methods(dataclasses.replace(context.config, methods=[label]))[label]


def _image(context: FigureContext, path: str | None, role: str, index: int = 0):
    """The study's ``role`` image ``path`` (default: the run's ``index``-th one), prepared as the runner does."""
    if path is None:
        contents, styles, _ = resolve_pairs(dataclasses.replace(context.config, pairs=None, shard=None))
        pool = contents if role == "content" else styles
        path = pool[min(index, len(pool) - 1)]
    return ImageCache(context.config.size, context.config.keep_aspect)(Path(path))


def _display_labels(context: FigureContext, paper: bool) -> dict[str, str]:
    return {e.label: (e.paper_label or e.label) if paper else e.label for e in context.study.entries}


@_figure("comparison")
def figure_comparison(context: FigureContext, max_rows: int = 6, methods: list[str] | None = None,
                      pairs: list[str] | None = None) -> list[Path]:
    """Paper Fig. 9: rows = pairs; columns = content, style, each method."""
    fig = comparison_grid_from_run(context.out, methods=methods, pairs=pairs, max_rows=max_rows)
    return save_figure(fig, context.figure_dir / "comparison")


@_figure("ablation")
def figure_ablation(context: FigureContext, max_rows: int = 4, methods: list[str] | None = None) -> list[Path]:
    """Paper Fig. 10: the comparison grid of the ablation variants, titled with the paper's names."""
    fig = comparison_grid_from_run(context.out, methods=methods, max_rows=max_rows,
                                   labels=_display_labels(context, paper=True))
    return save_figure(fig, context.figure_dir / "ablation")


@_figure("bars")
def figure_bars(context: FigureContext, metrics: list[str] | None = None) -> list[Path]:
    """Metric bar charts with 95 % CIs; the paper's numbers (``reference``) as markers."""
    if context.table is None:
        raise StudyError(f"{context.out}: no table.csv to draw the bars from")
    available = [m for m in (metrics or [*METRIC_LABELS, "latency_ms"])
                 if f"{m}_mean" in context.table.columns and context.table[f"{m}_mean"].notna().any()]
    if not available:
        raise ValueError("none of the metrics has values")
    reference = None
    if context.study.reference is not None:
        reference = context.study.reference.by_label(
            {e.label: e.paper_label or e.label for e in context.study.entries}) or None
    labels = {e.label: e.paper_label or method_label(e.label) for e in context.study.entries}  # as in the grid
    fig = metric_bars(context.table, metrics=available, reference=reference, labels=labels)
    return save_figure(fig, context.figure_dir / "metrics")


@_figure("interpolation")
def figure_interpolation(context: FigureContext, method: str | None = None, content: str | None = None,
                         styles: list[str] | None = None, steps: int = 5) -> list[Path]:
    """Paper Fig. 11: content | style A | the blends (1 − t)·A + t·B | style B."""
    entry = _entry(context, method)
    if styles is not None and len(styles) != 2:
        raise StudyError(f"{context.study.source}: figures.interpolation.styles: give two style images")
    style_a = _image(context, styles[0] if styles else None, "style", 0)
    style_b = _image(context, styles[1] if styles else None, "style", 1)
    fig = interpolation_strip(_method(context, entry.label), _image(context, content, "content"),
                              (style_a, style_b), steps=steps)
    return save_figure(fig, context.figure_dir / f"interpolation_{_slug(entry.label)}")


@_figure("attention")
def figure_attention(context: FigureContext, method: str | None = None, content: str | None = None,
                     style: str | None = None, point: list[int] | None = None, layer: str = "relu3_1",
                     head: int | None = None) -> list[Path]:
    """Paper Fig. 6: for one content point, all-to-all attention, DA block scores, PA's block and fine attention."""
    entry = _entry(context, method)
    content_image, style_image = _image(context, content, "content"), _image(context, style, "style")
    if point is None:
        point = [content_image.shape[-2] // 2, content_image.shape[-1] // 2]
    method_ = _method(context, entry.label)
    maps = attention_maps(method_, content_image, style_image, tuple(point), layer=layer, head=head)
    fig = attention_figure(maps, content_image, style_image, untrained=method_.provenance.flag() or None)
    return save_figure(fig, context.figure_dir / f"attention_{_slug(entry.label)}")


@_figure("loss_curves")
def figure_loss_curves(context: FigureContext, logs: list[str] | None = None) -> list[Path]:
    """Loss curves of the entries' trainings (``<weights>/loss_log.csv``) or of the given logs."""
    paths = [Path(p) for p in logs] if logs else [
        Path(e.weights) / "loss_log.csv" for e in context.study.entries if e.weights]
    written = []
    for path in paths:
        if not path.is_file():
            continue
        written += save_figure(loss_curves(path), context.figure_dir / f"loss_{_slug(path.parent.name)}")
    if not written:
        raise ValueError("no training log found (loss_log.csv next to the entries' checkpoints)")
    return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"
