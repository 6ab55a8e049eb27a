"""Tensor operations shared by every method: feature statistics, blocking, head splitting and attention.

Conventions (spec §1, §3): feature maps are ``(B, C, H, W)``; statistics are per sample and per channel over the
``H·W`` positions; the variance is *unbiased* and ``1e-5`` is added to the variance before the square root.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

STD_EPS = 1e-5
"""Added to the (unbiased) variance before the square root, as in the official StyA2K/AdaAttN/AdaIN code."""


def calc_mean_std(x: Tensor, eps: float = STD_EPS) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and std of ``x`` (B, C, H, W) → two tensors (B, C, 1, 1).

    ``std = sqrt(var_unbiased + eps)``; a map with a single position has an undefined (NaN) unbiased variance,
    exactly as in the official code, so callers must reject 1×1 maps (see ``Method`` input checks).
    """
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    var, mean = torch.var_mean(flat, dim=2)
    return mean.view(b, c, 1, 1), (var + eps).sqrt().view(b, c, 1, 1)


def mean_variance_norm(x: Tensor) -> Tensor:
    """Instance normalisation without affine parameters (the paper's N(·)): ``(x − mean) / std``, same shape."""
    mean, std = calc_mean_std(x)
    return (x - mean) / std


def adain(content: Tensor, style: Tensor) -> Tensor:
    """Adaptive instance normalisation: ``std(s) · (c − mean(c)) / std(c) + mean(s)``; shapes (B, C, H, W)."""
    s_mean, s_std = calc_mean_std(style)
    return mean_variance_norm(content) * s_std + s_mean


# --------------------------------------------------------------------------------------------------------------------
# Blocking (spec §3): non-overlapping p×p blocks, block index row-major over the block grid, position row-major inside.
# --------------------------------------------------------------------------------------------------------------------


def per_style(compute: Callable[[Tensor], dict[str, Tensor]], fs: Tensor) -> dict[str, Tensor]:
    """``compute(fs)``, the style-only work of an attention module on a style map fs (B, C, h, w); where fs is one
    style broadcast over a content batch (batch stride 0, as :meth:`methods.StyleTransferNet.encode_style` makes
    it) it runs once on ``fs[:1]`` and its tensors are broadcast: cheaper, and exactly what a style prepared once
    (:meth:`methods.Method.prepare_style`) gives."""
    if fs.shape[0] > 1 and fs.stride(0) == 0:
        return {key: value.expand(fs.shape[0], *value.shape[1:]) for key, value in compute(fs[:1]).items()}
    return compute(fs)


def block_grid(height: int, width: int, side: int) -> tuple[int, int]:
    """Number of whole ``side``×``side`` blocks along each axis (floor tiling, as the official ``unfold``)."""
    return height // side, width // side


def to_blocks(x: Tensor, side: int) -> Tensor:
    """Cut ``x`` (B, C, H, W) into blocks → (B, C, n, r), n = (H//p)(W//p), r = p².

    ``out[b, c, by·(W//p) + bx, dy·p + dx] = x[b, c, by·p + dy, bx·p + dx]`` — identical to ``F.unfold`` with
    ``kernel_size = stride = p`` (including its floor behaviour: a bottom/right remainder strip is ignored).
    """
    b, c, h, w = x.shape
    gh, gw = block_grid(h, w, side)
    x = x[:, :, : gh * side, : gw * side]
    x = x.reshape(b, c, gh, side, gw, side).permute(0, 1, 2, 4, 3, 5)
    return x.reshape(b, c, gh * gw, side * side)


def from_blocks(blocks: Tensor, side: int, grid: tuple[int, int], size: tuple[int, int] | None = None) -> Tensor:
    """Inverse of :func:`to_blocks`: (B, C, n, r) → (B, C, H, W) with ``grid = (H//p, W//p)``.

    ``size`` (H, W) larger than the tiled area fills the remainder strip with zeros, as the official ``F.fold`` does.
    """
    b, c = blocks.shape[:2]
    gh, gw = grid
    x = blocks.reshape(b, c, gh, gw, side, side).permute(0, 1, 2, 4, 3, 5).reshape(b, c, gh * side, gw * side)
    if size is not None and (size[0] != gh * side or size[1] != gw * side):
        x = F.pad(x, (0, size[1] - gw * side, 0, size[0] - gh * side))
    return x


def map_as_blocks(x: Tensor, side: int) -> Tensor:
    """A view of the tiled part of x (B, C, H, W) as (B, C, gh, p, gw, p) (floor tiling; no copy): it lines up element
    for element with :func:`tokens_as_map` of the tokens of x."""
    b, c, h, w = x.shape
    gh, gw = block_grid(h, w, side)
    return x[:, :, : gh * side, : gw * side].view(b, c, gh, side, gw, side)


