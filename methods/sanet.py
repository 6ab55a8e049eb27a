"""SANet (Park & Lee, CVPR 2019, "Arbitrary Style Transfer with Style-Attentional Networks"), as the widely used
PyTorch port GlebSBrykin/SANET (``Eval.py``; no official code was released) computes it.

Encoder: VGG-19 normalised up to relu5_1. Two style-attention modules, at relu4_1 and relu5_1 (512 channels)::

    F = f(mvn(Fc)), G = g(mvn(Fs)), H = h(Fs)          (1×1 convs)
    SA(Fc, Fs) = out_conv(softmax_j(F_iᵀ G_j) · H) + Fc   (one head, no 1/√d, over every style position)

``T = merge_conv(reflect_pad(SA4 + up2(SA5)))`` (the port's ``Transform``: ``sanet4_1``, ``sanet5_1``,
``merge_conv``), decoded by the AdaIN decoder layout (one ``nn.Sequential``, keys 1 … 28), so the port's
``transformer_iter_500000.pth`` and ``decoder_iter_500000.pth`` load strictly.

Any size: the relu5_1 upsample and the decoder's upsamples are cropped back to the encoder's grid (a no-op on sides
that are multiples of 16, the only sizes the port runs at). The attention runs through the memory-lean kernel (no
HW × HW matrix is built). The port's ``--steps`` (re-stylising the output again) is not offered: its default, one
step, is the method.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .adain import adain_decoder
from .net import StyleTransferNet, run_with_crops
from .ops import attention, mean_variance_norm
from .stya2k import Transform, init_normal
from .vgg import feature_size


class SANetAttention(nn.Module):
    """One style-attention module with the port's parameter names ``f``, ``g``, ``h``, ``out_conv`` (1×1, C→C)."""

    def __init__(self, channels: int = 512, backend: str = "sdpa") -> None:
        super().__init__()
        self.f, self.g, self.h, self.out_conv = (nn.Conv2d(channels, channels, kernel_size=1) for _ in range(4))
        self.backend = backend

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        """content (B, C, Hc, Wc), style (B, C, Hs, Ws) raw features → (B, C, Hc, Wc)."""
        b, c, hc, wc = content.shape
        q = self.f(mean_variance_norm(content)).flatten(2).transpose(1, 2)  # (B, Lc, C)
        k = self.g(mean_variance_norm(style)).flatten(2).transpose(1, 2)  # (B, Ls, C)
        v = self.h(style).flatten(2).transpose(1, 2)  # (B, Ls, C)
        out = attention(q, k, v, backend=self.backend).transpose(1, 2).reshape(b, c, hc, wc)
        return self.out_conv(out) + content


class SANetNet(StyleTransferNet):
    """SANet; attributes ``transform`` (the port's ``transformer_iter_500000.pth``) and ``decoder``
    (``decoder_iter_500000.pth``)."""

    taps = ("relu4_1", "relu5_1")
    min_content_side = 17  # relu5_1 ≥ 2 px (reflection padding, unbiased variance)
    min_style_side = 17

    def __init__(self, attention_backend: str = "sdpa") -> None:
        super().__init__()
        self.transform = Transform(SANetAttention(512, attention_backend), SANetAttention(512, attention_backend),
                                   names=("sanet4_1", "sanet5_1"))
        self.decoder = adain_decoder()

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"relu4_1": self.transform(content["relu4_1"], style["relu4_1"], content["relu5_1"], style["relu5_1"])}

    def decode(self, features: dict[str, Tensor], size: Sequence[int]) -> Tensor:
        sizes = [[feature_size(s, tap) for s in size] for tap in ("relu3_1", "relu2_1", "relu1_1")]
        return run_with_crops(self.decoder, features["relu4_1"], sizes)

    def reset_random(self, generator: torch.Generator) -> None:
        """Normal(0, 0.02) convs, zero biases (seeded; the port's training notebook uses PyTorch's defaults — an
        untrained network is for smoke and timing runs only, so the choice does not matter for results)."""
        init_normal(self.transform, generator)
        init_normal(self.decoder, generator)


def build_sanet(*, attention_backend: str = "sdpa") -> SANetNet:
    return SANetNet(attention_backend)


from ._registry import register_method  # noqa: E402
from .vgg import VGG_WEIGHTS  # noqa: E402
from .weights import WeightFile  # noqa: E402

SANET_COMMIT = "2dfec142cf9bb4c7915a28284097fd4ea9dca251"
SANET_WEIGHTS = {
    "transform": WeightFile(
        "transformer_iter_500000.pth", page="https://yadi.sk/d/GhQe3g_iRzLKMQ",
        description="SANet transform (GlebSBrykin/SANET port, README: Yandex Disk; no published checksum)",
    ),
    "decoder": WeightFile(
        "decoder_iter_500000.pth", page="https://yadi.sk/d/xsZ7j6FhK1dmfQ",
        description="SANet decoder (GlebSBrykin/SANET port, README: Yandex Disk; no published checksum)",
    ),
}
register_method(
    "SANet",
    weights=SANET_WEIGHTS,
    encoder_weights=VGG_WEIGHTS,
    paper="Park & Lee. Arbitrary Style Transfer with Style-Attentional Networks. CVPR 2019",
    code_url=f"https://github.com/GlebSBrykin/SANET (PyTorch port, commit {SANET_COMMIT[:7]}; no official code)",
    summary="style-attention (softmax(f(N(Fc))ᵀ g(N(Fs))) h(Fs) + Fc) at relu4_1 and relu5_1, AdaIN's decoder",
    encoder_layers=("relu4_1", "relu5_1"),
    default_size=512,
    licence="port's code: MIT; weights: no licence stated; VGG-19: CC BY 4.0",
    trainable=False,
)(build_sanet)
