"""All-to-key attention (StyA2K, ICCV 2023): distributed attention (DA), progressive attention (PA) and the module.

Everything here follows the official code (spec §4). The functional pieces take feature maps and are reused by the
non-parametric A2K* training loss, whose queries/keys/values have no convolutions and whose key and value widths differ.

Shapes: after blocking with side ``p`` and splitting into ``h`` heads a tensor is (B, h, d, n, r): n blocks (row-major
over the block grid), r = p² positions (row-major inside a block). Dot products run over the d channels of one head.
There is no 1/√d scaling anywhere.

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

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .ops import attention, block_grid, from_blocks, mean_variance_norm, merge_heads, split_heads, to_blocks

DANormaliser = Literal["r+1", "n", "p"]
Remainder = Literal["zeros", "reflect"]

DA_NORMALISERS: dict[str, str] = {
    "r+1": "official code: divide by r + 1 (r = p² points per block; the block centre is the (r+1)-th term)",
    "n": "paper Eq. 8: divide by n, the number of points per block (= r = p²)",
    "p": "supplement Algorithm 1: divide by p_size, the block side p",
}
PA_STEP1_CHUNK_ELEMENTS = 1 << 24
"""PA step 1 keeps at most this many block-to-block scores alive at once (an argmax needs no more)."""


def _da_denominator(normaliser: str, side: int) -> float:
    if normaliser == "r+1":
        return side * side + 1.0
    if normaliser == "n":
        return float(side * side)
    if normaliser == "p":
        return float(side)
    raise ValueError(f"unknown DA normaliser {normaliser!r}; choose one of: {', '.join(DA_NORMALISERS)}")


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


def match_blocks(queries: Tensor, keys: Tensor, chunk_elements: int = PA_STEP1_CHUNK_ELEMENTS) -> Tensor:
    """PA step 1, coarse block matching. queries (B, h, d, n_c, r), keys (B, h, d, n_s, r) → index (B, h, n_c).

    ``S[x, z] = Σ_{d, y} Q[d, x, y] K[d, z, y]`` (flattened blocks, positions aligned), ``m[x] = argmax_z S[x, z]`` per
    sample and head; ties go to the first index. Computed over content-block chunks so memory stays bounded.
    """
    b, h, d, n_c, r = queries.shape
    q_flat = queries.permute(0, 1, 3, 2, 4).reshape(b, h, n_c, d * r)
    k_flat = keys.permute(0, 1, 3, 2, 4).reshape(b, h, keys.shape[3], d * r).transpose(-1, -2)
    chunk = max(1, chunk_elements // max(1, b * h * keys.shape[3]))
    return torch.cat([(q @ k_flat).argmax(dim=-1) for q in q_flat.split(chunk, dim=2)], dim=2)


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
    """DA on feature maps: q (B, Cq, Hc, Wc) content queries, k (B, Cq, Hs, Ws), v (B, Cv, Hs, Ws) → (B, Cv, Hc, Wc).

    Step 1 aggregates each style block into one key/value (:func:`aggregate_blocks`); step 2 lets every content query
    attend to all n_s aggregated keys (softmax over blocks, no scaling). Step 2 does not depend on the query's block,
    so it runs on the query map directly through the memory-lean :func:`methods.ops.attention`.
    """
    hc, wc = q.shape[-2:]
    if remainder == "reflect":
        q, k, v = (_pad_to_multiple(t, side) for t in (q, k, v))
    else:
        _check_style_blocks(k.shape[-2:], side)
    k_hat, v_hat = aggregate_blocks(
        split_heads(to_blocks(k, side), heads), split_heads(to_blocks(v, side), heads), alpha, beta, normaliser
    )
    gh, gw = block_grid(q.shape[-2], q.shape[-1], side)
    tiled_h, tiled_w = gh * side, gw * side
    if gh * gw == 0:  # content map smaller than one block: official floor tiling attends nowhere
        return q.new_zeros(q.shape[0], v.shape[1], hc, wc)
    queries = split_heads(q[:, :, :tiled_h, :tiled_w], heads).flatten(3).transpose(-1, -2)  # (B, h, L, d)
    out = attention(queries, k_hat.transpose(-1, -2), v_hat.transpose(-1, -2), backend=backend)  # (B, h, L, dv)
    out = merge_heads(out.transpose(-1, -2)).reshape(q.shape[0], v.shape[1], tiled_h, tiled_w)
    if remainder == "reflect":
        return out[:, :, :hc, :wc]
    return F.pad(out, (0, wc - tiled_w, 0, hc - tiled_h))


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
    """PA on feature maps: q (B, Cq, Hc, Wc), k (B, Cq, Hs, Ws), v (B, Cv, Hs, Ws) → (B, Cv, Hc, Wc).

    Step 1 picks for each content block the best style block (:func:`match_blocks`, hard argmax, per head); step 2
    lets each query attend to the r keys of its matched block (softmax over r, no scaling). ``step1=False`` is the
    "w/o step 1 of PA" ablation (same-location block, :func:`same_location_index`).
    """
    hc, wc = q.shape[-2:]
    if remainder == "reflect":
        q, k, v = (_pad_to_multiple(t, side) for t in (q, k, v))
    else:
        _check_style_blocks(k.shape[-2:], side)
    grid_c = block_grid(q.shape[-2], q.shape[-1], side)
    grid_s = block_grid(k.shape[-2], k.shape[-1], side)
    if grid_c[0] * grid_c[1] == 0:  # content map smaller than one block: official floor tiling attends nowhere
        return q.new_zeros(q.shape[0], v.shape[1], hc, wc)
    qb = split_heads(to_blocks(q, side), heads)  # (B, h, d, n_c, r)
    kb = split_heads(to_blocks(k, side), heads)  # (B, h, d, n_s, r)
    vb = split_heads(to_blocks(v, side), heads)  # (B, h, dv, n_s, r)
    b, h, d, n_c, r = qb.shape
    if step1:
        index = match_blocks(qb, kb)  # (B, h, n_c)
    else:
        index = same_location_index(grid_c, grid_s, device=q.device).expand(b, h, n_c)
    keys = kb.permute(0, 1, 3, 4, 2)  # (B, h, n_s, r, d)
    values = vb.permute(0, 1, 3, 4, 2)  # (B, h, n_s, r, dv)
    gather = index[..., None, None]
    keys = torch.gather(keys, 2, gather.expand(b, h, n_c, r, d))
    values = torch.gather(values, 2, gather.expand(b, h, n_c, r, values.shape[-1]))
    queries = qb.permute(0, 1, 3, 4, 2)  # (B, h, n_c, r, d)
    out = attention(
        queries.reshape(b, h * n_c, r, d),
        keys.reshape(b, h * n_c, r, d),
        values.reshape(b, h * n_c, r, -1),
        backend=backend,
    )  # (B, h·n_c, r, dv)
    out = merge_heads(out.reshape(b, h, n_c, r, -1).permute(0, 1, 4, 2, 3))  # (B, Cv, n_c, r)
    if remainder == "reflect":
        return from_blocks(out, side, grid_c)[:, :, :hc, :wc]
    return from_blocks(out, side, grid_c, size=(hc, wc))


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

    def forward(self, fc: Tensor, fs: Tensor) -> Tensor:
        nc, ns = mean_variance_norm(fc), mean_variance_norm(fs)
        common = dict(side=self.block_side, heads=self.heads, remainder=self.remainder, backend=self.backend)
        branches = []
        if self.use_da:
            da = distributed_attention(
                self.q(nc), self.k(ns), self.v(fs), alpha=self.sim_alpha, beta=self.sim_beta,
                normaliser=self.da_normaliser, **common,
            )
            branches.append(self.fusion1(da))
        if self.use_pa:
            pa = progressive_attention(self.q2(nc), self.k2(ns), self.v2(fs), step1=self.pa_step1, **common)
            branches.append(self.fusion2(pa))
        return sum(branches[1:], branches[0]) + fc  # official order: fusion1(DA) + fusion2(PA) + Fc
