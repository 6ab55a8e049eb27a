"""LPIPS (Zhang et al. 2018, ``lpips`` package, version 0.1) between each stylised output and its CONTENT image.

StyA2K's Table 1 reports LPIPS "following StyTr²" without naming the network; the LPIPS default, AlexNet, is the
default here (``net="vgg"`` for VGG-16). Images in [0, 1] are mapped to [-1, 1] (what LPIPS expects).

Where the weights come from:

* the backbone is torchvision's ImageNet network (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``), found or
  downloaded by the project's resolver (:mod:`methods.weights`: ``weights_dir`` / ``$HARNESS_WEIGHTS`` / cache /
  download unless offline; the 8 hex digits in torchvision's file names are a sha256 prefix and are verified). The
  LPIPS network is built with a random backbone (``pnet_rand=True``, so torchvision downloads nothing) and the file's
  ``features.N.*`` tensors are then loaded into LPIPS' slices, strictly (every backbone tensor, nothing left over;
  the ``classifier.*`` tensors are not part of LPIPS and are ignored);
* the calibrated linear heads ship inside the ``lpips`` package (``lpips/weights/v0.1/<net>.pth``) and are loaded by
  LPIPS itself; they are checked against the file after construction.

Offline without the backbone file the metric is *unavailable*: construction raises :class:`MetricUnavailable` naming
the file, its URL and where to put it. A random backbone is used only with ``init="random"``, and is then flagged.
"""
from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from methods.errors import InputError
from methods.net import check_image_batch
from methods.weights import (
    Loading,
    MissingWeightsError,
    check_state_dict,
    StateDictMismatchError,
    WeightFile,
    WeightsError,
    load_state_dict,
    resolve_for_init,
    sha256_file,
)

from .base import Metric, MetricUnavailable, check_triplet

__all__ = [
    "LPIPS",
    "LPIPS_BACKBONES",
    "LPIPS_MIN_SIDE",
    "MetricUnavailable",
    "load_lpips",
    "load_torchvision_backbone",
    "lpips_distance",
    "lpips_features",
    "lpips_from_features",
]

LPIPS_VERSION = "0.1"

LPIPS_BACKBONES: dict[str, WeightFile] = {
    "alex": WeightFile(
        "alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        sha256="7be5be79",
        description="torchvision AlexNet ImageNet weights (AlexNet_Weights.IMAGENET1K_V1), LPIPS backbone",
    ),
    "vgg": WeightFile(
        "vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        sha256="397923af",
        description="torchvision VGG-16 ImageNet weights (VGG16_Weights.IMAGENET1K_V1), LPIPS backbone",
    ),
}
"""LPIPS network → torchvision backbone file (sha256 prefix = the 8 hex digits of torchvision's file name)."""

LPIPS_MIN_SIDE: dict[str, int] = {"alex": 31, "vgg": 16}
"""Smallest image side each backbone accepts (AlexNet: stride-4 conv + two 3×3/2 max-pools; VGG-16: 4 max-pools)."""

_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}
_SLICE_KEY = re.compile(r"^slice\d+\.(\d+)\.(.+)$")


def _net_name(net: str) -> str:
    key = _ALIASES.get(str(net).lower())
    if key is None:
        raise ValueError(f"unknown LPIPS network {net!r}; choose 'alex' (default) or 'vgg'")
    return key


def _heads_path(net: str) -> Path:
    import lpips

    return Path(lpips.__file__).resolve().parent / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"


def _lpips_package_version() -> str | None:
    try:
        return metadata.version("lpips")
    except metadata.PackageNotFoundError:
        return None


