"""StyTr² (Deng et al., CVPR 2022, "StyTr²: Image Style Transfer with Transformers") as the official code
(diyiiyiii/StyTR-2: ``models/StyTR.py``, ``models/transformer.py``, ``test.py``) computes it.

No VGG at inference (the official network holds one for its training losses only). Images (RGB in [0, 1]) are cut
into 8×8 patches by ``embedding`` (a stride-8 conv to 512 channels); a transformer with two 3-layer encoders (content,
style; post-norm, 8 heads, FFN 2048, ReLU) and a 3-layer decoder whose layers attend twice to the style memory::

    P  = bilinear(new_ps(avgpool_18(Ec)))          content-aware positional encoding (CAPE), at the content grid
    Zc = encoder_c(Ec + P in queries and keys),  Zs = encoder_s(Es)
    per decoder layer: t ← norm1(t + MHA(t + P, Zs, Zs));  t ← norm2(t + MHA(t + P, Zs, Zs));  t ← norm3(t + FFN(t))
    hs = decoder.norm(t)  →  the AdaIN decoder layout (×8) → image

The attention runs through the memory-lean kernel (``scaled_dot_product_attention``, scale 1/√64) on the official
``nn.MultiheadAttention`` parameters, so the released files load strictly.

Any size (the official test centre-crops both images to 512²; its code breaks elsewhere):

* sides not divisible by 8 — the image is reflection-padded at the bottom/right to the next multiple of 8 before the
  patch embedding, and the decoder output cropped back (after every ×2 upsample, to the ceil-mode grid); at multiples
  of 8 nothing changes;
* CAPE — the official code resizes the 18×18 pooled encoding to the *style's* patch grid and adds it to the content
  tokens, which is only defined when both grids are equal; here it is resized to the content's grid (identical at
  equal sizes, the official 512² protocol);
* the official output reshape assumes a square grid (``view(B, C, -1, √N)``); here the content grid's own (h, w).

StyTr² defines no content–style trade-off: α ≠ 1 is refused.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .adain import adain_decoder
from .errors import InputError
from .net import StyleTransferNet, run_with_crops
from .ops import attention
from .vgg import feature_size

PATCH = 8
D_MODEL, HEADS, FFN, LAYERS = 512, 8, 2048, 3
CAPE_SIDE = 18
"""The content-aware positional encoding's pooled side (official ``AdaptiveAvgPool2d(18)``)."""


def multi_head_attention(module: nn.MultiheadAttention, query: Tensor, key: Tensor, value: Tensor,
                         backend: str = "sdpa") -> Tensor:
    """``nn.MultiheadAttention``'s computation on batch-first tokens (B, L, C), (B, S, C), (B, S, C) → (B, L, C), with
    its own parameters (``in_proj_weight``/``in_proj_bias``, ``out_proj``) and the memory-lean attention kernel."""
    heads = module.num_heads
    w_q, w_k, w_v = module.in_proj_weight.chunk(3)
    b_q, b_k, b_v = module.in_proj_bias.chunk(3)

    def split(x: Tensor) -> Tensor:  # (B, L, C) → (B, heads, L, C / heads)
        return x.unflatten(-1, (heads, -1)).transpose(1, 2)

    q, k, v = split(F.linear(query, w_q, b_q)), split(F.linear(key, w_k, b_k)), split(F.linear(value, w_v, b_v))
    out = attention(q, k, v, backend=backend, scale=1.0 / math.sqrt(q.shape[-1]))
    return module.out_proj(out.transpose(1, 2).flatten(2))


class EncoderLayer(nn.Module):
    """Official ``TransformerEncoderLayer`` (post-norm): ``x ← norm1(x + MHA(x + pos, x + pos, x))``,
    ``x ← norm2(x + linear2(relu(linear1(x))))``. Dropout (0.1 in training) is inactive at inference."""

    def __init__(self, backend: str = "sdpa") -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(D_MODEL, HEADS, dropout=0.1)
        self.linear1, self.linear2 = nn.Linear(D_MODEL, FFN), nn.Linear(FFN, D_MODEL)
        self.norm1, self.norm2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
        self.dropout = nn.Dropout(0.1)
        self.backend = backend

    def forward(self, x: Tensor, pos: Tensor | None = None) -> Tensor:
        qk = x if pos is None else x + pos
        x = self.norm1(x + self.dropout(multi_head_attention(self.self_attn, qk, qk, x, self.backend)))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(x))))))


