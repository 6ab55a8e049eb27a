"""Attention maps of one content point, for the paper's Fig. 6: what an attention module of a StyA2K (or all-to-all)
network looks at in the style image.

For a content point (pixel coordinates) and a layer (relu3_1, relu4_1 or relu5_1) :func:`attention_maps` recomputes,
with the module's own projections and the very helpers its forward uses (:mod:`methods.a2k`, :mod:`methods.ops`):

* ``all_to_all``: ``softmax over all style positions of ⟨Q[pt], K[s]⟩`` per head, (h, Hs, Ws). For an A2K module the
  DA projections are used (``q(N(Fc))``, ``k(N(Fs))``; the PA ones ``q2``/``k2`` when the module has no DA branch): the
  attention an all-to-all module with these projections would compute. For an all-to-all module it is exactly its
  attention. No 1/√d scaling by default (neither A2K nor the all-to-all baseline scale, spec §4.1, §10.1).
* ``da_scores``: DA step 2 weights of the point over the n_s aggregated style blocks (sim_alpha/beta and the DA
  normaliser included, via :func:`methods.a2k.aggregate_blocks`), (h, gh_s, gw_s) on the style block grid.
* ``pa_block``: the style block picked by PA step 1 for the point's content block, one per head, (h,)
  (:func:`methods.a2k.match_blocks`; the same-location block for the "w/o step 1 of PA" ablation).
* ``pa_fine``: PA step 2 weights of the point over the r = p² positions of its chosen block, placed back on the style
  feature grid (zeros elsewhere), (h, Hs, Ws).

``*_heads`` fields keep every head; the plain fields are the selected head, or with ``head=None`` the mean over heads
(``all_to_all``, ``da_scores``), the most frequent block (``pa_block``, ties → smallest index) and the mean fine map of
the heads that chose that block (``pa_fine``). Every map is a probability distribution (sums to 1).

Consistency (what the tests check): ``Σ_z da[h, z] · V̂_h[z]`` is the DA output at the point, ``Σ_s pa_fine[h, s] ·
v2(Fs)_h[s]`` the PA output, and for an all-to-all module ``Σ_s all_to_all[h, s] · v(Fs)_h[s]`` its attention output.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .a2k import A2KAttention, _pad_to_multiple, aggregate_blocks, head_blocks, match_blocks, same_location_index
from .all2all import AllToAllAttention
from .errors import InputError
from .method import Method
from .net import StyleTransferNet, check_image_batch
from .ops import block_grid, from_blocks, heads_view, mean_variance_norm, pointwise, split_heads, to_blocks, to_tokens
from .vgg import TAP_DOWNSAMPLING

__all__ = ["ATTENTION_LAYERS", "AttentionMaps", "attention_maps", "attention_module", "block_map"]

ATTENTION_LAYERS: dict[str, str] = {
    "relu3_1": "A2K",
    "relu4_1": "transform.attn_adain_4_1",
    "relu5_1": "transform.attn_adain_5_1",
}
"""VGG tap → attribute path of its attention module in :class:`methods.stya2k.AttentionTransferNet`."""


@dataclass(frozen=True)
class AttentionMaps:
    """Attention of one content point at one layer (all tensors float, on the CPU, detached).

    Geometry: the content image is ``content_size`` (H, W) px, its ``layer`` features ``content_grid`` (hc, wc);
    the style image ``style_size``, features ``style_grid`` (hs, ws); a feature cell covers ``downsampling``² pixels
    (cell (i, j) ↔ pixels [i·s, (i+1)·s) × [j·s, (j+1)·s)). ``point`` (y, x) px lies in cell ``feature_point``.

    A2K only (None for an all-to-all module): ``block_side`` p (feature cells), ``content_block`` (row-major index of
    the point's content block) and ``position_in_block`` (row-major inside it), ``style_block_grid`` (gh_s, gw_s) —
    with ``remainder="reflect"`` the padded grid, whose last row/column of blocks may reach past the style map.
    ``da_*`` are None without a DA branch, ``pa_*`` without a PA branch.
    """

    kind: str  # "a2k" | "all2all"
    layer: str
    heads: int
    head: int | None
    point: tuple[int, int]
    feature_point: tuple[int, int]
    downsampling: int
    content_size: tuple[int, int]
    style_size: tuple[int, int]
    content_grid: tuple[int, int]
    style_grid: tuple[int, int]
    all_to_all_heads: Tensor  # (h, hs, ws), each head sums to 1
    all_to_all: Tensor  # (hs, ws)
    block_side: int | None = None
    content_block: int | None = None
    position_in_block: int | None = None
    style_block_grid: tuple[int, int] | None = None
    pa_step1: bool = True
    da_scores_heads: Tensor | None = None  # (h, gh_s, gw_s)
    da_scores: Tensor | None = None  # (gh_s, gw_s)
    pa_block_heads: Tensor | None = None  # (h,) int64 style block index per head
    pa_block: int | None = None
    pa_fine_heads: Tensor | None = None  # (h, hs, ws), zero outside the chosen block
    pa_fine: Tensor | None = None  # (hs, ws)

    def block_origin(self, block: int) -> tuple[int, int]:
        """Top-left feature cell (row, col) of style block ``block`` (row-major over :attr:`style_block_grid`)."""
        if self.block_side is None or self.style_block_grid is None:
            raise ValueError("an all-to-all module has no blocks")
        gw = self.style_block_grid[1]
        return (block // gw) * self.block_side, (block % gw) * self.block_side


def _network(method_or_net: Method | StyleTransferNet) -> StyleTransferNet:
    net = method_or_net.model if isinstance(method_or_net, Method) else method_or_net
    if not isinstance(net, StyleTransferNet):
        raise InputError(f"attention maps need a Method or a StyleTransferNet, got {type(method_or_net).__name__}")
    return net


def attention_module(method_or_net: Method | StyleTransferNet, layer: str) -> A2KAttention | AllToAllAttention:
    """The attention module of a StyA2K / all-to-all network at ``layer`` (relu3_1, relu4_1, relu5_1)."""
    net = _network(method_or_net)
    if layer not in ATTENTION_LAYERS:
        raise InputError(f"no attention module at layer {layer!r}; choose one of: {', '.join(ATTENTION_LAYERS)}")
    try:
        module: nn.Module = net.get_submodule(ATTENTION_LAYERS[layer])
    except AttributeError:
        module = None  # type: ignore[assignment]
    if not isinstance(module, (A2KAttention, AllToAllAttention)):
        name = method_or_net.name if isinstance(method_or_net, Method) else type(net).__name__
        raise InputError(f"{name} has no attention module at {layer} (attention maps exist for StyA2K, its ablations "
                         "and all2all)")
    return module


def _head_softmax(query: Tensor, keys: Tensor, scale: float) -> Tensor:
    """query (h, d), keys (h, d, N) → softmax over N of ``scale·⟨q, k⟩``, (h, N)."""
    return torch.softmax(scale * torch.einsum("hd,hdn->hn", query, keys), dim=-1)


def _check_point(point: Sequence[int], size: tuple[int, int]) -> tuple[int, int]:
    try:
        y, x = (int(p) for p in point)
        if (y, x) != tuple(point):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"point must be (y, x) integer pixel coordinates, got {point!r}") from None
    if not (0 <= y < size[0] and 0 <= x < size[1]):
        raise InputError(f"point (y={y}, x={x}) lies outside the {size[0]}×{size[1]} content image")
    return y, x


def _da_scores(module: A2KAttention, nc: Tensor, ns: Tensor, fs: Tensor, pad, query_at) -> Tensor:
    """DA's softmax over the aggregated style-block keys for the point's query: (h, n_s)."""
    side, heads = module.block_side, module.heads
    k_hat, _ = aggregate_blocks(
        split_heads(to_blocks(pad(module.k(ns)), side), heads),
        split_heads(to_blocks(pad(module.v(fs)), side), heads),
        module.sim_alpha, module.sim_beta, module.da_normaliser,
    )  # (1, h, d, n_s)
    return _head_softmax(query_at(module.q(nc)), k_hat[0], 1.0)


def _pa_maps(module: A2KAttention, nc: Tensor, ns: Tensor, pad, head: int | None, content_block: int, position: int,
             cells_c: tuple[int, int], cells_s: tuple[int, int], grid_s: tuple[int, int], slots: Tensor) -> dict:
    """PA at the point: each head's chosen style block (step 1, or the same location without it) and the fine
    attention inside it, scattered onto the style grid."""
    side, heads = module.block_side, module.heads
    # queries and keys as the forward computes them (so step 1's near-ties resolve identically)
    queries = heads_view(pointwise(module.q2, to_tokens(pad(nc), side)), heads)  # (1, h, n_c, r, d)
    keys = head_blocks(pointwise(module.k2, to_tokens(pad(ns), side)), heads)  # (1, h, n_s, r, d)
    if module.pa_step1:
        blocks = match_blocks(queries, keys)[0, :, content_block]  # (h,)
    else:
        blocks = same_location_index(cells_c, cells_s, device=nc.device)[content_block].expand(heads)
    chosen = keys[0][torch.arange(heads), blocks].transpose(-1, -2)  # (h, d, r) keys of each head's block
    fine = _head_softmax(queries[0, :, content_block, position], chosen, 1.0)  # (h, r)
    fine_map = fine.new_zeros(heads, grid_s[0] * grid_s[1]).scatter_add_(1, slots[blocks], fine)
    fine_map = fine_map.reshape(heads, *grid_s)
    if head is None:
        mode = int(torch.bincount(blocks, minlength=cells_s[0] * cells_s[1]).argmax())
        shown = fine_map[blocks == mode].mean(dim=0)
    else:
        mode, shown = int(blocks[head]), fine_map[head]
    return dict(pa_block_heads=blocks.cpu(), pa_block=mode, pa_fine_heads=fine_map.cpu(), pa_fine=shown.cpu())


def _check_request(net: StyleTransferNet, module: nn.Module, content: Tensor, style: Tensor, point: Sequence[int],
                   head: int | None) -> tuple[int, int]:
    """One content and one style image the network takes, a point inside the content and a head it has; the point."""
    check_image_batch(content, "content")
    check_image_batch(style, "style")
    if content.shape[0] != 1 or style.shape[0] != 1:
        raise InputError(f"attention maps take one content and one style image, got batches "
                         f"{content.shape[0]} and {style.shape[0]}")
    net.check_inputs(content, style)
    y_x = _check_point(point, (content.shape[-2], content.shape[-1]))
    if head is not None and not (isinstance(head, int) and 0 <= head < module.heads):
        raise InputError(f"head must be in 0..{module.heads - 1} (or None for all heads), got {head!r}")
    return y_x


@torch.no_grad()
def attention_maps(
    method_or_net: Method | StyleTransferNet,
    content: Tensor,
    style: Tensor,
    point: Sequence[int],
    layer: str = "relu3_1",
    head: int | None = None,
    scale: float = 1.0,
) -> AttentionMaps:
    """Attention of the content pixel ``point`` = (y, x) at ``layer`` of a StyA2K or all-to-all network.

    content (1, 3, H, W), style (1, 3, Hs, Ws): RGB in [0, 1]. They are encoded in the encoder's dtype and device and
    the features cast to the attention module's (so a ``.double()`` module computes the maps in float64). ``head``:
    the head shown by the plain fields (None: mean / mode over heads). ``scale``: logit scale of the all-to-all map
    only (1 = as the modules compute; 1/√d is the usual transformer choice). Bad input (batch ≠ 1, point outside the
    image or, with the official ``remainder="zeros"``, in the strip not covered by whole blocks, unknown head or layer,
    a network without attention modules) raises :class:`methods.InputError` with a one-line message.
    """
    net = _network(method_or_net)
    module = attention_module(net, layer)
    size_c, size_s = (content.shape[-2], content.shape[-1]), (style.shape[-2], style.shape[-1])
    y, x = _check_request(net, module, content, style, point, head)
    heads = module.heads
    enc, param = next(net.encoder.parameters()), next(module.parameters())
    fc = net.encoder(content.to(enc), [layer])[layer].to(param)  # encoder precision, then the module's
    fs = net.encoder(style.to(enc), [layer])[layer].to(param)
    down = TAP_DOWNSAMPLING[layer]
    grid_c, grid_s = tuple(fc.shape[-2:]), tuple(fs.shape[-2:])
    fy, fx = y // down, x // down  # ceil-mode pooling: feature cell i covers pixels [i·s, (i+1)·s)
    nc, ns = mean_variance_norm(fc), mean_variance_norm(fs)

    def pick(maps: Tensor) -> Tensor:
        return maps.mean(dim=0) if head is None else maps[head]

    def query_at(q: Tensor) -> Tensor:  # (1, C, hc, wc) → (h, d)
        return split_heads(q[:, :, fy, fx], heads)[0]

    common = dict(
        layer=layer, heads=heads, head=head, point=(y, x), feature_point=(fy, fx), downsampling=down,
        content_size=size_c, style_size=size_s, content_grid=grid_c, style_grid=grid_s,
    )
    if isinstance(module, AllToAllAttention):
        q_proj, k_proj = module.q, module.k
    else:
        q_proj, k_proj = (module.q, module.k) if module.use_da else (module.q2, module.k2)
    keys = split_heads(k_proj(ns).flatten(2), heads)[0]  # (h, d, hs·ws)
    a2a = _head_softmax(query_at(q_proj(nc)), keys, scale).reshape(heads, *grid_s)
    if isinstance(module, AllToAllAttention):
        return AttentionMaps(kind="all2all", all_to_all_heads=a2a.cpu(), all_to_all=pick(a2a).cpu(), **common)

    side = module.block_side
    reflect = module.remainder == "reflect"
    pad = (lambda t: _pad_to_multiple(t, side)) if reflect else (lambda t: t)
    cells_c = (-(-grid_c[0] // side), -(-grid_c[1] // side)) if reflect else block_grid(*grid_c, side)
    cells_s = (-(-grid_s[0] // side), -(-grid_s[1] // side)) if reflect else block_grid(*grid_s, side)
    if fy >= cells_c[0] * side or fx >= cells_c[1] * side:
        raise InputError(
            f"point (y={y}, x={x}) is in feature cell ({fy}, {fx}) of the {grid_c[0]}×{grid_c[1]} {layer} map, outside "
            f"its whole {side}×{side} blocks: DA and PA are zero there (official remainder='zeros')"
        )
    content_block = (fy // side) * cells_c[1] + fx // side
    position = (fy % side) * side + fx % side
    # Flat style-grid index of every (block, position) slot; reflect padding maps padded slots to their source cell.
    source = torch.arange(grid_s[0] * grid_s[1], dtype=torch.float64).reshape(1, 1, *grid_s)
    slots = to_blocks(pad(source), side)[0, 0].round().long()  # (n_s, r)
    extra: dict = dict(block_side=side, content_block=content_block, position_in_block=position,
                       style_block_grid=cells_s, pa_step1=module.pa_step1)

    if module.use_da:
        da = _da_scores(module, nc, ns, fs, pad, query_at).reshape(heads, *cells_s)
        extra.update(da_scores_heads=da.cpu(), da_scores=pick(da).cpu())
    if module.use_pa:
        extra.update(_pa_maps(module, nc, ns, pad, head, content_block, position, cells_c, cells_s, grid_s, slots))
    return AttentionMaps(kind="a2k", all_to_all_heads=a2a.cpu(), all_to_all=pick(a2a).cpu(), **common, **extra)


def block_map(maps: AttentionMaps, values: Tensor) -> Tensor:
    """Spread per-block values (gh_s, gw_s) over the style feature grid → (hs, ws) (for overlays); with
    ``remainder="reflect"`` the part of the padded grid beyond the style map is cropped."""
    if maps.block_side is None or maps.style_block_grid is None:
        raise ValueError("an all-to-all module has no blocks")
    side = maps.block_side
    gh, gw = maps.style_block_grid
    blocks = values.reshape(1, 1, gh * gw, 1).expand(1, 1, gh * gw, side * side)
    full = from_blocks(blocks, side, (gh, gw))[0, 0]
    hs, ws = maps.style_grid
    out = full.new_zeros(hs, ws)
    h, w = min(hs, gh * side), min(ws, gw * side)
    out[:h, :w] = full[:h, :w]
    return out
