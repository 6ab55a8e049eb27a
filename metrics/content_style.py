"""Content loss and style loss "as in StyTr²" (the definitions StyA2K's Table 1 follows; spec §1, §8).

With φ_l the frozen VGG-19 normalised encoder's feature at tap l (spec §2), mvn the mean-variance norm and mean/std
the per-channel statistics of spec §1 (unbiased variance + 1e-5 under the square root):

* content = Σ_{l ∈ relu4_1, relu5_1} MSE(mvn(φ_l(out)), mvn(φ_l(content)))
* style   = Σ_{l ∈ relu1_1 … relu5_1} MSE(mean(φ_l(out)), mean(φ_l(style))) + MSE(std(φ_l(out)), std(φ_l(style)))

on raw features, MSE being the *mean* of squared differences. Values are per image: each sample's MSE is the mean
over its own elements, so the mean of the per-image values of a batch equals the batch MSE.

Everything is configurable (``content_layers``, ``style_layers``, ``content_normalize``, ``reduction`` "sum" | "mean"
over layers), and named variants fix a set of choices: ``"stytr2"`` (default, above) and ``"microast"`` (MicroAST's
evaluation script: layer terms averaged instead of summed, content on raw, un-normalised features).
:meth:`ContentStyleLoss.config` / ``Metric.config`` return them all for the run manifest.

The encoder is loaded by :func:`load_vgg` through the project's weights resolver and shared by both metrics;
:class:`ContentStyleLoss` (or two metrics built on one :class:`FeatureCache`) encodes each image once per update.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from methods.errors import InputError
from methods.net import check_image_batch
from methods.ops import calc_mean_std, mean_variance_norm
from methods.vgg import VGG_WEIGHTS
from methods.vgg import TAP_DOWNSAMPLING, TAP_NAMES, VGGEncoder
from methods.weights import Loading, MissingWeightsError, load_into, resolve_for_init

from .base import Metric, Summary, check_triplet
from .base import MetricUnavailable

__all__ = [
    "CONTENT_LAYERS",
    "STYLE_LAYERS",
    "VARIANTS",
    "ContentLoss",
    "ContentStyleConfig",
    "ContentStyleLoss",
    "FeatureCache",
    "StyleLoss",
    "content_loss",
    "load_vgg",
    "style_loss",
]

CONTENT_LAYERS: tuple[str, ...] = ("relu4_1", "relu5_1")
STYLE_LAYERS: tuple[str, ...] = TAP_NAMES
REDUCTIONS = ("sum", "mean")

Features = Mapping[str, Tensor]
Encoder = Callable[..., Mapping[str, Tensor]]
"""Anything called as ``encoder(images (B, 3, H, W), taps) → {tap: (B, C, h, w)}``, e.g. :class:`VGGEncoder`."""


# ----------------------------------------------------------------------------------------------------------------------
# Definition (configuration and named variants)
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentStyleConfig:
    """The definition of the two losses; :meth:`to_dict` is what the manifest records."""

    variant: str = "stytr2"
    content_layers: tuple[str, ...] = CONTENT_LAYERS
    style_layers: tuple[str, ...] = STYLE_LAYERS
    content_normalize: bool = True
    reduction: str = "sum"

    def __post_init__(self) -> None:
        for field_name in ("content_layers", "style_layers"):
            layers = tuple(getattr(self, field_name))
            object.__setattr__(self, field_name, layers)
            if not layers:
                raise ValueError(f"{field_name} must name at least one VGG tap ({', '.join(TAP_NAMES)})")
            unknown = [t for t in layers if t not in TAP_NAMES]
            if unknown:
                raise ValueError(f"{field_name}: unknown VGG tap(s) {unknown}; known: {', '.join(TAP_NAMES)}")
            if len(set(layers)) != len(layers):
                raise ValueError(f"{field_name}: repeated tap in {list(layers)}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be 'sum' or 'mean' over layers, got {self.reduction!r}")

    @classmethod
    def from_variant(cls, variant: str = "stytr2", **overrides: Any) -> ContentStyleConfig:
        """The named variant's settings, with explicit (non-None) ``overrides`` on top."""
        key = variant.lower()
        if key not in VARIANTS:
            raise ValueError(f"unknown content/style variant {variant!r}; known: {', '.join(VARIANTS)}")
        return replace(VARIANTS[key], **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "content_layers": list(self.content_layers),
            "style_layers": list(self.style_layers),
            "content_normalize": self.content_normalize,
            "reduction": self.reduction,
            "std_eps": 1e-5,
            "variance": "unbiased",
        }


