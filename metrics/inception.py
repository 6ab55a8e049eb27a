"""The two Inception-v3 feature networks of the set-level metrics, 2048-d average-pool features, through the resolver.

* **FID** (:func:`load_fid_inception`): the TF-2015 FID Inception as torch-fidelity ships it (``FeatureExtractor
  InceptionV3``, via torchmetrics' ``NoTrainInceptionV3``; weights ``weights-inception-2015-12-05-6726825d.pth``).
  Input: 8-bit RGB of any size, resized to 299² inside — ``resize="tf1"`` (default: TF-1 bilinear, as the original
  FID code and torch-fidelity compute it) or ``"antialias"`` (torchmetrics' default since 1.x) — and mapped to [-1, 1].
* **ArtFID** (:func:`load_art_inception`): Wright & Ommer's art-trained Inception (``art_inception.pth`` on the
  Hugging Face hub; the ``art-fid`` package's ``Inception3``: torchvision's blocks with two classifier heads
  ``fc1``/``fc2`` and ``AuxLogits1``/``AuxLogits2``). Input: [0, 1] RGB, no resize, no normalisation
  (``ToTensor()`` only, exactly as the package feeds it).

Both load strictly: the ``art-fid`` package loads with ``strict=False`` (a file of other keys would silently leave the
network random); here a mismatch is an error naming the file and the first keys. Files are read with
``weights_only=True``; torch-fidelity's own loader (which unpickles fully) only ever sees the verified tensors.
"""
from __future__ import annotations

import io
from typing import Any

import torch
from torch import Tensor, nn

from methods.weights import Loading, MissingWeightsError, WeightFile, check_state_dict, load_state_dict, resolve_for_init

from .base import MetricUnavailable

__all__ = ["ART_INCEPTION", "FID_INCEPTION", "FID_RESIZES", "ArtInception", "fid_inception_layout",
           "load_art_inception", "load_fid_inception"]

FID_INCEPTION = WeightFile(
    "weights-inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    sha256="6726825d",
    description="the TF-2015 FID Inception-v3 converted by torch-fidelity (FID's feature network)",
)
ART_INCEPTION = WeightFile(
    "art_inception.pth",
    url="https://huggingface.co/matthias-wright/art_inception/resolve/main/art_inception.pth",
    description="Wright & Ommer's art-trained Inception-v3 (ArtFID's feature network, 108 MB)",
)
FID_RESIZES = ("tf1", "antialias")


def _seeded(seed: int, build):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def fid_inception_layout(seed: int = 0) -> dict[str, Tensor]:
    """A seeded-random state dict of the FID Inception's exact key layout (torchvision's Inception-v3 blocks, 1008
    classes, no auxiliary head): what a random-init run loads, and what offline tests save as a synthetic file."""
    from torchvision.models.inception import Inception3

    return _seeded(seed, lambda: Inception3(num_classes=1008, aux_logits=False, init_weights=True)).state_dict()


def _resolve(spec: WeightFile, loading: Loading, metric: str):
    try:
        return resolve_for_init(spec, loading)
    except MissingWeightsError as exc:
        raise MetricUnavailable(f"{metric} needs {spec.filename} ({spec.description}): {exc}",
                                missing=exc.missing) from exc


def _provenance(spec: WeightFile, resolved, loading: Loading) -> dict[str, Any]:
    if resolved is None:
        return {"file": spec.filename, "url": spec.url, "pretrained": False, "seed": loading.seed,
                "flag": f"RANDOM INCEPTION (seed {loading.seed}; values are meaningless)"}
    return {"file": spec.filename, "url": spec.url, "pretrained": True, "path": str(resolved.path),
            "sha256": resolved.sha256, "verified": resolved.verified}


class _FIDFeatures(nn.Module):
    """torch-fidelity's extractor taking [0, 1] images: rounded to 8 bits (exact for images read from 8-bit files)."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, images: Tensor) -> Tensor:
        return self.extractor((images.clamp(0, 1) * 255).round().to(torch.uint8))


def load_fid_inception(loading: Loading | None = None, resize: str = "tf1") -> tuple[nn.Module, dict[str, Any]]:
    """FID's feature network: ``module(images (B, 3, H, W) in [0, 1]) → (B, 2048)``, and its provenance."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    if resize not in FID_RESIZES:
        raise ValueError(f"FID resize must be one of {', '.join(FID_RESIZES)}, got {resize!r}")
    loading = loading or Loading()
    resolved = _resolve(FID_INCEPTION, loading, "FID")
    layout = fid_inception_layout(loading.seed)
    if resolved is None:
        state = layout
    else:
        state = load_state_dict(resolved.path)
        check_state_dict(layout, state, str(resolved.path))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    extractor = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                   feature_extractor_weights_path=buffer, antialias=resize == "antialias")
    provenance = {**_provenance(FID_INCEPTION, resolved, loading), "resize": resize}
    return _FIDFeatures(extractor).eval().to(loading.device), provenance


class ArtInception(nn.Module):
    """The ``art-fid`` package's Inception-v3 (same parameter names and shapes), computing only its features:
    ``forward(images (B, 3, H, W) in [0, 1], any size ≥ 75 px) → (B, 2048)``."""

    MIN_SIDE = 75
    """Smallest image side the network accepts (three stride-2 stages and valid 3×3 convolutions)."""

    def __init__(self, init_weights: bool = False) -> None:
        super().__init__()
        from torchvision.models.inception import Inception3, InceptionAux

        backbone = Inception3(num_classes=1000, aux_logits=False, init_weights=init_weights)
        self.blocks = [name for name, _ in backbone.named_children() if name not in ("AuxLogits", "fc", "dropout")]
        for name in self.blocks:
            setattr(self, name, getattr(backbone, name))
        self.AuxLogits1, self.AuxLogits2 = InceptionAux(768, 1000), InceptionAux(768, 1000)
        self.fc1, self.fc2 = nn.Linear(2048, 1000), nn.Linear(2048, 1000)

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for name in self.blocks:  # Conv2d_1a_3x3 … Mixed_7c, avgpool (torchvision's order, as the package's)
            x = getattr(self, name)(x)
        return torch.flatten(x, 1)


def load_art_inception(loading: Loading | None = None) -> tuple[ArtInception, dict[str, Any]]:
    """ArtFID's feature network (eval, on ``loading.device``) and its provenance; strict loading."""
    loading = loading or Loading()
    resolved = _resolve(ART_INCEPTION, loading, "ArtFID")
    network = _seeded(loading.seed, lambda: ArtInception(init_weights=resolved is None))
    if resolved is not None:
        state = load_state_dict(resolved.path)
        check_state_dict(network, state, str(resolved.path))
        network.load_state_dict(state, strict=True)
    return network.eval().requires_grad_(False).to(loading.device), _provenance(ART_INCEPTION, resolved, loading)
