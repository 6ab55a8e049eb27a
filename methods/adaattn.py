"""AdaAttN (Liu et al., ICCV 2021) as the official code (Huage001/AdaAttN, ``models/networks.py`` +
``models/adaattn_model.py``, released model: ``--shallow_layer --skip_connection_3``) computes it (spec §10.2).

Same VGG, transform layout (relu4_1 + up×2(relu5_1), reflect-padded 3×3 merge conv) and decoder with the relu3_1 skip
as StyA2K. Each attention module, with shallow-layer keys ``K = get_key(φ, i)`` (448 / 960 / 1472 channels at relu3_1 /
4_1 / 5_1, :func:`methods.losses.shallow_keys`)::

    A = softmax_j(f(Kc)_iᵀ g(Ks)_j)            (one head, no 1/√d; j over all, or a random subset of, style positions)
    M = A·V,  S = sqrt(relu(A·(V⊙V) − M⊙M)),  V = h(Fs)
    F_cs = S ⊙ mvn(Fc) + M                      (no residual, no fusion conv)

Key sub-sampling (official default): where a style map has more than ``max_sample`` positions, a random subset of
``max_sample`` of them (the same for keys and values) is drawn by ``randperm`` after seeding with ``seed`` (6666 at
test time): 4,096 at relu3_1, 65,536 at relu4_1 / 5_1. A private generator seeded with that seed draws the same
permutation as the official global ``torch.manual_seed`` (without touching the global RNG). ``key_sampling=False``
attends to every style position instead (memory-lean: the score matrix is never built whole).

Any size: as StyA2K, the relu5_1 upsample and the decoder's upsamples are cropped back to the encoder's grid (a no-op
on sides that are multiples of 16, where the official code runs; it fails otherwise).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .losses import shallow_keys, style_statistics_loss, weighted_total
from .net import StyleTransferNet
from .ops import attention, mean_variance_norm
from .stya2k import Decoder, Transform, init_normal
from .vgg import TAP_NAMES

TEST_SEED = 6666
"""The seed of the key sub-sampling at test time (official ``self.seed = 6666``)."""
MAX_SAMPLE_3 = 64 * 64
"""Largest number of style keys of the relu3_1 module and of the local loss (official ``max_sample``)."""
MAX_SAMPLE_45 = 256 * 256
"""The relu4_1 / relu5_1 modules' default ``max_sample`` (official class default)."""
KEY_CHANNELS = {"relu3_1": 448, "relu4_1": 960, "relu5_1": 1472}
LOSS_TAPS = ("relu2_1", "relu3_1", "relu4_1", "relu5_1")


def sample_positions(n: int, max_sample: int | None, seed: int | None, device: torch.device) -> Tensor | None:
    """The official key sub-sample: ``randperm(n)[:max_sample]`` after seeding with ``seed``; None when n ≤ max_sample
    (or sampling is off, ``max_sample=None``). ``seed=None`` draws from the global RNG, as the official code does."""
    if max_sample is None or n <= max_sample:
        return None
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    return torch.randperm(n, generator=generator)[:max_sample].to(device)


def adaptive_attention(content: Tensor, content_key: Tensor, style_key: Tensor, style_value: Tensor,
                       index: Tensor | None = None, backend: str = "sdpa") -> Tensor:
    """Attention-weighted mean and std applied to the normalised content (the AdaAttN operation).

    content (B, C, Hc, Wc); content_key (B, Ck, Hc, Wc); style_key (B, Ck, Hs, Ws); style_value (B, C, Hs, Ws);
    ``index``: style positions to keep (a 1-D index over Hs·Ws) or None → (B, C, Hc, Wc).
    """
    b, c, hc, wc = content.shape
    q = content_key.flatten(2).transpose(1, 2)  # (B, Lc, Ck)
    k = style_key.flatten(2).transpose(1, 2)  # (B, Ls, Ck)
    v = style_value.flatten(2).transpose(1, 2)  # (B, Ls, C)
    if index is not None:
        k, v = k[:, index], v[:, index]
    moments = attention(q, k, torch.cat([v, v * v], dim=-1), backend=backend)  # (B, Lc, 2C): E[V], E[V²]
    mean, second = moments[..., :c], moments[..., c:]
    std = torch.sqrt(torch.relu(second - mean * mean))
    mean, std = (t.transpose(1, 2).reshape(b, c, hc, wc) for t in (mean, std))
    return std * mean_variance_norm(content) + mean


