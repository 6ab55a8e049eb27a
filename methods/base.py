"""What every method is: a network (:class:`StyleTransferNet`) wrapped in a :class:`Method` that knows its metadata,
where its weights came from, and how to stylise, interpolate styles and apply styles to regions.

A network splits the forward pass into ``encode`` (frozen VGG), ``transfer`` (the method's own feature transform,
returning the *decoder inputs* keyed by the VGG tap whose resolution they have) and ``decode``. That split is what
makes the content–style trade-off α, style interpolation and masked multi-style transfer generic:

* α:       ``D ← Fc + α (D − Fc)`` for every decoder input D (``Fc`` the content feature at that tap);
* interpolation: ``D = Σ_k w_k D_k`` with Σ w_k = 1 (for StyA2K this equals blending the per-layer A2K outputs,
  because everything between them and the decoder inputs is affine — spec §12);
* regions: ``D = Σ_k M_k ⊙ D_k`` with the masks resized (nearest) to each decoder input.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .vgg import VGGEncoder, feature_size

if TYPE_CHECKING:
    from .registry import MethodInfo


class InputError(ValueError):
    """Input tensors of the wrong shape, type, range or size; the message is one line saying what was expected."""


def crop_to(x: Tensor, size: Sequence[int]) -> Tensor:
    """Crop the bottom/right excess of ``x`` (B, C, H, W) to ``size`` (h, w) ≤ (H, W).

    Used after every ×2 nearest upsample so that the decoder path retraces the encoder's ceil-mode pooling grid (pool
    cell i covers rows 2i and 2i+1): identical to the official code when sides are multiples of the downsampling.
    """
    return x[..., : size[0], : size[1]]


def run_with_crops(layers: nn.Sequential, x: Tensor, sizes: Sequence[Sequence[int]]) -> Tensor:
    """Run ``layers`` on x, cropping the output of the k-th ``nn.Upsample`` to ``sizes[k]``."""
    sizes = iter(sizes)
    for layer in layers:
        x = layer(x)
        if isinstance(layer, nn.Upsample):
            x = crop_to(x, next(sizes))
    return x


def check_image_batch(x: Tensor, name: str) -> None:
    """Validate an image batch: float tensor (B, 3, H, W) with values in [0, 1] (a small tolerance is allowed)."""
    if not isinstance(x, Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise InputError(f"{name}: expected shape (B, 3, H, W) with RGB channels, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{name}: expected a float tensor with values in [0, 1], got dtype {x.dtype}")
    if x.numel() and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        raise InputError(
            f"{name}: expected values in [0, 1], got [{x.min().item():.3g}, {x.max().item():.3g}] "
            "(images are RGB in [0, 1], without ImageNet normalisation)"
        )


class StyleTransferNet(nn.Module):
    """Base of every network: ``forward(content, style)`` takes RGB in [0, 1], (B, 3, Hc, Wc) and (B or 1, 3, Hs, Ws),
    and returns the raw (unclamped) decoder output (B, 3, Hc, Wc). Content and style may differ in size and shape.

    Subclasses set :attr:`taps` (VGG taps used at inference) and implement :meth:`transfer`, :meth:`decode` and
    :meth:`reset_random`; the frozen encoder lives in :attr:`encoder` and is not part of the trainable state.
    """

    taps: tuple[str, ...] = ()
    min_content_side: int = 1
    min_style_side: int = 1

    def __init__(self) -> None:
        super().__init__()
        self.encoder = VGGEncoder()

    # -- the three stages ------------------------------------------------------------------------------------------
    def encode(self, image: Tensor) -> dict[str, Tensor]:
        """VGG features at :attr:`taps`: image (B, 3, H, W) in [0, 1] → {tap: (B, C, h, w)}."""
        return self.encoder(image, self.taps)

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor]) -> dict[str, Tensor]:
        """Decoder inputs keyed by the tap whose resolution (and channel count) they have."""
        raise NotImplementedError

    def decode(self, features: dict[str, Tensor], size: Sequence[int]) -> Tensor:
        """Decoder inputs → image (B, 3, *size), unclamped."""
        raise NotImplementedError

    def reset_random(self, generator: torch.Generator) -> None:
        """Seeded untrained weights for every trainable part (the method's official initialisation)."""
        raise NotImplementedError

    def training_loss(self, content: Tensor, style: Tensor, weights: dict[str, float]) -> dict[str, Tensor]:
        """The method's training loss on a batch: content (B, 3, h, w), style (B, 3, h', w') in [0, 1].

        Returns every *unweighted* term by name plus ``"loss"``, the weighted total ``Σ weights[name] · term``
        (``weights`` = the recipe's ``loss_weights``, possibly overridden). Targets are computed without gradient.
        """
        raise NotImplementedError(f"{type(self).__name__} is not trainable in the harness")

    # -- composition -----------------------------------------------------------------------------------------------
    def check_image(self, x: Tensor, role: str) -> None:
        """``x`` is an image batch in [0, 1] large enough to be this network's ``role`` ("content" or "style")."""
        check_image_batch(x, role)
        minimum = self.min_content_side if role == "content" else self.min_style_side
        if min(x.shape[-2:]) < minimum:
            raise InputError(
                f"{role} image {x.shape[-2]}×{x.shape[-1]} is too small for {type(self).__name__}: "
                f"each side must be at least {minimum} px"
            )

    def check_inputs(self, content: Tensor, style: Tensor) -> None:
        self.check_image(content, "content")
        self.check_image(style, "style")
        if style.shape[0] not in (1, content.shape[0]):
            raise InputError(f"style batch {style.shape[0]} must be 1 or equal to the content batch {content.shape[0]}")

    def encode_style(self, style: Tensor, batch: int) -> dict[str, Tensor]:
        """Style features; a single style is encoded once and its features broadcast over a content batch."""
        features = self.encode(style)
        if style.shape[0] != batch:
            features = {k: v.expand(batch, *v.shape[1:]) for k, v in features.items()}
        return features

    def encode_pair(self, content: Tensor, style: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        self.check_inputs(content, style)
        return self.encode(content), self.encode_style(style, content.shape[0])

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        content_features, style_features = self.encode_pair(content, style)
        return self.decode(self.transfer(content_features, style_features), content.shape[-2:])

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Every parameter and buffer except the frozen encoder's (what a harness checkpoint stores)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    @staticmethod
    def level_sizes(size: Sequence[int], taps: Sequence[str]) -> list[tuple[int, int]]:
        """Feature sizes at ``taps`` for an input of ``size`` (h, w), following the encoder's ceil-mode pooling."""
        return [(feature_size(size[0], t), feature_size(size[1], t)) for t in taps]


@dataclass
class Provenance:
    """Where a method's weights came from; every output row and table carries :meth:`flag`."""

    untrained: bool
    encoder_pretrained: bool
    seed: int | None = None
    checkpoint: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    trained_with_random_encoder: bool = False

    def flag(self) -> str:
        """"" for fully pretrained weights, else a short warning such as ``UNTRAINED (random init, seed 0)``."""
        parts = []
        if self.untrained:
            parts.append(f"UNTRAINED (random init, seed {self.seed})")
        if not self.encoder_pretrained:
            parts.append("RANDOM ENCODER")
        if self.trained_with_random_encoder:
            parts.append("TRAINED WITH A RANDOM ENCODER")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PreparedStyle:
    """A style image encoded once (:meth:`Method.prepare_style`), to stylise many content images (video frames) with it.

    ``features``: the VGG features of the style at the model's taps, ``{tap: (S, C, h, w)}`` with S = the style batch
    (1: broadcast over any content batch); ``size``: the style image's (H, W); ``method``: the name of the method that
    encoded it (a prepared style only fits that method's network).
    """

    features: dict[str, Tensor]
    size: tuple[int, int]
    method: str

    @property
    def batch(self) -> int:
        return next(iter(self.features.values())).shape[0]


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

    def to(self, device: str | torch.device) -> Method:
        self.model.to(device)
        return self

    def _prepare(self, x: Tensor) -> Tensor:
        return x.to(self.device, torch.float32)

    @torch.inference_mode()
    def prepare_style(self, style: Tensor) -> PreparedStyle:
        """Encode ``style`` (S, 3, Hs, Ws) in [0, 1] once, to stylise many content images with it (video frames):
        ``stylize(content, prepared)`` then skips the style's VGG pass and is bit-identical to
        ``stylize(content, style)``. What stays per call is what :meth:`StyleTransferNet.transfer` does with the
        features (e.g. the attention's key/value projections)."""
        style = self._prepare(style)
        self.model.check_image(style, "style")
        return PreparedStyle(self.model.encode(style), (int(style.shape[-2]), int(style.shape[-1])), self.name)

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
        self, content: Tensor, styles: Sequence[Tensor | PreparedStyle], alpha: float
    ) -> Iterator[dict[str, Tensor]]:
        """Decoder inputs for ``content`` with each style in turn (content encoded once), α-blended with Fc."""
        if not 0.0 <= alpha <= 1.0:
            raise InputError(f"alpha must be in [0, 1] (1 = full style, 0 = content only), got {alpha}")
        content = self._prepare(content)
        self.model.check_image(content, "content")
        content_features = None
        for style in styles:
            style_features = self._style_features(style, content.shape[0])
            if content_features is None:
                content_features = self.model.encode(content)
            features = self.model.transfer(content_features, style_features)
            if alpha != 1.0:
                features = {k: content_features[k] + alpha * (v - content_features[k]) for k, v in features.items()}
            yield features

    @torch.inference_mode()
    def stylize(self, content: Tensor, style: Tensor | PreparedStyle, alpha: float = 1.0) -> Tensor:
        """Stylise ``content`` with ``style`` (an image batch, or :meth:`prepare_style`'s result); α ∈ [0, 1] trades
        style (1) for content (0)."""
        (features,) = self._stylised_features(content, [style], alpha)
        return self.model.decode(features, content.shape[-2:]).clamp_(0.0, 1.0)

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