VARIANTS: dict[str, ContentStyleConfig] = {
    "stytr2": ContentStyleConfig("stytr2"),
    "microast": ContentStyleConfig("microast", content_normalize=False, reduction="mean"),
}
"""Named definitions. ``stytr2``: StyTr²'s (StyA2K Table 1). ``microast``: MicroAST's evaluation script — same layers,
layer terms averaged instead of summed, content compared on raw (un-normalised) features."""


# ----------------------------------------------------------------------------------------------------------------------
# The encoder
# ----------------------------------------------------------------------------------------------------------------------
def load_vgg(loading: Loading | None = None) -> tuple[VGGEncoder, dict[str, Any]]:
    """The frozen VGG-19 normalised encoder for the metrics, and its provenance.

    ``vgg_normalised.pth`` is found through ``loading`` (:class:`~methods.weights.Loading`; default: the resolver's
    search order) by :func:`methods.weights.resolve_files` (``weights`` folder, ``weights_dir`` /
    ``$HARNESS_WEIGHTS``, cache, download unless offline). Missing, with ``init`` None/"pretrained", raises
    :class:`~metrics.perceptual.MetricUnavailable` (its message names the file, its URL and where to put it).
    ``init="random"``: a local file is still used, a download is tried only with ``download=True``, and otherwise
    the encoder is seeded-random (``seed``) and flagged ``pretrained: False`` — the losses are then meaningless.

    Provenance: ``{"file", "pretrained", "path", "sha256", "source", "verified", "seed", "flag"}``.
    """
    loading = loading or Loading()
    if loading.init not in (None, "pretrained", "random"):
        raise ValueError(f"init must be None, 'pretrained' or 'random'; got {loading.init!r}")
    encoder, seed = VGGEncoder(), loading.seed
    provenance: dict[str, Any] = {"file": VGG_WEIGHTS.filename, "pretrained": False, "path": None, "sha256": None,
                                  "source": None, "verified": None, "seed": None, "flag": ""}
    try:
        resolved = resolve_for_init(VGG_WEIGHTS, loading)
    except MissingWeightsError as exc:
        raise MetricUnavailable(f"content/style losses need the VGG encoder: {exc}", missing=exc.missing) from exc
    if resolved is None:
        encoder.reset_random(torch.Generator().manual_seed(seed))
        provenance.update(seed=seed, flag=f"RANDOM ENCODER (seed {seed}; content/style losses are meaningless)")
    else:
        load_into(encoder.layers, resolved.path, source=str(resolved.path))
        provenance.update(pretrained=True, path=str(resolved.path), sha256=resolved.sha256,
                          source=resolved.source, verified=resolved.verified)
    encoder.eval().requires_grad_(False)
    return encoder.to(loading.device), provenance


def _encoder_place(encoder: Encoder) -> tuple[torch.device, torch.dtype]:
    """Where the encoder computes: its parameters' device and floating dtype (a callable: the CPU, float32)."""
    if isinstance(encoder, nn.Module):
        for tensor in (*encoder.parameters(), *encoder.buffers()):
            return tensor.device, tensor.dtype if tensor.is_floating_point() else torch.float32
    return torch.device("cpu"), torch.float32


def _check_positions(x: Tensor, tap: str, name: str) -> None:
    """The unbiased std of a map with a single position is undefined (NaN): reject it with the size rule."""
    if x.shape[-2] * x.shape[-1] < 2:
        raise InputError(
            f"{name}: the {tap} feature map is {x.shape[-2]}×{x.shape[-1]}; its statistics need at least 2 positions "
            f"(with the VGG encoder an image side must be at least {TAP_DOWNSAMPLING.get(tap, 1) + 1} px)"
        )


