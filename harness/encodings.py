"""Encodings reused within a run: each image is encoded once per encoder and kept in a least-recently-used cache
bounded by a memory budget, so a content × style grid costs one encoding per image instead of one per pair, and
methods that share the VGG-19 (the same weights: the same file, or the same seeded random init) share its
encodings — computed at the union of their taps, each method taking its own.

A method's prepared content (:class:`methods.PreparedContent`) and prepared style (:class:`methods.PreparedStyle`)
are what :meth:`methods.Method.stylize` would compute inside the call (a VGG pass stopped at a later tap computes the
earlier ones with the same operations), so outputs are bit-identical with and without the cache; the timing rows
still time the full forward, encodings included, as the paper does. A method with encoders or signals of its own
(``encode_for`` overridden: AdaAttN, StyTr², MicroAST) caches its own prepared encodings.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from methods import Method, PreparedContent, PreparedFeatures, PreparedStyle, StyleTransferNet
from methods.cache import BoundedLRU
from methods.vgg import TAP_NAMES

__all__ = ["EncodingCache", "RunEncodings"]


class EncodingCache(BoundedLRU[PreparedFeatures]):
    """The run's LRU of prepared encodings (:class:`methods.PreparedFeatures`) bounded by ``budget_mib`` (0: nothing
    is kept, every call encodes); a method's style state is kept as ``derived`` (see :class:`methods.cache.BoundedLRU`)."""

    def __init__(self, budget_mib: float) -> None:
        super().__init__(budget_mib, size_of=lambda value: value.nbytes)


def _encoder_digest(method: Method) -> str | None:
    """A digest of the method's VGG weights where its encodings are plain VGG taps (``encode_for`` not
    overridden), else None."""
    from .train.state import tensor_digest

    model = method.model
    plain = (model.encoder is not None and type(model).encode_for is StyleTransferNet.encode_for
             and type(model).encode is StyleTransferNet.encode)
    return tensor_digest(model.encoder.state_dict()) + f"@{method.device}" if plain else None


class RunEncodings:
    """The prepared encodings of a run's methods: :meth:`content` / :meth:`style` give what
    :meth:`~methods.Method.prepare_content` / :meth:`~methods.Method.prepare_style` would, from the cache.
    ``methods``: row label → method; ``budget_mib``: the cache's budget (0: every call encodes)."""

    def __init__(self, methods: Mapping[str, Method], budget_mib: float) -> None:
        self.cache = EncodingCache(budget_mib)
        self._shared: dict[str, tuple[str, tuple[str, ...]]] = {}
        digests = {label: _encoder_digest(m) for label, m in methods.items()} if budget_mib > 0 else {}
        for digest in {d for d in digests.values() if d is not None}:
            sharing = [label for label, d in digests.items() if d == digest]
            union = {tap for label in sharing for tap in methods[label].model.taps}
            taps = tuple(t for t in TAP_NAMES if t in union)
            self._shared.update({label: (digest, taps) for label in sharing})

    def _prepared(self, label: str, method: Method, role: str, path: Path, image: Tensor):
        if label not in self._shared:
            make = method.prepare_content if role == "content" else method.prepare_style
            return self.cache.get((label, role, path), lambda: make(image))
        digest, taps = self._shared[label]
        method.model.check_image(image, role)
        shared = self.cache.get(("vgg", digest, taps, path), lambda: _vgg_features(method, image, taps))
        features = {t: v for t, v in shared.features.items() if t in method.model.taps}
        if role == "content" or type(method.model).style_state is StyleTransferNet.style_state:
            kind = PreparedContent if role == "content" else PreparedStyle
            return kind(features, shared.size, method.name)
        # the method's style-only work is cached apart from the shared features (which it does not copy)
        state = self.cache.get((label, "style state", path), lambda: _style_state(method, features, shared.size),
                               derived=True)
        return PreparedStyle({**features, **state.features}, shared.size, method.name)

    def content(self, label: str, method: Method, path: Path, image: Tensor) -> PreparedContent:
        return self._prepared(label, method, "content", path, image)

    def style(self, label: str, method: Method, path: Path, image: Tensor) -> PreparedStyle:
        return self._prepared(label, method, "style", path, image)

    def stats(self) -> dict[str, Any]:
        return {**self.cache.stats(), "shared_vgg": sorted(self._shared)}


@torch.inference_mode()
def _style_state(method: Method, features: dict[str, Tensor], size: tuple[int, int]) -> PreparedFeatures:
    """The network's style state (:meth:`methods.StyleTransferNet.style_state`) of a style's shared VGG features."""
    return PreparedFeatures(method.model.style_state(features), size, method.name)


@torch.inference_mode()
def _vgg_features(method: Method, image: Tensor, taps: Sequence[str]) -> PreparedFeatures:
    """The VGG features every method sharing ``method``'s encoder takes its taps from."""
    image = image.to(method.device, torch.float32)
    return PreparedFeatures(method.model.encoder(image, taps), (int(image.shape[-2]), int(image.shape[-1])), "vgg")
