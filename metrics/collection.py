"""The per-pair metrics of a benchmark run as one collection (after torchmetrics' ``MetricCollection``).

Inputs recur across pairs and methods (each content image meets every style and every method), so their side of the
content/style losses is computed once per image and kept: the content features at the content layers and the
per-channel mean/std of the style images at the style layers (a few MB per image at 512²). Only the stylised output
is encoded per pair. The values are those of :func:`metrics.content_style.content_loss` and
:func:`metrics.content_style.style_loss` (the per-image kernels the metric classes use too).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from methods.weights import Loading

from .base import MetricUnavailable, check_triplet
from .content_style import ContentStyleLoss, content_loss, style_loss_from_statistics, style_statistics
from .perceptual import LPIPS

__all__ = ["PAIR_METRICS", "MetricCollection", "build_metrics"]

PAIR_METRICS: tuple[str, ...] = ("content_loss", "style_loss", "lpips")
"""The metrics computed per (output, content, style) triple."""


@dataclass
class MetricCollection:
    """The requested per-pair metrics, their definitions (``configs``, for a manifest) and the ones that are
    unavailable here (``unavailable``: name → one-line reason)."""

    content_style: ContentStyleLoss | None = None
    lpips: LPIPS | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    _content_features: dict[Hashable, dict[str, Tensor]] = field(default_factory=dict)
    _style_statistics: dict[Hashable, dict[str, tuple[Tensor, Tensor]]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The value columns of a row: the available metrics, then the unavailable ones (left empty)."""
        names = list(self.content_style.names) if self.content_style is not None else []
        if self.lpips is not None:
            names.append("lpips")
        return names + [n for n in self.unavailable if n not in names]

    def _content_style(self, output: Tensor, content: Tensor, style: Tensor,
                       keys: Sequence[tuple[Hashable, Hashable]]) -> dict[str, Tensor]:
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
    def update(self, output: Tensor, content: Tensor, style: Tensor,
               keys: Sequence[tuple[Hashable, Hashable]]) -> dict[str, list[float]]:
        """Per-image values of a batch — output, content (B, 3, H, W) and style (B, 3, Hs, Ws), RGB in [0, 1];
        ``keys[i]`` identifies row i's (content, style) inputs for the per-image caches."""
        check_triplet(output, content, style)
        values: dict[str, Tensor] = {}
        if self.content_style is not None:
            values.update(self._content_style(output, content, style, keys))
        if self.lpips is not None:
            values["lpips"] = self.lpips.update(output, content, style)
        return {k: v.detach().cpu().tolist() for k, v in values.items()}


def build_metrics(names: Iterable[str], loading: Loading | None = None, lpips_net: str = "alex") -> MetricCollection:
    """The collection of the per-pair metrics among ``names`` (others are ignored), their networks loaded through
    ``loading``; a metric whose weights are missing is recorded as unavailable, not raised."""
    collection = MetricCollection()
    wanted = set(names)
    if wanted & {"content_loss", "style_loss"}:
        try:
            collection.content_style = ContentStyleLoss.from_weights(loading)
            collection.configs["content_style"] = collection.content_style.content.config()
        except MetricUnavailable as exc:
            for name in ("content_loss", "style_loss"):
                if name in wanted:
                    collection.unavailable[name] = str(exc)
    if "lpips" in wanted:
        try:
            collection.lpips = LPIPS(lpips_net, loading=loading)
            collection.configs["lpips"] = collection.lpips.provenance
        except MetricUnavailable as exc:
            collection.unavailable["lpips"] = str(exc)
    return collection
