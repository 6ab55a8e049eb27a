"""Which modules of a network are attention, what they attend on, and the paper's Eq. 15 arithmetic for them."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from methods.a2k import A2KAttention
from methods.all2all import AllToAllAttention
from methods.errors import one_line as _one_line
from methods import OptionError, get_method_info
from methods.vgg import feature_size

from ..errors import ComplexityError

ATTENTION_TYPES: tuple[type[nn.Module], ...] = (A2KAttention, AllToAllAttention)
ATTENTION_LAYER_PATHS: dict[str, str] = {
    "A2K": "relu3_1", "transform.attn_adain_4_1": "relu4_1", "transform.attn_adain_5_1": "relu5_1",
}
"""Sub-module path of each attention module in :class:`methods.stya2k.AttentionTransferNet` → the VGG tap it
attends on (spec §4.2–4.3: the relu3_1 module is the top-level ``A2K``; relu4_1/5_1 live in the Transform)."""


@dataclass(frozen=True)
class AttentionLayer:
    """What Eq. 15 needs of one attention module: where it sits, its tap and channels, and its configuration."""

    path: str
    layer: str
    kind: str  # "a2k" | "all2all"
    channels: int
    heads: int
    block_side: int | None = None
    use_da: bool = False
    use_pa: bool = False
    pa_step1: bool = False
    remainder: str = "zeros"


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The outermost :data:`ATTENTION_TYPES` sub-modules of ``model`` by path (``named_modules`` order)."""
    found: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        if isinstance(module, ATTENTION_TYPES) and not any(path.startswith(p + ".") for p in found):
            found[path] = module
    return found


def attention_layers(model: nn.Module) -> list[AttentionLayer]:
    """:class:`AttentionLayer` of every attention module of ``model`` (empty for AdaIN)."""
    out = []
    for path, module in attention_modules(model).items():
        if path not in ATTENTION_LAYER_PATHS:
            raise ComplexityError(f"attention module at an unknown path {path!r}; "
                                  f"known: {', '.join(ATTENTION_LAYER_PATHS)}")
        layer = ATTENTION_LAYER_PATHS[path]
        if isinstance(module, A2KAttention):
            out.append(AttentionLayer(path, layer, "a2k", module.channels, module.heads, module.block_side,
                                      module.use_da, module.use_pa, module.pa_step1, module.remainder))
        else:
            out.append(AttentionLayer(path, layer, "all2all", module.channels, module.heads))
    return out


def _meta_network(method: str, options: Mapping[str, Any]) -> nn.Module:
    """The method's network built on the meta device (no memory, no weights): validates name and options."""
    info = get_method_info(method)
    known = info.options
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(f"method {info.name!r} has no option(s) {', '.join(unknown)}; its options are: "
                          + ", ".join(f"{k}={v!r}" for k, v in known.items()))
    try:
        with torch.device("meta"):
            return info.factory(**{**known, **options})
    except (ValueError, TypeError) as exc:
        raise OptionError(f"method {info.name!r}: invalid options: {_one_line(exc)}") from None


def method_attention_layers(method: str, options: Mapping[str, Any] | None = None) -> list[AttentionLayer]:
    """:func:`attention_layers` of a registered method with ``options`` (built on the meta device, instantly)."""
    return attention_layers(_meta_network(method, dict(options or {})))