def to_tokens(x: Tensor, side: int) -> Tensor:
    """Cut ``x`` (B, C, H, W) into blocks in the token layout → (B, n, r, C), channels last (one copy).

    ``out[b, by·(W//p) + bx, dy·p + dx, c] = x[b, c, by·p + dy, bx·p + dx]``: the same blocks and order as
    :func:`to_blocks` (floor tiling), with each position's channels contiguous, which is what 1×1 convolutions
    (:func:`pointwise`) and per-head attention on strided views (:func:`attention`) read fastest.
    """
    blocked = map_as_blocks(x, side)
    b, c, gh, _, gw, _ = blocked.shape
    return blocked.permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, side * side, c)


def normalised_tokens(x: Tensor, side: int) -> Tensor:
    """``to_tokens(mean_variance_norm(x), side)`` bit for bit (the same subtraction and division per element,
    statistics over the whole map, an untiled strip included), written straight into the token layout: two passes
    over the tokens instead of three. Under autograd it is the composition itself (``out=`` has no gradient)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return to_tokens(mean_variance_norm(x), side)
    mean, std = calc_mean_std(x)
    blocked = map_as_blocks(x, side)
    b, c, gh, _, gw, _ = blocked.shape
    tokens = x.new_empty(b, gh * gw, side * side, c)
    target = tokens_as_map(tokens, side, (gh, gw))  # (B, C, gh, p, gw, p) view of the tokens
    torch.sub(blocked, mean.view(b, c, 1, 1, 1, 1), out=target)
    target.div_(std.view(b, c, 1, 1, 1, 1))
    return tokens


def tokens_as_map(tokens: Tensor, side: int, grid: tuple[int, int]) -> Tensor:
    """A view of tokens (B, n, r, C) as the tiled map (B, C, gh, p, gw, p): ``view.reshape(B, C, gh·p, gw·p)`` is
    the map (a copy), and a map's ``.view(B, C, gh, p, gw, p)`` lines up with it element for element."""
    b, c = tokens.shape[0], tokens.shape[-1]
    return tokens.reshape(b, grid[0], grid[1], side, side, c).permute(0, 5, 1, 3, 2, 4)


def from_tokens(tokens: Tensor, side: int, grid: tuple[int, int], size: tuple[int, int] | None = None) -> Tensor:
    """Inverse of :func:`to_tokens`: (B, n, r, C) → (B, C, gh·p, gw·p); ``size`` larger than the tiled area fills
    the remainder strip with zeros (as :func:`from_blocks`)."""
    b, c = tokens.shape[0], tokens.shape[-1]
    x = tokens_as_map(tokens, side, grid).reshape(b, c, grid[0] * side, grid[1] * side)
    if size is not None and (size[0] != x.shape[-2] or size[1] != x.shape[-1]):
        x = F.pad(x, (0, size[1] - x.shape[-1], 0, size[0] - x.shape[-2]))
    return x


def pointwise(conv: torch.nn.Conv2d, tokens: Tensor) -> Tensor:
    """A 1×1 convolution applied to tokens (B, n, r, C_in) → (B, n, r, C_out).

    The tokens are passed as their channels-last (B, C, n, r) view, so oneDNN runs one GEMM with the bias fused and
    writes channels-last output, read back as tokens without a copy (on the project's 2-core CPU 17.9 ms against
    21.6 ms for the same 256-channel convolution on an NCHW 128² map; equal at 512 channels). It is the same
    function as ``conv`` on the map, up to float rounding.
    """
    return conv(tokens.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def heads_view(tokens: Tensor, heads: int) -> Tensor:
    """(B, n, r, C) → (B, h, n, r, d) view, head k owning channels [k·d, (k+1)·d) (as :func:`split_heads`)."""
    b, n, r, c = tokens.shape
    if c % heads:
        raise ValueError(f"{c} channels cannot be split into {heads} heads")
    return tokens.reshape(b, n, r, heads, c // heads).permute(0, 3, 1, 2, 4)


def split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, C, ...) → (B, h, C/h, ...): head k owns the contiguous channels [k·d, (k+1)·d)."""
    b, c = x.shape[:2]
    if c % heads:
        raise ValueError(f"{c} channels cannot be split into {heads} heads")
    return x.reshape(b, heads, c // heads, *x.shape[2:])


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, d, ...) → (B, h·d, ...), the inverse of :func:`split_heads`."""
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], *x.shape[3:])


