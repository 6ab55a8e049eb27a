"""The VGG-19 "normalised" encoder shared by StyA2K, AdaAttN, AdaIN and the metrics (spec §2).

The module list is the 53-module ``nn.Sequential`` of the original code bases, so ``vgg_normalised.pth`` (keys
``0.weight`` … ``51.bias``) loads strictly into :attr:`VGGEncoder.layers`. Images go in as RGB in [0, 1]; the leading
1×1 conv does the Caffe preprocessing (×255, RGB→BGR, minus the BGR means). The encoder is frozen, and a forward pass
runs only as deep as the deepest requested tap, in row bands where the image is large (:mod:`methods.bands`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from .bands import banded_or_whole
from .weights import WeightFile

VGG_WEIGHTS = WeightFile(
    "vgg_normalised.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
    description="VGG-19 normalised encoder (pytorch-AdaIN release v0.0.0; no published checksum)",
)
"""The encoder's official file: its 53-module state dict loads strictly into :attr:`VGGEncoder.layers`."""

TAPS: dict[str, int] = {"relu1_1": 4, "relu2_1": 11, "relu3_1": 18, "relu4_1": 31, "relu5_1": 44}
"""Tap name → end index (exclusive) of the slice of the 53-module list that produces it (spec §2.2)."""
TAP_NAMES: tuple[str, ...] = tuple(TAPS)
TAP_DOWNSAMPLING: dict[str, int] = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu5_1": 16}
TAP_CHANNELS: dict[str, int] = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}

VGG_R31_KEY_MAP: dict[str, str] = {"conv1": "0", "conv2": "2", "conv3": "5", "conv4": "9", "conv5": "12", "conv6": "16"}
"""Key prefixes of the partial encoder file ``vgg_r31.pth`` (up to relu3_1) → indices of the 53-module list."""


def vgg_normalised_layers() -> nn.Sequential:
    """The 53-module VGG-19 normalised layer list (3×3 convs after ReflectionPad2d(1); 2×2 ceil-mode max-pools)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, kernel_size=1)]
    blocks = [(3, 64, 2), (64, 128, 2), (128, 256, 4), (256, 512, 4), (512, 512, 4)]
    for i, (c_in, c_out, convs) in enumerate(blocks):
        for j in range(convs):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in if j == 0 else c_out, c_out, kernel_size=3), nn.ReLU()]
        if i < len(blocks) - 1:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True))
    return nn.Sequential(*layers)


def feature_size(size: int, tap: str) -> int:
    """Side of the ``tap`` feature map for an input side ``size`` (ceil-mode pooling rounds up at every pool)."""
    for _ in range(TAP_DOWNSAMPLING[tap].bit_length() - 1):
        size = -(-size // 2)
    return size


def map_vgg_r31_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename the keys of the partial encoder ``vgg_r31.pth`` (conv1…conv6) to the 53-module indices (0…16)."""
    out = {}
    for key, value in state.items():
        prefix, _, leaf = key.partition(".")
        if prefix not in VGG_R31_KEY_MAP:
            raise KeyError(f"unexpected key {key!r} in a vgg_r31 state dict (expected conv1..conv6)")
        out[f"{VGG_R31_KEY_MAP[prefix]}.{leaf}"] = value
    return out


class VGGEncoder(nn.Module):
    """Frozen VGG-19 normalised encoder. ``forward(x, taps)``: x (B, 3, H, W) in [0, 1] → {tap: (B, C, h, w)}.

    Feature sides follow :func:`feature_size` (e.g. 512 → relu3_1 128, relu4_1 64, relu5_1 32).
    """

    def __init__(self) -> None:
        super().__init__()
        self.layers = vgg_normalised_layers()
        self.requires_grad_(False)

    def forward(self, x: Tensor, taps: Iterable[str] = TAP_NAMES) -> dict[str, Tensor]:
        wanted = set(taps)
        unknown = wanted - set(TAPS)
        if unknown:
            raise ValueError(f"unknown VGG taps {sorted(unknown)}; known: {', '.join(TAP_NAMES)}")
        ends = {end: name for name, end in TAPS.items() if name in wanted}
        features, start = {}, 0
        for end in sorted(ends):  # layers between taps run as one stack: in row bands when the image is large
            x = banded_or_whole(self.layers[start:end], x)
            features[ends[end]] = x
            start = end
        return features

    @torch.no_grad()
    def reset_random(self, generator: torch.Generator) -> None:
        """Seeded untrained weights (Kaiming-normal convs, zero biases) for ``init="random"`` smoke and timing runs."""
        for module in self.layers:
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=generator)
                module.bias.zero_()
