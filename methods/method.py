"""A ready-to-use method (:class:`Method`: a network, its metadata, options and weight provenance), a style encoded
once for many contents (:class:`PreparedStyle`) and a content encoded once for many styles (:class:`PreparedContent`)."""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._info import MethodInfo, Provenance
from .errors import InputError
from .net import StyleTransferNet


@dataclass(frozen=True)
class PreparedFeatures:
    """An image encoded once: ``features`` ``{name: (B, C, h, w)}``, the image's ``size`` (H, W), and the ``method``
    whose network encoded it (its features fit only that network)."""

    features: dict[str, Tensor]
    size: tuple[int, int]
    method: str

    @property
    def batch(self) -> int:
        return next(iter(self.features.values())).shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the feature tensors."""
        return sum(t.numel() * t.element_size() for t in self.features.values())


@dataclass(frozen=True)
class PreparedStyle(PreparedFeatures):
    """A style image encoded once (:meth:`Method.prepare_style`), to stylise many content images (video frames) with it.

    ``features``: the style's features (VGG's at the model's taps for most methods, with
    a method's own style-only signals where it has them) and the network's style state (the attention modules'
    style-side projections), ``{name: (S, ...)}`` with S = the style batch (1: broadcast over any content batch);
    ``size``: the style image's (H, W); ``method``: the name of the method that
    encoded it (a prepared style only fits that method's network).
    """


@dataclass(frozen=True)
class PreparedContent(PreparedFeatures):
    """A content image encoded once (:meth:`Method.prepare_content`), to stylise it with many styles (a run's grid):
    ``features`` = ``model.encode_for(content, "content")``; ``size``, the content image's (H, W), is the output's."""


class Method:
    """A ready-to-use method: ``model`` (a :class:`StyleTransferNet`), metadata, options and weight provenance.

    All public calls take RGB tensors in [0, 1]: content (B, 3, Hc, Wc), style(s) (B or 1, 3, Hs, Ws), and return
    clamped images (B, 3, Hc, Wc) in [0, 1]. They run under ``torch.inference_mode``.
    """

    def __init__(self, info: MethodInfo, model: StyleTransferNet, options: dict[str, Any], provenance: Provenance):
        self.info = info
        self.model = model
        self.options = options
        self.provenance = provenance
        self.memory_format = torch.contiguous_format
        """Layout of the images and convolution weights: ``torch.channels_last`` runs the convolutions in NHWC
        (7–9 % faster for StyA2K at 512² on a CPU here; values differ from the default's at float rounding, ~1e-6
        relative)."""

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def untrained(self) -> bool:
        """True when any part of the weights is random: outputs must then be flagged."""
        return bool(self.provenance.flag())

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        flag = self.provenance.flag()
        return f"Method({self.name!r}, options={self.options}{', ' + flag if flag else ''})"

    def to(self, device: str | torch.device | None = None, *,
           memory_format: torch.memory_format | None = None) -> Method:
        """Move the network to ``device`` and/or set the :attr:`memory_format` of its convolutions and inputs."""
        if device is not None:
            self.model.to(device)
        if memory_format is not None:
            if memory_format not in (torch.contiguous_format, torch.channels_last):
                raise ValueError(f"memory_format must be torch.contiguous_format or torch.channels_last, "
                                 f"got {memory_format}")
            self.model.to(memory_format=memory_format)
            self.memory_format = memory_format
        return self

    def _prepare(self, x: Tensor) -> Tensor:
        return x.to(self.device, torch.float32).contiguous(memory_format=self.memory_format)

    @torch.inference_mode()
    def prepare_style(self, style: Tensor) -> PreparedStyle:
        """Encode ``style`` (S, 3, Hs, Ws) in [0, 1] once, to stylise many content images with it (video frames, a
        run's grid): ``stylize(content, prepared)`` then skips the style's encoding and the network's style-only work
        (:meth:`StyleTransferNet.style_state`: the attention modules' key/value projections, StyA2K's DA step-1
        aggregation) and is bit-identical to ``stylize(content, style)``."""
        style = self._prepare(style)
        self.model.check_image(style, "style")
        features = self.model.encode_for(style, "style")
        features = {**features, **self.model.style_state(features)}
        return PreparedStyle(features, (int(style.shape[-2]), int(style.shape[-1])), self.name)

    @torch.inference_mode()
    def prepare_content(self, content: Tensor) -> PreparedContent:
        """Encode ``content`` (B, 3, Hc, Wc) in [0, 1] once, to stylise it with many styles: ``stylize(prepared,
        style)`` skips the content's encoding and is bit-identical to ``stylize(content, style)``."""
        content = self._prepare(content)
        self.model.check_image(content, "content")
        return PreparedContent(self.model.encode_for(content, "content"),
                               (int(content.shape[-2]), int(content.shape[-1])), self.name)

    def _style_features(self, style: Tensor | PreparedStyle, batch: int) -> dict[str, Tensor]:
        """The style's features broadcast over a content batch of ``batch`` (encoded here unless prepared)."""
        if not isinstance(style, PreparedStyle):
            style = self.prepare_style(style)
        if style.method != self.name:
            raise InputError(f"this style was prepared by {style.method!r}, not by {self.name!r}")
        if style.batch not in (1, batch):
            raise InputError(f"style batch {style.batch} must be 1 or equal to the content batch {batch}")
        features = {k: v.to(self.device) for k, v in style.features.items()}
        if style.batch != batch:
            features = {k: v.expand(batch, *v.shape[1:]) for k, v in features.items()}
        return features

    def _stylised_features(
        self, content: Tensor | PreparedContent, styles: Sequence[Tensor | PreparedStyle], alpha: float
    ) -> Iterator[dict[str, Tensor]]:
        """Decoder inputs for ``content`` with each style in turn (content encoded once), α-blended with Fc."""
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1] (1 = full style, 0 = content only), got {alpha}")
        if isinstance(content, PreparedContent):
            if content.method != self.name:
                raise InputError(f"this content was prepared by {content.method!r}, not by {self.name!r}")
            batch, content_features = content.batch, {k: v.to(self.device) for k, v in content.features.items()}
        else:
            content = self._prepare(content)
            self.model.check_image(content, "content")
            batch, content_features = content.shape[0], None
        for style in styles:
            style_features = self._style_features(style, batch)
            if content_features is None:
                content_features = self.model.encode_for(content, "content")
            if self.model.alpha_in_transfer:
                yield self.model.transfer(content_features, style_features, alpha=alpha)
                continue
            features = self.model.transfer(content_features, style_features)
            if alpha != 1.0:
                features = {k: content_features[k] + alpha * (v - content_features[k]) for k, v in features.items()}
            yield features

    @torch.inference_mode()
    def stylize(self, content: Tensor | PreparedContent, style: Tensor | PreparedStyle, alpha: float = 1.0) -> Tensor:
        """Stylise ``content`` with ``style`` (image batches, or :meth:`prepare_content` / :meth:`prepare_style`
        results); α ∈ [0, 1] trades style (1) for content (0)."""
        (features,) = self._stylised_features(content, [style], alpha)
        size = content.size if isinstance(content, PreparedContent) else content.shape[-2:]
        return self.model.decode(features, size).clamp_(0.0, 1.0)

    @torch.inference_mode()
    def interpolate(
        self, content: Tensor, styles: Sequence[Tensor], weights: Sequence[float], alpha: float = 1.0
    ) -> Tensor:
        """Style interpolation: K styles blended with ``weights`` (≥ 0, normalised to sum 1) in feature space."""
        if len(styles) == 0 or len(styles) != len(weights):
            raise InputError(f"need one weight per style, got {len(styles)} styles and {len(weights)} weights")
        if any(w < 0 for w in weights) or not math.isfinite(sum(weights)) or sum(weights) <= 0:
            raise InputError(f"interpolation weights must be non-negative with a positive sum, got {list(weights)}")
        total = float(sum(weights))
        blended: dict[str, Tensor] = {}
        for weight, features in zip(weights, self._stylised_features(content, styles, alpha)):
            for k, v in features.items():
                blended[k] = blended[k] + (weight / total) * v if k in blended else (weight / total) * v
        return self.model.decode(blended, content.shape[-2:]).clamp_(0.0, 1.0)

    @torch.inference_mode()
    def stylize_regions(
        self, content: Tensor, styles: Sequence[Tensor], masks: Tensor | Sequence[Tensor], alpha: float = 1.0
    ) -> Tensor:
        """Spatial multi-style transfer: ``masks`` (K, Hc, Wc) or K tensors (Hc, Wc) / (B, 1, Hc, Wc), soft or binary,
        normalised to sum 1 per pixel; style k is applied where mask k is on."""
        masks = torch.stack([m.reshape(-1, 1, *m.shape[-2:]) for m in masks], dim=0) if not isinstance(
            masks, Tensor
        ) else masks.reshape(masks.shape[0], -1, 1, *masks.shape[-2:])  # (K, B|1, 1, Hc, Wc)
        if masks.shape[0] != len(styles):
            raise InputError(f"need one mask per style, got {masks.shape[0]} masks and {len(styles)} styles")
        if tuple(masks.shape[-2:]) != tuple(content.shape[-2:]):
            raise InputError(f"masks must have the content's size {tuple(content.shape[-2:])}, got {tuple(masks.shape[-2:])}")
        masks = masks.to(self.device, torch.float32)
        masks = masks / masks.sum(dim=0, keepdim=True).clamp_min(1e-8)
        blended: dict[str, Tensor] = {}
        for k_style, features in enumerate(self._stylised_features(content, styles, alpha)):
            for k, v in features.items():
                m = F.interpolate(masks[k_style], size=v.shape[-2:], mode="nearest")
                blended[k] = blended[k] + m * v if k in blended else m * v
        return self.model.decode(blended, content.shape[-2:]).clamp_(0.0, 1.0)
