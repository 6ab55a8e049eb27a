"""The paper's figures for a run directory or a method (matplotlib; each function returns a Figure, none shows one).

* :func:`comparison_grid` / :func:`comparison_grid_from_run` — paper Fig. 9 (rows = pairs; columns = content, style,
  each method) and, with :data:`ABLATION_LABELS`, Fig. 10 (the ablations);
* :func:`interpolation_strip` (Fig. 11) and :func:`interpolation_grid` (four styles, bilinear weights);
* :func:`attention_figure` — Fig. 6: a content point, its all-to-all attention over the style image, DA's scores over
  the style blocks, PA's chosen block and its fine attention (from :func:`methods.attention_maps.attention_maps`);
* :func:`metric_bars` — per-metric bars with 95 % CI error bars (``harness.tables.aggregate`` / ``table.csv``),
  optionally the paper's numbers as markers; :func:`loss_curves` — a training ``loss_log.csv``;
* :func:`write_run_figures` — the standard figures of a run directory into ``<run>/figures/``;
  :func:`save_figure` writes ``<stem>.png`` and ``<stem>.pdf`` atomically.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot state), so nothing is ever
shown and nothing leaks between calls. Images are drawn as 8-bit arrays with the harness's truncating tensor → image
rule, so a cell holds exactly the pixels of the saved PNG.
"""
from __future__ import annotations

import csv
import json
import math
import os
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from methods import InputError, Method
from methods.attention_maps import AttentionMaps

from .demo import demo_content, demo_styles
from .images import ImageError, list_images, load_image, load_image_tensor, tensor_to_image
from .run import METRIC_LABELS, RunError
from .tables import TableError, aggregate

__all__ = [
    "ABLATION_LABELS",
    "FIGURE_KINDS",
    "METHOD_LABELS",
    "attention_figure",
    "comparison_grid",
    "comparison_grid_from_run",
    "interpolation_grid",
    "interpolation_strip",
    "loss_curves",
    "metric_bars",
    "method_label",
    "save_figure",
    "write_run_figures",
]

PathLike = Union[str, "os.PathLike[str]"]
ImageInput = Union[torch.Tensor, str, "os.PathLike[str]"]
Stylizer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(content (1, 3, H, W), style (1, 3, Hs, Ws)) in [0, 1] → output (1, 3, H, W), e.g. ``Method.stylize``."""

METHOD_LABELS: dict[str, str] = {
    "styA2K": "StyA2K",
    "adain": "AdaIN",
    "all2all": "All-to-all",
    "styA2K-noDA": "StyA2K w/o DA",
    "styA2K-noPA": "StyA2K w/o PA",
    "styA2K-noPA1": "StyA2K w/o PA step 1",
    "styA2K-1head": "StyA2K 1 head",
}
"""Column titles of the method comparison (paper Fig. 9); names match case-insensitively, unknown names stay as is."""
ABLATION_LABELS: dict[str, str] = {
    "all2all": "All-to-all",
    "styA2K-noDA": "w/o DA",
    "styA2K-noPA": "w/o PA",
    "styA2K-noPA1": "w/o step 1 of PA",
    "styA2K-1head": "w/o multi-head",
    "styA2K": "Full model",
}
"""Column titles of the ablation grid (paper Fig. 10, Table 2 wording)."""
FIGURE_KINDS: dict[str, dict[str, str]] = {"comparison": METHOD_LABELS, "ablation": ABLATION_LABELS}
UNTRAINED_MARK = "†"
UNTRAINED_NOTE = f"{UNTRAINED_MARK} untrained weights (random init): not the method's real output"
DPI = 150
CELL_INCHES = 1.6


# ---------------------------------------------------------------------------------------------------- basics
def method_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """Readable label of a method name from ``labels`` (default :data:`METHOD_LABELS`), matched case-insensitively."""
    folded = {k.casefold(): v for k, v in (METHOD_LABELS if labels is None else labels).items()}
    return folded.get(name.casefold(), name)


def save_figure(fig: Figure, stem: PathLike, dpi: int = DPI, clear: bool = True) -> list[Path]:
    """Write ``<stem>.png`` (``dpi``) and ``<stem>.pdf`` atomically (hidden temporary file + ``os.replace``; the
    folder is created) and, unless ``clear=False``, release the figure's memory; returns the two paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in ("png", "pdf"):
        final = stem.with_name(f"{stem.name}.{fmt}")
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fig.savefig(tmp, format=fmt, dpi=dpi)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        paths.append(final)
    if clear:
        fig.clear()
    return paths


