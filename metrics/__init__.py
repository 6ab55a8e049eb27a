"""What measures: content / style losses (StyTr² definitions and named variants), LPIPS, timing, and the
temporal warping error of stylised video (:mod:`metrics.temporal`).

Knows nothing of runs or the command line. Every image metric follows :class:`metrics.base.Metric`
(``update`` → per-image values, ``compute`` → :class:`metrics.base.Summary`, ``reset``, ``higher_is_better``,
``config``) and has a functional twin. A metric that cannot be computed here (missing weights offline) raises
:class:`MetricUnavailable` at construction; runners report ``unavailable: <reason>``.

Names are imported on first use (PEP 562): ``import metrics.names`` (what ``--help`` lists) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, str]] = {
    'Metric': ('base', 'Metric'),
    'MetricUnavailable': ('base', 'MetricUnavailable'),
    'Summary': ('base', 'Summary'),
    'check_triplet': ('base', 'check_triplet'),
    'summarize': ('base', 'summarize'),
    'VARIANTS': ('content_style', 'VARIANTS'),
    'ContentLoss': ('content_style', 'ContentLoss'),
    'ContentStyleConfig': ('content_style', 'ContentStyleConfig'),
    'ContentStyleLoss': ('content_style', 'ContentStyleLoss'),
    'FeatureCache': ('content_style', 'FeatureCache'),
    'StyleLoss': ('content_style', 'StyleLoss'),
    'content_loss': ('content_style', 'content_loss'),
    'load_vgg': ('content_style', 'load_vgg'),
    'style_loss': ('content_style', 'style_loss'),
    'LPIPS': ('perceptual', 'LPIPS'),
    'LPIPS_BACKBONES': ('perceptual', 'LPIPS_BACKBONES'),
    'load_lpips': ('perceptual', 'load_lpips'),
    'lpips_distance': ('perceptual', 'lpips_distance'),
    'lpips_features': ('perceptual', 'lpips_features'),
    'lpips_from_features': ('perceptual', 'lpips_from_features'),
    'TimingResult': ('timing', 'TimingResult'),
    'count_flops': ('timing', 'count_flops'),
    'measure_latency': ('timing', 'measure_latency'),
    'percentile': ('timing', 'percentile'),
    'time_method': ('timing', 'time_method'),
    'WARPING_DEFINITIONS': ('temporal', 'DEFINITIONS'),
    'OcclusionConfig': ('temporal', 'OcclusionConfig'),
    'WarpingDefinition': ('temporal', 'WarpingDefinition'),
    'WarpingError': ('temporal', 'WarpingError'),
    'backward_warp': ('temporal', 'backward_warp'),
    'estimate_flow': ('temporal', 'estimate_flow'),
    'pair_error': ('temporal', 'pair_error'),
    'reliability_mask': ('temporal', 'reliability_mask'),
    'warping_error': ('temporal', 'warping_error'),
}
"""Public name → (submodule, its name there)."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'metrics' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from .base import Metric, MetricUnavailable, Summary, check_triplet, summarize
    from .content_style import (VARIANTS, ContentLoss, ContentStyleConfig, ContentStyleLoss, FeatureCache, StyleLoss, content_loss,
        load_vgg, style_loss)
    from .perceptual import LPIPS, LPIPS_BACKBONES, load_lpips, lpips_distance, lpips_features, lpips_from_features
    from .timing import TimingResult, count_flops, measure_latency, percentile, time_method
    from .temporal import (DEFINITIONS as WARPING_DEFINITIONS, OcclusionConfig, WarpingDefinition, WarpingError, backward_warp,
        estimate_flow, pair_error, reliability_mask, warping_error)
