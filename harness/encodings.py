"""Encodings reused within a run: each (method, role, image) is encoded once and kept in a least-recently-used cache
bounded by a memory budget, so a content × style grid costs one encoding per image instead of one per pair.

A method's prepared content (:class:`methods.PreparedContent`) and prepared style (:class:`methods.PreparedStyle`)
are what :meth:`methods.Method.stylize` would compute inside the call, so outputs are bit-identical with and without
the cache; the timing rows still time the full forward, encodings included, as the paper does.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["EncodingCache", "prepared_nbytes"]


def prepared_nbytes(prepared: Any) -> int:
    """Bytes held by a prepared encoding's tensors."""
    return sum(t.numel() * t.element_size() for t in prepared.features.values())


class EncodingCache:
    """An LRU of prepared encodings bounded by ``budget_mib`` (0: nothing is kept, every call encodes). An entry
    larger than the whole budget is used once and not kept. ``hits`` / ``misses`` count the look-ups."""

    def __init__(self, budget_mib: float) -> None:
        if budget_mib < 0:
            raise ValueError(f"budget_mib must be ≥ 0, got {budget_mib}")
        self.budget = int(budget_mib * 2**20)
        self.used = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The entry of ``key``, made with ``make()`` on a miss (and kept while the budget allows, evicting the least
        recently used entries)."""
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key][0]
        self.misses += 1
        value = make()
        size = prepared_nbytes(value)
        if size <= self.budget:
            while self.used + size > self.budget and self._entries:
                _, (_, freed) = self._entries.popitem(last=False)
                self.used -= freed
            self._entries[key] = (value, size)
            self.used += size
        return value

    def clear(self) -> None:
        self._entries.clear()
        self.used = 0

    def stats(self) -> dict[str, float]:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / total if total else 0.0,
                "budget_mib": self.budget / 2**20}
