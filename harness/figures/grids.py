"""Paper Figs. 9 and 10 (method and ablation comparison grids) and Fig. 11 (style interpolation)."""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from methods import InputError, Method

from ..images import load_image, load_image_tensor
from ..errors import ImageError, RunError
from ..run_inputs import read_run, run_input_paths
from ._common import (PathLike, ImageInput, Stylizer, UNTRAINED_MARK, UNTRAINED_NOTE, CELL_INCHES, method_label,
    _as_array, _load, _image_cell, _image_figure, _flag_title, _truthy)


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
    rows, manifest = read_run(run_dir)
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
    sources = run_input_paths(config)
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