class DecoderLayer(nn.Module):
    """Official ``TransformerDecoderLayer`` (post-norm). Both attentions attend to the style memory — the official
    ``self_attn`` takes ``(tgt + query_pos, memory, memory)``, not the target itself."""

    def __init__(self, backend: str = "sdpa") -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(D_MODEL, HEADS, dropout=0.1)
        self.multihead_attn = nn.MultiheadAttention(D_MODEL, HEADS, dropout=0.1)
        self.linear1, self.linear2 = nn.Linear(D_MODEL, FFN), nn.Linear(FFN, D_MODEL)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(D_MODEL) for _ in range(3))
        self.dropout = nn.Dropout(0.1)
        self.backend = backend

    def forward(self, t: Tensor, memory: Tensor, query_pos: Tensor) -> Tensor:
        t = self.norm1(t + self.dropout(multi_head_attention(self.self_attn, t + query_pos, memory, memory,
                                                             self.backend)))
        t = self.norm2(t + self.dropout(multi_head_attention(self.multihead_attn, t + query_pos, memory, memory,
                                                             self.backend)))
        return self.norm3(t + self.dropout(self.linear2(self.dropout(torch.relu(self.linear1(t))))))


class Stack(nn.Module):
    """Official ``TransformerEncoder`` / ``TransformerDecoder``: ``layers`` (and the decoder's final ``norm``)."""

    def __init__(self, layer: type[nn.Module], final_norm: bool, backend: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layer(backend) for _ in range(LAYERS))
        self.norm = nn.LayerNorm(D_MODEL) if final_norm else None

    def forward(self, x: Tensor, *args: Tensor | None) -> Tensor:
        for layer in self.layers:
            x = layer(x, *args)
        return self.norm(x) if self.norm is not None else x


class Transformer(nn.Module):
    """Official ``Transformer`` parameters: ``encoder_c``, ``encoder_s``, ``decoder``, ``new_ps`` (1×1 conv of CAPE)."""

    def __init__(self, backend: str = "sdpa") -> None:
        super().__init__()
        self.encoder_c = Stack(EncoderLayer, False, backend)
        self.encoder_s = Stack(EncoderLayer, False, backend)
        self.decoder = Stack(DecoderLayer, True, backend)
        self.new_ps = nn.Conv2d(D_MODEL, D_MODEL, kernel_size=1)
        self.averagepooling = nn.AdaptiveAvgPool2d(CAPE_SIDE)

    def stylise(self, content: Tensor, style_memory: Tensor) -> Tensor:
        """content patch embedding (B, C, h, w), encoded style tokens (B, S, C) → hs (B, C, h, w)."""
        b, c, h, w = content.shape
        pos = F.interpolate(self.new_ps(self.averagepooling(content)), size=(h, w), mode="bilinear")
        pos, tokens = pos.flatten(2).transpose(1, 2), content.flatten(2).transpose(1, 2)  # (B, h·w, C)
        encoded = self.encoder_c(tokens, pos)
        # contiguous: a (B, C, h, w) view of tokens is channels-last-strided for B > 1 but not for B = 1 (a size-1
        # stride), so the decoder would otherwise run in a layout that depends on the batch size
        return self.decoder(encoded, style_memory, pos).transpose(1, 2).reshape(b, c, h, w).contiguous()