@dataclass(frozen=True)
class Eq15Layer:
    """Attention cost of one layer at input side ``size``, in multiply–accumulates (MACs; 1 MAC = 2 FLOPs).

    ``H = W = feature_size(size, layer)`` (S/4, S/8, S/16, ceil-mode), ``C`` channels; A2K: block side p,
    ``r = p²`` points per block, ``n = ⌊H/p⌋·⌊W/p⌋`` blocks (``remainder="reflect"``: ⌈·⌉).

    Paper Eq. 15 (spec §7.1; b² = n blocks, (H/b)(W/b) = r points), only the terms the variant keeps:
    ``D1 = 5·HWC`` (aggregation, DA), ``D2 = n·HWC`` (queries vs n block keys, DA), ``P1 = n·HWC`` (block
    matching, PA step 1), ``P2 = r·HWC`` (attention inside the matched block, PA); ``macs = D1 + D2 + P1 + P2``.
    All-to-all (spec table, QKᵀ only): ``all2all_macs = (HW)²·C``; for an all-to-all layer ``macs = all2all_macs``.
    ``ratio = all2all_macs / macs``. Neither counts the 1×1 convolutions (8·HW·C² MACs per A2K module in the
    official code; 6·HW·C² here, see ``impl_macs``).

    ``impl_macs``: the matmul MACs the implementation performs (what ``FlopCounterMode`` sees inside the module,
    convolutions excluded, ÷2), with ``L = n·r`` attended positions: DA step 1 without projecting each style
    position (:func:`methods.a2k.aggregate_projected`) three weighted sums per head over the C input channels
    ``3·h·L·C`` and the projections of the block means and sums ``5·n·C²``; DA step 2 QKᵀ and A·V ``2·L·n·C``; PA
    step 1 ``n²·r·C``; PA step 2 QKᵀ and A·V ``2·L·r·C``; all-to-all ``2·(HW)²·C``. Only DA step 1 depends on the
    heads (h heads of d = C/h channels). The module's 1×1 convolutions (counted outside this core) are 6·HW·C² MACs
    with DA and PA (q, q2, k2, v2, fusion1, fusion2). All-to-all layers have no blocks: ``n = r = None``.

    With fixed p, ``n = HW/r`` grows with the image: ``ratio = HW/(5 + 2n + r) → r/2`` for large images.
    """

    layer: str
    kind: str
    size: int
    H: int
    W: int
    C: int
    n: int | None
    r: int | None
    D1: int
    D2: int
    P1: int
    P2: int
    macs: int
    all2all_macs: int
    impl_macs: int

    @property
    def ratio(self) -> float:
        return self.all2all_macs / self.macs if self.macs else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _eq15_layer(spec: AttentionLayer, size: int) -> Eq15Layer:
    h, w, c = feature_size(size, spec.layer), feature_size(size, spec.layer), spec.channels
    hwc = h * w * c
    all2all = (h * w) ** 2 * c
    if spec.kind == "all2all":
        return Eq15Layer(spec.layer, "all2all", size, h, w, c, None, None, 0, 0, 0, 0, all2all, all2all, 2 * all2all)
    p = int(spec.block_side)
    grid = (-(-h // p), -(-w // p)) if spec.remainder == "reflect" else (h // p, w // p)
    n, r = grid[0] * grid[1], p * p
    d1 = 5 * hwc if spec.use_da else 0
    d2 = n * hwc if spec.use_da else 0
    p1 = n * hwc if spec.use_pa and spec.pa_step1 else 0
    p2 = r * hwc if spec.use_pa else 0
    attended = n * r
    impl = 0
    if spec.use_da:
        impl += 3 * spec.heads * attended * c + 5 * n * c * c + 2 * attended * n * c
    if spec.use_pa:
        impl += (n * n * r * c if spec.pa_step1 else 0) + 2 * attended * r * c
    return Eq15Layer(spec.layer, "a2k", size, h, w, c, n, r, d1, d2, p1, p2, d1 + d2 + p1 + p2, all2all, impl)


def eq15_attention_flops(
    method: str | Sequence[AttentionLayer], size: int, options: Mapping[str, Any] | None = None
) -> dict[str, Eq15Layer]:
    """Eq. 15 arithmetic per attention layer (tap → :class:`Eq15Layer`) of ``method`` (a registered name with
    ``options``, or its :class:`AttentionLayer` list) at input side ``size``; empty for AdaIN."""
    specs = method_attention_layers(method, options) if isinstance(method, str) else list(method)
    return {spec.layer: _eq15_layer(spec, int(size)) for spec in specs}


def eq15_table(layers: Mapping[str, Sequence[AttentionLayer]], sizes: Sequence[int]) -> pd.DataFrame:
    """One row per method × size × layer (:meth:`Eq15Layer.to_dict`, plus ``method``), and a ``layer="total"`` row
    per method × size summing the MAC columns (``ratio`` of the sums). ``layers``: method → its attention layers."""
    rows = []
    for method, specs in layers.items():
        for size in sorted(sizes):
            per_layer = eq15_attention_flops(specs, size)
            if not per_layer:
                continue
            rows += [{"method": method, **v.to_dict()} for v in per_layer.values()]
            total = {k: sum(getattr(v, k) for v in per_layer.values())
                     for k in ("D1", "D2", "P1", "P2", "macs", "all2all_macs", "impl_macs")}
            rows.append({"method": method, "layer": "total", "kind": next(iter(per_layer.values())).kind,
                         "size": size, **total, "ratio": total["all2all_macs"] / total["macs"]})
    frame = pd.DataFrame(rows)
    for column in ("H", "W", "C", "n", "r"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")  # empty on the total rows and for all-to-all n, r
    return frame


def _eq15_columns(specs: Sequence[AttentionLayer], size: int) -> dict[str, float]:
    per_layer = eq15_attention_flops(specs, size).values()
    return {"eq15_gflops_attention": 2 * sum(v.macs for v in per_layer) / 1e9,
            "impl_gflops_attention_core": 2 * sum(v.impl_macs for v in per_layer) / 1e9}