def _as_array(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) / (3, H, W) float in [0, 1] → (H, W, 3) uint8 by the harness's save rule (clamp, ×255, truncate)."""
    return np.asarray(tensor_to_image(image.detach().float().cpu()))


def _load(image: ImageInput, size: int | tuple[int, int] | None = None, keep_aspect: bool = False) -> torch.Tensor:
    """A (1, 3, H, W) float tensor in [0, 1] from a tensor ((3, H, W) accepted) or an image file (resized)."""
    if isinstance(image, torch.Tensor):
        t = image if image.dim() == 4 else image.unsqueeze(0)
        if t.dim() != 4 or t.shape[:2] != (1, 3):
            raise InputError(f"expected one RGB image (1, 3, H, W) or (3, H, W), got {tuple(image.shape)}")
        return t.float()
    return load_image_tensor(image, size=size, keep_aspect=keep_aspect)


def _blank(ax) -> None:
    """No ticks and no frame, but keep the y label visible (row labels)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _image_cell(ax, array: np.ndarray | None, title: str | None = None, missing: str = "missing") -> None:
    """Draw an (H, W, 3) uint8 image, or an empty cell reading ``missing``."""
    _blank(ax)
    if array is None:
        ax.set_facecolor("#f0f0f0")
        ax.text(0.5, 0.5, missing, ha="center", va="center", transform=ax.transAxes, color="#808080", fontsize=8)
    else:
        ax.imshow(array, interpolation="nearest")
    if title is not None:
        ax.set_title(title, fontsize=8)


def _image_figure(
    rows: int, cols: int, cell: float = CELL_INCHES, extra_height: float = 0.4
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with a (rows, cols) array of axes, ``cell`` inches per image."""
    fig = Figure(figsize=(cols * cell, rows * cell + extra_height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


# ---------------------------------------------------------------------------------------------------- Fig. 9 / 10
def _read_output(path: Path) -> tuple[np.ndarray | None, str]:
    if not path.is_file():
        return None, "missing"
    try:
        return np.asarray(load_image(path)), ""
    except ImageError:
        return None, "unreadable"


def comparison_grid(
    rows: Sequence[tuple[PathLike, PathLike]],
    columns: Mapping[str, PathLike | Stylizer],
    *,
    size: int | tuple[int, int] | None = 512,
    keep_aspect: bool = False,
    untrained: Collection[str] = (),
    row_labels: bool = True,
    title: str | None = None,
) -> Figure:
    """Image grid: one row per (content, style) pair; columns content | style | one per entry of ``columns``.

    ``columns`` maps a column title to either a folder holding ``<content stem>__<style stem>.png`` (the run layout)
    or a callable ``(content, style) → output`` run on the inputs loaded at ``size``. A missing or unreadable input
    or output file is drawn as an empty cell saying so. Titles in ``untrained`` get a † and a footnote.
    Axes: ``fig.axes[r·(2 + len(columns)) + c]``.
    """
    if not rows:
        raise RunError("comparison grid: no (content, style) pairs to show")
    flagged = set(untrained)
    fig, axes = _image_figure(len(rows), 2 + len(columns))
    for r, (content_path, style_path) in enumerate(rows):
        content_path, style_path = Path(content_path), Path(style_path)
        inputs: list[torch.Tensor | None] = []
        for c, path in enumerate((content_path, style_path)):
            try:
                tensor = load_image_tensor(path, size=size, keep_aspect=keep_aspect)
                text = ""
            except ImageError:
                tensor, text = None, "missing" if not path.exists() else "unreadable"
            inputs.append(tensor)
            _image_cell(axes[r, c], None if tensor is None else _as_array(tensor),
                        ("Content", "Style")[c] if r == 0 else None, text)
        if row_labels:
            axes[r, 0].set_ylabel(f"{content_path.stem}\n{style_path.stem}", fontsize=7)
        for c, (label, source) in enumerate(columns.items(), start=2):
            if callable(source):
                array, text = (None, "no input") if None in inputs else (_as_array(source(*inputs)), "")
            else:
                array, text = _read_output(Path(source) / f"{content_path.stem}__{style_path.stem}.png")
            head = None
            if r == 0:
                head = f"{label} {UNTRAINED_MARK}" if label in flagged else label
            _image_cell(axes[r, c], array, head, text)
    if flagged:
        fig.supxlabel(UNTRAINED_NOTE, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _truthy(value: object) -> bool:
    return str(value).strip().casefold() in ("true", "1", "yes", "1.0")


def _run_tables(run_dir: Path) -> tuple[list[dict[str, str]], dict]:
    """Rows of ``metrics.csv`` (as strings) and the manifest (or {})."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise RunError(f"{run_dir}: no metrics.csv (is it a run directory? shards are combined by `harness merge`)")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("method") and r.get("style")]
    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    except (OSError, ValueError):
        manifest = {}
    return rows, manifest


def _input_paths(config: Mapping) -> dict[str, dict[str, Path]]:
    """File name → path of the run's content and style images (the embedded demo set when none were given)."""
    out: dict[str, dict[str, Path]] = {}
    for role, demo in (("content", demo_content), ("style", demo_styles)):
        try:
            paths = list_images(config[role]) if config.get(role) else demo()
        except (ImageError, OSError, TypeError):
            paths = []
        out[role] = {p.name: p for p in paths}
    return out


def _stem(name: str) -> str:
    return Path(name).stem


def comparison_grid_from_run(
    run_dir: PathLike,
    methods: Sequence[str] | None = None,
    pairs: Sequence[str | tuple[str, str]] | None = None,
    max_rows: int | None = 6,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> Figure:
    """:func:`comparison_grid` of a run directory: rows = its pairs (order of ``metrics.csv``, at most ``max_rows``),
    columns = content, style, then each method (``methods`` or the run's order) titled by ``labels`` (default
    :data:`METHOD_LABELS`; :data:`ABLATION_LABELS` for Fig. 10). Inputs are re-read from the run's content/style
    sources at its size; methods flagged ``untrained`` in ``metrics.csv`` get a †.

    ``pairs``: ``"<content stem>__<style stem>"`` strings or (content, style) names / stems, in the order shown.
    """
    run_dir = Path(run_dir)
    rows, manifest = _run_tables(run_dir)
    config = manifest.get("config", {})
    order = [m for m in config.get("methods", []) if any(r["method"] == m for r in rows)]
    order += [m for m in dict.fromkeys(r["method"] for r in rows) if m not in order]
    if methods is not None:
        unknown = [m for m in methods if m not in order]
        if unknown:
            raise RunError(f"{run_dir}: method(s) {', '.join(unknown)} not in the run (it has: {', '.join(order)})")
        order = list(methods)
    run_pairs = list(dict.fromkeys((r["content"], r["style"]) for r in rows))
    if pairs is not None:
        by_stem = {f"{_stem(c)}__{_stem(s)}": (c, s) for c, s in run_pairs}
        chosen = []
        for pair in pairs:
            key = pair if isinstance(pair, str) else f"{_stem(pair[0])}__{_stem(pair[1])}"
            if key not in by_stem:
                raise RunError(f"{run_dir}: pair {key!r} not in the run (it has: {', '.join(by_stem)})")
            chosen.append(by_stem[key])
        run_pairs = chosen
    if max_rows is not None:
        run_pairs = run_pairs[:max_rows]
    if not run_pairs or not order:
        raise RunError(f"{run_dir}: metrics.csv lists no stylised pairs")
    sources = _input_paths(config)
    absent = run_dir / ".inputs-not-found"  # an input the run's sources no longer hold: drawn as "missing"
    grid_rows = [(sources["content"].get(c, absent / c), sources["style"].get(s, absent / s)) for c, s in run_pairs]
    untrained = {m for m in order if any(r["method"] == m and _truthy(r.get("untrained", "")) for r in rows)}
    titles = {m: method_label(m, labels) for m in order}
    clashing = [m for m in order if list(titles.values()).count(titles[m]) > 1]
    titles.update({m: f"{titles[m]} ({m})" for m in clashing})  # two methods must not share a column
    return comparison_grid(
        grid_rows, {titles[m]: run_dir / m for m in order}, size=config.get("size", 512),
        keep_aspect=bool(config.get("keep_aspect", False)), untrained={titles[m] for m in untrained}, title=title,
    )


# ---------------------------------------------------------------------------------------------------- Fig. 11
def _flag_title(method: Method, text: str) -> str:
    return f"{text} {UNTRAINED_MARK} ({method.provenance.flag()})" if method.untrained else text


def interpolation_strip(
    method: Method,
    content: ImageInput,
    styles: tuple[ImageInput, ImageInput],
    steps: int = 5,
    alpha: float = 1.0,
    size: int | tuple[int, int] | None = 512,
) -> Figure:
    """Style interpolation (paper Fig. 11): content | style A | outputs with weights (1 − t, t) for
    t ∈ linspace(0, 1, steps) | style B, via :meth:`methods.Method.interpolate`. Image files are loaded at ``size``."""
    if steps < 2:
        raise InputError(f"an interpolation strip needs steps ≥ 2, got {steps}")
    if len(styles) != 2:
        raise InputError(f"an interpolation strip takes two styles, got {len(styles)}")
    c = _load(content, size)
    a, b = (_load(s, size) for s in styles)
    fig, axes = _image_figure(1, steps + 3, extra_height=0.6)
    _image_cell(axes[0, 0], _as_array(c), "Content")
    _image_cell(axes[0, 1], _as_array(a), "Style A")
    for i, t in enumerate(np.linspace(0.0, 1.0, steps)):
        out = method.interpolate(c, [a, b], [1.0 - float(t), float(t)], alpha=alpha)
        _image_cell(axes[0, 2 + i], _as_array(out), f"({1 - t:.2f}, {t:.2f})")
    _image_cell(axes[0, steps + 2], _as_array(b), "Style B")
    fig.suptitle(_flag_title(method, f"{method_label(method.name)}: style interpolation"), fontsize=9)
    return fig


def interpolation_grid(
    method: Method,
    content: ImageInput,
    styles: Sequence[ImageInput],
    steps: int = 3,
    alpha: float = 1.0,
    size: int | tuple[int, int] | None = 512,
) -> Figure:
    """Four-style interpolation: top row content | styles 1–4; below a ``steps``×``steps`` grid whose cell (i, j),
    u = j/(steps−1), v = i/(steps−1), blends the styles with the bilinear weights ((1−u)(1−v), u(1−v), (1−u)v, uv),
    so the corners are styles 1 (top left), 2 (top right), 3 (bottom left), 4 (bottom right)."""
    if len(styles) != 4:
        raise InputError(f"an interpolation grid takes four styles, got {len(styles)}")
    if steps < 2:
        raise InputError(f"an interpolation grid needs steps ≥ 2, got {steps}")
    c = _load(content, size)
    s = [_load(x, size) for x in styles]
    cols = max(5, steps)
    fig = Figure(figsize=(cols * CELL_INCHES, (steps + 1) * CELL_INCHES + 0.8), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, steps])
    head = top.subplots(1, 5, squeeze=False)[0]
    for ax, image, text in zip(head, [c, *s], ["Content", "Style 1", "Style 2", "Style 3", "Style 4"]):
        _image_cell(ax, _as_array(image), text)
    grid = bottom.subplots(steps, steps, squeeze=False)
    for i, v in enumerate(np.linspace(0.0, 1.0, steps)):
        for j, u in enumerate(np.linspace(0.0, 1.0, steps)):
            w = [(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v]
            out = method.interpolate(c, s, [float(x) for x in w], alpha=alpha)
            _image_cell(grid[i, j], _as_array(out))
    fig.suptitle(_flag_title(method, f"{method_label(method.name)}: four-style interpolation"), fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------------- Fig. 6
def _overlay(fig: Figure, ax, values: np.ndarray, extent: tuple[float, float, float, float], cmap: str,
             alpha: float) -> None:
    """Heat map over [0, max] drawn at ``extent`` (left, right, bottom, top in pixels) with its colour bar."""
    top = float(np.ma.max(values))
    image = ax.imshow(values, extent=extent, cmap=cmap, alpha=alpha, interpolation="nearest", vmin=0.0,
                      vmax=top if top > 0 else 1.0)
    bar = fig.colorbar(image, ax=ax, location="bottom", shrink=0.85, pad=0.02)
    bar.ax.tick_params(labelsize=6)


def attention_figure(
    maps: AttentionMaps,
    content_image: ImageInput,
    style_image: ImageInput,
    cmap: str = "inferno",
    alpha: float = 0.65,
) -> Figure:
    """Paper Fig. 6 for one content point (``maps`` from :func:`methods.attention_maps.attention_maps`).

    Panels: content with the point (and, for A2K, its content block dashed); style with the all-to-all attention of
    the point overlaid; style with DA's scores over the style blocks (block grid drawn); style with PA's chosen block
    outlined and its fine attention inside. Ablations without DA / PA drop that panel; an all-to-all model has the
    first two only. Feature cell (i, j) is drawn over pixels [i·s, (i+1)·s) × [j·s, (j+1)·s), s = the layer's
    downsampling. Image files are loaded at the maps' sizes; tensors must have them.
    """
    content = _load(content_image, maps.content_size)
    style = _load(style_image, maps.style_size)
    for name, t, expected in (("content", content, maps.content_size), ("style", style, maps.style_size)):
        if tuple(t.shape[-2:]) != tuple(expected):
            raise InputError(f"{name} image is {t.shape[-2]}×{t.shape[-1]} but the maps were computed at "
                             f"{expected[0]}×{expected[1]}")
    s = maps.downsampling
    hs, ws = maps.style_grid
    h_img, w_img = maps.style_size
    which = "mean of heads" if maps.head is None else f"head {maps.head}"
    panels = ["content", "all_to_all"]
    if maps.da_scores is not None:
        panels.append("da")
    if maps.pa_fine is not None:
        panels.append("pa")
    fig, axes = _image_figure(1, len(panels), cell=2.4, extra_height=0.6)
    axes = axes[0]
    style_array = _as_array(style)
    y, x = maps.point

    ax = axes[0]
    _image_cell(ax, _as_array(content), f"Content\npoint (y={y}, x={x})")
    ax.plot([x + 0.5], [y + 0.5], marker="o", markersize=7, markerfacecolor="none", markeredgecolor="red",
            markeredgewidth=2, linestyle="none")
    if maps.block_side is not None:
        p = maps.block_side
        fy, fx = maps.feature_point
        ax.add_patch(Rectangle(((fx // p) * p * s, (fy // p) * p * s), p * s, p * s, fill=False, edgecolor="red",
                               linestyle="--", linewidth=1.2))
    ax.set_xlim(0, maps.content_size[1])
    ax.set_ylim(maps.content_size[0], 0)

    cell_extent = (0.0, ws * s, hs * s, 0.0)
    ax = axes[1]
    _image_cell(ax, style_array, f"All-to-all attention\n({which})")
    _overlay(fig, ax, maps.all_to_all.numpy(), cell_extent, cmap, alpha)
    next_panel = 2
    if maps.da_scores is not None:
        ax = axes[next_panel]
        next_panel += 1
        p = maps.block_side
        gh, gw = maps.style_block_grid
        _image_cell(ax, style_array, f"DA scores, {gh}×{gw} style blocks\n({which})")
        _overlay(fig, ax, maps.da_scores.numpy(), (0.0, gw * p * s, gh * p * s, 0.0), cmap, alpha)
        for i in range(1, gh):
            ax.axhline(i * p * s, color="white", linewidth=0.8)
        for j in range(1, gw):
            ax.axvline(j * p * s, color="white", linewidth=0.8)
    if maps.pa_fine is not None:
        ax = axes[next_panel]
        p = maps.block_side
        oy, ox = maps.block_origin(maps.pa_block)
        how = "PA block" if maps.pa_step1 else "same-location block"
        shown = "mode of heads" if maps.head is None else f"head {maps.head}"
        _image_cell(ax, style_array, f"{how} {maps.pa_block}, fine attention\n({shown})")
        fine = maps.pa_fine.numpy()
        _overlay(fig, ax, np.ma.masked_equal(fine, 0.0), cell_extent, cmap, alpha)
        ax.add_patch(Rectangle((ox * s, oy * s), p * s, p * s, fill=False, edgecolor="cyan", linewidth=1.8))
    for ax in axes[1:]:
        ax.set_xlim(0, w_img)
        ax.set_ylim(h_img, 0)
    fig.suptitle(f"{maps.layer}: attention of one content point"
                 + (f" (block side {maps.block_side})" if maps.block_side else ""), fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------------- bars
def _read_frame(source: pd.DataFrame | PathLike, what: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    path = Path(source)
    if not path.is_file():
        raise TableError(f"{path}: no such {what} file")
    try:
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise TableError(f"{path}: cannot read the {what} CSV ({' '.join(str(exc).split())})") from None


def metric_bars(
    table: pd.DataFrame | PathLike,
    metrics: Sequence[str] = ("content_loss", "style_loss", "lpips"),
    reference: Mapping[str, Mapping[str, float]] | None = None,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
    reference_label: str = "paper",
) -> Figure:
    """One subplot per metric (those of ``metrics`` present as ``<metric>_mean``), one bar per method (table order)
    with its 95 % CI (``<metric>_ci95``) as error bars; untrained methods are hatched and marked †.

    ``table``: the output of :func:`harness.tables.aggregate` or a ``table.csv``. ``reference``: method → metric →
    value (e.g. the paper's Table 1) drawn as black diamonds over the matching bars, labelled ``reference_label``.
    In ``fig.axes[k]`` bar i's height is the mean of method i (NaN: bar hidden) and its error bar ± ci95."""
    frame = _read_frame(table, "table")
    if "method" not in frame.columns:
        raise TableError("the table has no 'method' column (expected harness.tables.aggregate output or table.csv)")
    shown = [m for m in metrics if f"{m}_mean" in frame.columns]
    if not shown:
        raise TableError(f"the table has none of the metrics {', '.join(metrics)} (no '<metric>_mean' column)")
    methods = [str(m) for m in frame["method"]]
    untrained = [_truthy(v) for v in frame["untrained"]] if "untrained" in frame.columns else [False] * len(methods)
    ticks = [method_label(m, labels) + (f" {UNTRAINED_MARK}" if u else "") for m, u in zip(methods, untrained)]
    folded_ref = {k.casefold(): v for k, v in (reference or {}).items()}
    fig = Figure(figsize=(max(3.0, 0.55 * len(methods) + 1.2) * len(shown), 3.4), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    x = np.arange(len(methods))
    colours = [f"C{i % 10}" for i in range(len(methods))]
    any_reference = False
    for ax, metric in zip(axes, shown):
        means = pd.to_numeric(frame[f"{metric}_mean"], errors="coerce").to_numpy(dtype=float)
        ci = (pd.to_numeric(frame[f"{metric}_ci95"], errors="coerce").to_numpy(dtype=float)
              if f"{metric}_ci95" in frame.columns else None)
        bars = ax.bar(x, np.nan_to_num(means, nan=0.0), yerr=ci, capsize=3, color=colours, edgecolor="black",
                      linewidth=0.6, error_kw={"elinewidth": 1.0})
        for bar, u, m in zip(bars, untrained, means):
            if u:
                bar.set_hatch("//")
            if math.isnan(m):
                bar.set_visible(False)
        ref_x = [i for i, m in enumerate(methods) if metric in folded_ref.get(m.casefold(), {})]
        if ref_x:
            any_reference = True
            ax.plot(ref_x, [folded_ref[methods[i].casefold()][metric] for i in ref_x], marker="D", color="black",
                    linestyle="none", markersize=5, label=reference_label, zorder=5)
            ax.legend(fontsize=7)
        label, higher, _fmt = METRIC_LABELS.get(metric, (metric, False, ""))
        ax.set_title(f"{label} {'↑' if higher else '↓'}", fontsize=9)
        ax.set_xticks(x, ticks, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    notes = ["error bars: 95 % CI over pairs"]
    if any(untrained):
        notes.append(UNTRAINED_NOTE)
    if any_reference:
        notes.append(f"◆ {reference_label}")
    fig.supxlabel("; ".join(notes), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------- loss curves
LOSS_LOG_META = ("step", "epoch", "lr")


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average: element i is the mean of values[max(0, i − window + 1) : i + 1]."""
    return pd.Series(values, dtype=float).rolling(window, min_periods=1).mean().to_numpy()


def loss_curves(
    log: pd.DataFrame | PathLike,
    smooth: int = 1,
    terms: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Training curves from ``loss_log.csv`` (``step, epoch, lr, <terms…>, loss``: :class:`harness.train.LossLog`).

    One panel per loss term (``loss``, the weighted total, first), against ``step``; log-y where every value is
    positive. ``smooth`` > 1 draws the raw curve faintly and its trailing moving average over ``smooth`` steps on
    top. The learning rate, when logged, is drawn on a twin axis of the first panel."""
    frame = _read_frame(log, "loss log")
    if "step" not in frame.columns:
        raise TableError("the loss log has no 'step' column (expected loss_log.csv: step, epoch, lr, <terms>, loss)")
    if smooth < 1:
        raise TableError(f"smoothing window must be ≥ 1 step, got {smooth}")
    available = [c for c in frame.columns if c not in LOSS_LOG_META and pd.api.types.is_numeric_dtype(frame[c])]
    if terms is None:
        terms = (["loss"] if "loss" in available else []) + [c for c in available if c != "loss"]
    else:
        missing = [t for t in terms if t not in available]
        if missing:
            raise TableError(f"the loss log has no numeric column(s) {', '.join(missing)} "
                             f"(it has: {', '.join(available)})")
    if not terms:
        raise TableError("the loss log has no loss columns")
    frame = frame.sort_values("step", kind="stable")
    steps = frame["step"].to_numpy(dtype=float)
    cols = min(3, len(terms))
    rows = -(-len(terms) // cols)
    fig = Figure(figsize=(3.6 * cols, 2.7 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, term in zip(axes, terms):
        values = frame[term].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if smooth > 1:
            ax.plot(steps, values, color="C0", alpha=0.3, linewidth=0.8, label="raw")
            ax.plot(steps, moving_average(values, smooth), color="C0", linewidth=1.4, label=f"mean of {smooth}")
        else:
            ax.plot(steps, values, color="C0", linewidth=1.2, label=term)
        if finite.size and (finite > 0).all():
            ax.set_yscale("log")
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(terms):]:
        ax.set_visible(False)
    if "lr" in frame.columns and pd.api.types.is_numeric_dtype(frame["lr"]):
        twin = axes[0].twinx()
        twin.plot(steps, frame["lr"].to_numpy(dtype=float), color="C3", linestyle="--", linewidth=1.0, label="lr")
        twin.set_ylabel("learning rate", fontsize=8, color="C3")
        twin.tick_params(labelsize=7, colors="C3")
        twin.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        twin.yaxis.get_offset_text().set_fontsize(7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------- a run
def _run_table(run_dir: Path) -> pd.DataFrame | None:
    """The run's aggregated table: ``table.csv``, else :func:`harness.tables.aggregate` of ``metrics.csv``."""
    if (run_dir / "table.csv").is_file():
        return _read_frame(run_dir / "table.csv", "table")
    frame = _read_frame(run_dir / "metrics.csv", "metrics")
    from .tables import MetricSpec

    specs = {n: MetricSpec(n, *METRIC_LABELS[n]) for n in METRIC_LABELS if n in frame.columns}
    return aggregate(frame, specs) if specs else None


def write_run_figures(
    run_dir: PathLike,
    kind: str = "comparison",
    reference: Mapping[str, Mapping[str, float]] | None = None,
    methods: Sequence[str] | None = None,
    max_rows: int | None = 6,
) -> list[Path]:
    """The standard figures of a run directory, written (PNG + PDF) into ``<run_dir>/figures/``:

    * ``<kind>_grid``: :func:`comparison_grid_from_run` (``kind="ablation"`` titles columns with
      :data:`ABLATION_LABELS`, as paper Fig. 10);
    * ``<kind>_metrics``: :func:`metric_bars` of ``table.csv`` (skipped when the run has no metric values);
    * ``loss_curves``: :func:`loss_curves` when the directory holds a ``loss_log.csv`` (a training run).
    """
    if kind not in FIGURE_KINDS:
        raise RunError(f"unknown figure kind {kind!r}; choose one of: {', '.join(FIGURE_KINDS)}")
    run_dir = Path(run_dir)
    labels = FIGURE_KINDS[kind]
    out = run_dir / "figures"
    written = save_figure(
        comparison_grid_from_run(run_dir, methods=methods, max_rows=max_rows, labels=labels), out / f"{kind}_grid"
    )
    table = _run_table(run_dir)
    if table is not None and methods is not None:
        table = table[table["method"].isin(list(methods))]
    has_values = table is not None and any(
        f"{m}_mean" in table.columns and table[f"{m}_mean"].notna().any() for m in METRIC_LABELS
    )
    if has_values:
        written += save_figure(metric_bars(table, metrics=tuple(METRIC_LABELS), reference=reference, labels=labels),
                               out / f"{kind}_metrics")
    if (run_dir / "loss_log.csv").is_file():
        written += save_figure(loss_curves(run_dir / "loss_log.csv", smooth=10), out / "loss_curves")
    return written
