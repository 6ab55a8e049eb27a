"""CFSD, the content feature structural distance of StyleID (Chung et al., CVPR 2024; ``evaluation/image_metrics.py``,
``PatchSimi``), between each stylised output and its content image. Lower is better.

With F ∈ R^{HW×C} the relu3_1 feature (torchvision's ImageNet VGG-19, ``features[11]``, ImageNet-normalised input)
divided by C, S = row-softmax(F Fᵀ) is a patch-similarity distribution per position, and

    CFSD = KL(S_content ‖ S_output) = Σ_i Σ_j S_c[i, j] · (log S_c[i, j] − log S_o[i, j])

summed over all HW rows (``F.kl_div(..., reduction="batchmean")`` on the flattened matrix divides by the batch size
only), per image. The reference materialises the (HW)² matrices — 1 GiB each at 512², 16 GiB at 1024² in float32; here
rows are processed in chunks of ``chunk_rows`` (the same sums, in bounded memory). The similarity logits are computed
in the features' dtype and the softmax and KL in float64: in float32 (the reference) the log-softmax's rounding alone
shifts the sum by ~1 % at relu3_1 magnitudes (and swamps it for near-uniform rows), which float64 removes at ~1.3× the
cost; in float64 the two agree to 1e-9 (tested). Images are used at their own size
(StyleID's script: ``ToTensor()``, batch 1), output and content of the same size.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.errors import InputError
from methods.weights import Loading

from .base import Metric, check_triplet
from .imagenet_vgg import load_imagenet_vgg, vgg_taps

__all__ = ["CFSD", "CFSD_LAYER", "cfsd", "cfsd_from_features"]

CFSD_LAYER = 11
"""``torchvision.models.vgg19().features[11]``: relu3_1 (StyleID's ``{"11": "conv3"}``)."""

_DEFAULT_CHUNK_BYTES = 64 * 2**20


def _structure(features: Tensor) -> Tensor:
    """(B, C, h, w) → F / C as (B, hw, C) (positions in any fixed order: the sum is invariant to it)."""
    b, c, h, w = features.shape
    return features.flatten(2).transpose(1, 2).div(c)


def cfsd_from_features(output_features: Tensor, content_features: Tensor, chunk_rows: int | None = None) -> Tensor:
    """Per-image CFSD (B,) from relu3_1 features (B, C, h, w) of the outputs and of their contents.

    ``chunk_rows``: rows of the (hw)² similarity matrices per step (default: as many as fit 64 MiB per matrix)."""
    if output_features.shape != content_features.shape:
        raise InputError(f"output features {tuple(output_features.shape)} and content features "
                         f"{tuple(content_features.shape)} must have the same shape")
    out, con = _structure(output_features), _structure(content_features)
    b, n, _ = out.shape
    step = chunk_rows or max(1, _DEFAULT_CHUNK_BYTES // (n * 8))
    total = torch.zeros(b, dtype=torch.float64, device=out.device)
    for start in range(0, n, step):
        rows = slice(start, start + step)
        log_c = F.log_softmax(torch.bmm(con[:, rows], con.transpose(1, 2)).double(), dim=-1)
        log_o = F.log_softmax(torch.bmm(out[:, rows], out.transpose(1, 2)).double(), dim=-1)
        total += (log_c.exp() * (log_c - log_o)).sum(dim=(1, 2))
    return total


def cfsd(output: Tensor, content: Tensor, vgg: nn.Sequential, chunk_rows: int | None = None) -> Tensor:
    """Per-image CFSD (B,) of outputs and their contents (B, 3, H, W) in [0, 1]; ``vgg`` is torchvision's VGG-19
    ``features`` (:func:`~metrics.imagenet_vgg.load_imagenet_vgg`)."""
    check_triplet(output, content)
    if min(output.shape[-2:]) < 4:
        raise InputError(f"CFSD needs images with sides of at least 4 px (relu3_1 is at 1/4), got "
                         f"{tuple(output.shape[-2:])}")
    dtype = next(vgg.parameters()).dtype
    device = next(vgg.parameters()).device
    features = vgg_taps(vgg, torch.cat([output, content]).to(device, dtype), [CFSD_LAYER])[CFSD_LAYER]
    return cfsd_from_features(*features.split(output.shape[0]), chunk_rows=chunk_rows)


class CFSD(Metric):
    """CFSD between each output and its content image, per image (see the module docstring)."""

    name = "cfsd"
    higher_is_better = False

    def __init__(self, loading: Loading | None = None, *, vgg: nn.Sequential | None = None,
                 chunk_rows: int | None = None) -> None:
        super().__init__()
        if vgg is None:
            vgg, self.provenance = load_imagenet_vgg("vgg19", loading, purpose="CFSD")
        else:
            self.provenance = {"arch": "vgg19", "provided": True}
        self.vgg = vgg
        self.chunk_rows = chunk_rows

    def values(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        return cfsd(output, content, self.vgg, self.chunk_rows)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "reference": "StyleID evaluation/image_metrics.py PatchSimi",
                "layer": "vgg19 features[11] (relu3_1)", "compared_with": "content", "weights": self.provenance}