class AdaAttN(nn.Module):
    """One AdaAttN module with the official parameter names: ``f`` (content key), ``g`` (style key), 1×1 convs of the
    key width; ``h`` (style value), a 1×1 conv C→C."""

    def __init__(self, channels: int, key_channels: int, max_sample: int | None = MAX_SAMPLE_45,
                 backend: str = "sdpa") -> None:
        super().__init__()
        self.f = nn.Conv2d(key_channels, key_channels, kernel_size=1)
        self.g = nn.Conv2d(key_channels, key_channels, kernel_size=1)
        self.h = nn.Conv2d(channels, channels, kernel_size=1)
        self.max_sample, self.backend = max_sample, backend

    def extra_repr(self) -> str:
        return f"max_sample={self.max_sample}"

    def forward(self, content: Tensor, style: Tensor, content_key: Tensor, style_key: Tensor,
                seed: int | None = TEST_SEED) -> Tensor:
        """content, style: raw features (B, C, ·, ·); keys: shallow-layer keys (B, Ck, ·, ·) → (B, C, Hc, Wc)."""
        g = self.g(style_key)
        index = sample_positions(g.shape[-2] * g.shape[-1], self.max_sample, seed, g.device)
        return adaptive_attention(content, self.f(content_key), g, self.h(style), index, self.backend)


KEY_TAPS = ("relu3_1", "relu4_1", "relu5_1")


def _keys(features: dict[str, Tensor]) -> dict[str, Tensor]:
    """The shallow-layer keys at :data:`KEY_TAPS`: those :meth:`AdaAttNNet.encode_for` stored, else built here."""
    return {tap: features[f"key:{tap}"] if f"key:{tap}" in features else shallow_keys(features, tap)
            for tap in KEY_TAPS}


class AdaAttNNet(StyleTransferNet):
    """AdaAttN. Attribute names = official file names: ``adaattn_3`` (``latest_net_adaattn_3.pth``), ``transformer``
    (``latest_net_transformer.pth``), ``decoder`` (``latest_net_decoder.pth``)."""

    taps = TAP_NAMES  # keys concatenate relu1_1 … relu5_1

    def __init__(self, key_sampling: bool = True, max_sample: int = MAX_SAMPLE_3, seed: int = TEST_SEED,
                 attention_backend: str = "sdpa") -> None:
        super().__init__()
        self.seed = seed
        deep = MAX_SAMPLE_45 if key_sampling else None
        self.adaattn_3 = AdaAttN(256, KEY_CHANNELS["relu3_1"], max_sample if key_sampling else None, attention_backend)
        self.transformer = Transform(AdaAttN(512, KEY_CHANNELS["relu4_1"], deep, attention_backend),
                                     AdaAttN(512, KEY_CHANNELS["relu5_1"], deep, attention_backend))
        self.decoder = Decoder()
        self.min_content_side = 17  # relu5_1 ≥ 2 px (reflection padding, unbiased variance)
        self.min_style_side = 17

    def encode_for(self, image: Tensor, role: str) -> dict[str, Tensor]:
        """The VGG features and their shallow-layer keys (``"key:relu3_1"`` …), so that a style prepared once
        (video, many contents) does not rebuild its keys per content."""
        features = self.encode(image)
        return {**features, **{f"key:{tap}": shallow_keys(features, tap) for tap in KEY_TAPS}}

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor], seed: int | None = None) -> dict[str, Tensor]:
        seed = self.seed if seed is None else seed
        keys_c, keys_s = (_keys(features) for features in (content, style))
        s3 = self.adaattn_3(content["relu3_1"], style["relu3_1"], keys_c["relu3_1"], keys_s["relu3_1"], seed)
        t = self.transformer(content["relu4_1"], style["relu4_1"], content["relu5_1"], style["relu5_1"],
                             (keys_c["relu4_1"], keys_s["relu4_1"], seed), (keys_c["relu5_1"], keys_s["relu5_1"], seed))
        return {"relu3_1": s3, "relu4_1": t}

    def decode(self, features: dict[str, Tensor], size: Sequence[int]) -> Tensor:
        return self.decoder(features["relu4_1"], features["relu3_1"], size)

    def reset_random(self, generator: torch.Generator) -> None:
        """pix2pix "normal" initialisation (``init_type normal``, gain 0.02), as the official ``init_net``."""
        for part in (self.adaattn_3, self.transformer, self.decoder):
            init_normal(part, generator)

    def training_loss(self, content: Tensor, style: Tensor, weights: dict[str, float]) -> dict[str, Tensor]:
        """The official loss (spec §10.2): ``global_style`` = Σ_{relu2_1..5_1} MSE of means + MSE of stds of the output
        vs the style; ``local`` = Σ_{relu2_1..5_1} MSE(φ_i(cs), S_i ⊙ mvn(φ_i(c)) + M_i), the non-parametric AdaAttN
        target on shallow keys with values φ_i(s), style keys sub-sampled to 4,096; ``content`` (weight 0 officially)
        = Σ_{relu2_1..5_1} MSE(mvn(φ_i(cs)), mvn(φ_i(c))). One seed per step is drawn from the global RNG (official
        ``torch.randint(10000000, (1,))``) and used by the network's and the loss's sub-sampling alike."""
        seed = int(torch.randint(10_000_000, (1,))[0])
        with torch.no_grad():
            fc, fs = self.encoder(content, TAP_NAMES), self.encoder(style, TAP_NAMES)
            targets = {}
            for tap in LOSS_TAPS:
                kc, ks = shallow_keys(fc, tap), shallow_keys(fs, tap)
                index = sample_positions(ks.shape[-2] * ks.shape[-1], MAX_SAMPLE_3, seed, ks.device)
                targets[tap] = adaptive_attention(fc[tap], kc, ks, fs[tap], index, self.adaattn_3.backend)
        output = self.decode(self.transfer(fc, fs, seed=seed), content.shape[-2:])
        fo = self.encoder(output, TAP_NAMES)
        terms = {
            "content": sum(F.mse_loss(mean_variance_norm(fo[t]), mean_variance_norm(fc[t])) for t in LOSS_TAPS),
            "global_style": style_statistics_loss(fo, fs, LOSS_TAPS),
            "local": sum(F.mse_loss(fo[tap], targets[tap]) for tap in LOSS_TAPS),
        }
        return weighted_total(terms, weights)


