"""The network of every method (:class:`StyleTransferNet`) and the decoder helpers the networks share.

A network splits the forward pass into ``encode`` (frozen VGG), ``transfer`` (the method's own feature transform,
returning the *decoder inputs* keyed by the VGG tap whose resolution they have) and ``decode``. That split is what
makes the content–style trade-off α, style interpolation and masked multi-style transfer generic:

* α:       ``D ← Fc + α (D − Fc)`` for every decoder input D (``Fc`` the content feature at that tap);
* interpolation: ``D = Σ_k w_k D_k`` with Σ w_k = 1 (for StyA2K this equals blending the per-layer A2K outputs,
  because everything between them and the decoder inputs is affine — spec §12);
* regions: ``D = Σ_k M_k ⊙ D_k`` with the masks resized (nearest) to each decoder input.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensor

from .bands import banded_or_whole
from .errors import InputError
from .vgg import VGGEncoder, feature_size


def crop_to(x: Tensor, size: Sequence[int]) -> Tensor:
    """Crop the bottom/right excess of ``x`` (B, C, H, W) to ``size`` (h, w) ≤ (H, W).

    Used after every ×2 nearest upsample so that the decoder path retraces the encoder's ceil-mode pooling grid (pool
    cell i covers rows 2i and 2i+1): identical to the official code when sides are multiples of the downsampling.
    """
    return x[..., : size[0], : size[1]]


def run_with_crops(layers: nn.Sequential, x: Tensor, sizes: Sequence[Sequence[int]]) -> Tensor:
    """Run ``layers`` on x, cropping the output of the k-th ``nn.Upsample`` to ``sizes[k]``; in row bands at inference
    where the output is large (:func:`methods.bands.banded_or_whole`)."""
    return banded_or_whole(layers, x, sizes)


def _without_data(x: Tensor) -> bool:
    """Whether ``x`` carries shapes only (a fake tensor of a memory trace, or a meta tensor)."""
    return isinstance(x, FakeTensor) or x.device.type == "meta"


def check_image_batch(x: Tensor, name: str) -> None:
    """Validate an image batch: float tensor (B, 3, H, W) with values in [0, 1] (a small tolerance is allowed; the
    range is not checked on tensors without data — fake or meta tensors, as in a memory trace)."""
    if not isinstance(x, Tensor):
        raise InputError(f"{name}: expected a torch.Tensor of shape (B, 3, H, W), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise InputError(f"{name}: expected shape (B, 3, H, W) with RGB channels, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{name}: expected a float tensor with values in [0, 1], got dtype {x.dtype}")
    if x.numel() and not _without_data(x) and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
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
    uses_vgg: bool = True
    """False for a network with encoders of its own (MicroAST): no VGG is built, ``encoder`` is None."""
    alpha_in_transfer: bool = False
    """True where the method applies α itself (``transfer(..., alpha=α)``) instead of the generic decoder-input blend."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = VGGEncoder() if self.uses_vgg else None

    # -- the three stages ------------------------------------------------------------------------------------------
    def encode(self, image: Tensor) -> dict[str, Tensor]:
        """VGG features at :attr:`taps`: image (B, 3, H, W) in [0, 1] → {tap: (B, C, h, w)}."""
        return self.encoder(image, self.taps)

    def encode_for(self, image: Tensor, role: str) -> dict[str, Tensor]:
        """Features of ``image`` as ``role`` ("content" or "style"): :meth:`encode` for both here; a method with
        separate content and style encoders (MicroAST) overrides this."""
        return self.encode(image)

    def style_state(self, style: dict[str, Tensor]) -> dict[str, Tensor]:
        """Style-only work of :meth:`transfer` done once per style (a style reused across contents): the style's
        features → extra tensors ``{"<module>/<name>": (S, ...)}`` that :meth:`transfer` uses instead of recomputing
        them when they are in its ``style`` dict, with the same result (:meth:`methods.Method.prepare_style` adds
        them; the plain forward lets each module compute its own and drop it after use). None here; the attention
        networks return their modules' key/value projections (and StyA2K's DA step-1 aggregation)."""
        return {}

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor]) -> dict[str, Tensor]:
        """Decoder inputs keyed by the tap whose resolution (and channel count) they have (plus ``alpha=`` where
        :attr:`alpha_in_transfer`)."""
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
        """Style features; a single style is encoded once and its features broadcast over a content batch (batch
        stride 0: the attention modules then compute their style state once, see :func:`methods.ops.per_style`)."""
        features = self.encode_for(style, "style")
        if style.shape[0] != batch:
            features = {k: v.expand(batch, *v.shape[1:]) for k, v in features.items()}
        return features

    def encode_pair(self, content: Tensor, style: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        self.check_inputs(content, style)
        return self.encode_for(content, "content"), self.encode_style(style, content.shape[0])

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        # The encoder features are dropped once transferred: the decoder's full-resolution layers, where the peak
        # memory of a large input is, then run without them alive.
        features = self.transfer(*self.encode_pair(content, style))
        return self.decode(features, content.shape[-2:])

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """Every parameter and buffer except the frozen encoder's (what a harness checkpoint stores)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    @staticmethod
    def level_sizes(size: Sequence[int], taps: Sequence[str]) -> list[tuple[int, int]]:
        """Feature sizes at ``taps`` for an input of ``size`` (h, w), following the encoder's ceil-mode pooling."""
        return [(feature_size(size[0], t), feature_size(size[1], t)) for t in taps]
