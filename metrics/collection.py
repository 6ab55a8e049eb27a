"""The per-pair metrics of a benchmark run as one collection (after torchmetrics' ``MetricCollection``).

Inputs recur across pairs and methods (each content image meets every style and every method), so their side of the
content/style losses and of LPIPS is computed once per image and kept: the content features at the content layers,
the per-channel mean/std of the style images at the style layers and the content's normalised LPIPS features
(≈ 21 MB per content image at 512²: VGG relu4_1/relu5_1 10 MB, AlexNet 10.6 MB), in one least-recently-used cache
bounded by a budget (:class:`methods.cache.BoundedLRU`; a run over thousands of contents stays within it, and
an image whose side was dropped is encoded again). Only the stylised output is encoded per pair. The values are
those of :func:`metrics.content_style.content_loss`, :func:`metrics.content_style.style_loss` and
:func:`metrics.perceptual.lpips_distance` (the per-image kernels the metric classes use too).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from methods.cache import BoundedLRU
from methods.weights import Loading

from .base import Metric, MetricUnavailable, check_triplet
from .names import METRIC_OPTIONS, PAIR_METRICS, PAPER_METRICS, SET_METRICS
from .content_style import ContentStyleLoss, content_loss, style_loss_from_statistics, style_statistics
from .fid import ArtFID, FID, SetMetric
from .inception import load_art_inception
from .perceptual import LPIPS, load_lpips, lpips_distance, lpips_features, lpips_from_features

__all__ = ["METRIC_OPTIONS", "PAIR_METRICS", "PAPER_METRICS", "SET_METRICS", "MetricCollection", "build_metrics",
           "build_set_metrics"]

DEFAULT_CACHE_MIB = 1024
"""Default budget of :attr:`MetricCollection.cache` (≈ 48 content images at 512²)."""


@dataclass
class MetricCollection:
    """The requested per-pair metrics, their definitions (``configs``, for a manifest) and the ones that are
    unavailable here (``unavailable``: name → one-line reason)."""

    content_style: ContentStyleLoss | None = None
    lpips: LPIPS | None = None
    others: dict[str, Metric] = field(default_factory=dict)
    """SSIM, CFSD, Gram loss: per-pair metrics computed by their own :meth:`~metrics.base.Metric.values`."""
    unavailable: dict[str, str] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    cache: BoundedLRU = field(default_factory=lambda: BoundedLRU(DEFAULT_CACHE_MIB), repr=False)
    """The inputs' side of the metrics (content features, style statistics, LPIPS content features), least recently
    used dropped first; a budget of 0 computes them per pair. The values are the same either way."""

    @property
    def columns(self) -> list[str]:
        """The value columns of a row: the available metrics, then the unavailable ones (left empty)."""
        names = list(self.content_style.names) if self.content_style is not None else []
        if self.lpips is not None:
            names.append("lpips")
        names.extend(self.others)
        return names + [n for n in self.unavailable if n not in names]

    def _content_style(self, output: Tensor, content: Tensor, style: Tensor,
                       keys: Sequence[tuple[Hashable, Hashable]]) -> dict[str, Tensor]:
        settings = self.content_style.settings
        encoder = self.content_style.cache.encoder
        contents, styles = [], []
        for i, (content_key, style_key) in enumerate(keys):
            contents.append(self.cache.get(("content features", content_key),
                                           lambda: encoder(content[i : i + 1], settings.content_layers)))
            styles.append(self.cache.get(("style statistics", style_key), lambda: style_statistics(
                encoder(style[i : i + 1], settings.style_layers), settings.style_layers)))
        out = encoder(output, set(settings.content_layers) | set(settings.style_layers))
        con = {t: torch.cat([c[t] for c in contents]) for t in settings.content_layers}
        sty = {t: tuple(torch.cat([s[t][j] for s in styles]) for j in (0, 1)) for t in settings.style_layers}
        return {
            "content_loss": content_loss(out, con, layers=settings.content_layers,
                                         normalize=settings.content_normalize, reduction=settings.reduction),
            "style_loss": style_loss_from_statistics(out, sty, layers=settings.style_layers,
                                                     reduction=settings.reduction),
        }

    def lpips_values(self, output: Tensor, content: Tensor, keys: Sequence[tuple[Hashable, Hashable]]) -> Tensor:
        """LPIPS (B,) of each output against its content, the content's side computed once per ``keys[i][0]``."""
        model = self.lpips.model
        if not self.lpips.splits:  # a user's non-standard lpips.LPIPS: computed whole
            return lpips_distance(output, content, model)
        sides = [self.cache.get(("lpips content", content_key), lambda: lpips_features(content[i : i + 1], model))
                 for i, (content_key, _) in enumerate(keys)]
        cached = [torch.cat(layer) for layer in zip(*sides)]
        return lpips_from_features(lpips_features(output, model), cached, model)

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
            values["lpips"] = self.lpips_values(output, content, keys)
        for name, metric in self.others.items():
            values[name] = metric.update(output, content, style)
        return {k: v.detach().cpu().tolist() for k, v in values.items()}


