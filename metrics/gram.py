"""Gram-matrix style loss (Gatys et al. 2016) between each stylised output and its style image. Lower is better.

    gram = Σ_l MSE(G_l(output), G_l(style)),   G_l = F_l F_lᵀ / norm,   F_l ∈ R^{C×HW}

on torchvision's ImageNet VGG (ImageNet-normalised input), MSE being the mean over the C² entries. The layer set and
the normalisation are named variants (:data:`GRAM_VARIANTS`):

* ``"gatys"`` (default): VGG-19 relu1_1, relu2_1, relu3_1, relu4_1, relu5_1; norm = C·H·W;
* ``"rt-games"``: VGG-16 relu1_2, relu2_2, relu3_3, relu4_3 (Johnson et al.'s perceptual-loss layers); norm = C·H·W.

Output and style may differ in size (Gram matrices are C×C).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from methods.errors import InputError
from methods.weights import Loading

from .base import Metric, check_triplet
from .imagenet_vgg import load_imagenet_vgg, vgg_taps

__all__ = ["GRAM_VARIANTS", "GramConfig", "GramLoss", "gram_loss", "gram_matrix"]

NORMALISATIONS = ("chw", "hw", "none")


@dataclass(frozen=True)
class GramConfig:
    """A Gram-loss definition: the VGG, its layers (indices into ``features`` and their names), the normalisation."""

    variant: str
    arch: str
    layers: tuple[int, ...]
    layer_names: tuple[str, ...]
    normalization: str = "chw"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALISATIONS:
            raise ValueError(f"Gram normalization must be one of {', '.join(NORMALISATIONS)}, got {self.normalization!r}")


GRAM_VARIANTS: dict[str, GramConfig] = {
    "gatys": GramConfig("gatys", "vgg19", (1, 6, 11, 20, 29), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "rt-games": GramConfig("rt-games", "vgg16", (3, 8, 15, 22), ("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
}


def gram_matrix(features: Tensor, normalization: str = "chw") -> Tensor:
    """(B, C, H, W) → (B, C, C) Gram matrices F Fᵀ, divided by C·H·W (``"chw"``), H·W (``"hw"``) or nothing."""
    b, c, h, w = features.shape
    flat = features.flatten(2)
    gram = torch.bmm(flat, flat.transpose(1, 2))
    divisor = {"chw": c * h * w, "hw": h * w, "none": 1}[normalization]
    return gram / divisor


def gram_loss(output: Tensor, style: Tensor, vgg: nn.Sequential, config: GramConfig = GRAM_VARIANTS["gatys"]
              ) -> Tensor:
    """Per-image Gram loss (B,) of outputs (B, 3, H, W) and styles (B or 1, 3, Hs, Ws) in [0, 1]."""
    check_triplet(output, None, style)
    smallest = min(*output.shape[-2:], *style.shape[-2:])
    needed = 2 ** sum(isinstance(layer, nn.MaxPool2d) for layer in vgg[: max(config.layers)])
    if smallest < needed:
        raise InputError(f"Gram loss ({config.variant}) needs sides of at least {needed} px, got {smallest}")
    parameter = next(vgg.parameters())
    out = vgg_taps(vgg, output.to(parameter.device, parameter.dtype), config.layers)
    sty = vgg_taps(vgg, style.to(parameter.device, parameter.dtype), config.layers)
    total = torch.zeros(output.shape[0], dtype=torch.float64, device=parameter.device)
    for layer in config.layers:
        difference = gram_matrix(out[layer], config.normalization) - gram_matrix(sty[layer], config.normalization)
        total += difference.square().mean(dim=(1, 2)).double()
    return total


class GramLoss(Metric):
    """Gram loss between each output and its style image (see the module docstring)."""

    name = "gram_loss"
    higher_is_better = False

    def __init__(self, variant: str = "gatys", loading: Loading | None = None, *, vgg: nn.Sequential | None = None,
                 normalization: str | None = None) -> None:
        super().__init__()
        if variant not in GRAM_VARIANTS:
            raise ValueError(f"unknown Gram-loss variant {variant!r}; choose one of {', '.join(GRAM_VARIANTS)}")
        config = GRAM_VARIANTS[variant]
        if normalization is not None:
            config = GramConfig(config.variant, config.arch, config.layers, config.layer_names, normalization)
        self.settings = config
        if vgg is None:
            vgg, self.provenance = load_imagenet_vgg(config.arch, loading, purpose=f"the Gram loss ({variant})")
        else:
            self.provenance = {"arch": config.arch, "provided": True}
        self.vgg = vgg

    def values(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        return gram_loss(output, style, self.vgg, self.settings)

    def config(self) -> dict[str, Any]:
        return {**super().config(), **asdict(self.settings), "compared_with": "style", "weights": self.provenance}
