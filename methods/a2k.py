"""All-to-key attention (StyA2K, ICCV 2023): distributed attention (DA), progressive attention (PA) and the module.

Everything here follows the official code (spec §4). The functional pieces take feature maps and are reused by the
non-parametric A2K* training loss, whose queries/keys/values have no convolutions and whose key and value widths differ.

Layouts: blocking with side ``p`` gives n blocks (row-major over the block grid) of r = p² positions (row-major inside a
block). The module works on *tokens* (B, n, r, C), channels last (:func:`methods.ops.to_tokens`): its 1×1
convolutions are single GEMMs there (:func:`methods.ops.pointwise`) and the attention reads heads as strided views.
PA's style blocks are kept per head, (B, h, n, r, d) (:func:`head_blocks`), so that a block is one contiguous row for
step 1's scores and step 2's gather. :func:`aggregate_blocks` (the official DA step 1 on projected keys, used by the
A2K* loss and the attention maps) takes (B, h, d, n, r). Dot products run over the d channels of one head. There is
no 1/√d scaling anywhere.

General sizes (the official code handles only square maps of equal size whose sides are multiples of p, spec §3.1):

* content and style may have different sizes, so different block counts n_c and n_s: DA attends over the n_s style
  block centres, PA step 1 scores every content block against every style block (n_c × n_s) and gathers by index.
* ``remainder="zeros"`` (official): floor tiling; in the bottom/right strip not covered by whole blocks the DA and PA
  maps are 0, so the module returns ``fusion1.bias + fusion2.bias + Fc`` there (bit-compatible with the official
  ``unfold``/``fold``). ``remainder="reflect"``: the projected maps are padded (reflect; replicate along an axis too
  small to reflect) up to a multiple of p and the result is cropped back, so every position is attended.
* without PA step 1 (ablation), content block (i, j) attends inside the style block at the same relative location
  (``floor(i·gh_s/gh_c), floor(j·gw_s/gw_c)``), which is the identity when both grids are equal.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import (attention, block_grid, from_tokens, heads_view, map_as_blocks, mean_variance_norm, normalised_tokens,
                  per_style, pointwise, tokens_as_map, to_tokens)

DANormaliser = Literal["r+1", "n", "p"]
Remainder = Literal["zeros", "reflect"]

DA_NORMALISERS: dict[str, str] = {
    "r+1": "official code: divide by r + 1 (r = p² points per block; the block centre is the (r+1)-th term)",
    "n": "paper Eq. 8: divide by n, the number of points per block (= r = p²)",
    "p": "supplement Algorithm 1: divide by p_size, the block side p",
}
PA_STEP1_CHUNK_ELEMENTS = 1 << 24
"""PA step 1 keeps at most this many block-to-block scores alive at once (an argmax needs no more)."""
STEP2_CHUNK_ELEMENTS = 1 << 22
"""PA runs over chunks of content blocks: at most this many elements (16 MiB in fp32) of one chunk's flattened step-1
queries, or of step 2's gathered keys, are alive at once, instead of full copies of the content-sized maps."""


def _da_denominator(normaliser: str, side: int) -> float:
    if normaliser == "r+1":
        return side * side + 1.0
    if normaliser == "n":
        return float(side * side)
    if normaliser == "p":
        return float(side)
    raise ValueError(f"unknown DA normaliser {normaliser!r}; choose one of: {', '.join(DA_NORMALISERS)}")


