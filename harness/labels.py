"""Readable names of methods in tables and figures (the papers' spellings). A leaf module: no torch, no matplotlib."""
from __future__ import annotations

from collections.abc import Mapping

METHOD_LABELS: dict[str, str] = {
    "styA2K": "StyA2K",
    "adain": "AdaIN",
    "all2all": "All-to-all",
    "styA2K-noDA": "StyA2K w/o DA",
    "styA2K-noPA": "StyA2K w/o PA",
    "styA2K-noPA1": "StyA2K w/o PA step 1",
    "styA2K-1head": "StyA2K 1 head",
    "AdaAttN": "AdaAttN",
    "SANet": "SANet",
    "StyTr2": "StyTr²",
    "MicroAST": "MicroAST",
}
"""Column titles of the method comparison (paper Fig. 9); names match case-insensitively, unknown names stay as is."""
ABLATION_LABELS: dict[str, str] = {
    "all2all": "All-to-all",
    "styA2K-noDA": "w/o DA",
    "styA2K-noPA": "w/o PA",
    "styA2K-noPA1": "w/o step 1 of PA",
    "styA2K-1head": "w/o multi-head",
    "styA2K": "Full model",
}
"""Column titles of the ablation grid (paper Fig. 10, Table 2 wording)."""


def method_label(name: str, labels: Mapping[str, str] | None = None) -> str:
    """Readable label of a method name from ``labels`` (default :data:`METHOD_LABELS`), matched case-insensitively."""
    folded = {k.casefold(): v for k, v in (METHOD_LABELS if labels is None else labels).items()}
    return folded.get(name.casefold(), name)