# --------------------------------------------------------------------------------------------------------------------
# Attention without 1/√d scaling, memory-lean.
# --------------------------------------------------------------------------------------------------------------------

ATTENTION_BACKENDS = ("sdpa", "chunked", "naive")
DEFAULT_MAX_SCORE_ELEMENTS = 1 << 24
"""Largest score tensor (elements) the chunked path materialises at once: 16 Mi floats = 64 MiB in fp32."""


def naive_attention(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """``softmax(scale · q kᵀ) v`` with the whole score tensor materialised. q (..., L, d), k (..., S, d), v (..., S, e)."""
    scores = q @ k.transpose(-1, -2)
    if scale != 1.0:
        scores = scores * scale
    return torch.softmax(scores, dim=-1) @ v


def chunked_attention(
    q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0, max_score_elements: int = DEFAULT_MAX_SCORE_ELEMENTS
) -> Tensor:
    """As :func:`naive_attention` but over query chunks so that at most ``max_score_elements`` scores live at once."""
    lead = math.prod(q.shape[:-2])
    per_query = max(1, lead * k.shape[-2])
    chunk = max(1, max_score_elements // per_query)
    if chunk >= q.shape[-2]:
        return naive_attention(q, k, v, scale)
    return torch.cat([naive_attention(qc, k, v, scale) for qc in q.split(chunk, dim=-2)], dim=-2)


SDP_MATH = 0
"""``torch.nn.attention.SDPBackend.MATH``: the kernel that materialises the whole score matrix."""


def _sdp_choice(q: Tensor, k: Tensor, v: Tensor, scale: float) -> int | None:
    """The SDPA kernel PyTorch would pick for these inputs (``torch._fused_sdp_choice``), or None where it cannot
    say (a PyTorch without it, or inputs it rejects)."""
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None:
        return None
    try:
        return int(choose(q, k, v, scale=scale))
    except (RuntimeError, TypeError):
        return None


def _fused_sdpa(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor | None:
    """SDPA through a fused (non-materialising) kernel, or None when PyTorch would pick its math kernel.

    The fused kernels want 4-D inputs of equal batch and head counts whose last dim is contiguous, and equal key and
    value widths: a query with a strided last dim (e.g. a transposed feature map) or a 5-D batch silently selects the
    math kernel, which builds the whole L×S score tensor (34 GB for StyA2K's DA at 2048²). Such 4-D inputs (e.g.
    tokens viewed as heads) are passed as they are; others are flattened to (1, N, L, d) and made contiguous. PyTorch's
    own choice is checked before calling.
    """
    if v.shape[-1] != q.shape[-1]:
        return None
    if q.dim() == k.dim() == v.dim() == 4 and q.shape[:2] == k.shape[:2] == v.shape[:2] \
            and all(t.stride(-1) == 1 and 0 not in t.stride() for t in (q, k, v)) \
            and _sdp_choice(q, k, v, scale) not in (None, SDP_MATH):
        return F.scaled_dot_product_attention(q, k, v, scale=scale)  # strided 4-D views (tokens as heads) in place
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q4, k4, v4 = (t.expand(*lead, *t.shape[-2:]).reshape(1, -1, *t.shape[-2:]).contiguous() for t in (q, k, v))
    if _sdp_choice(q4, k4, v4, scale) == SDP_MATH:
        return None
    return F.scaled_dot_product_attention(q4, k4, v4, scale=scale).reshape(*lead, q.shape[-2], v.shape[-1])


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    backend: str = "sdpa",
    scale: float = 1.0,
    max_score_elements: int = DEFAULT_MAX_SCORE_ELEMENTS,
) -> Tensor:
    """Scaled dot-product attention ``softmax(scale · q kᵀ) v`` over the last two dims; StyA2K uses ``scale = 1``.

    q (..., L, d), k (..., S, d), v (..., S, e) → (..., L, e).
    ``backend``: ``"sdpa"`` (``F.scaled_dot_product_attention`` through a fused kernel that never builds the L×S
    matrix), ``"chunked"`` (query chunks bounded by ``max_score_elements``) or ``"naive"`` (reference, materialises
    L×S). Where PyTorch would run SDPA through its materialising math kernel (e.g. the value width differs from the
    key width, as in the A2K* / all-to-all losses), ``"sdpa"`` routes to the chunked path instead.
    """
    if backend == "sdpa":
        out = _fused_sdpa(q, k, v, scale)
        if out is not None:
            return out
        backend = "chunked"
    if backend == "chunked":
        return chunked_attention(q, k, v, scale, max_score_elements)
    if backend == "naive":
        return naive_attention(q, k, v, scale)
    raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")
