"""StyA2K (Zhu et al., ICCV 2023) as the official code computes it, its Table-2 ablations, and the network shared
with the all-to-all baseline (spec §4, §5, §9, §13).

Network (attribute names = official checkpoint names, so the three official files load strictly):

* ``A2K``: the relu3_1 attention module (256 ch, block side 8) → S3, the decoder's skip input;
* ``transform``: ``attn_adain_4_1`` (512 ch, side 8) and ``attn_adain_5_1`` (512 ch, side 4);
  ``T = merge_conv(reflect_pad(A4 + up2(A5)))`` at relu4_1 resolution;
* ``decoder``: ``decoder_layer_1`` (conv 512→256, ReLU, up×2), concat [x, S3], ``decoder_layer_2`` → RGB (no final
  activation).

General sizes: every ×2 upsample (relu5_1 → relu4_1 in the transform, and the decoder's three) is followed by a crop
of the bottom/right excess to the encoder's size at that level (the encoder pools in ceil mode, so the upsampled map
is at most one row/column larger). On sides that are multiples of 64 nothing is cropped and the computation is the
official one.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .a2k import A2KAttention, distributed_attention, progressive_attention
from .net import StyleTransferNet, crop_to, run_with_crops
from .losses import shallow_keys, style_statistics_loss, weighted_total
from .vgg import TAP_CHANNELS, TAP_NAMES, feature_size

LossTarget = Callable[[Tensor, Tensor, Tensor, int], Tensor]
"""(content keys (B, Ck, h, w), style keys (B, Ck, h', w'), style values (B, C, h', w'), block side) → (B, C, h, w)."""
LOSS_TAPS = ("relu2_1", "relu3_1", "relu4_1", "relu5_1")
GLOBAL_STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
LOSS_BLOCK_SIDES = (16, 8, 8, 4)
"""Block sides of the A2K* loss at relu2_1..relu5_1 (official code, spec §6.2)."""

VARIANTS = ("official", "paper")
"""``official``: what the released code computes (default). ``paper``: the paper's text where it differs (spec §13):
DA normaliser 1/n (Eq. 8) and a ReLU after the merge conv (supp. Table 1)."""


def _conv3(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, kernel_size=3)]


def _up() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="nearest")


class Transform(nn.Module):
    """relu4_1 + relu5_1 attention and merge (spec §4.2); official names ``attn_adain_4_1``, ``attn_adain_5_1``,
    ``upsample5_1``, ``merge_conv_pad``, ``merge_conv``. ``merge_relu=True`` adds the paper's ReLU (not official)."""

    def __init__(self, attn4: nn.Module, attn5: nn.Module, merge_relu: bool = False,
                 names: tuple[str, str] = ("attn_adain_4_1", "attn_adain_5_1")) -> None:
        super().__init__()
        self.names = names  # the attention modules' attribute names in the official files (SANet: sanet4_1, sanet5_1)
        setattr(self, names[0], attn4)
        setattr(self, names[1], attn5)
        self.upsample5_1 = _up()
        self.merge_conv_pad = nn.ReflectionPad2d(1)
        self.merge_conv = nn.Conv2d(512, 512, kernel_size=3)
        self.merge_relu = merge_relu

    def forward(self, c4: Tensor, s4: Tensor, c5: Tensor, s5: Tensor, extra4: Sequence[Any] = (),
                extra5: Sequence[Any] = ()) -> Tensor:
        """c4, s4: relu4_1 (B, 512, h4, w4); c5, s5: relu5_1 → T (B, 512, h4, w4). ``extra4``/``extra5``: further
        arguments of the two attention modules (AdaAttN's keys)."""
        attn4, attn5 = (getattr(self, name) for name in self.names)
        a4 = attn4(c4, s4, *extra4)
        a5 = crop_to(self.upsample5_1(attn5(c5, s5, *extra5)), a4.shape[-2:])
        out = self.merge_conv(self.merge_conv_pad(a4 + a5))
        return torch.relu(out) if self.merge_relu else out


