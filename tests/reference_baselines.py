"""Slow, deliberately plain reference implementations of the baselines, written from the official code's semantics
(MicroAST: EndyWon/MicroAST ``net_microAST.py``), NOT from ``methods/``.

Each works on the official state dicts directly with ``torch.nn.functional`` (no ``nn.Module`` of the project), and
computes statistics with explicit loops over samples and channels (:func:`ref_mean_std`). Use small inputs.
"""
from __future__ import annotations

import math
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


# --------------------------------------------------------------------------------------------- AdaAttN (spec §10.2)
def _ref_mvn(x: Tensor) -> Tensor:
    mean, std = ref_mean_std(x)
    return (x - mean) / std


def ref_get_key(feats: list[Tensor], last: int) -> Tensor:
    """Official ``get_key(feats, last_layer_idx, need_shallow=True)``: nearest-resized shallower maps, each
    normalised, concatenated shallowest first."""
    h, w = feats[last].shape[-2:]
    parts = [_ref_mvn(F.interpolate(feats[i], (h, w))) for i in range(last)]
    return torch.cat(parts + [_ref_mvn(feats[last])], dim=1)


def ref_adaattn_module(content: Tensor, style: Tensor, content_key: Tensor, style_key: Tensor, state: State,
                       prefix: str, max_sample: int, seed: int | None) -> Tensor:
    """Official ``networks.AdaAttN.forward``, including its global ``torch.manual_seed(seed)`` + ``randperm``."""
    conv = lambda x, name: F.conv2d(x, state[f"{prefix}{name}.weight"], state[f"{prefix}{name}.bias"])  # noqa: E731
    Fk, G, H = conv(content_key, "f"), conv(style_key, "g"), conv(style, "h")
    b, _, h_g, w_g = G.shape
    G = G.reshape(b, -1, w_g * h_g)
    if w_g * h_g > max_sample:
        if seed is not None:
            torch.manual_seed(seed)
        index = torch.randperm(w_g * h_g)[:max_sample]
        G = G[:, :, index]
        style_flat = H.reshape(b, -1, w_g * h_g)[:, :, index].transpose(1, 2)
    else:
        style_flat = H.reshape(b, -1, w_g * h_g).transpose(1, 2)
    b, _, h, w = Fk.shape
    Fk = Fk.reshape(b, -1, w * h).permute(0, 2, 1)
    S = torch.softmax(torch.bmm(Fk, G), dim=-1)
    mean = torch.bmm(S, style_flat)
    std = torch.sqrt(torch.relu(torch.bmm(S, style_flat ** 2) - mean ** 2))
    mean = mean.reshape(b, h, w, -1).permute(0, 3, 1, 2)
    std = std.reshape(b, h, w, -1).permute(0, 3, 1, 2)
    return std * _ref_mvn(content) + mean


def _pad_conv(x: Tensor, state: State, key: str) -> Tensor:
    return F.conv2d(F.pad(x, [1, 1, 1, 1], mode="reflect"), state[f"{key}.weight"], state[f"{key}.bias"])


def ref_attention_decoder(cs: Tensor, skip3: Tensor, state: State) -> Tensor:
    """Official ``networks.Decoder(skip_connection_3=True)`` (also StyA2K's decoder), on sides where no crop occurs."""
    x = F.interpolate(torch.relu(_pad_conv(cs, state, "decoder_layer_1.1")), scale_factor=2, mode="nearest")
    x = torch.cat([x, skip3], dim=1)
    for key, up in (("1", False), ("4", False), ("7", False), ("10", True), ("14", False), ("17", True),
                    ("21", False)):
        x = torch.relu(_pad_conv(x, state, f"decoder_layer_2.{key}"))
        if up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
    return _pad_conv(x, state, "decoder_layer_2.24")


def ref_adaattn(content_feats: list[Tensor], style_feats: list[Tensor], states: Mapping[str, State],
                max_sample_3: int = 64 * 64, max_sample_45: int = 256 * 256, seed: int = 6666) -> Tensor:
    """Official ``AdaAttNModel.forward`` from VGG features relu1_1..relu5_1 (lists of 5) with the released options
    ``--skip_connection_3 --shallow_layer``; content sides must be multiples of 16 (as the official code needs)."""
    c, s = content_feats, style_feats
    a3 = ref_adaattn_module(c[2], s[2], ref_get_key(c, 2), ref_get_key(s, 2), states["adaattn_3"], "",
                            max_sample_3, seed)
    tr = states["transformer"]
    a4 = ref_adaattn_module(c[3], s[3], ref_get_key(c, 3), ref_get_key(s, 3), tr, "attn_adain_4_1.",
                            max_sample_45, seed)
    a5 = ref_adaattn_module(c[4], s[4], ref_get_key(c, 4), ref_get_key(s, 4), tr, "attn_adain_5_1.",
                            max_sample_45, seed)
    merged = _pad_conv(a4 + F.interpolate(a5, scale_factor=2, mode="nearest"), tr, "merge_conv")
    return ref_attention_decoder(merged, a3, states["decoder"])


# --------------------------------------------------------------------------------------------- the AdaIN decoder layout
def ref_adain_decoder(x: Tensor, state: State) -> Tensor:
    """The AdaIN decoder (``nn.Sequential`` keys 1 … 28; nearest ×2 after 1, 14 and 21), shared by SANet and StyTr²."""
    for key, up in (("1", True), ("5", False), ("8", False), ("11", False), ("14", True), ("18", False),
                    ("21", True), ("25", False)):
        x = torch.relu(_pad_conv(x, state, key))
        if up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
    return _pad_conv(x, state, "28")


