"""torchvision's ImageNet VGG-19 / VGG-16 ``features`` as a metric network (CFSD, Gram loss), through the resolver.

The file is torchvision's own (``vgg19-dcbb9e9d.pth``, ``vgg16-397923af.pth``; the 8 hex digits of the name are a
sha256 prefix and are verified); its ``features.N.*`` tensors are loaded strictly, ``classifier.*`` is ignored.
Inputs in [0, 1] are normalised with the ImageNet mean/std, as torchvision's weights expect. With ``init="random"``
and no file, the network is seeded-random and flagged.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from methods.weights import Loading, MissingWeightsError, WeightFile, check_state_dict, load_state_dict, resolve_for_init

from .base import MetricUnavailable
from .perceptual import LPIPS_BACKBONES

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGENET_VGG", "imagenet_normalize", "load_imagenet_vgg", "vgg_taps"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGENET_VGG: dict[str, WeightFile] = {
    "vgg19": WeightFile("vgg19-dcbb9e9d.pth", url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                        sha256="dcbb9e9d", description="torchvision VGG-19 ImageNet weights (VGG19_Weights.IMAGENET1K_V1)"),
    "vgg16": LPIPS_BACKBONES["vgg"],  # the same torchvision file LPIPS (vgg) uses
}
"""Architecture → torchvision weight file."""


def imagenet_normalize(images: Tensor) -> Tensor:
    """(B, 3, H, W) in [0, 1] → ImageNet-normalised, as ``torchvision.transforms.functional.normalize`` computes."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def vgg_taps(features: nn.Sequential, images: Tensor, indices: Iterable[int]) -> dict[int, Tensor]:
    """The outputs of ``features[i]`` for each ``i`` in ``indices`` on normalised ``images``; runs only as deep as the
    deepest index (the references run the whole network, which changes no earlier output)."""
    wanted = sorted(set(indices))
    x, taps = imagenet_normalize(images), {}
    for i, layer in enumerate(features[: wanted[-1] + 1]):
        x = layer(x)
        if i in wanted:
            taps[i] = x.clone() if isinstance(layer, nn.ReLU) and layer.inplace else x
    return taps


def load_imagenet_vgg(arch: str = "vgg19", loading: Loading | None = None, *, purpose: str = "a metric"
                      ) -> tuple[nn.Sequential, dict[str, Any]]:
    """torchvision's ``vggXX().features`` with the ImageNet weights (eval, frozen, on ``loading.device``) and its
    provenance. Missing weights → :class:`MetricUnavailable` naming the file (seeded-random and flagged under
    ``init="random"``); a file that does not fit → :class:`~methods.weights.StateDictMismatchError`."""
    from torchvision import models

    if arch not in IMAGENET_VGG:
        raise ValueError(f"unknown VGG {arch!r}; choose one of {', '.join(IMAGENET_VGG)}")
    loading = loading or Loading()
    spec = IMAGENET_VGG[arch]
    try:
        resolved = resolve_for_init(spec, loading)
    except MissingWeightsError as exc:
        raise MetricUnavailable(f"{purpose} needs {spec.filename} ({spec.description}): {exc} A copy from "
                                f"torchvision's cache (~/.cache/torch/hub/checkpoints/{spec.filename}) can be placed "
                                "there as is.", missing=exc.missing) from exc
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(loading.seed)
        features = getattr(models, arch)(weights=None).features
    provenance: dict[str, Any] = {"arch": arch, "file": spec.filename, "url": spec.url, "pretrained": resolved is not None}
    if resolved is not None:
        state = load_state_dict(resolved.path)
        wanted = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        check_state_dict(features, wanted, str(resolved.path))
        features.load_state_dict(wanted, strict=True)
        provenance.update(path=str(resolved.path), sha256=resolved.sha256, verified=resolved.verified)
    else:
        provenance.update(seed=loading.seed, flag=f"RANDOM {arch.upper()} (seed {loading.seed}; values are meaningless)")
    return features.eval().requires_grad_(False).to(loading.device), provenance