class Decoder(nn.Module):
    """AdaAttN's decoder with the relu3_1 skip (spec §4.4); official names ``decoder_layer_1``, ``decoder_layer_2``."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder_layer_1 = nn.Sequential(*_conv3(512, 256), nn.ReLU(), _up())
        self.decoder_layer_2 = nn.Sequential(
            *_conv3(512, 256), nn.ReLU(),
            *_conv3(256, 256), nn.ReLU(),
            *_conv3(256, 256), nn.ReLU(),
            *_conv3(256, 128), nn.ReLU(), _up(),
            *_conv3(128, 128), nn.ReLU(),
            *_conv3(128, 64), nn.ReLU(), _up(),
            *_conv3(64, 64), nn.ReLU(),
            *_conv3(64, 3),
        )  # fmt: skip

    def forward(self, t: Tensor, s3: Tensor, size: Sequence[int]) -> Tensor:
        """t (B, 512, h4, w4), s3 (B, 256, h3, w3) → image (B, 3, *size), unclamped."""
        half = [feature_size(s, "relu2_1") for s in size]
        # the concatenated input is not bound here, so it is freed after the first layer of decoder_layer_2
        return run_with_crops(
            self.decoder_layer_2,
            torch.cat([run_with_crops(self.decoder_layer_1, t, [s3.shape[-2:]]), s3], dim=1),
            [half, list(size)],
        )


def init_normal(module: nn.Module, generator: torch.Generator, std: float = 0.02) -> None:
    """pix2pix "normal" initialisation (spec §4.6): conv weights ~ N(0, std), biases 0; other parameters untouched."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.normal_(0.0, std, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()


class AttentionTransferNet(StyleTransferNet):
    """The StyA2K network layout with pluggable attention modules (A2K for StyA2K, all-to-all for ``all2all``).

    ``attention(channels, block_side)`` builds each of the three modules; block sides are (relu3_1, relu4_1, relu5_1).
    """

    taps = ("relu3_1", "relu4_1", "relu5_1")

    def __init__(
        self,
        attention: Callable[[int, int], nn.Module],
        block_sides: Sequence[int] = (8, 8, 4),
        merge_relu: bool = False,
        min_style_side: int = 1,
        loss_target: LossTarget | None = None,
        loss_block_sides: Sequence[int] = LOSS_BLOCK_SIDES,
        loss_shallow_keys: bool = True,
    ) -> None:
        super().__init__()
        self.loss_target = loss_target
        self.loss_block_sides = tuple(loss_block_sides)
        self.loss_shallow_keys = loss_shallow_keys
        s3, s4, s5 = block_sides
        self.A2K = attention(TAP_CHANNELS["relu3_1"], s3)
        self.transform = Transform(
            attention(TAP_CHANNELS["relu4_1"], s4), attention(TAP_CHANNELS["relu5_1"], s5), merge_relu=merge_relu
        )
        self.decoder = Decoder()
        # VGG needs relu5_1's conv input ≥ 2 px (reflection padding) and ≥ 2 positions for an unbiased variance.
        self.min_content_side = 17
        self.min_style_side = max(17, min_style_side)

    def _attention_modules(self) -> dict[str, tuple[str, nn.Module]]:
        """State-key prefix → (tap, attention module), for the modules that split off a style state."""
        modules = {"A2K": ("relu3_1", self.A2K)}
        for tap, name in zip(("relu4_1", "relu5_1"), self.transform.names):
            modules[f"transform.{name}"] = (tap, getattr(self.transform, name))
        return {prefix: entry for prefix, entry in modules.items() if hasattr(entry[1], "style_state")}

    def style_state(self, style: dict[str, Tensor]) -> dict[str, Tensor]:
        return {f"{prefix}/{key}": value for prefix, (tap, module) in self._attention_modules().items()
                for key, value in module(None, style[tap]).items()}  # the module call: hooks see it

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor]) -> dict[str, Tensor]:
        def state(prefix: str) -> tuple[dict[str, Tensor], ...]:
            """The module's prepared style state, as the extra argument of its call (none: it computes its own)."""
            found = {key[len(prefix) + 1:]: value for key, value in style.items() if key.startswith(prefix + "/")}
            return (found,) if found else ()

        name4, name5 = self.transform.names
        s3 = self.A2K(content["relu3_1"], style["relu3_1"], *state("A2K"))
        t = self.transform(content["relu4_1"], style["relu4_1"], content["relu5_1"], style["relu5_1"],
                           extra4=state(f"transform.{name4}"), extra5=state(f"transform.{name5}"))
        return {"relu3_1": s3, "relu4_1": t}

    def decode(self, features: dict[str, Tensor], size: Sequence[int]) -> Tensor:
        return self.decoder(features["relu4_1"], features["relu3_1"], size)

    def reset_random(self, generator: torch.Generator) -> None:
        for part in (self.A2K, self.transform, self.decoder):
            init_normal(part, generator)

    def training_loss(self, content: Tensor, style: Tensor, weights: dict[str, float]) -> dict[str, Tensor]:
        """Official StyA2K loss (spec §6.2): ``global_style`` = Σ_{relu1_1..4_1} MSE of means + MSE of stds of the
        output vs the style; ``a2k`` = Σ_{relu2_1..5_1} MSE(φ_i(cs), T_i) with the non-parametric target
        ``T_i = loss_target(shallow keys of c, shallow keys of s, φ_i(s)) + φ_i(c)``. No content loss (official)."""
        if self.loss_target is None:
            raise NotImplementedError(f"{type(self).__name__} was built without a loss target")
        with torch.no_grad():
            fc, fs = self.encoder(content, TAP_NAMES), self.encoder(style, TAP_NAMES)
            targets = {
                tap: self.loss_target(
                    shallow_keys(fc, tap, self.loss_shallow_keys), shallow_keys(fs, tap, self.loss_shallow_keys),
                    fs[tap], side,
                ) + fc[tap]
                for tap, side in zip(LOSS_TAPS, self.loss_block_sides)
            }
        output = self.decode(self.transfer(fc, fs), content.shape[-2:])
        fo = self.encoder(output, TAP_NAMES)
        terms = {
            "global_style": style_statistics_loss(fo, fs, GLOBAL_STYLE_TAPS),
            "a2k": sum(F.mse_loss(fo[tap], targets[tap]) for tap in LOSS_TAPS),
        }
        return weighted_total(terms, weights)


