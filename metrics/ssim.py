"""SSIM (Wang et al. 2004) between each stylised output and its content image, as MicroAST's ``metrics/calc_ssim.py``
computes it: both images as 8-bit, converted to grey with OpenCV (``cv2.COLOR_RGB2GRAY``, the same rounding as its
``BGR2GRAY`` on BGR files), then scikit-image's ``structural_similarity`` with its defaults (7×7 uniform window,
sample covariance, K1 = 0.01, K2 = 0.03, data range 255), the mean of the SSIM map. Higher is better.

``mode="rgb"`` compares the three channels instead (``channel_axis=-1``: the mean over channels of per-channel SSIM).
Images whose smaller side is below 7 px cannot be compared (one clear error).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from methods.errors import InputError

from .base import Metric, check_triplet

__all__ = ["SSIM", "SSIM_MODES", "ssim"]

SSIM_MODES = ("gray", "rgb")
_WINDOW = 7


def _to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] → (B, H, W, 3) uint8, rounding (exact for images read from 8-bit files)."""
    return (images.detach().to("cpu", torch.float64).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def ssim(output: Tensor, content: Tensor, mode: str = "gray") -> Tensor:
    """Per-image SSIM (B,) of outputs and their contents (B, 3, H, W) in [0, 1]."""
    import cv2
    from skimage.metrics import structural_similarity

    if mode not in SSIM_MODES:
        raise ValueError(f"SSIM mode must be one of {', '.join(SSIM_MODES)}, got {mode!r}")
    check_triplet(output, content)
    if min(output.shape[-2:]) < _WINDOW:
        raise InputError(f"SSIM needs images with sides of at least {_WINDOW} px, got {tuple(output.shape[-2:])}")
    values = []
    for out, con in zip(_to_uint8(output), _to_uint8(content)):
        if mode == "gray":
            values.append(structural_similarity(cv2.cvtColor(con, cv2.COLOR_RGB2GRAY),
                                                cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)))
        else:
            values.append(structural_similarity(con, out, channel_axis=-1))
    return torch.tensor(values, dtype=torch.float64)


class SSIM(Metric):
    """SSIM between each output and its content image (see the module docstring)."""

    name = "ssim"
    higher_is_better = True

    def __init__(self, mode: str = "gray") -> None:
        super().__init__()
        if mode not in SSIM_MODES:
            raise ValueError(f"SSIM mode must be one of {', '.join(SSIM_MODES)}, got {mode!r}")
        self.mode = mode

    def values(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        return ssim(output, content, self.mode)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "mode": self.mode, "reference": "MicroAST metrics/calc_ssim.py (scikit-image)",
                "compared_with": "content"}