def build_adaattn(*, key_sampling: bool = True, max_sample: int = MAX_SAMPLE_3, seed: int = TEST_SEED,
                  attention_backend: str = "sdpa") -> AdaAttNNet:
    """``key_sampling`` (official: on) sub-samples at most ``max_sample`` style keys at relu3_1 (65,536 at relu4_1 /
    5_1) with ``seed``; off: every style position (memory-lean full attention)."""
    if max_sample < 1:
        raise ValueError(f"max_sample must be ≥ 1, got {max_sample}")
    return AdaAttNNet(key_sampling, int(max_sample), int(seed), attention_backend)


from ._registry import register_method  # noqa: E402
from .recipes import ADAATTN_RECIPE  # noqa: E402
from .vgg import VGG_WEIGHTS  # noqa: E402
from .weights import Archive, WeightFile  # noqa: E402

ADAATTN_ARCHIVE = Archive(
    "AdaAttN_model.zip", google_drive_id="1XvpD1eI4JeCBIaW5uwMT6ojF_qlzM_lo",
    description="AdaAttN's released checkpoints (README of Huage001/AdaAttN: Google Drive, unzip into checkpoints/)",
)
ADAATTN_WEIGHTS = {
    "adaattn_3": WeightFile(
        "latest_net_adaattn_3.pth", archive=ADAATTN_ARCHIVE, member="AdaAttN/latest_net_adaattn_3.pth",
        sha256="14420dbd26eb02f84e41156a14605ee27ba081bc66b235cda1fce635e49ca24f",
        description="AdaAttN relu3_1 module (official, 468,096 parameters)",
    ),
    "transformer": WeightFile(
        "latest_net_transformer.pth", archive=ADAATTN_ARCHIVE, member="AdaAttN/latest_net_transformer.pth",
        description="AdaAttN relu4_1 + relu5_1 modules and merge conv (official)",
    ),
    "decoder": WeightFile(
        "latest_net_decoder.pth", archive=ADAATTN_ARCHIVE, member="AdaAttN/latest_net_decoder.pth",
        description="AdaAttN decoder (official)",
    ),
}
register_method(
    "AdaAttN",
    weights=ADAATTN_WEIGHTS,
    encoder_weights=VGG_WEIGHTS,
    paper="Liu, Lin, He, Ding, Li, Zhang. AdaAttN: Revisit Attention Mechanism in Arbitrary Neural Style Transfer. "
          "ICCV 2021",
    code_url="https://github.com/Huage001/AdaAttN (commit 524b2b1)",
    summary="attention-weighted mean/std (single head, shallow-layer keys, 4,096 sampled keys at relu3_1, seed 6666)",
    encoder_layers=TAP_NAMES,
    default_size=512,
    licence="official code and weights: Apache-2.0; VGG-19: CC BY 4.0",
    recipe=ADAATTN_RECIPE,
)(build_adaattn)
