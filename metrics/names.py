"""The metrics a run can ask for by name, and the options each takes: plain data, importable without torch (the
command line's ``--help`` lists them)."""
from __future__ import annotations

__all__ = ["METRIC_OPTIONS", "PAIR_METRICS", "PAPER_METRICS", "SET_METRICS"]

PAIR_METRICS: tuple[str, ...] = ("content_loss", "style_loss", "lpips", "ssim", "cfsd", "gram_loss")
"""The metrics computed per (output, content, style) triple."""
PAPER_METRICS: tuple[str, ...] = ("content_loss", "style_loss", "lpips")
"""The per-pair metrics of the StyA2K paper's Table 1 (a run's default)."""
SET_METRICS: tuple[str, ...] = ("fid", "artfid")
"""The metrics of a method's whole output set (one value per method, with a bootstrap interval over pairs)."""
METRIC_OPTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "ssim": {"mode": (str,)},
    "cfsd": {"chunk_rows": (int,)},
    "gram_loss": {"variant": (str,), "normalization": (str,)},
    "fid": {"resize": (str,), "style_set": (str,), "infinity": (bool,), "bootstrap": (int,)},
    "artfid": {"variant": (str,), "infinity": (bool,), "bootstrap": (int,)},
}
"""Per metric, the definitional options a run may set (``metric_options``), and their types."""
