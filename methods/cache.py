"""A least-recently-used cache bounded by bytes, for tensors reused within a run (the harness's prepared encodings,
the metrics' per-image features)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import torch
from torch.utils._pytree import tree_flatten

V = TypeVar("V")

__all__ = ["BoundedLRU", "tensor_bytes"]


def tensor_bytes(value: object) -> int:
    """Bytes of the tensors in ``value`` (a tensor, or dicts / lists / tuples of them; other leaves count 0)."""
    return sum(t.numel() * t.element_size() for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor))


class BoundedLRU(Generic[V]):
    """An LRU of values bounded by ``budget_mib`` (0: nothing is kept, every look-up makes its value), each value's
    size given by ``size_of`` (bytes; default :func:`tensor_bytes`). A value larger than the whole budget is used
    once and not kept. ``hits`` / ``misses`` count the look-ups.

    Values made with ``derived=True`` (cheap to redo from others, e.g. a method's style state) only fill room that
    is free: they never evict anything and are the first evicted when another value needs room. A grid's styles
    cycle through the cache once per content, and an LRU over a cycle longer than it holds misses every time; so
    the expensive values keep their place, and the derived ones that fit stay hits."""

    def __init__(self, budget_mib: float, size_of: Callable[[V], int] = tensor_bytes) -> None:
        if not budget_mib >= 0:
            raise ValueError(f"budget_mib must be ≥ 0, got {budget_mib}")
        self.budget = int(budget_mib * 2**20)
        self.size_of = size_of
        self.used = 0
        self.hits = self.misses = 0
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._derived: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries) + len(self._derived)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries or key in self._derived

    def get(self, key: Hashable, make: Callable[[], V], derived: bool = False) -> V:
        """The value of ``key``, made with ``make()`` on a miss (and kept while the budget allows: see the class)."""
        for entries in (self._entries, self._derived):
            if key in entries:
                entries.move_to_end(key)
                self.hits += 1
                return entries[key][0]
        self.misses += 1
        value = make()
        size = int(self.size_of(value))
        if derived:
            if self.used + size <= self.budget:
                self._derived[key] = (value, size)
                self.used += size
        elif size <= self.budget:
            while self.used + size > self.budget:
                _, (_, freed) = (self._derived or self._entries).popitem(last=False)
                self.used -= freed
            self._entries[key] = (value, size)
            self.used += size
        return value

    def clear(self) -> None:
        """Drop every value (the counters stay)."""
        self._entries.clear()
        self._derived.clear()
        self.used = 0

    def stats(self) -> dict[str, float]:
        total = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / total if total else 0.0,
                "budget_mib": self.budget / 2**20, "used_mib": self.used / 2**20}
