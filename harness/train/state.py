"""What a training writes besides the checkpoint: ``loss_log.csv`` (:class:`LossLog`), sample grids, and the RNG
and encoder fingerprints a training state holds for an exact resume."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ..atomic import write_text_atomic
from ..images import save_image, tensor_to_image


class LossLog:
    """``loss_log.csv``: header ``step, epoch, lr, <terms>, loss``; one flushed row per step.

    On resume the rows after the resumed step are dropped (a crash after the last checkpoint leaves rows the
    resumed run will write again), so the log never has duplicates."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.columns: list[str] | None = None
        if resume_step is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if rows:
                self.columns = rows[0]
                kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= resume_step]
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(kept)
                write_text_atomic(path, buffer.getvalue())
        else:
            path.unlink(missing_ok=True)
        self._fh = None

    def write(self, row: Mapping[str, Any]) -> None:
        columns = list(row)
        if self._fh is None:
            new = not self.path.is_file() or self.path.stat().st_size == 0
            if self.columns is not None and not new and self.columns != columns:
                raise RuntimeError(f"{self.path}: its columns {self.columns} differ from this run's {columns}")
            self._fh = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh, lineterminator="\n")
            if new:
                self._writer.writerow(columns)
            self.columns = columns
        self._writer.writerow([repr(v) if isinstance(v, float) else v for v in row.values()])
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


SAMPLE_HEADER_PX = 18
"""Height of the label band over a sample grid's columns."""


def save_sample_grid(path: Path, content: Tensor, style: Tensor, output: Tensor, step: int | None = None,
                     untrained: bool = False) -> Path:
    """A PNG grid: one row per pair (≤ 4), columns content | style | output (clamped to [0, 1]), under a white band
    labelling the columns (``step``: the training step, named over the outputs; ``untrained``: a † note that the
    encoder is random). Tensors: [B, 3, H, W] in [0, 1]."""
    n = min(4, content.shape[0])
    rows = [torch.cat([content[i], style[i], output[i].clamp(0.0, 1.0)], dim=2) for i in range(n)]
    grid = torch.cat(rows, dim=1).float().cpu()
    width = content.shape[-1]
    header = Image.new("RGB", (grid.shape[-1], SAMPLE_HEADER_PX), "white")
    draw = ImageDraw.Draw(header)
    output_label = "output" + (f", step {step}" if step is not None else "") + (" †" if untrained else "")
    for column, label in enumerate(("content", "style", output_label)):
        draw.text((column * width + 3, 3), label, fill="black")
    body = tensor_to_image(grid)
    canvas = Image.new("RGB", (body.width, body.height + SAMPLE_HEADER_PX), "white")
    canvas.paste(header, (0, 0))
    canvas.paste(body, (0, SAMPLE_HEADER_PX))
    return save_image(canvas, path)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(state["cuda"])


def tensor_digest(state: Mapping[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
