"""Data parallelism under ``torchrun`` (:class:`Distributed`) and the unit it wraps (:class:`LossModule`)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn


class Distributed:
    """torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a no-op for a single process."""

    def __init__(self) -> None:
        env = os.environ
        self.world_size = int(env.get("WORLD_SIZE", "1"))
        self.enabled = "RANK" in env and self.world_size > 1
        self.rank = int(env.get("RANK", "0")) if self.enabled else 0
        self.local_rank = int(env.get("LOCAL_RANK", "0")) if self.enabled else 0
        self.world_size = self.world_size if self.enabled else 1
        self._initialised_here = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        if self.enabled and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def init(self, device: torch.device) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self._initialised_here = True

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def mean(self, values: Tensor) -> Tensor:
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(values)
            values /= self.world_size
        return values

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self._initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._initialised_here = False


class LossModule(nn.Module):
    """``forward(content, style)`` → the method's loss dict: the unit DDP wraps and ``torch.compile`` compiles."""

    def __init__(self, model: nn.Module, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.model = model
        self.weights = dict(weights)

    def forward(self, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        return self.model.training_loss(content, style, dict(self.weights))
