"""Set-level metrics: FID and ArtFID of a method's whole output set, with a bootstrap interval over pairs.

**FID** (Heusel et al. 2017) between the stylised set and the style set, 2048-d pool features of the FID Inception
(:func:`~metrics.inception.load_fid_inception`). The Fréchet distance is torchmetrics' (``FrechetInceptionDistance``
fed the features through an identity extractor, float64 sums), so the value is exactly what that implementation
computes. The style set is one style image per output (``style_set="pairs"``, default: what FID∞ and StyleID's
evaluation folders require, and what the bootstrap resamples) or each style image once (``"unique"``).

**ArtFID** (Wright & Ommer 2022) as the ``art-fid`` package computes it::

    ArtFID = (1 + mean_pairs LPIPS_alex(content, output)) · (1 + FID_art(outputs, styles))

with the art-trained Inception (:func:`~metrics.inception.load_art_inception`). What that package does silently is
explicit here: it loads the Inception with ``strict=False`` (here strict), feeds ``ToTensor()`` images without resize
or normalisation (so all images of a batch must share one size; here images are fed one by one at their own size),
pairs content and output files by *sorted file name* (here by the run's pairs), and its default mode is ArtFID∞,
whose regression over subsets of 5,000…N images degenerates to plain FID when N < 5,000 (every "subset" is then the
whole set). Variants: ``"artfid"`` (the package) and ``"styleid"`` (StyleID's ``eval_artfid.py``: every image resized
so its shorter side is 512, torchvision ``Resize(512)`` on PIL, bilinear). ``infinity=True`` computes FID∞ exactly as
the package does (15 subset sizes from 5,000 to N, a line fitted over 1/n, its intercept; subsets drawn with a seeded
generator) and is refused below 5,000 images.

**Interval.** Pairs are resampled with replacement (``bootstrap`` times, seeded) and the metric recomputed on each
resample (both sets follow the resampled pairs); the 2.5 and 97.5 percentiles are reported. The resampled Fréchet
distances use the exact identity tr √(Σ₁Σ₂) = ‖A Bᵀ‖_* / √((n−1)(m−1)) (A, B the centred feature matrices), an n×m
problem instead of a 2048² one.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from methods.errors import InputError
from methods.weights import Loading

from .base import check_triplet
from .inception import ArtInception, load_art_inception, load_fid_inception

__all__ = ["ARTFID_VARIANTS", "ArtFID", "FID", "FID_INFINITY_MIN_IMAGES", "SetMetric", "SetSummary", "fid_infinity",
           "frechet_distance", "frechet_distance_fast"]

FID_INFINITY_MIN_IMAGES = 5000
ARTFID_VARIANTS = ("artfid", "styleid")
STYLE_SETS = ("pairs", "unique")


@dataclass(frozen=True)
class SetSummary:
    """A set-level value, the number of pairs it was computed on and its bootstrap 95 % interval."""

    value: float
    n: int
    ci_low: float
    ci_high: float
    bootstrap: int


class _Identity(nn.Module):
    """A "feature extractor" that returns its input: lets torchmetrics' FID accumulate precomputed features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (N, D) and (M, D), N, M ≥ 2, as torchmetrics'
    ``FrechetInceptionDistance`` computes it (float64 sums, unbiased covariances)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_features(features_a, features_b)
    fid = FrechetInceptionDistance(feature=_Identity(features_a.shape[1]), reset_real_features=True)
    fid.update(features_b.double(), real=True)
    fid.update(features_a.double(), real=False)
    return float(fid.compute())


def frechet_distance_fast(features_a: Tensor, features_b: Tensor) -> float:
    """The same distance through tr √(Σ_a Σ_b) = ‖A Bᵀ‖_* / √((n−1)(m−1)) (float64): exact, and cheap when the sets
    are smaller than the feature dimension (the bootstrap's case)."""
    _check_features(features_a, features_b)
    a, b = features_a.double(), features_b.double()
    n, m = a.shape[0], b.shape[0]
    mean_a, mean_b = a.mean(0), b.mean(0)
    centred_a, centred_b = a - mean_a, b - mean_b
    trace_sqrt = torch.linalg.svdvals(centred_a @ centred_b.T).sum() / math.sqrt((n - 1) * (m - 1))
    traces = centred_a.square().sum() / (n - 1) + centred_b.square().sum() / (m - 1)
    return float((mean_a - mean_b).square().sum() + traces - 2 * trace_sqrt)