def _options(metric_options: Mapping[str, Mapping[str, Any]] | None, name: str) -> dict[str, Any]:
    return dict((metric_options or {}).get(name) or {})


def build_metrics(names: Iterable[str], loading: Loading | None = None, lpips_net: str = "alex",
                  metric_options: Mapping[str, Mapping[str, Any]] | None = None,
                  cache_mib: float = DEFAULT_CACHE_MIB) -> MetricCollection:
    """The collection of the per-pair metrics among ``names`` (others are ignored), their networks loaded through
    ``loading`` (CFSD and the Gram loss share one VGG-19); a metric whose weights are missing is recorded as
    unavailable, not raised. ``metric_options``: metric → its definitional options (:data:`METRIC_OPTIONS`).
    ``cache_mib``: the budget of the inputs' side kept across pairs (:attr:`MetricCollection.cache`)."""
    from .cfsd import CFSD
    from .gram import GRAM_VARIANTS, GramLoss
    from .imagenet_vgg import load_imagenet_vgg
    from .ssim import SSIM

    collection = MetricCollection(cache=BoundedLRU(cache_mib))
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
    vggs: dict[str, tuple[Any, dict[str, Any]]] = {}  # one VGG per architecture, shared

    def with_vgg(arch: str, purpose: str, build) -> Metric:
        if arch not in vggs:
            vggs[arch] = load_imagenet_vgg(arch, loading, purpose=purpose)
        metric = build(vggs[arch][0])
        metric.provenance = vggs[arch][1]
        return metric

    def gram(options: dict[str, Any]) -> Metric:
        variant = options.get("variant", "gatys")
        if variant not in GRAM_VARIANTS:
            raise ValueError(f"unknown Gram-loss variant {variant!r}; choose one of {', '.join(GRAM_VARIANTS)}")
        return with_vgg(GRAM_VARIANTS[variant].arch, "the Gram loss",
                        lambda net: GramLoss(variant, normalization=options.get("normalization"), vgg=net))

    builders = {
        "ssim": lambda options: SSIM(**options),
        "cfsd": lambda options: with_vgg("vgg19", "CFSD", lambda net: CFSD(vgg=net, **options)),
        "gram_loss": gram,
    }
    for name, build in builders.items():
        if name not in wanted:
            continue
        try:
            metric = build(_options(metric_options, name))
        except MetricUnavailable as exc:
            collection.unavailable[name] = str(exc)
            continue
        collection.others[name] = metric
        collection.configs[name] = metric.config()
    return collection


def build_set_metrics(names: Iterable[str], loading: Loading | None = None,
                      metric_options: Mapping[str, Mapping[str, Any]] | None = None, lpips: LPIPS | None = None,
                      seed: int = 0) -> tuple[dict[str, SetMetric], dict[str, str], dict[str, Any]]:
    """The set-level metrics among ``names``: (name → metric, name → why unavailable, name → definition). ArtFID's
    content term uses ``lpips`` when it is the AlexNet LPIPS, else loads one."""
    metrics: dict[str, SetMetric] = {}
    unavailable: dict[str, str] = {}
    wanted = set(names)
    try:
        if "fid" in wanted:
            metrics["fid"] = FID(loading, seed=seed, **_options(metric_options, "fid"))
    except MetricUnavailable as exc:
        unavailable["fid"] = str(exc)
    if "artfid" in wanted:
        reasons, network, model = [], None, None
        try:
            network, provenance = load_art_inception(loading)
        except MetricUnavailable as exc:
            reasons.append(str(exc))
        try:
            model = lpips.model if lpips is not None and lpips.net == "alex" else load_lpips("alex", loading)[0]
        except MetricUnavailable as exc:
            reasons.append(f"ArtFID's content term: {exc}")
        if reasons:
            unavailable["artfid"] = " ".join(reasons)
        else:
            metrics["artfid"] = ArtFID(model, network=network, seed=seed, **_options(metric_options, "artfid"))
            metrics["artfid"].provenance = provenance
    return metrics, unavailable, {name: metric.config() for name, metric in metrics.items()}
