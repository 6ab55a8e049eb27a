"""What measures: content / style losses (StyTr² definitions and named variants), LPIPS, timing, and the
temporal warping error of stylised video (:mod:`metrics.temporal`).

Knows nothing of runs or the command line. Every image metric follows :class:`metrics.base.Metric`
(``update`` → per-image values, ``compute`` → :class:`metrics.base.Summary`, ``reset``, ``higher_is_better``,
``config``) and has a functional twin. A metric that cannot be computed here (missing weights offline) raises
:class:`MetricUnavailable` at construction; runners report ``unavailable: <reason>``.
"""
from .base import Metric, MetricUnavailable, Summary, check_triplet, summarize
from .content_style import (
    VARIANTS,
    ContentLoss,
    ContentStyleConfig,
    ContentStyleLoss,
    FeatureCache,
    StyleLoss,
    content_loss,
    load_vgg,
    style_loss,
)
from .perceptual import LPIPS, LPIPS_BACKBONES, load_lpips, lpips_distance
from .timing import TimingResult, count_flops, measure_latency, percentile, time_method
from .temporal import (
    DEFINITIONS as WARPING_DEFINITIONS,
    OcclusionConfig,
    WarpingDefinition,
    WarpingError,
    backward_warp,
    estimate_flow,
    pair_error,
    reliability_mask,
    warping_error,
)

__all__ = [
    "LPIPS",
    "LPIPS_BACKBONES",
    "VARIANTS",
    "ContentLoss",
    "ContentStyleConfig",
    "ContentStyleLoss",
    "FeatureCache",
    "Metric",
    "MetricUnavailable",
    "OcclusionConfig",
    "WARPING_DEFINITIONS",
    "WarpingDefinition",
    "StyleLoss",
    "Summary",
    "TimingResult",
    "WarpingError",
    "backward_warp",
    "check_triplet",
    "content_loss",
    "count_flops",
    "estimate_flow",
    "load_lpips",
    "load_vgg",
    "lpips_distance",
    "measure_latency",
    "pair_error",
    "percentile",
    "reliability_mask",
    "style_loss",
    "summarize",
    "time_method",
    "warping_error",
]