def _encode(encoder: Encoder, images: Tensor, taps: Iterable[str], name: str) -> dict[str, Tensor]:
    taps = tuple(t for t in TAP_NAMES if t in set(taps))
    check_image_batch(images, name)
    if isinstance(encoder, VGGEncoder) and taps:
        # the 3×3 convs reflection-pad by 1, so every map up to the deepest tap needs ≥ 2 rows and columns
        deepest = taps[-1]
        minimum = TAP_DOWNSAMPLING[deepest] + 1
        if min(images.shape[-2:]) < minimum:
            raise InputError(
                f"{name} image {images.shape[-2]}×{images.shape[-1]} is too small for VGG tap {deepest}: "
                f"both sides must be at least {minimum} px"
            )
    images = images.to(*_encoder_place(encoder))  # float32 unless the metric was cast (metric.to(torch.float64))
    return dict(encoder(images, taps))


# ----------------------------------------------------------------------------------------------------------------------
# Functional definitions
# ----------------------------------------------------------------------------------------------------------------------
def _per_sample_mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean of squared differences over every dim but the first → (B,)."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


def _reduce(terms: list[Tensor], reduction: str) -> Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean' over layers, got {reduction!r}")
    total = torch.stack(terms, dim=0).sum(dim=0)
    return total / len(terms) if reduction == "mean" else total


def _features(x: Tensor | Features, encoder: Encoder | None, layers: tuple[str, ...], name: str) -> Features:
    if isinstance(x, Tensor):
        if encoder is None:
            raise ValueError(f"{name}: images need an encoder (pass encoder=..., e.g. from load_vgg())")
        return _encode(encoder, x, layers, name)
    missing = [t for t in layers if t not in x]
    if missing:
        raise InputError(f"{name}: feature dict lacks tap(s) {missing} (has {sorted(x)})")
    for tap in layers:
        if x[tap].dim() != 4:
            raise InputError(f"{name}: feature {tap} must have shape (B, C, h, w), got {tuple(x[tap].shape)}")
    return x


def content_loss(
    output: Tensor | Features,
    content: Tensor | Features,
    encoder: Encoder | None = None,
    *,
    layers: Iterable[str] = CONTENT_LAYERS,
    normalize: bool = True,
    reduction: str = "sum",
) -> Tensor:
    """Per-image content loss (B,): Σ (or mean) over ``layers`` of MSE(mvn(φ(output)), mvn(φ(content))).

    ``output`` / ``content``: images (B, 3, H, W) in [0, 1] (then ``encoder`` is required) or feature dicts
    {tap: (B, C, h, w)}. ``normalize=False`` compares raw features (MicroAST's variant).
    """
    layers = tuple(layers)
    out_f = _features(output, encoder, layers, "output")
    con_f = _features(content, encoder, layers, "content")
    terms = []
    for tap in layers:
        a, b = out_f[tap], con_f[tap]
        if a.shape != b.shape:
            raise InputError(f"content loss at {tap}: output {tuple(a.shape)} and content {tuple(b.shape)} differ")
        if normalize:
            _check_positions(a, tap, "output")
            a, b = mean_variance_norm(a), mean_variance_norm(b)
        terms.append(_per_sample_mse(a, b))
    return _reduce(terms, reduction)


def style_statistics(features: Features, layers: Iterable[str] = STYLE_LAYERS) -> dict[str, tuple[Tensor, Tensor]]:
    """{tap: (mean, std)} of raw features, each (B, C, 1, 1) — all the style loss needs of a style image (small
    enough to cache per image over a whole run)."""
    out = {}
    for tap in layers:
        _check_positions(features[tap], tap, "style")
        out[tap] = calc_mean_std(features[tap])
    return out


