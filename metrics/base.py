"""The metric protocol (after torchmetrics' ``Metric``): ``update`` / ``compute`` / ``reset`` and ``higher_is_better``.

A :class:`Metric` is an ``nn.Module``, so ``metric.to(device)`` moves the networks it holds (LPIPS, the VGG encoder).

An image metric compares a batch of stylised outputs with their content and style images. ``update`` returns the
per-image values (B,) — the runner writes one row per pair — and accumulates them; ``compute`` summarises everything
seen since the last ``reset``. Each metric also has a functional twin taking the same tensors.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from methods.errors import InputError
from methods.net import check_image_batch


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (e.g. missing weights offline). ``reason`` is one line saying what is missing,
    where to get it and where to put it; runners report ``unavailable: <reason>`` instead of a value. ``missing``
    lists the missing weight files."""

    def __init__(self, reason: str, *, missing: Iterable[Any] = ()) -> None:
        self.reason = " ".join(str(reason).split())
        self.missing = list(missing)
        super().__init__(self.reason)


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation, count and the 95 % confidence half-width of the mean (Student's t,
    ``t_{0.975, n−1}·std/√n`` — 4.30·std/√3 at n = 3, → 1.96·std/√n for large n; 0 for n < 2)."""

    mean: float
    std: float
    n: int
    ci95: float


def summarize(values: Tensor | list[float]) -> Summary:
    """:class:`Summary` of a 1-D collection of values (NaNs are an error: a metric that could not be computed is
    reported as unavailable, never averaged)."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if v.numel() == 0:
        return Summary(math.nan, math.nan, 0, math.nan)
    if torch.isnan(v).any():
        raise ValueError("cannot summarise NaN metric values")
    n = v.numel()
    std = v.std().item() if n > 1 else 0.0
    return Summary(v.mean().item(), std, n, t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else 0.0)


def t_quantile_975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom (the two-sided 95 % interval's factor)."""
    from scipy.stats import t  # scipy is imported only where an interval is computed

    return float(t.ppf(0.975, df))


def check_triplet(output: Tensor, content: Tensor | None = None, style: Tensor | None = None) -> None:
    """Validate image batches (B, 3, H, W) in [0, 1]; output and content must have the same shape."""
    check_image_batch(output, "output")
    if content is not None:
        check_image_batch(content, "content")
        if content.shape != output.shape:
            raise InputError(f"content {tuple(content.shape)} and output {tuple(output.shape)} must have the same shape")
    if style is not None:
        check_image_batch(style, "style")
        if style.shape[0] not in (1, output.shape[0]):
            raise InputError(f"style batch {style.shape[0]} must be 1 or equal to the output batch {output.shape[0]}")


class Metric(nn.Module):
    """Base class: subclasses set ``name``, ``higher_is_better``, ``unit`` and implement :meth:`values`.

    ``forward`` is :meth:`update` (``metric(output, content, style)``, as in torchmetrics)."""

    name: str = "metric"
    higher_is_better: bool = False
    unit: str = ""

    def __init__(self) -> None:
        super().__init__()
        self._values: list[Tensor] = []

    def forward(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        return self.update(output, content, style)

    def values(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        """Per-image values (B,) for outputs (B, 3, H, W) and their content/style images, all RGB in [0, 1]."""
        raise NotImplementedError

    @torch.inference_mode()
    def update(self, output: Tensor, content: Tensor, style: Tensor) -> Tensor:
        check_triplet(output, content, style)
        v = self.values(output, content, style).detach().to("cpu", torch.float64).flatten()
        self._values.append(v)
        return v

    def compute(self) -> Summary:
        return summarize(torch.cat(self._values) if self._values else torch.empty(0))

    def reset(self) -> None:
        self._values.clear()

    def config(self) -> dict:
        """What the manifest records about this metric's definition."""
        return {"name": self.name, "higher_is_better": self.higher_is_better}