# --------------------------------------------------------------------------------------------- SANet (the port)
def ref_sanet_module(content: Tensor, style: Tensor, state: State, prefix: str) -> Tensor:
    """The port's ``SANet.forward``: explicit softmax over every style position, bmm, out_conv, residual."""
    conv = lambda x, name: F.conv2d(x, state[f"{prefix}{name}.weight"], state[f"{prefix}{name}.bias"])  # noqa: E731
    Fq, G, H = conv(_ref_mvn(content), "f"), conv(_ref_mvn(style), "g"), conv(style, "h")
    b, c, h, w = Fq.shape
    S = torch.softmax(torch.bmm(Fq.reshape(b, -1, w * h).permute(0, 2, 1), G.reshape(b, -1, G.shape[2] * G.shape[3])),
                      dim=-1)
    O = torch.bmm(H.reshape(b, -1, H.shape[2] * H.shape[3]), S.permute(0, 2, 1)).reshape(b, c, h, w)
    return conv(O, "out_conv") + content


def ref_sanet(c4: Tensor, s4: Tensor, c5: Tensor, s5: Tensor, transform: State, decoder: State) -> Tensor:
    """The port's ``decoder(transform(c4, s4, c5, s5))`` on sides that are multiples of 16."""
    merged = _pad_conv(ref_sanet_module(c4, s4, transform, "sanet4_1.")
                       + F.interpolate(ref_sanet_module(c5, s5, transform, "sanet5_1."), scale_factor=2,
                                       mode="nearest"), transform, "merge_conv")
    return ref_adain_decoder(merged, decoder)


# --------------------------------------------------------------------------------------------- StyTr² (official)
def _mha(state: State, prefix: str, dtype: torch.dtype) -> torch.nn.MultiheadAttention:
    """torch's own ``nn.MultiheadAttention`` (what the official code calls) with the given parameters."""
    module = torch.nn.MultiheadAttention(512, 8, dropout=0.1).to(dtype).eval()
    module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return module


def _layer_norm(x: Tensor, state: State, key: str) -> Tensor:
    return F.layer_norm(x, (x.shape[-1],), state[f"{key}.weight"], state[f"{key}.bias"])


def _ffn(x: Tensor, state: State, key: str) -> Tensor:
    hidden = torch.relu(F.linear(x, state[f"{key}.linear1.weight"], state[f"{key}.linear1.bias"]))
    return F.linear(hidden, state[f"{key}.linear2.weight"], state[f"{key}.linear2.bias"])


def ref_stytr2(content: Tensor, style: Tensor, states: Mapping[str, State], cape_at_style: bool = True) -> Tensor:
    """The official ``StyTrans.forward`` at test time (sequence-first tokens, torch's MultiheadAttention, CAPE
    resized to the style's grid and the square-grid output reshape: valid where both images have equal square sides
    divisible by 8). ``cape_at_style=False`` resizes CAPE to the content's grid and keeps its (h, w) — the harness'
    rule for other sizes, where the image sides are multiples of 8."""
    emb, tr, dec = states["embedding"], states["transformer"], states["decoder"]
    dtype = content.dtype
    s_emb = F.conv2d(style, emb["proj.weight"], emb["proj.bias"], stride=8)
    c_emb = F.conv2d(content, emb["proj.weight"], emb["proj.bias"], stride=8)
    pos = F.conv2d(F.adaptive_avg_pool2d(c_emb, 18), tr["new_ps.weight"], tr["new_ps.bias"])
    pos = F.interpolate(pos, mode="bilinear", size=(s_emb if cape_at_style else c_emb).shape[-2:])
    seq = lambda x: x.flatten(2).permute(2, 0, 1)  # noqa: E731  (N·C·H·W → HW·N·C)
    s, c, pos = seq(s_emb), seq(c_emb), seq(pos)
    for i in range(3):
        key = f"encoder_s.layers.{i}"
        s = _layer_norm(s + _mha(tr, f"{key}.self_attn.", dtype)(s, s, value=s)[0], tr, f"{key}.norm1")
        s = _layer_norm(s + _ffn(s, tr, key), tr, f"{key}.norm2")
    for i in range(3):
        key = f"encoder_c.layers.{i}"
        q = c + pos
        c = _layer_norm(c + _mha(tr, f"{key}.self_attn.", dtype)(q, q, value=c)[0], tr, f"{key}.norm1")
        c = _layer_norm(c + _ffn(c, tr, key), tr, f"{key}.norm2")
    t = c
    for i in range(3):
        key = f"decoder.layers.{i}"
        t = _layer_norm(t + _mha(tr, f"{key}.self_attn.", dtype)(t + pos, s, s)[0], tr, f"{key}.norm1")
        t = _layer_norm(t + _mha(tr, f"{key}.multihead_attn.", dtype)(query=t + pos, key=s, value=s)[0], tr,
                        f"{key}.norm2")
        t = _layer_norm(t + _ffn(t, tr, key), tr, f"{key}.norm3")
    hs = _layer_norm(t, tr, "decoder.norm")
    n, b, ch = hs.shape
    if cape_at_style:
        side = int(math.sqrt(n))
        grid = hs.permute(1, 2, 0).reshape(b, ch, -1, side)
    else:
        grid = hs.permute(1, 2, 0).reshape(b, ch, *c_emb.shape[-2:])
    return ref_adain_decoder(grid, dec)
