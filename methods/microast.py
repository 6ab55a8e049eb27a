"""MicroAST (Wang et al., AAAI 2023) as the official code (EndyWon/MicroAST, ``net_microAST.py``) computes it.

No VGG at inference. Two light encoders of the same layout (``content_encoder``, ``style_encoder``) each give two
64-channel maps at 1/4 resolution, ``[x1, x2]`` (after ``enc1`` and after ``enc2``); the ``modulator`` turns the style's
two maps into per-channel filter weights and biases ``w_k, b_k`` (B, 64, 1, 1) (a depth-wise 3×3 conv, then a global
average); the ``decoder`` applies, with α the content–style trade-off:

    y1 = α · AdaIN(c2, s2) + (1 − α) · c2
    y2 = dec1(y1; w2, b2)           (residual block whose two convs are modulated: u ← w ⊙ conv(u) + b ⊙ u)
    y3 = α · AdaIN(y2, s1) + (1 − α) · y2
    y4 = dec2(y3; w1, b1)
    out = dec3(y4)                  (two bilinear ×2 upsamples with depth-wise / point-wise convs, 9×9 conv to RGB)

Attribute names are the official ones, so the four released ``*_iter_160000.pth.tar`` files load strictly into
``content_encoder``, ``style_encoder``, ``modulator`` and ``decoder``.

Any size: the encoders' two stride-2 convs give ⌈⌈H/2⌉/2⌉ rows; after each of the decoder's bilinear upsamples the
bottom/right excess is cropped back to the encoder's size at that level (⌈H/2⌉, then H). On sides divisible by 4
nothing is cropped and the result is the official one; the official code returns a larger image otherwise.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .net import StyleTransferNet, run_with_crops
from .ops import adain

CHANNELS = 64
"""Width of the encoders' and decoder's feature maps (``slim_factor`` 1 in the official code)."""


class ConvLayer(nn.Module):
    """Reflection padding ``k // 2`` then a (possibly grouped) conv; official attribute ``conv_layer``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv_layer = nn.Conv2d(c_in, c_out, kernel_size, stride, groups=groups)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_layer(self.pad(x))


