"""Paper Fig. 6: one content point's attention — all-to-all, DA's block scores, PA's block and fine attention."""
from __future__ import annotations


import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from methods import InputError
from methods.attention_maps import AttentionMaps

from ._common import (UNTRAINED_MARK, ImageInput, _as_array, _load, _image_cell, _image_figure)


# ---------------------------------------------------------------------------------------------------- Fig. 6
def _overlay(fig: Figure, ax, values: np.ndarray, extent: tuple[float, float, float, float], cmap: str,
             alpha: float) -> None:
    """Heat map over [0, max] drawn at ``extent`` (left, right, bottom, top in pixels) with its colour bar."""
    top = float(np.ma.max(values))
    image = ax.imshow(values, extent=extent, cmap=cmap, alpha=alpha, interpolation="nearest", vmin=0.0,
                      vmax=top if top > 0 else 1.0)
    bar = fig.colorbar(image, ax=ax, location="bottom", shrink=0.85, pad=0.02)
    bar.ax.tick_params(labelsize=6)


def _content_panel(ax, maps: AttentionMaps, content: np.ndarray) -> None:
    """The content image with the point (red circle) and, for A2K, its content block (dashed)."""
    y, x = maps.point
    s = maps.downsampling
    _image_cell(ax, content, f"Content\npoint (y={y}, x={x})")
    ax.plot([x + 0.5], [y + 0.5], marker="o", markersize=7, markerfacecolor="none", markeredgecolor="red",
            markeredgewidth=2, linestyle="none")
    if maps.block_side is not None:
        p = maps.block_side
        fy, fx = maps.feature_point
        ax.add_patch(Rectangle(((fx // p) * p * s, (fy // p) * p * s), p * s, p * s, fill=False, edgecolor="red",
                               linestyle="--", linewidth=1.2))
    ax.set_xlim(0, maps.content_size[1])
    ax.set_ylim(maps.content_size[0], 0)


def attention_figure(
    maps: AttentionMaps,
    content_image: ImageInput,
    style_image: ImageInput,
    cmap: str = "inferno",
    alpha: float = 0.65,
    untrained: str | None = None,
) -> Figure:
    """Paper Fig. 6 for one content point (``maps`` from :func:`methods.attention_maps.attention_maps`);
    ``untrained``: the method's provenance flag where its weights are untrained (shown with a † in the title).

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
    _content_panel(axes[0], maps, _as_array(content))

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
    key = ["red circle: the content point"]
    if maps.block_side is not None:
        key.append("dashed red square: its content block")
    if maps.da_scores is not None:
        key.append("white lines: the style block grid")
    if maps.pa_fine is not None:
        key.append(f"cyan square: the {'block PA chose' if maps.pa_step1 else 'same-location block'}")
    key.append("colour: attention weight (scale under each panel)")
    fig.supxlabel("; ".join(key), fontsize=6)
    fig.suptitle(f"{maps.layer}: attention of one content point"
                 + (f" (block side {maps.block_side})" if maps.block_side else "")
                 + (f" — {UNTRAINED_MARK} {untrained}: the mechanism, not a trained model" if untrained else ""),
                 fontsize=9)
    return fig


