"""The settings a run takes (their names and YAML types) and the metrics it knows: plain data the command line's
``--help`` and config checks use without importing torch. :class:`harness.run.RunConfig` holds their values."""
from __future__ import annotations

import re

from methods.errors import literal
from metrics.names import PAIR_METRICS, PAPER_METRICS, SET_METRICS

from .errors import ConfigError

__all__ = ["DEFAULT_METRICS", "KNOWN_METRICS", "RUN_SETTINGS", "parse_shard"]

KNOWN_METRICS = (*PAIR_METRICS, *SET_METRICS, "timing")
DEFAULT_METRICS = (*PAPER_METRICS, "timing")
"""The StyA2K paper's Table 1 columns; SSIM, CFSD, Gram loss, FID and ArtFID are asked for by name."""
_LIST = (list, str)
RUN_SETTINGS: dict[str, tuple[type, ...]] = {
    "methods": _LIST, "out": (str,), "content": _LIST, "style": _LIST, "size": (int,), "keep_size": (bool,),
    "keep_aspect": (bool,), "pairs": (int,), "seed": (int,), "device": (str,), "batch_size": (int,),
    "weights_dir": (str,), "init": (str, dict), "download": (bool,), "metrics": _LIST, "options": (dict,),
    "lpips_net": (str,), "timing_repeats": (int,), "timing_warmup": (int,), "force": (bool,),
    "shard": (str, list), "votes": (str,), "skip_unreadable": (bool,), "metric_options": (dict,),
    "progress": (bool,), "report": (bool,), "feature_cache_mib": (int, float),
    "metric_cache_mib": (int, float), "channels_last": (bool,),
}
"""The settings of a run (``run --config`` files, a study's ``run:`` section) and their YAML types; see
:meth:`RunConfig.from_settings`."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with 0 ≤ i < n."""
    match = re.fullmatch(r"(\d+)/(\d+)", str(text).strip())
    if not match or not int(match[1]) < int(match[2]):
        raise ConfigError(f"{{shard}}: expected i/n with 0 <= i < n (e.g. 0/4), got {literal(repr(text))}")
    return int(match[1]), int(match[2])