def style_loss_from_statistics(
    output: Features, style_stats: Mapping[str, tuple[Tensor, Tensor]], *, layers: Iterable[str] = STYLE_LAYERS,
    reduction: str = "sum",
) -> Tensor:
    """:func:`style_loss` with the style side given as :func:`style_statistics` (batch 1 or the output batch)."""
    terms = []
    for tap in layers:
        a = output[tap]
        b_mean, b_std = style_stats[tap]
        if a.shape[1] != b_mean.shape[1] or b_mean.shape[0] not in (1, a.shape[0]):
            raise InputError(
                f"style loss at {tap}: output {tuple(a.shape)} and style statistics {tuple(b_mean.shape)} need equal "
                "channels and a style batch of 1 or the output batch"
            )
        _check_positions(a, tap, "output")
        a_mean, a_std = calc_mean_std(a)
        terms.append(_per_sample_mse(a_mean, b_mean.expand_as(a_mean)) + _per_sample_mse(a_std, b_std.expand_as(a_std)))
    return _reduce(terms, reduction)


def style_loss(
    output: Tensor | Features,
    style: Tensor | Features,
    encoder: Encoder | None = None,
    *,
    layers: Iterable[str] = STYLE_LAYERS,
    reduction: str = "sum",
) -> Tensor:
    """Per-image style loss (B,): Σ (or mean) over ``layers`` of MSE(mean) + MSE(std) of raw φ(output) vs φ(style).

    Images (B, 3, H, W) / (B or 1, 3, H', W') in [0, 1] with ``encoder``, or feature dicts; a single style is
    compared with every output. The MSE of a layer is the mean over its C channels (per image).
    """
    layers = tuple(layers)
    out_f = _features(output, encoder, layers, "output")
    sty_f = _features(style, encoder, layers, "style")
    return style_loss_from_statistics(out_f, style_statistics(sty_f, layers), layers=layers, reduction=reduction)