def min_style_side_for_blocks(block_sides: Sequence[int]) -> int:
    """Smallest image side whose relu3_1/4_1/5_1 maps hold at least one whole block each (official floor tiling)."""
    side = 1
    for tap, block in zip(("relu3_1", "relu4_1", "relu5_1"), block_sides):
        while feature_size(side, tap) < block:
            side += 1
    return side


def build_stya2k(
    *,
    variant: str = "official",
    heads: int = 8,
    block_sides: Sequence[int] = (8, 8, 4),
    da_normaliser: str | None = None,
    merge_relu: bool | None = None,
    use_da: bool = True,
    use_pa: bool = True,
    pa_step1: bool = True,
    remainder: str = "zeros",
    attention_backend: str = "sdpa",
    loss_follows_ablation: bool = True,
    loss_shallow_keys: bool = True,
    loss_block_sides: Sequence[int] = LOSS_BLOCK_SIDES,
) -> AttentionTransferNet:
    """Build a StyA2K network. ``None`` options take the ``variant``'s value (official: ``da_normaliser="r+1"``,
    ``merge_relu=False``; paper: ``"n"``, ``True``).

    Training-only options: ``loss_follows_ablation`` applies an ablation to the A2K* loss target too (spec §9:
    default on; off keeps the full model's target), ``loss_shallow_keys`` the shallow-layer key concatenation of
    the loss (official: on), ``loss_block_sides`` its block sides at relu2_1..relu5_1 (16, 8, 8, 4)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    paper = variant == "paper"
    da_normaliser = da_normaliser if da_normaliser is not None else ("n" if paper else "r+1")
    merge_relu = merge_relu if merge_relu is not None else paper
    block_sides = tuple(int(s) for s in block_sides)
    if len(block_sides) != 3:
        raise ValueError(f"block_sides needs three sides (relu3_1, relu4_1, relu5_1), got {block_sides}")

    def attention(channels: int, side: int) -> nn.Module:
        return A2KAttention(
            channels, side, heads=heads, use_da=use_da, use_pa=use_pa, pa_step1=pa_step1,
            da_normaliser=da_normaliser, remainder=remainder, backend=attention_backend,
        )

    target = a2k_star_target(
        heads=heads, da_normaliser=da_normaliser, remainder=remainder, backend=attention_backend,
        **(dict(use_da=use_da, use_pa=use_pa, pa_step1=pa_step1) if loss_follows_ablation else {}),
    )
    return AttentionTransferNet(
        attention, block_sides, merge_relu=merge_relu,
        min_style_side=min_style_side_for_blocks(block_sides) if remainder == "zeros" else 1,
        loss_target=target, loss_block_sides=loss_block_sides, loss_shallow_keys=loss_shallow_keys,
    )


def a2k_star_target(
    *, heads: int = 8, use_da: bool = True, use_pa: bool = True, pa_step1: bool = True, da_normaliser: str = "r+1",
    remainder: str = "zeros", backend: str = "sdpa",
) -> LossTarget:
    """The non-parametric A2K* attention of the loss (spec §6.2 steps 2–5): the same keys for queries and keys, no
    convolutions, α = 1, β = 0; returns ``Unblk(DA*) + Unblk(PA*)`` (without the content residual)."""

    def target(content_keys: Tensor, style_keys: Tensor, style_values: Tensor, side: int) -> Tensor:
        common = dict(side=side, heads=heads, remainder=remainder, backend=backend)
        parts = []
        if use_da:
            parts.append(distributed_attention(content_keys, style_keys, style_values, alpha=1.0, beta=0.0,
                                               normaliser=da_normaliser, **common))
        if use_pa:
            parts.append(progressive_attention(content_keys, style_keys, style_values, step1=pa_step1, **common))
        return sum(parts[1:], parts[0])

    return target


STYA2K_ABLATIONS: dict[str, dict[str, Any]] = {
    "styA2K-noDA": {"use_da": False},
    "styA2K-noPA": {"use_pa": False},
    "styA2K-noPA1": {"pa_step1": False},
    "styA2K-1head": {"heads": 1},
}
"""Paper Table 2 ablations (spec §9) as option sets on top of the full model; ``all2all`` is its own method."""


# --------------------------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------------------------
from .recipes import STYA2K_RECIPE  # noqa: E402
from ._registry import register_method  # noqa: E402  (registration needs the builders above)
from .weights import WeightFile  # noqa: E402

_OFFICIAL = "https://raw.githubusercontent.com/LearningHx/StyA2K/70b58dfdf6c249a0c621d8b849945272671dce74/checkpoints/A2K/"
STYA2K_WEIGHTS = {
    "A2K": WeightFile(
        "latest_net_A2K.pth", _OFFICIAL + "latest_net_A2K.pth",
        sha256="0752d020344ed334ed63a5f671bdd93db71d7ad7f0d69e49074a3065ec2af7d1",
        git_blob_sha1="186476825d2490e1989ce69a5c8b42203ddbbff0",
        description="StyA2K relu3_1 A2K module (official, 526,338 parameters)",
    ),
    "transform": WeightFile(
        "latest_net_transform.pth", _OFFICIAL + "latest_net_transform.pth",
        git_blob_sha1="128f013d28f6fec30b97fbd1d271452546dbd607",
        description="StyA2K relu4_1 + relu5_1 A2K modules and merge conv (official, 6,562,308 parameters)",
    ),
    "decoder": WeightFile(
        "latest_net_decoder.pth", _OFFICIAL + "latest_net_decoder.pth",
        git_blob_sha1="6e30e08c74bd294c8cbd5e3dd486638328646259",
        description="StyA2K decoder (official, 4,095,043 parameters)",
    ),
}
_STYA2K_INFO: dict[str, Any] = dict(
    paper="Zhu, He, Wang, Wang, Gao. All-to-key Attention for Arbitrary Style Transfer. ICCV 2023",
    code_url="https://github.com/LearningHx/StyA2K",
    encoder_layers=("relu3_1", "relu4_1", "relu5_1"),
    default_size=512,
    licence="official code and weights: no licence file in the repository (research use); VGG-19: CC BY 4.0",
    recipe=STYA2K_RECIPE,
    option_notes={"da_normaliser": "the variant's: 'r+1' official, 'n' paper",
                  "merge_relu": "the variant's: False official, True paper"},
)
register_method(
    "styA2K", weights=STYA2K_WEIGHTS,
    summary="all-to-key attention (DA + PA, 8 heads) at relu3_1/4_1/5_1, as the official code computes it",
    **_STYA2K_INFO,
)(build_stya2k)
_ABLATION_SUMMARIES = {
    "styA2K-noDA": "Table 2 ablation: w/o distributed attention (PA branch only)",
    "styA2K-noPA": "Table 2 ablation: w/o progressive attention (DA branch only)",
    "styA2K-noPA1": "Table 2 ablation: w/o step 1 of PA (attention inside the same-location style block)",
    "styA2K-1head": "Table 2 ablation: w/o multiple heads (1 head)",
}
for _name, _defaults in STYA2K_ABLATIONS.items():
    register_method(_name, defaults=_defaults, summary=_ABLATION_SUMMARIES[_name], **_STYA2K_INFO)(build_stya2k)