class ResidualLayer(nn.Module):
    """``x + conv2(relu(conv1(x)))``; with a filter modulation ``(w, b)`` each conv output u of input v becomes
    ``w ⊙ u + b ⊙ v`` (official ``filterMod=True``): ``x + w ⊙ conv2(h) + b ⊙ h``, ``h = relu(w ⊙ conv1(x) + b ⊙ x)``."""

    def __init__(self, channels: int = CHANNELS, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size)
        self.conv2 = ConvLayer(channels, channels, kernel_size)

    def forward(self, x: Tensor, weight: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        if weight is None:
            return x + self.conv2(torch.relu(self.conv1(x)))
        hidden = torch.relu(weight * self.conv1(x) + bias * x)
        return x + weight * self.conv2(hidden) + bias * hidden


class Encoder(nn.Module):
    """image (B, 3, H, W) in [0, 1] → ``[x1, x2]``, each (B, 64, ⌈⌈H/2⌉/2⌉, ⌈⌈W/2⌉/2⌉) (official ``Encoder``)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(
            ConvLayer(3, 16, 9), nn.ReLU(),
            ConvLayer(16, 32, 3, stride=2, groups=16), nn.ReLU(),
            ConvLayer(32, 32, 1), nn.ReLU(),
            ConvLayer(32, 64, 3, stride=2, groups=32), nn.ReLU(),
            ConvLayer(64, 64, 1), nn.ReLU(),
            ResidualLayer(64),
        )  # fmt: skip
        self.enc2 = nn.Sequential(ResidualLayer(64))

    def forward(self, x: Tensor) -> list[Tensor]:
        x1 = self.enc1(x)
        return [x1, self.enc2(x1)]


class Modulator(nn.Module):
    """Style maps ``[s1, s2]`` → filter weights ``[w1, w2]`` and biases ``[b1, b2]``, each (B, 64, 1, 1): a depth-wise
    3×3 conv then a global average (official ``Modulator``; ``weight1``/``bias1`` read s1, ``weight2``/``bias2`` s2)."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("weight1", "bias1", "weight2", "bias2"):
            setattr(self, name, nn.Sequential(ConvLayer(64, 64, 3, groups=64), nn.AdaptiveAvgPool2d(1)))

    def forward(self, style: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        return ([self.weight1(style[0]), self.weight2(style[1])], [self.bias1(style[0]), self.bias2(style[1])])


class Decoder(nn.Module):
    """Official ``Decoder``: ``dec1``/``dec2`` modulated residual blocks, ``dec3`` the upsampling path to RGB."""

    def __init__(self) -> None:
        super().__init__()
        self.dec1 = ResidualLayer(64)
        self.dec2 = ResidualLayer(64)
        self.dec3 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear"),
            ConvLayer(64, 32, 3, groups=32), nn.ReLU(),
            ConvLayer(32, 32, 1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear"),
            ConvLayer(32, 16, 3, groups=16), nn.ReLU(),
            ConvLayer(16, 16, 1), nn.ReLU(),
            ConvLayer(16, 3, 9),
        )  # fmt: skip

    def modulate(self, content: Sequence[Tensor], style: dict[str, Tensor], alpha: float) -> Tensor:
        """Everything up to ``dec3``: content maps ``[c1, c2]``, the prepared style → y4 (B, 64, h, w)."""
        y = adain(content[1], style["s2"])
        if alpha != 1.0:
            y = alpha * y + (1.0 - alpha) * content[1]
        y = self.dec1(y, style["w2"], style["b2"])
        z = adain(y, style["s1"])
        if alpha != 1.0:
            z = alpha * z + (1.0 - alpha) * y
        return self.dec2(z, style["w1"], style["b1"])


class MicroASTNet(StyleTransferNet):
    """MicroAST. ``encode_for(image, "content")`` → ``{"c1", "c2"}``; ``encode_for(image, "style")`` → the style's maps and
    its modulation signals ``{"s1", "s2", "w1", "w2", "b1", "b2"}`` (computed once per style, reused over contents);
    the decoder input is ``{"y4": (B, 64, h, w)}``. α is applied where the official code applies it (after each
    AdaIN), so the generic decoder-input blend does not apply (:attr:`alpha_in_transfer`)."""

    uses_vgg = False
    alpha_in_transfer = True
    min_content_side = 5  # the 9×9 conv's reflection padding of 4 needs a side > 4
    min_style_side = 5

    def __init__(self) -> None:
        super().__init__()
        self.content_encoder = Encoder()
        self.style_encoder = Encoder()
        self.modulator = Modulator()
        self.decoder = Decoder()

    def encode(self, image: Tensor) -> dict[str, Tensor]:
        return self.encode_for(image, "content")

    def encode_for(self, image: Tensor, role: str) -> dict[str, Tensor]:
        if role == "content":
            c1, c2 = self.content_encoder(image)
            return {"c1": c1, "c2": c2}
        s1, s2 = self.style_encoder(image)
        (w1, w2), (b1, b2) = self.modulator([s1, s2])
        return {"s1": s1, "s2": s2, "w1": w1, "w2": w2, "b1": b1, "b2": b2}

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor], alpha: float = 1.0) -> dict[str, Tensor]:
        return {"y4": self.decoder.modulate([content["c1"], content["c2"]], style, alpha)}

    def decode(self, features: dict[str, Tensor], size: Sequence[int]) -> Tensor:
        half = [-(-s // 2) for s in size]
        return run_with_crops(self.decoder.dec3, features["y4"], [half, list(size)])

    def reset_random(self, generator: torch.Generator) -> None:
        """PyTorch's default Conv2d initialisation (what the official training starts from), drawn from ``generator``."""
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                    bound = 1.0 / fan_in**0.5
                    m.weight.uniform_(-bound, bound, generator=generator)
                    m.bias.uniform_(-bound, bound, generator=generator)


def build_microast() -> MicroASTNet:
    return MicroASTNet()


from ._registry import register_method  # noqa: E402
from .weights import WeightFile  # noqa: E402

MICROAST_COMMIT = "5a6c9050d8c408191cb9db12c697f3e4c7ebe137"
_OFFICIAL = f"https://raw.githubusercontent.com/EndyWon/MicroAST/{MICROAST_COMMIT}/models/"
MICROAST_WEIGHTS = {
    "content_encoder": WeightFile(
        "content_encoder_iter_160000.pth.tar", _OFFICIAL + "content_encoder_iter_160000.pth.tar",
        sha256="c8d895c0eec52507c157e102fab217c37f0c399ef3e168ef8b0b2677714660a4",
        git_blob_sha1="409f987cebb6210c5cfc8a520f80d8ad1f085b06",
        description="MicroAST content encoder (official, 157,792 parameters)",
    ),
    "style_encoder": WeightFile(
        "style_encoder_iter_160000.pth.tar", _OFFICIAL + "style_encoder_iter_160000.pth.tar",
        sha256="94f6b3fa386828692c20809a0af8bd0eba9c04e90a7d8842086976e4d223c5af",
        git_blob_sha1="964b86878f0b37b087643ac354afa63d601b6006",
        description="MicroAST style encoder (official, 157,792 parameters)",
    ),
    "modulator": WeightFile(
        "modulator_iter_160000.pth.tar", _OFFICIAL + "modulator_iter_160000.pth.tar",
        sha256="8588055baf7d5ad8398d595d5518c6f030e3ff8dbb6007a7c1779776e11da28b",
        git_blob_sha1="064bf781ed7df646626a98640ddd627acb17bca3",
        description="MicroAST modulator (official, 2,560 parameters)",
    ),
    "decoder": WeightFile(
        "decoder_iter_160000.pth.tar", _OFFICIAL + "decoder_iter_160000.pth.tar",
        sha256="32e04a46b953fd9f94ec9e20f351511305a5260e000c18f9aef6570d5f1e23d9",
        git_blob_sha1="133bf0d00c7775246ffa920a603dc4417b9d58dd",
        description="MicroAST decoder (official, 153,843 parameters)",
    ),
}
register_method(
    "MicroAST",
    weights=MICROAST_WEIGHTS,
    encoder_weights=None,
    paper="Wang, Zhao, Xing, Lu, Wang. MicroAST: Towards Super-Fast Ultra-Resolution Arbitrary Style Transfer. "
          "AAAI 2023",
    code_url=f"https://github.com/EndyWon/MicroAST (commit {MICROAST_COMMIT[:7]})",
    summary="micro encoders + AdaIN with style-modulated residual filters (no VGG at inference)",
    encoder_layers=(),
    default_size=512,
    licence="official code and weights: MIT",
    trainable=False,
)(build_microast)