class PatchEmbed(nn.Module):
    """Official ``PatchEmbed``: ``proj``, an 8×8 stride-8 conv 3 → 512 on RGB in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, D_MODEL, kernel_size=PATCH, stride=PATCH)

    def forward(self, image: Tensor) -> Tensor:
        pad_h, pad_w = (-image.shape[-2]) % PATCH, (-image.shape[-1]) % PATCH
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")
        return self.proj(image)


class StyTr2Net(StyleTransferNet):
    """StyTr²: ``embedding`` (``embedding_iter_160000.pth``), ``transformer`` (``transformer_iter_160000.pth``),
    ``decoder`` (``decoder_iter_160000.pth``, the AdaIN layout). ``encode_for(style, "style")`` runs the style
    encoder too (``{"memory": (B, S, 512)}``, reused over contents); the decoder input is ``{"hs": (B, 512, h, w)}``."""

    uses_vgg = False
    alpha_in_transfer = True
    min_content_side = 9  # two patches: the decoder's first reflection padding needs a 2-px map
    min_style_side = 8

    def __init__(self, attention_backend: str = "sdpa") -> None:
        super().__init__()
        self.embedding = PatchEmbed()
        self.transformer = Transformer(attention_backend)
        self.decoder = adain_decoder()

    def encode(self, image: Tensor) -> dict[str, Tensor]:
        return self.encode_for(image, "content")

    def encode_for(self, image: Tensor, role: str) -> dict[str, Tensor]:
        embedded = self.embedding(image)
        if role == "content":
            return {"patches": embedded}
        return {"memory": self.transformer.encoder_s(embedded.flatten(2).transpose(1, 2))}

    def transfer(self, content: dict[str, Tensor], style: dict[str, Tensor], alpha: float = 1.0) -> dict[str, Tensor]:
        if alpha != 1.0:
            raise InputError(f"StyTr² defines no content–style trade-off; alpha must be 1, got {alpha}")
        return {"hs": self.transformer.stylise(content["patches"], style["memory"])}

    def decode(self, features: dict[str, Tensor], size: Sequence[int]) -> Tensor:
        sizes = [[feature_size(s, tap) for s in size] for tap in ("relu3_1", "relu2_1", "relu1_1")]
        return run_with_crops(self.decoder, features["hs"], sizes)

    def reset_random(self, generator: torch.Generator) -> None:
        """The official initialisation: Xavier-uniform for every transformer matrix (``_reset_parameters``), PyTorch's
        defaults elsewhere (conv / linear kaiming-uniform, biases uniform ±1/√fan_in, LayerNorm 1/0), seeded."""
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    fan_in = module.weight[0].numel()
                    bound = 1.0 / math.sqrt(fan_in)
                    module.weight.uniform_(-bound, bound, generator=generator)
                    module.bias.uniform_(-bound, bound, generator=generator)
            for module in self.modules():
                if isinstance(module, nn.MultiheadAttention):  # its own reset: projection biases 0
                    module.in_proj_bias.zero_()
                    module.out_proj.bias.zero_()
            for p in self.transformer.parameters():
                if p.dim() > 1:
                    fan_out, fan_in = p.shape[0] * p[0, 0].numel(), p[0].numel()
                    bound = math.sqrt(6.0 / (fan_in + fan_out))
                    p.uniform_(-bound, bound, generator=generator)


def build_stytr2(*, attention_backend: str = "sdpa") -> StyTr2Net:
    return StyTr2Net(attention_backend)


from ._registry import register_method  # noqa: E402
from .weights import WeightFile  # noqa: E402

STYTR2_COMMIT = "c11ea32913d16dbf2f9a1f82ac077dbf90f143c6"
STYTR2_WEIGHTS = {
    "embedding": WeightFile(
        "embedding_iter_160000.pth", google_drive_id="1C3xzTOWx8dUXXybxZwmjijZN8SrC3e4B",
        description="StyTr² patch embedding (official, README: Google Drive 'vit_embedding'; no published checksum)",
    ),
    "transformer": WeightFile(
        "transformer_iter_160000.pth", google_drive_id="1dnobsaLeE889T_LncCkAA2RkqzwsfHYy",
        description="StyTr² transformer (official, README: Google Drive 'Transformer_module'; no published checksum)",
    ),
    "decoder": WeightFile(
        "decoder_iter_160000.pth", google_drive_id="1fIIVMTA_tPuaAAFtqizr6sd1XV7CX6F9",
        description="StyTr² decoder (official, README: Google Drive 'decoder'; no published checksum)",
    ),
}
register_method(
    "StyTr2",
    weights=STYTR2_WEIGHTS,
    encoder_weights=None,
    paper="Deng, Tang, Dong, Ma, Pan, Wang, Xu. StyTr²: Image Style Transfer with Transformers. CVPR 2022",
    code_url=f"https://github.com/diyiiyiii/StyTR-2 (commit {STYTR2_COMMIT[:7]})",
    summary="transformer on 8×8 patches (content-aware positional encoding), AdaIN's decoder layout; no VGG at "
            "inference",
    encoder_layers=(),
    default_size=512,
    licence="official code and weights: no licence file in the repository (research use)",
    trainable=False,
)(build_stytr2)
