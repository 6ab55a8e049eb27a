"""Slow, deliberately plain reference implementations of the baselines, written from the official code's semantics
(MicroAST: EndyWon/MicroAST ``net_microAST.py``), NOT from ``methods/``.

Each works on the official state dicts directly with ``torch.nn.functional`` (no ``nn.Module`` of the project), and
computes statistics with explicit loops over samples and channels (:func:`ref_mean_std`). Use small inputs.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.reference_impls import ref_mean_std

State = Mapping[str, Tensor]


def _conv(x: Tensor, state: State, prefix: str, stride: int = 1) -> Tensor:
    """Official ``ConvLayer``: reflection pad k//2, conv with the groups implied by the weight's input width."""
    weight, bias = state[f"{prefix}.conv_layer.weight"], state[f"{prefix}.conv_layer.bias"]
    k = weight.shape[-1]
    groups = x.shape[1] // weight.shape[1]
    return F.conv2d(F.pad(x, [k // 2] * 4, mode="reflect"), weight, bias, stride=stride, groups=groups)


def _residual(x: Tensor, state: State, prefix: str, w: Tensor | None = None, b: Tensor | None = None) -> Tensor:
    if w is None:
        return x + _conv(torch.relu(_conv(x, state, f"{prefix}.conv1")), state, f"{prefix}.conv2")
    x1 = _conv(x, state, f"{prefix}.conv1")
    x3 = torch.relu(w * x1 + b * x)
    x4 = _conv(x3, state, f"{prefix}.conv2")
    return x + (w * x4 + b * x3)


def _ref_adain(content: Tensor, style: Tensor) -> Tensor:
    c_mean, c_std = ref_mean_std(content)
    s_mean, s_std = ref_mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


def ref_microast_encoder(image: Tensor, state: State) -> list[Tensor]:
    x = torch.relu(_conv(image, state, "enc1.0"))
    x = torch.relu(_conv(x, state, "enc1.2", stride=2))
    x = torch.relu(_conv(x, state, "enc1.4"))
    x = torch.relu(_conv(x, state, "enc1.6", stride=2))
    x = torch.relu(_conv(x, state, "enc1.8"))
    x1 = _residual(x, state, "enc1.10")
    return [x1, _residual(x1, state, "enc2.0")]


def ref_microast(content: Tensor, style: Tensor, states: Mapping[str, State], alpha: float = 1.0,
                 crop: bool = False) -> Tensor:
    """The official ``TestNet.forward(content, style, alpha)``. ``crop``: crop after each ×2 upsample to the
    encoder's grid (the harness' rule for sides not divisible by 4; a no-op otherwise)."""
    ce, se, mod, dec = (states[k] for k in ("content_encoder", "style_encoder", "modulator", "decoder"))
    s = ref_microast_encoder(style, se)
    w = [_conv(s[0], mod, "weight1.0").mean(dim=(2, 3), keepdim=True),
         _conv(s[1], mod, "weight2.0").mean(dim=(2, 3), keepdim=True)]
    b = [_conv(s[0], mod, "bias1.0").mean(dim=(2, 3), keepdim=True),
         _conv(s[1], mod, "bias2.0").mean(dim=(2, 3), keepdim=True)]
    c = ref_microast_encoder(content, ce)
    x1 = alpha * _ref_adain(c[1], s[1]) + (1 - alpha) * c[1]
    x2 = _residual(x1, dec, "dec1", w[1], b[1])
    x3 = alpha * _ref_adain(x2, s[0]) + (1 - alpha) * x2
    x4 = _residual(x3, dec, "dec2", w[0], b[0])
    h, wd = content.shape[-2:]
    y = F.interpolate(x4, scale_factor=2, mode="bilinear", align_corners=False)
    if crop:
        y = y[..., : -(-h // 2), : -(-wd // 2)]
    y = torch.relu(_conv(y, dec, "dec3.1"))
    y = torch.relu(_conv(y, dec, "dec3.3"))
    y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
    if crop:
        y = y[..., :h, :wd]
    y = torch.relu(_conv(y, dec, "dec3.6"))
    y = torch.relu(_conv(y, dec, "dec3.8"))
    return _conv(y, dec, "dec3.10")
