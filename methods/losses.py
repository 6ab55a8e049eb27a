"""Loss pieces shared by the methods' training losses (spec §6.2, §10.1, §11).

``MSE`` is always the mean of squared differences (``F.mse_loss`` default), as in the official code.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .ops import calc_mean_std, mean_variance_norm
from .vgg import TAP_NAMES


def style_statistics_loss(output: Mapping[str, Tensor], style: Mapping[str, Tensor], taps: Sequence[str]) -> Tensor:
    """``Σ_taps MSE(mean(out), mean(style)) + MSE(std(out), std(style))`` with the §1 statistics (unbiased, +1e-5)."""
    total = 0.0
    for tap in taps:
        out_mean, out_std = calc_mean_std(output[tap])
        style_mean, style_std = calc_mean_std(style[tap])
        total = total + F.mse_loss(out_mean, style_mean) + F.mse_loss(out_std, style_std)
    return total


def shallow_keys(features: Mapping[str, Tensor], tap: str, shallow: bool = True) -> Tensor:
    """AdaAttN's ``get_key``: ``concat[mvn(resize(φ_0)), …, mvn(resize(φ_{i−1})), mvn(φ_i)]`` along channels.

    Shallower maps are resized to φ_i's size with ``F.interpolate``'s default nearest mode (for ×2^k downsampling
    that picks the top-left pixel of each cell) *before* normalisation; shallowest first. ``shallow=False`` gives
    ``mvn(φ_i)`` alone. Channels at 256 crops: relu2_1 192, relu3_1 448, relu4_1 960, relu5_1 1472.
    """
    if not shallow:
        return mean_variance_norm(features[tap])
    size = features[tap].shape[-2:]
    parts = [mean_variance_norm(F.interpolate(features[t], size=size)) for t in TAP_NAMES[: TAP_NAMES.index(tap)]]
    return torch.cat(parts + [mean_variance_norm(features[tap])], dim=1)


def weighted_total(terms: dict[str, Tensor], weights: Mapping[str, float]) -> dict[str, Tensor]:
    """Add ``"loss" = Σ weights[name] · terms[name]``; a weight for an unknown term is an error naming the terms."""
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"loss weight(s) for unknown term(s) {unknown}; this method's terms: {sorted(terms)}")
    total = sum(float(weights[name]) * terms[name] for name in weights)
    return {**terms, "loss": total}
