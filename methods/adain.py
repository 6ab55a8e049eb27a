"""AdaIN (Huang & Belongie, ICCV 2017), as the pytorch-AdaIN reference code computes it (spec §11).

Encoder: VGG-19 normalised up to relu4_1. Transfer: ``t = std(s) · (c − mean(c)) / std(c) + mean(s)`` on relu4_1.
Decoder: one ``nn.Sequential`` whose indices match the released ``decoder.pth`` (keys 1, 5, 8, 11, 14, 18, 21, 25, 28).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")

from .net import StyleTransferNet, run_with_crops
from .losses import style_statistics_loss, weighted_total
from .ops import adain
from .stya2k import _conv3, _up
from .vgg import feature_size


def adain_decoder() -> nn.Sequential:
    """The AdaIN decoder (3,505,219 parameters); reflection-padded 3×3 convs, nearest ×2 upsampling, no output activation."""
    return nn.Sequential(
        *_conv3(512, 256), nn.ReLU(), _up(),
        *_conv3(256, 256), nn.ReLU(),
        *_conv3(256, 256), nn.ReLU(),
        *_conv3(256, 256), nn.ReLU(),
        *_conv3(256, 128), nn.ReLU(), _up(),
        *_conv3(128, 128), nn.ReLU(),
        *_conv3(128, 64), nn.ReLU(), _up(),
        *_conv3(64, 64), nn.ReLU(),
        *_conv3(64, 3),
    )  # fmt: skip


class AdaINNet(StyleTransferNet):
    """AdaIN network; the decoder attribute ``decoder`` takes the official ``decoder.pth`` strictly."""

    taps = ("relu4_1",)
    min_content_side = 9  # relu4_1's conv input (after three ceil-mode pools) must be ≥ 2 px for reflection padding
    min_style_side = 9

    def __init__(self) -> None:
        super().__init__()
        self.decoder = adain_decoder()

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"relu4_1": adain(content["relu4_1"], style["relu4_1"])}

    def decode(self, features: dict[str, Tensor], size: Sequence[int]) -> Tensor:
        sizes = [[feature_size(s, tap) for s in size] for tap in ("relu3_1", "relu2_1", "relu1_1")]
        return run_with_crops(self.decoder, features["relu4_1"], sizes)

    def training_loss(self, content: Tensor, style: Tensor, weights: dict[str, float]) -> dict[str, Tensor]:
        """pytorch-AdaIN's loss (spec §11): ``content`` = MSE(φ4(g(t)), t) — the target is the AdaIN output t, not
        the content feature — and ``style`` = Σ_{relu1_1..4_1} MSE of means + MSE of stds of g(t) vs the style."""
        with torch.no_grad():
            fc, fs = self.encoder(content, ("relu4_1",)), self.encoder(style, STYLE_TAPS)
            t = adain(fc["relu4_1"], fs["relu4_1"])
        output = self.decode({"relu4_1": t}, content.shape[-2:])
        fo = self.encoder(output, STYLE_TAPS)
        terms = {"content": F.mse_loss(fo["relu4_1"], t), "style": style_statistics_loss(fo, fs, STYLE_TAPS)}
        return weighted_total(terms, weights)

    def reset_random(self, generator: torch.Generator) -> None:
        """PyTorch's default Conv2d initialisation (what the reference code trains from), drawn from ``generator``."""
        with torch.no_grad():
            for m in self.decoder.modules():
                if isinstance(m, nn.Conv2d):
                    bound = 1.0 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]) ** 0.5
                    m.weight.uniform_(-bound, bound, generator=generator)
                    m.bias.uniform_(-bound, bound, generator=generator)


def build_adain() -> AdaINNet:
    return AdaINNet()


from .recipes import ADAIN_RECIPE  # noqa: E402
from ._registry import register_method  # noqa: E402
from .vgg import VGG_WEIGHTS  # noqa: E402
from .weights import WeightFile  # noqa: E402

ADAIN_WEIGHTS = {
    "decoder": WeightFile(
        "decoder.pth",
        "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth",
        description="AdaIN decoder (pytorch-AdaIN release v0.0.0; no published checksum)",
    )
}
register_method(
    "adain",
    weights=ADAIN_WEIGHTS,
    encoder_weights=VGG_WEIGHTS,
    paper="Huang & Belongie. Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization. ICCV 2017",
    code_url="https://github.com/naoto0804/pytorch-AdaIN",
    summary="AdaIN on relu4_1 (mean/std matching), pytorch-AdaIN decoder",
    encoder_layers=("relu4_1",),
    default_size=512,
    licence="pytorch-AdaIN code and weights: MIT; VGG-19: CC BY 4.0",
    recipe=ADAIN_RECIPE,
)(build_adain)