def _block_chunks(n_blocks: int, elements_per_block: int, budget: int) -> list[slice]:
    """Consecutive slices over ``n_blocks`` blocks with at most ``budget`` elements each (at least one block)."""
    step = max(1, budget // max(1, elements_per_block))
    return [slice(start, min(start + step, n_blocks)) for start in range(0, n_blocks, step)]


def aggregate_blocks(
    keys: Tensor, values: Tensor, alpha: Tensor | float, beta: Tensor | float, normaliser: str = "r+1"
) -> tuple[Tensor, Tensor]:
    """DA step 1, regional style aggregation. keys (B, h, dk, n, r), values (B, h, dv, n, r) → K̂ (B, h, dk, n), V̂ (B, h, dv, n).

    ``w[z, y] = sigmoid(β + α·⟨μK[z], K[z, y]⟩)``; ``K̂[z] = (Σ_y w·K[z, y] + μK[z]) / D``, V̂ likewise with the *key*
    weights; D = r + 1 (official), r (paper) or p (Algorithm 1).
    """
    r = keys.shape[-1]
    side = int(round(r**0.5))
    mean_k = keys.mean(dim=-1)
    mean_v = values.mean(dim=-1)
    similarity = torch.einsum("bhdn,bhdnr->bhnr", mean_k, keys)
    weight = torch.sigmoid(beta + alpha * similarity)
    denominator = _da_denominator(normaliser, side)
    k_hat = (torch.einsum("bhnr,bhdnr->bhdn", weight, keys) + mean_k) / denominator
    v_hat = (torch.einsum("bhnr,bhdnr->bhdn", weight, values) + mean_v) / denominator
    return k_hat, v_hat


def match_blocks(
    queries: Tensor, keys: Tensor, chunk_elements: int = PA_STEP1_CHUNK_ELEMENTS,
    query_chunk_elements: int = STEP2_CHUNK_ELEMENTS,
) -> Tensor:
    """PA step 1, coarse block matching. queries (B, h, n_c, r, d), keys (B, h, n_s, r, d) → index (B, h, n_c).

    ``S[x, z] = Σ_{y, d} Q[x, y, d] K[z, y, d]`` (flattened blocks, positions aligned), ``m[x] = argmax_z S[x, z]`` per
    sample and head; ties go to the first index. Any strides (e.g. :func:`methods.ops.heads_view` of tokens).
    Computed over content-block chunks (at most ``chunk_elements`` scores and ``query_chunk_elements`` flattened
    queries alive), so memory stays bounded.
    """
    b, h, n_c, r, d = queries.shape
    n_s = keys.shape[2]
    k_flat = keys.reshape(b, h, n_s, r * d).transpose(-1, -2)
    step = max(1, min(chunk_elements // max(1, b * h * n_s), query_chunk_elements // max(1, b * h * d * r)))
    return torch.cat([
        (queries[:, :, blocks].reshape(b, h, -1, r * d) @ k_flat).argmax(dim=-1)
        for blocks in _block_chunks(n_c, 1, step)
    ], dim=2)


def same_location_index(content_grid: tuple[int, int], style_grid: tuple[int, int], device=None) -> Tensor:
    """Index (n_c,) of the style block at the same relative location as each content block (PA without step 1)."""
    (gh_c, gw_c), (gh_s, gw_s) = content_grid, style_grid
    rows = torch.arange(gh_c, device=device) * gh_s // gh_c
    cols = torch.arange(gw_c, device=device) * gw_s // gw_c
    return (rows[:, None] * gw_s + cols[None, :]).reshape(-1)


def _pad_to_multiple(x: Tensor, side: int) -> Tensor:
    """Pad the bottom/right of x (B, C, H, W) up to multiples of ``side``: reflect, or replicate along an axis whose
    size is too small to reflect (reflection needs pad < size)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % side, -w % side
    if pad_h:
        x = F.pad(x, (0, 0, 0, pad_h), mode="reflect" if pad_h < h else "replicate")
    if pad_w:
        x = F.pad(x, (0, pad_w, 0, 0), mode="reflect" if pad_w < w else "replicate")
    return x


def _check_style_blocks(style_hw: tuple[int, int], side: int) -> None:
    if style_hw[0] < side or style_hw[1] < side:
        raise ValueError(
            f"style feature map {style_hw[0]}×{style_hw[1]} is smaller than the block side {side}: no whole block to "
            "attend to (use a larger style image or remainder='reflect')"
        )


# --------------------------------------------------------------------------------------------------------------------
# The kernels on tokens (B, n, r, C). Both branches only ever see whole blocks, and 1×1 convolutions and per-position
# attention commute with blocking, so the module projects, attends and fuses on tokens and adds the result to Fc
# once; the map-level functions below wrap the same kernels.
# --------------------------------------------------------------------------------------------------------------------


def aggregate_projected(
    ns: Tensor, fs: Tensor, key_conv: nn.Conv2d, value_conv: nn.Conv2d, heads: int, alpha: Tensor | float,
    beta: Tensor | float, normaliser: str = "r+1",
) -> tuple[Tensor, Tensor]:
    """DA step 1 of the module without projecting every style position: ns (B, n, r, C) normalised style tokens,
    fs (B, n, r, Cv) style tokens → K̂ (B, h, d, n), V̂ (B, h, dv, n), equal to :func:`aggregate_blocks` of
    ``key_conv(ns)``, ``value_conv(fs)`` split into heads.

    With K = W·ns + b per head (W: d × C), ``μK = W·μns + b`` and ``⟨μK, K[y]⟩ = ⟨Wᵀ·μK, ns[y]⟩ + ⟨μK, b⟩``, and
    ``Σ_y w[y]·K[y] = W·(Σ_y w[y]·ns[y]) + b·Σ_y w[y]`` (V likewise with the key weights): the per-position work is
    three weighted sums over the C input channels per head instead of two C×C projections (≈ 10× fewer MACs at
    C = 256, r = 64, h = 8). Same function, different float rounding.
    """
    b, n, r = ns.shape[:3]
    k_weight, v_weight = (conv.weight.reshape(heads, -1, conv.weight.shape[1]) for conv in (key_conv, value_conv))
    d, dv = k_weight.shape[1], v_weight.shape[1]

    def mean_projection(conv: nn.Conv2d, tokens: Tensor, width: int) -> Tensor:  # (B, n, h, width)
        return F.linear(tokens.mean(dim=2), conv.weight.flatten(1), conv.bias).reshape(b, n, heads, width)

    mean_k, mean_v = mean_projection(key_conv, ns, d), mean_projection(value_conv, fs, dv)
    similarity = torch.einsum("bnhd,hdc->bnhc", mean_k, k_weight) @ ns.transpose(-1, -2)  # (B, n, h, r)
    if key_conv.bias is not None:
        similarity = similarity + (mean_k * key_conv.bias.reshape(heads, d)).sum(dim=-1, keepdim=True)
    weight = torch.sigmoid(beta + alpha * similarity)
    weight_sum = weight.sum(dim=-1, keepdim=True)  # (B, n, h, 1)
    denominator = _da_denominator(normaliser, int(round(r**0.5)))

    def aggregated(conv: nn.Conv2d, tokens: Tensor, proj: Tensor, mean: Tensor) -> Tensor:  # (B, h, width, n)
        out = torch.einsum("bnhc,hdc->bnhd", weight @ tokens, proj) + mean
        if conv.bias is not None:
            out = out + conv.bias.reshape(heads, -1) * weight_sum
        return (out / denominator).permute(0, 2, 3, 1)

    return aggregated(key_conv, ns, k_weight, mean_k), aggregated(value_conv, fs, v_weight, mean_v)


def attend_aggregated(q: Tensor, k_hat: Tensor, v_hat: Tensor, backend: str = "sdpa") -> Tensor:
    """DA step 2: q (B, n_c, r, Cq) content query tokens, K̂ (B, h, d, n_s), V̂ (B, h, dv, n_s) → (B, n_c, r, h·dv).

    Softmax over the n_s aggregated keys, no scaling, through :func:`methods.ops.attention` on the queries viewed as
    heads (no copy; the fused kernels never build the L × n_s scores).
    """
    b, n_c, r, cq = q.shape
    heads = k_hat.shape[1]
    keys, values = (t.transpose(-1, -2).contiguous() for t in (k_hat, v_hat))  # (B, h, n_s, d), (B, h, n_s, dv)
    queries = q.reshape(b, n_c * r, heads, cq // heads).transpose(1, 2)  # (B, h, L, d) view
    out = attention(queries, keys.expand(b, -1, -1, -1), values.expand(b, -1, -1, -1), backend=backend)
    return out.transpose(1, 2).reshape(b, n_c, r, -1)


def head_blocks(tokens: Tensor, heads: int) -> Tensor:
    """Tokens (B, n, r, C) → (B, h, n, r, d) contiguous: each head's block is one run of r·d values, which PA's
    step-1 scores read as a row and step 2 gathers with one row copy per block."""
    return heads_view(tokens, heads).contiguous()


def _block_rows(blocks: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """blocks (B, h, n_s, r, d), index (B, h, n_c) → (rows (B·h·n_s or h·n_s, r·d), row of each (b, x, h): (B·n_c, h)).

    A style broadcast over the batch (batch stride 0, :func:`methods.ops.per_style`) is read from its one copy."""
    b, h, n_s = blocks.shape[:3]
    heads = torch.arange(h, device=index.device) * n_s
    picks = index.permute(0, 2, 1) + heads  # (B, n_c, h): row inside one sample's h·n_s rows
    if b > 1 and blocks.stride(0) != 0:
        picks = picks + (torch.arange(b, device=index.device) * (h * n_s))[:, None, None]
        rows = blocks.reshape(b * h * n_s, -1)
    else:
        rows = blocks[0].reshape(h * n_s, -1)
    return rows, picks.reshape(-1, h)


def progressive_attention_tokens(q: Tensor, keys: Tensor, values: Tensor, index: Tensor | None = None,
                                 backend: str = "sdpa") -> Tensor:
    """PA: q (B, n_c, r, Cq) content query tokens, keys (B, h, n_s, r, d), values (B, h, n_s, r, dv) style
    :func:`head_blocks` → (B, n_c, r, h·dv).

    Step 1 picks for each content block the best style block (:func:`match_blocks`, hard argmax, per head) unless
    ``index`` (B, h, n_c) or (n_c,) is given; step 2 lets each query attend to the r keys of its matched block (softmax
    over r, no scaling), over chunks of (sample, content block) pairs so that only one chunk's matched keys and
    values are gathered (one row copy per block and head).
    """
    b, n_c, r, cq = q.shape
    h, d, dv = keys.shape[1], keys.shape[-1], values.shape[-1]
    index = match_blocks(heads_view(q, h), keys) if index is None else index.expand(b, h, n_c)
    key_rows, picks = _block_rows(keys, index)
    value_rows, _ = _block_rows(values, index)
    queries = q.reshape(b * n_c, r, h, d).transpose(1, 2)  # (B·n_c, h, r, d) view
    out = q.new_empty(b * n_c, r, h * dv)
    for pairs in _block_chunks(b * n_c, h * r * max(d, dv), STEP2_CHUNK_ELEMENTS):
        rows = picks[pairs].reshape(-1)
        k = torch.index_select(key_rows, 0, rows).reshape(-1, h, r, d)
        v = torch.index_select(value_rows, 0, rows).reshape(-1, h, r, dv)
        out[pairs] = attention(queries[pairs], k, v, backend=backend).transpose(1, 2).reshape(-1, r, h * dv)
        del k, v
    return out.reshape(b, n_c, r, h * dv)


def _normalised_tokens(x: Tensor, side: int, remainder: Remainder, style: bool = False) -> Tensor:
    """Tokens (B, n, r, C) of N(x): reflect mode pads the normalised map first; zeros mode checks a ``style`` map."""
    if remainder == "reflect":
        return to_tokens(_pad_to_multiple(mean_variance_norm(x), side), side)
    if style:
        _check_style_blocks(x.shape[-2:], side)
    return normalised_tokens(x, side)


def _padded_or_checked(x: Tensor, side: int, remainder: Remainder, style: bool = False) -> Tensor:
    """Reflect mode pads ``x`` up to a multiple of ``side``; zeros mode checks that a ``style`` map has a block."""
    if remainder == "reflect":
        return _pad_to_multiple(x, side)
    if style:
        _check_style_blocks(x.shape[-2:], side)
    return x


def _grid(hw: Sequence[int], side: int, remainder: Remainder) -> tuple[int, int]:
    """The block grid of a map of size ``hw``: floor tiling (zeros mode) or that of the padded map (reflect mode)."""
    if remainder == "reflect":
        hw = tuple(-(-n // side) * side for n in hw)
    return block_grid(hw[0], hw[1], side)


def _token_inputs(q: Tensor, k: Tensor, v: Tensor, side: int, remainder: Remainder
                  ) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[int, int], tuple[int, int]]:
    """Pad (reflect) or check (zeros) maps q, k, v and cut them into tokens → ((qt, kt, vt), content grid, style grid)."""
    grids = _grid(q.shape[-2:], side, remainder), _grid(k.shape[-2:], side, remainder)
    q, v = _padded_or_checked(q, side, remainder), _padded_or_checked(v, side, remainder)
    k = _padded_or_checked(k, side, remainder, style=True)
    return tuple(to_tokens(t, side) for t in (q, k, v)), *grids


def _untokened(tokens: Tensor, side: int, grid: tuple[int, int], size: tuple[int, int], remainder: Remainder) -> Tensor:
    """(B, n_c, r, C) → (B, C, *size): reflect mode crops the padding, zeros mode fills the untiled strip with 0."""
    if remainder == "reflect":
        return from_tokens(tokens, side, grid)[:, :, : size[0], : size[1]]
    return from_tokens(tokens, side, grid, size=size)


def distributed_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    side: int,
    heads: int,
    alpha: Tensor | float = 1.0,
    beta: Tensor | float = 0.0,
    normaliser: str = "r+1",
    remainder: Remainder = "zeros",
    backend: str = "sdpa",
) -> Tensor:
    """DA on feature maps: q (B, Cq, Hc, Wc) content queries, k (B, Cq, Hs, Ws), v (B, Cv, Hs, Ws) → (B, Cv, Hc, Wc)
    (:func:`aggregate_blocks` and :func:`attend_aggregated` on the maps' tokens)."""
    size = q.shape[-2:]
    (qt, kt, vt), grid_c, _ = _token_inputs(q, k, v, side, remainder)
    if grid_c[0] * grid_c[1] == 0:  # content map smaller than one block: official floor tiling attends nowhere
        return q.new_zeros(q.shape[0], v.shape[1], *size)
    k_hat, v_hat = aggregate_blocks(*(heads_view(t, heads).permute(0, 1, 4, 2, 3) for t in (kt, vt)), alpha, beta,
                                    normaliser)
    return _untokened(attend_aggregated(qt, k_hat, v_hat, backend), side, grid_c, size, remainder)


def progressive_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    side: int,
    heads: int,
    step1: bool = True,
    remainder: Remainder = "zeros",
    backend: str = "sdpa",
) -> Tensor:
    """PA on feature maps: q (B, Cq, Hc, Wc), k (B, Cq, Hs, Ws), v (B, Cv, Hs, Ws) → (B, Cv, Hc, Wc)
    (:func:`progressive_attention_tokens` on the maps' tokens). ``step1=False`` is the "w/o step 1 of PA" ablation
    (same-location block, :func:`same_location_index`)."""
    size = q.shape[-2:]
    (qt, kt, vt), grid_c, grid_s = _token_inputs(q, k, v, side, remainder)
    if grid_c[0] * grid_c[1] == 0:
        return q.new_zeros(q.shape[0], v.shape[1], *size)
    index = None if step1 else same_location_index(grid_c, grid_s, device=q.device)
    out = progressive_attention_tokens(qt, head_blocks(kt, heads), head_blocks(vt, heads), index, backend)
    return _untokened(out, side, grid_c, size, remainder)


class A2KAttention(nn.Module):
    """The parametric A2K module with the official parameter names (spec §4.1, §5.1), so official files load strictly.

    ``forward(fc, fs)``: raw content and style features (B, C, Hc, Wc), (B, C, Hs, Ws) → (B, C, Hc, Wc)::

        F_cs = fusion1(DA(q(N(Fc)), k(N(Fs)), v(Fs))) + fusion2(PA(q2(N(Fc)), k2(N(Fs)), v2(Fs))) + Fc

    Ablations (spec §9) drop a branch's parameters entirely (``use_da=False`` has no q, k, v, fusion1, sim_alpha,
    sim_beta) or replace PA step 1 by the same-location block (``pa_step1=False``); ``heads=1`` is the single-head one.
    """

    def __init__(
        self,
        channels: int,
        block_side: int,
        heads: int = 8,
        use_da: bool = True,
        use_pa: bool = True,
        pa_step1: bool = True,
        da_normaliser: DANormaliser = "r+1",
        remainder: Remainder = "zeros",
        backend: str = "sdpa",
    ) -> None:
        super().__init__()
        if not (use_da or use_pa):
            raise ValueError("an A2K module needs at least one of DA and PA")
        if channels % heads:
            raise ValueError(f"{channels} channels cannot be split into {heads} heads")
        _da_denominator(da_normaliser, block_side)  # validates the name
        if remainder not in ("zeros", "reflect"):
            raise ValueError(f"unknown remainder mode {remainder!r}; choose 'zeros' (official) or 'reflect'")
        self.channels, self.block_side, self.heads = channels, block_side, heads
        self.use_da, self.use_pa, self.pa_step1 = use_da, use_pa, pa_step1
        self.da_normaliser, self.remainder, self.backend = da_normaliser, remainder, backend
        conv = lambda: nn.Conv2d(channels, channels, kernel_size=1)  # noqa: E731
        if use_da:
            self.sim_alpha = nn.Parameter(torch.ones(1))
            self.sim_beta = nn.Parameter(torch.zeros(1))
            self.q, self.k, self.v = conv(), conv(), conv()
        if use_pa:
            self.q2, self.k2, self.v2 = conv(), conv(), conv()
        if use_da:
            self.fusion1 = conv()
        if use_pa:
            self.fusion2 = conv()

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, block_side={self.block_side}, heads={self.heads}, use_da={self.use_da}, "
            f"use_pa={self.use_pa}, pa_step1={self.pa_step1}, da_normaliser={self.da_normaliser!r}, "
            f"remainder={self.remainder!r}"
        )

    def style_state(self, fs: Tensor) -> dict[str, Tensor]:
        """The style-only half of :meth:`forward`, computed once per style and reusable for any content:
        fs (S, C, Hs, Ws) → ``k_hat``, ``v_hat``: DA step 1's aggregated keys and values (S, h, d, n_s)
        (:func:`aggregate_projected`), and ``pa_keys``, ``pa_values``: PA's projected style blocks (S, h, n_s, r, d)
        (:func:`head_blocks`) (only the branches the module has)."""
        side = self.block_side
        ns = _normalised_tokens(fs, side, self.remainder, style=True)
        fs_t = to_tokens(_padded_or_checked(fs, side, self.remainder, style=True), side)
        state: dict[str, Tensor] = {}
        if self.use_da:
            state["k_hat"], state["v_hat"] = aggregate_projected(
                ns, fs_t, self.k, self.v, self.heads, self.sim_alpha, self.sim_beta, self.da_normaliser)
        if self.use_pa:
            state["pa_keys"] = head_blocks(pointwise(self.k2, ns), self.heads)
            state["pa_values"] = head_blocks(pointwise(self.v2, fs_t), self.heads)
        return state

    def forward(self, fc: Tensor | None, fs: Tensor,
                style_state: dict[str, Tensor] | None = None) -> Tensor | dict[str, Tensor]:
        """fc (B, C, Hc, Wc), fs (B, C, Hs, Ws) → (B, C, Hc, Wc), the official computation in the token layout.

        ``style_state``: :meth:`style_state` of ``fs`` computed earlier (a style reused across contents); without it
        the style half runs here first. ``fc=None`` runs only the style half and returns :meth:`style_state` (through
        the module call, so hooks, the FLOP counter and the module timings see it as the attention's work).

        The normalised and padded (reflect mode) content N(Fc) is cut into tokens (B, n_c, r, C) once; both branches
        project (:func:`methods.ops.pointwise`; 1×1 convolutions act per position, so blocking commutes with them),
        attend and fuse there, and the fused sum is added to Fc in one pass. Every buffer is dropped after its last
        use, so at most a few content-sized maps are alive at once. In the untiled strip of ``remainder="zeros"``
        the branches are 0, so the result there is ``fusion1.bias + fusion2.bias + Fc``, as in the official code.
        """
        if fc is None:
            return self.style_state(fs)
        side, size = self.block_side, fc.shape[-2:]
        state = dict(per_style(self.style_state, fs) if style_state is None else style_state)
        grid_c = _grid(size, side, self.remainder)
        if grid_c[0] * grid_c[1] == 0:  # content map smaller than one block: both branches are 0 everywhere
            return self._fusion_bias()[None, :, None, None] + fc
        nc = _normalised_tokens(fc, side, self.remainder)
        lean = not torch.is_grad_enabled()
        fused = None
        if self.use_da:
            da = attend_aggregated(pointwise(self.q, nc), state.pop("k_hat"), state.pop("v_hat"), self.backend)
            fused = pointwise(self.fusion1, da)
            del da
        if self.use_pa:
            queries = pointwise(self.q2, nc)
            del nc
            index = None if self.pa_step1 else same_location_index(grid_c, _grid(fs.shape[-2:], side, self.remainder),
                                                                      device=fc.device)
            pa = progressive_attention_tokens(queries, state.pop("pa_keys"), state.pop("pa_values"), index,
                                              self.backend)
            del queries
            branch = pointwise(self.fusion2, pa)
            del pa
            fused = branch if fused is None else (fused.add_(branch) if lean else fused + branch)
            del branch
        return self._plus_content(fused, fc, grid_c, lean)

    def _plus_content(self, fused: Tensor, fc: Tensor, grid_c: tuple[int, int], lean: bool) -> Tensor:
        """Fused tokens (B, n_c, r, C) + Fc (B, C, Hc, Wc) → (B, C, Hc, Wc); without autograd in one pass into a
        map of Fc's layout. Reflect mode crops the padding; zeros mode adds the fusion biases in the untiled strip."""
        side, size = self.block_side, tuple(fc.shape[-2:])
        if self.remainder == "reflect":
            return from_tokens(fused, side, grid_c)[:, :, : size[0], : size[1]] + fc
        tiled_h, tiled_w = grid_c[0] * side, grid_c[1] * side
        if (tiled_h, tiled_w) == size:
            if not lean:
                return from_tokens(fused, side, grid_c) + fc
            out = torch.empty_like(fc)
            torch.add(map_as_blocks(fc, side), tokens_as_map(fused, side, grid_c), out=map_as_blocks(out, side))
            return out
        out = fc + self._fusion_bias()[None, :, None, None]  # the untiled strip: fusion1(0) + fusion2(0) + Fc
        out[:, :, :tiled_h, :tiled_w] = from_tokens(fused, side, grid_c) + fc[:, :, :tiled_h, :tiled_w]
        return out

    def _fusion_bias(self) -> Tensor:
        """(C,) what the fused branches are where no block reaches: fusion1(0) + fusion2(0) = the biases' sum."""
        biases = [getattr(self, name).bias for name in ("fusion1", "fusion2") if hasattr(self, name)]
        return biases[0] if len(biases) == 1 else biases[0] + biases[1]