# ----------------------------------------------------------------------------------------------------------------------
# Shared encoding
# ----------------------------------------------------------------------------------------------------------------------
class FeatureCache:
    """Encodes each image once for every metric sharing it.

    Metrics :meth:`register` the taps they need per role ("output", "content", "style"); :meth:`features` encodes an
    image at the union of its role's taps and keeps the result until a *different* image comes for that role. Reuse is
    decided by value (``torch.equal`` with a private copy of the image), never by identity, so a buffer rewritten in
    place is re-encoded. At most one image per role is kept; :meth:`clear` frees it.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.taps: dict[str, set[str]] = {}
        self._entries: dict[str, tuple[Tensor, frozenset[str], dict[str, Tensor]]] = {}
        self.encodings = 0
        """How many encoder passes ran (for tests and diagnostics)."""

    @property
    def device(self) -> torch.device:
        return _encoder_place(self.encoder)[0]

    def register(self, role: str, taps: Iterable[str]) -> None:
        self.taps.setdefault(role, set()).update(taps)

    def features(self, role: str, image: Tensor, taps: Iterable[str]) -> dict[str, Tensor]:
        taps = frozenset(taps)
        image = image.to(*_encoder_place(self.encoder))
        entry = self._entries.get(role)
        if entry is not None:
            kept, kept_taps, feats = entry
            if taps <= kept_taps and kept.shape == image.shape and torch.equal(kept, image):
                return feats
        wanted = frozenset(self.taps.get(role, set()) | taps)
        feats = _encode(self.encoder, image, wanted, role)
        self.encodings += 1
        self._entries[role] = (image.clone(), wanted, feats)
        return feats

    def clear(self) -> None:
        self._entries.clear()


class _FeatureMetric(Metric):
    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        variant: str = "stytr2",
        content_layers: Iterable[str] | None = None,
        style_layers: Iterable[str] | None = None,
        content_normalize: bool | None = None,
        reduction: str | None = None,
        cache: FeatureCache | None = None,
        encoder_provenance: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if cache is None:
            if encoder is None:
                raise ValueError(f"{type(self).__name__} needs an encoder (see load_vgg) or a shared FeatureCache")
            cache = FeatureCache(encoder)
        elif encoder is not None and encoder is not cache.encoder:
            raise ValueError("encoder and cache.encoder differ: share ONE encoder between the metrics")
        self.cache = cache
        if isinstance(cache.encoder, nn.Module):
            self.encoder = cache.encoder  # a sub-module: ``metric.to(device)`` moves it
        self.settings = ContentStyleConfig.from_variant(
            variant,
            content_layers=tuple(content_layers) if content_layers is not None else None,
            style_layers=tuple(style_layers) if style_layers is not None else None,
            content_normalize=content_normalize,
            reduction=reduction,
        )
        self.encoder_provenance = dict(encoder_provenance or {})
        self._register()

    def _register(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        super().reset()
        self.cache.clear()

    def config(self) -> dict:
        out = {**super().config(), **self.settings.to_dict()}
        if self.encoder_provenance:
            out["encoder"] = dict(self.encoder_provenance)
        return out


class ContentLoss(_FeatureMetric):
    """Content loss (lower is better), per image. See :func:`content_loss` and the module docstring."""

    name = "content_loss"
    higher_is_better = False

    def _register(self) -> None:
        self.cache.register("output", self.settings.content_layers)
        self.cache.register("content", self.settings.content_layers)

    def values(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        layers = self.settings.content_layers
        return content_loss(
            self.cache.features("output", output, layers), self.cache.features("content", content, layers),
            layers=layers, normalize=self.settings.content_normalize, reduction=self.settings.reduction,
        )


class StyleLoss(_FeatureMetric):
    """Style loss (lower is better), per image. See :func:`style_loss` and the module docstring."""

    name = "style_loss"
    higher_is_better = False

    def _register(self) -> None:
        self.cache.register("output", self.settings.style_layers)
        self.cache.register("style", self.settings.style_layers)

    def values(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        layers = self.settings.style_layers
        return style_loss(
            self.cache.features("output", output, layers), self.cache.features("style", style, layers),
            layers=layers, reduction=self.settings.reduction,
        )


class ContentStyleLoss:
    """Both losses on one encoder with one VGG pass per image: ``update`` returns ``{"content_loss": (B,),
    "style_loss": (B,)}``; ``compute`` returns a :class:`~metrics.base.Summary` per name.

    The two :class:`~metrics.base.Metric` objects are in :attr:`metrics` (also :attr:`content`, :attr:`style`) for
    runners that treat metrics uniformly: updating them one after the other with the same tensors also encodes each
    image once (they share :attr:`cache`).
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        variant: str = "stytr2",
        content_layers: Iterable[str] | None = None,
        style_layers: Iterable[str] | None = None,
        content_normalize: bool | None = None,
        reduction: str | None = None,
        encoder_provenance: Mapping[str, Any] | None = None,
    ) -> None:
        self.cache = FeatureCache(encoder)
        common = dict(variant=variant, content_layers=content_layers, style_layers=style_layers,
                      content_normalize=content_normalize, reduction=reduction, cache=self.cache,
                      encoder_provenance=encoder_provenance)
        self.content = ContentLoss(**common)
        self.style = StyleLoss(**common)
        self.metrics: tuple[ContentLoss, StyleLoss] = (self.content, self.style)

    @classmethod
    def from_weights(cls, loading: Loading | None = None, **settings: Any) -> ContentStyleLoss:
        """Load the encoder with :func:`load_vgg` and build the metric; its provenance goes into :meth:`config`."""
        encoder, provenance = load_vgg(loading)
        return cls(encoder, encoder_provenance=provenance, **settings)

    @property
    def settings(self) -> ContentStyleConfig:
        return self.content.settings

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    @torch.inference_mode()
    def update(self, output: Tensor, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        check_triplet(output, content, style)
        try:
            return {m.name: m.update(output, content, style) for m in self.metrics}
        finally:
            self.cache.clear()

    def compute(self) -> dict[str, Summary]:
        return {m.name: m.compute() for m in self.metrics}

    def reset(self) -> None:
        for m in self.metrics:
            m.reset()

    def config(self) -> dict[str, Any]:
        return {m.name: m.config() for m in self.metrics}