def _check_features(a: Tensor, b: Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise InputError(f"feature sets must be (N, D) and (M, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise InputError(f"a Fréchet distance needs at least 2 images per set, got {a.shape[0]} and {b.shape[0]}")


def fid_infinity(features_a: Tensor, features_b: Tensor, points: int = 15, seed: int = 0) -> float:
    """FID∞ as the ``art-fid`` package computes it: FID of ``points`` random index subsets of sizes
    ``linspace(5000, N)``, a least-squares line over 1/size, its value at 0. Needs N ≥ 5,000 equal-sized sets."""
    n = features_a.shape[0]
    if n < FID_INFINITY_MIN_IMAGES:
        raise InputError(f"FID∞ needs at least {FID_INFINITY_MIN_IMAGES} images, the set has {n} (the art-fid "
                         "package would silently return plain FID here); use FID")
    if features_b.shape[0] != n:
        raise InputError(f"FID∞ needs as many style as stylised images, got {features_b.shape[0]} and {n}")
    sizes = np.linspace(FID_INFINITY_MIN_IMAGES, n, num=points).astype("int32")
    generator = np.random.default_rng(seed)
    order = np.arange(n)
    values = []
    for size in sizes:
        generator.shuffle(order)
        index = torch.as_tensor(order[:size].copy())
        values.append(frechet_distance(features_b[index], features_a[index]))
    slope, intercept = np.polyfit(1.0 / sizes, np.asarray(values), deg=1)
    return float(intercept)


def _bootstrap(statistic, n: int, resamples: int, seed: int) -> tuple[float, float]:
    if resamples <= 0 or n < 2:
        return math.nan, math.nan
    generator = torch.Generator().manual_seed(seed)
    values = [statistic(torch.randint(0, n, (n,), generator=generator)) for _ in range(resamples)]
    low, high = np.percentile(np.asarray(values), [2.5, 97.5])
    return float(low), float(high)


def resize_shorter_side(images: Tensor, side: int = 512) -> Tensor:
    """(B, 3, H, W) in [0, 1] → shorter side ``side``, as torchvision ``Resize(side)`` on a PIL image (bilinear,
    long side ``int(side · long / short)``), through 8 bits as the reference reads files."""
    from PIL import Image

    h, w = images.shape[-2:]
    if min(h, w) == side:
        return images
    size = (side, int(side * w / h)) if h <= w else (int(side * h / w), side)
    resized = []
    for image in (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy():
        pil = Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR)
        resized.append(torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255)
    return torch.stack(resized).to(images.device)


def _device(module: nn.Module) -> torch.device:
    return next((t.device for t in module.parameters()), torch.device("cpu"))


class SetMetric(nn.Module):
    """A metric of a whole output set: ``update(output, content, style, keys)`` accumulates per-pair features,
    ``compute()`` → :class:`SetSummary`, ``reset()``. ``keys[i]`` (the pair's content and style identities) lets style
    features be computed once per style image."""

    name = "set_metric"
    higher_is_better = False

    def __init__(self, bootstrap: int = 200, seed: int = 0) -> None:
        super().__init__()
        self.bootstrap, self.seed = bootstrap, seed
        self.reset()

    def reset(self) -> None:
        self._outputs: list[Tensor] = []
        self._styles: list[Tensor] = []
        self._style_keys: list[Hashable] = []
        self._style_cache: dict[Hashable, Tensor] = {}

    def _features(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def _style_features(self, style: Tensor, keys: Sequence[Hashable]) -> Tensor:
        rows = []
        for i, key in enumerate(keys):
            if key not in self._style_cache:
                self._style_cache[key] = self._features(style[i:i + 1])[0]
            rows.append(self._style_cache[key])
        return torch.stack(rows)

    @torch.inference_mode()
    def update(self, output: Tensor, content: Tensor, style: Tensor, keys: Sequence[tuple[Hashable, Hashable]] | None
               = None) -> None:
        check_triplet(output, content, style)
        if style.shape[0] == 1 and output.shape[0] > 1:
            style = style.expand(output.shape[0], -1, -1, -1)
        style_keys = [k[1] for k in keys] if keys is not None else [("anonymous", len(self._style_keys) + i)
                                                                     for i in range(output.shape[0])]
        self._outputs.append(self._features(output).double().cpu())
        self._styles.append(self._style_features(style, style_keys).double().cpu())
        self._style_keys.extend(style_keys)

    def _sets(self) -> tuple[Tensor, Tensor]:
        if not self._outputs:
            raise InputError(f"{self.name}: no images were given (call update first)")
        return torch.cat(self._outputs), torch.cat(self._styles)


class FID(SetMetric):
    """FID of the outputs against the style images (see the module docstring); lower is better."""

    name = "fid"

    def __init__(self, loading: Loading | None = None, *, network: nn.Module | None = None, resize: str = "tf1",
                 style_set: str = "pairs", infinity: bool = False, bootstrap: int = 200, seed: int = 0) -> None:
        super().__init__(bootstrap, seed)
        if style_set not in STYLE_SETS:
            raise ValueError(f"style_set must be one of {', '.join(STYLE_SETS)}, got {style_set!r}")
        if network is None:
            network, self.provenance = load_fid_inception(loading, resize)
        else:
            self.provenance = {"provided": True}
        self.network, self.resize, self.style_set, self.infinity = network, resize, style_set, infinity

    def _features(self, images: Tensor) -> Tensor:
        return self.network(images.to(_device(self.network)))

    def _style_set(self, styles: Tensor, index: Tensor | None = None) -> Tensor:
        if self.style_set == "pairs":
            return styles if index is None else styles[index]
        keys = self._style_keys if index is None else [self._style_keys[i] for i in index.tolist()]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        chosen = styles if index is None else styles[index]
        return chosen[sorted(first.values())]

    def compute(self) -> SetSummary:
        outputs, styles = self._sets()
        if self.infinity:
            value = fid_infinity(outputs, self._style_set(styles), seed=self.seed)
        else:
            value = frechet_distance(outputs, self._style_set(styles))
        low, high = _bootstrap(lambda i: frechet_distance_fast(outputs[i], self._style_set(styles, i)),
                               outputs.shape[0], 0 if self.infinity else self.bootstrap, self.seed)
        return SetSummary(value, outputs.shape[0], low, high, self.bootstrap)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": False, "features": "FID Inception pool3 (2048)",
                "resize": self.resize, "style_set": self.style_set, "infinity": self.infinity,
                "distance": "torchmetrics FrechetInceptionDistance", "bootstrap": self.bootstrap,
                "interval": "percentile bootstrap over pairs (2.5, 97.5)", "weights": self.provenance}


class ArtFID(SetMetric):
    """ArtFID of a method's outputs (see the module docstring); lower is better. ``lpips``: an ``lpips.LPIPS``
    (AlexNet, v0.1) for the content term, e.g. from :func:`metrics.perceptual.load_lpips`."""

    name = "artfid"

    def __init__(self, lpips: nn.Module, loading: Loading | None = None, *, network: nn.Module | None = None,
                 variant: str = "artfid", infinity: bool = False, bootstrap: int = 200, seed: int = 0) -> None:
        super().__init__(bootstrap, seed)
        if variant not in ARTFID_VARIANTS:
            raise ValueError(f"ArtFID variant must be one of {', '.join(ARTFID_VARIANTS)}, got {variant!r}")
        if network is None:
            network, self.provenance = load_art_inception(loading)
        else:
            self.provenance = {"provided": True}
        self.network, self.lpips, self.variant, self.infinity = network, lpips, variant, infinity

    def reset(self) -> None:
        super().reset()
        self._distances: list[Tensor] = []

    def _prepare(self, images: Tensor) -> Tensor:
        return resize_shorter_side(images, 512) if self.variant == "styleid" else images

    def _features(self, images: Tensor) -> Tensor:
        images = self._prepare(images)
        if min(images.shape[-2:]) < ArtInception.MIN_SIDE:
            raise InputError(f"ArtFID's Inception needs sides of at least {ArtInception.MIN_SIDE} px, got "
                             f"{tuple(images.shape[-2:])}")
        return torch.cat([self.network(image[None].to(_device(self.network))) for image in images])

    @torch.inference_mode()
    def update(self, output: Tensor, content: Tensor, style: Tensor, keys=None) -> None:
        super().update(output, content, style, keys)
        out, con = self._prepare(output), self._prepare(content)
        device = _device(self.lpips)
        self._distances.append(self.lpips(out.to(device) * 2 - 1, con.to(device) * 2 - 1).reshape(-1).double().cpu())

    def compute(self) -> SetSummary:
        outputs, styles = self._sets()
        distances = torch.cat(self._distances)
        fid = fid_infinity(outputs, styles, seed=self.seed) if self.infinity else frechet_distance(outputs, styles)
        value = (1 + distances.mean().item()) * (1 + fid)
        low, high = _bootstrap(
            lambda i: (1 + distances[i].mean().item()) * (1 + frechet_distance_fast(outputs[i], styles[i])),
            outputs.shape[0], 0 if self.infinity else self.bootstrap, self.seed)
        return SetSummary(value, outputs.shape[0], low, high, self.bootstrap)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": False, "variant": self.variant, "infinity": self.infinity,
                "formula": "(1 + LPIPS_alex(content, output)) * (1 + FID_art(outputs, styles))",
                "features": "art_inception pool (2048), native size" if self.variant == "artfid"
                else "art_inception pool (2048), shorter side 512", "bootstrap": self.bootstrap,
                "interval": "percentile bootstrap over pairs (2.5, 97.5)", "weights": self.provenance}
