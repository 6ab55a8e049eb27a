"""What every figure shares: labels, the atomic PNG + PDF writer, image cells."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from methods import InputError, Method

from ..atomic import atomic_path
from ..labels import ABLATION_LABELS, METHOD_LABELS, method_label  # noqa: F401  (re-exported)
from ..images import load_image_tensor, tensor_to_image
from ..errors import TableError

PathLike = Union[str, "os.PathLike[str]"]
ImageInput = Union[torch.Tensor, str, "os.PathLike[str]"]
Stylizer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(content (1, 3, H, W), style (1, 3, Hs, Ws)) in [0, 1] → output (1, 3, H, W), e.g. ``Method.stylize``."""

FIGURE_KINDS: dict[str, dict[str, str]] = {"comparison": METHOD_LABELS, "ablation": ABLATION_LABELS}
UNTRAINED_MARK = "†"
UNTRAINED_NOTE = f"{UNTRAINED_MARK} untrained weights (random init): not the method's real output"
DPI = 150
CELL_INCHES = 1.6


# ---------------------------------------------------------------------------------------------------- basics
def save_figure(fig: Figure, stem: PathLike, dpi: int = DPI, clear: bool = True) -> list[Path]:
    """Write ``<stem>.png`` (``dpi``) and ``<stem>.pdf`` atomically (:func:`harness.atomic.atomic_path`; the
    folder is created) and, unless ``clear=False``, release the figure's memory; returns the two paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in ("png", "pdf"):
        final = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
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


def _flag_title(method: Method, text: str) -> str:
    return f"{text} {UNTRAINED_MARK} ({method.provenance.flag()})" if method.untrained else text


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


def _truthy(value: object) -> bool:
    return str(value).strip().casefold() in ("true", "1", "yes", "1.0")
