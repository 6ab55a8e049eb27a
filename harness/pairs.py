"""A run's inputs: its (content, style) pairs and each input image decoded once (resized as configured)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from methods.errors import literal
from methods.weights import sha256_file

from .errors import ImageError, ImageWarning, RunError
from .images import load_image_tensor

__all__ = ["ImageCache", "Pair", "decode_inputs"]


@dataclass(frozen=True)
class Pair:
    content: Path
    style: Path

    @property
    def stem(self) -> str:
        return f"{self.content.stem}__{self.style.stem}"


class ImageCache:
    """Loads each input image once per run (resized as configured) and remembers its sha256."""

    def __init__(self, size: int | None, keep_aspect: bool):
        self.size, self.keep_aspect = size, keep_aspect
        self.tensors: dict[Path, torch.Tensor] = {}
        self.hashes: dict[Path, str] = {}

    def __call__(self, path: Path) -> torch.Tensor:
        if path not in self.tensors:
            self.tensors[path] = load_image_tensor(path, size=self.size, keep_aspect=self.keep_aspect)
            self.hashes[path] = sha256_file(path)
        return self.tensors[path]


def decode_inputs(images: ImageCache, contents: list[Path], styles: list[Path],
                  pairs: list[Pair], skip_unreadable: bool = False) -> tuple[list[Path], list[Path], list[Pair], dict[str, str]]:
    """Decode every input before any work. An unreadable one stops the run with a line naming every such file —
    unless ``skip_unreadable``: then those images and their pairs are left out (with a warning each) and
    returned as {path: problem} for the manifest."""
    unreadable: dict[str, str] = {}
    for path in dict.fromkeys((*contents, *styles)):
        try:
            images(path)
        except ImageError as exc:
            unreadable[str(path)] = str(exc)
    if not unreadable:
        return contents, styles, pairs, {}
    if not skip_unreadable:
        first = next(iter(unreadable.values()))
        more = f" (and {len(unreadable) - 1} more unreadable image(s))" if len(unreadable) > 1 else ""
        raise ImageError(f"{literal(first)}{literal(more)}; nothing was computed: fix or remove the file, or pass "
                       "{skip_unreadable} to leave out unreadable images", template=True)
    for problem in unreadable.values():
        warnings.warn(f"{problem}; left out of the run (skip_unreadable)", ImageWarning, stacklevel=3)
    bad = {Path(p) for p in unreadable}
    contents = [p for p in contents if p not in bad]
    styles = [p for p in styles if p not in bad]
    pairs = [p for p in pairs if p.content not in bad and p.style not in bad]
    if not pairs:
        raise RunError("every pair holds an unreadable image: nothing left to run")
    return contents, styles, pairs, unreadable