def load_torchvision_backbone(lpips_net: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Load a torchvision AlexNet/VGG-16 state dict (``features.N.*``, ``classifier.*``) into LPIPS' feature net.

    LPIPS splits ``features`` into ``sliceK`` sub-sequentials that keep torchvision's indices (``slice2.3.weight`` is
    ``features.3.weight``). Strict: every LPIPS backbone tensor must be in the file with the same shape, and every
    ``features.*`` tensor of the file must be used; ``classifier.*`` is ignored. Raises
    :class:`~methods.weights.StateDictMismatchError` naming the file and the offending keys.
    """
    to_file_key = {}
    for key in lpips_net.state_dict():
        match = _SLICE_KEY.match(key)
        if match is None:
            raise StateDictMismatchError(f"LPIPS backbone key {key!r} is not of the form sliceK.N.<param>")
        to_file_key[key] = f"features.{match.group(1)}.{match.group(2)}"
    expected = {to_file_key[k]: v for k, v in lpips_net.state_dict().items()}
    check_state_dict(expected, {k: v for k, v in state.items() if k.startswith("features.")}, source)
    mapped = {key: state[file_key] for key, file_key in to_file_key.items()}
    lpips_net.load_state_dict(mapped, strict=True)


def _build_lpips(net: str, seed: int) -> nn.Module:
    """``lpips.LPIPS`` v0.1 with a random backbone (no torchvision download) and the package's linear heads.

    Built under a forked RNG seeded with ``seed``, so construction neither depends on nor disturbs the global RNG.
    """
    import lpips

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        # lpips 0.1.4 calls torchvision's deprecated ``pretrained=`` argument.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models\._utils")
        return lpips.LPIPS(pretrained=True, net=net, version=LPIPS_VERSION, pnet_rand=True, verbose=False)


def _check_heads(model: nn.Module, path: Path) -> None:
    """The linear heads LPIPS loaded (``strict=False`` inside lpips) must equal the shipped file."""
    heads = load_state_dict(path)
    state = model.state_dict()
    wrong = [k for k, v in heads.items() if k not in state or not torch.equal(state[k].cpu(), v.to(state[k].dtype))]
    lins = [k for k in state if re.match(r"^lin\d+\.", k)]
    if wrong or sorted(lins) != sorted(heads):
        raise WeightsError(f"LPIPS linear heads were not loaded from {path} (keys {wrong[:5] or lins[:5]})")


def load_lpips(net: str = "alex", loading: Loading | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """An ``lpips.LPIPS`` v0.1 model (eval, frozen, on ``device``) and its provenance.

    The backbone file is resolved through ``loading`` like every weight (``weights`` folder, ``weights_dir`` / ``$HARNESS_WEIGHTS``, cache,
    download unless ``download=False`` or ``$HARNESS_OFFLINE``). Missing → :class:`MetricUnavailable`, unless
    ``init="random"``: then a local file is still used (a download only with ``download=True``), else the backbone is
    seeded-random and flagged ``pretrained: False`` (values meaningless). A file that does not fit raises
    :class:`~methods.weights.StateDictMismatchError`.
    """
    net = _net_name(net)
    loading = loading or Loading()
    seed = loading.seed
    if loading.init not in (None, "pretrained", "random"):
        raise ValueError(f"init must be None, 'pretrained' or 'random'; got {loading.init!r}")
    spec = LPIPS_BACKBONES[net]
    heads = _heads_path(net)
    if not heads.is_file():
        raise MetricUnavailable(
            f"LPIPS ({net}) needs its linear heads {heads}, which the installed lpips package lacks; "
            "reinstall it (pip install --force-reinstall lpips==0.1.4)"
        )
    try:
        resolved = resolve_for_init(spec, loading)
    except MissingWeightsError as exc:
        raise MetricUnavailable(
            f"LPIPS ({net}) needs torchvision's backbone {spec.filename} ({spec.description}): {exc} "
            f"A copy from torchvision's own cache (~/.cache/torch/hub/checkpoints/{spec.filename}) can be "
            "placed there as is.",
            missing=exc.missing,
        ) from exc

    model = _build_lpips(net, seed)
    backbone: dict[str, Any] = {"file": spec.filename, "url": spec.url, "path": None, "sha256": None,
                                "source": None, "verified": None}
    if resolved is not None:
        load_torchvision_backbone(model.net, load_state_dict(resolved.path), str(resolved.path))
        backbone.update(path=str(resolved.path), sha256=resolved.sha256, source=resolved.source,
                        verified=resolved.verified)
    _check_heads(model, heads)
    model.eval().requires_grad_(False)
    pretrained = resolved is not None
    provenance = {
        "net": net,
        "version": LPIPS_VERSION,
        "lpips_package": _lpips_package_version(),
        "pretrained": pretrained,
        "backbone": backbone,
        "heads": {"path": str(heads), "sha256": sha256_file(heads)},
        "seed": None if pretrained else seed,
        "flag": "" if pretrained else f"RANDOM LPIPS BACKBONE (seed {seed}; LPIPS values are meaningless)",
    }
    return model.to(loading.device), provenance


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _check_lpips_inputs(images: Tensor, model: nn.Module) -> None:
    net = _ALIASES.get(str(getattr(model, "pnet_type", "alex")).lower(), "alex")
    minimum = LPIPS_MIN_SIDE[net]
    if min(images.shape[-2:]) < minimum:
        raise InputError(
            f"LPIPS ({net}) needs images with sides of at least {minimum} px, got {tuple(images.shape[-2:])}"
        )


def _splits(model: nn.Module) -> bool:
    """Whether ``model`` computes the plain v0.1 LPIPS (learned heads, spatial mean), the form whose two sides
    :func:`lpips_features` / :func:`lpips_from_features` compute apart; other configurations run whole."""
    return (getattr(model, "version", None) == LPIPS_VERSION and bool(getattr(model, "lpips", False))
            and not getattr(model, "spatial", True) and hasattr(model, "lins"))


def lpips_features(images: Tensor, model: nn.Module) -> list[Tensor]:
    """One side of LPIPS: the unit-normalised backbone features of ``images`` (B, 3, H, W) in [0, 1], one tensor
    (B, C_l, H_l, W_l) per backbone layer — what ``lpips.LPIPS.forward`` computes for each input before comparing.

    Kept per content image by :class:`~metrics.collection.MetricCollection`, so a run encodes each content once.
    """
    check_image_batch(images, "image")
    _check_lpips_inputs(images, model)
    return _side(images, model)


def _side(images: Tensor, model: nn.Module) -> list[Tensor]:
    import lpips

    scaled = model.scaling_layer(images.to(_model_device(model), torch.float32) * 2 - 1)
    return [lpips.normalize_tensor(f) for f in model.net(scaled)]


def lpips_from_features(output_features: Sequence[Tensor], content_features: Sequence[Tensor],
                        model: nn.Module) -> Tensor:
    """Per-image LPIPS (B,) from both sides' :func:`lpips_features`: per layer, the learned 1×1 head on the squared
    difference, averaged over space; summed over layers in the order ``lpips.LPIPS.forward`` sums them."""
    value = 0
    for head, out, con in zip(model.lins, output_features, content_features, strict=True):
        value = value + head((out - con) ** 2).mean([2, 3], keepdim=True)
    return value.reshape(-1)


def lpips_distance(output: Tensor, content: Tensor, model: nn.Module) -> Tensor:
    """Per-image LPIPS (B,) between ``output`` and ``content`` (B, 3, H, W) in [0, 1], mapped to [-1, 1] here.

    ``model`` is an ``lpips.LPIPS`` (e.g. from :func:`load_lpips`). Sides must be at least
    :data:`LPIPS_MIN_SIDE` of its network. The plain v0.1 model is computed as its two sides
    (:func:`lpips_features`) and their comparison (:func:`lpips_from_features`): the same operations as
    ``model(2 * output - 1, 2 * content - 1)``, bit for bit.
    """
    check_triplet(output, content)
    _check_lpips_inputs(output, model)
    if _splits(model):
        return lpips_from_features(_side(output, model), _side(content, model), model)
    device = _model_device(model)
    out = output.to(device, torch.float32) * 2 - 1
    con = content.to(device, torch.float32) * 2 - 1
    return model(out, con).reshape(-1)


class LPIPS(Metric):
    """LPIPS between each output and its content image (lower = closer to the content), per image.

    Build from the resolver (``LPIPS("alex", loading=Loading(weights_dir=..., device=...))``; may raise
    :class:`MetricUnavailable`) or wrap a ready ``lpips.LPIPS`` (``LPIPS(model=...)``).
    """

    name = "lpips"
    higher_is_better = False

    def __init__(
        self,
        net: str = "alex",
        *,
        model: nn.Module | None = None,
        loading: Loading | None = None,
    ) -> None:
        super().__init__()
        if model is None:
            model, provenance = load_lpips(net, loading)
        else:
            net = _ALIASES.get(str(getattr(model, "pnet_type", net)).lower(), net)
            provenance = {"net": net, "version": getattr(model, "version", None), "provided": True}
        self.model = model
        self.net = _net_name(net)
        self.provenance = provenance

    @property
    def splits(self) -> bool:
        """Whether the content side can be computed apart and kept (the plain v0.1 model; see :func:`lpips_features`)."""
        return _splits(self.model)

    @property
    def pretrained(self) -> bool:
        return bool(self.provenance.get("pretrained", True))

    def values(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        return lpips_distance(output, content, self.model)

    def config(self) -> dict:
        return {
            **super().config(),
            "net": self.net,
            "version": LPIPS_VERSION,
            "compared_with": "content",
            "input_range": "[-1, 1] (mapped from [0, 1])",
            "weights": dict(self.provenance),
        }
