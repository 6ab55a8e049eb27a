"""The harness checkpoint format: what a checkpoint holds (:func:`checkpoint_payload`), reading one
(:func:`load_checkpoint`) and finding one (:func:`find_checkpoint`). Writing it to disk is the harness's job
(:func:`harness.io.save_checkpoint`): this package reads weights, it writes no files."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ._info import MethodInfo
from .errors import WeightsError
from .weights import Loading, search_dirs

if TYPE_CHECKING:
    from .method import Method

CHECKPOINT_NAME = "harness_checkpoint.pt"
CHECKPOINT_FORMAT = "ast-harness/checkpoint-v1"


def checkpoint_payload(method: Method, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``method``'s trainable state (on the CPU), options and ``metadata`` as the checkpoint's dict."""
    return {
        "format": CHECKPOINT_FORMAT,
        "method": method.info.name,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in method.options.items()},
        "state_dict": {k: v.detach().cpu() for k, v in method.model.trainable_state_dict().items()},
        "metadata": dict(metadata or {}),
    }


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a harness checkpoint (``torch.load(weights_only=True)``) and check its format."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable harness checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not a harness checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return payload


def find_checkpoint(info: MethodInfo, loading: Loading) -> Path | None:
    """A harness checkpoint: ``loading.weights`` itself if it is a file, else ``harness_checkpoint.pt`` in that
    folder, or in ``<dir>/<method name>/`` of the other search folders (the registered spelling, ``styA2K/``, or
    lower case, ``stya2k/``)."""
    if loading.weights is not None and Path(loading.weights).is_file():
        return Path(loading.weights)
    for kind, folder in search_dirs(loading.weights, loading.weights_dir):
        candidates = [folder / CHECKPOINT_NAME] if kind == "explicit" else []
        candidates += [folder / name / CHECKPOINT_NAME for name in dict.fromkeys((info.name, info.name.lower()))]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def holds_checkpoint(path: str | os.PathLike) -> bool:
    """``path`` is a checkpoint file, or a folder with a harness checkpoint or official ``*.pth`` files."""
    path = Path(path)
    return path.is_file() or (path.is_dir() and (any(path.glob("*.pth")) or (path / CHECKPOINT_NAME).is_file()))
