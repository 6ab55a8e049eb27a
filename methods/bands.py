"""Row-band execution of the convolution stacks (VGG encoder, decoders) for large images.

A 3840×2160 image has 2 GiB of activations in *each* full-resolution 64-channel VGG layer, and a convolution holds
its padded input and its output at once. :func:`run_in_bands` runs a stack over horizontal bands of its output rows
instead, each band with exactly the halo rows its receptive field needs, so only one band's activations are alive at
once; the stack's input and output stay whole.

Exact: every output row is computed from the same input values as the whole-map computation. Reflection padding is
applied only at the image's own top and bottom borders (and always left and right, since bands span the full width);
inside the image the halo rows are real data. Max-pools start every band on an even row, so the 2×2 windows are the
whole map's; nearest ×2 upsamples are cropped as the whole map's are.

Supported layers: ``nn.ReflectionPad2d(1)`` followed by a 3×3 stride-1 ``nn.Conv2d`` without padding, 1×1 convs and
ReLUs (per position), ``nn.MaxPool2d(2, 2, ceil_mode=True)`` and ``nn.Upsample(scale_factor=2, mode="nearest")``
followed by a crop to the size given for it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BAND_ELEMENTS = 1 << 26
"""A stack runs in bands when one of its layer outputs would exceed this many elements (64 Mi = 256 MiB in fp32, e.g.
a 64-channel map larger than 1024²); each band's largest layer output then stays within it."""


@dataclass(frozen=True)
class _RowOp:
    kind: str  # "conv3" (reflect pad 1 + 3×3 conv), "point" (1×1 conv, ReLU), "pool" (2×2 ceil), "up" (×2 + crop)
    module: nn.Module
    crop: tuple[int, int] | None = None  # "up": the (rows, cols) it is cropped to

    def in_range(self, start: int, stop: int, in_rows: int) -> tuple[int, int]:
        """Input rows [start', stop') that output rows [start, stop) depend on."""
        if self.kind == "conv3":
            return max(start - 1, 0), min(stop + 1, in_rows)
        if self.kind == "pool":
            return 2 * start, min(2 * stop, in_rows)
        if self.kind == "up":
            return start // 2, (stop - 1) // 2 + 1
        return start, stop

    def run(self, x: Tensor, start: int, stop: int, in_start: int, in_rows: int) -> Tensor:
        """Output rows [start, stop) from x = input rows [in_start, in_start + x.shape[-2])."""
        if self.kind == "conv3":
            top, bottom = int(start == 0), int(stop == in_rows)
            return self.module(F.pad(x, (1, 1, top, bottom), mode="reflect"))
        if self.kind == "up":
            out = self.module(x)
            offset = start - 2 * in_start
            return out[:, :, offset: offset + stop - start, : self.crop[1]]
        return self.module(x)


def _row_ops(layers: Sequence[nn.Module], crops: Sequence[Sequence[int]]) -> list[_RowOp] | None:
    """The stack as row operations, or None when it holds a layer this module cannot band."""
    ops, crops, index = [], iter(crops), 0
    while index < len(layers):
        layer = layers[index]
        if isinstance(layer, nn.ReflectionPad2d) and tuple(layer.padding) == (1, 1, 1, 1):
            conv = layers[index + 1] if index + 1 < len(layers) else None
            if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
                    and conv.padding == (0, 0) and conv.dilation == (1, 1)):
                return None
            ops.append(_RowOp("conv3", conv))
            index += 2
            continue
        if isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.stride == (1, 1) \
                and layer.padding == (0, 0) or isinstance(layer, nn.ReLU):
            ops.append(_RowOp("point", layer))
        elif isinstance(layer, nn.MaxPool2d) and layer.kernel_size in (2, (2, 2)) and layer.stride in (2, (2, 2)) \
                and layer.padding in (0, (0, 0)) and layer.ceil_mode:
            ops.append(_RowOp("pool", layer))
        elif isinstance(layer, nn.Upsample) and layer.scale_factor in (2, 2.0) and layer.mode == "nearest":
            size = next(crops, None)
            if size is None:
                return None
            ops.append(_RowOp("up", layer, (int(size[0]), int(size[1]))))
        else:
            return None
        index += 1
    return ops


def _layer_shapes(ops: Sequence[_RowOp], x: Tensor) -> list[tuple[int, int, int]]:
    """(channels, rows, cols) of every op's output, without running it."""
    shapes, (c, h, w) = [], x.shape[1:]
    for op in ops:
        if isinstance(op.module, nn.Conv2d):
            c = op.module.out_channels
        if op.kind == "pool":
            h, w = -(-h // 2), -(-w // 2)
        elif op.kind == "up":
            h, w = op.crop
        shapes.append((c, h, w))
    return shapes


def run_in_bands(layers: Sequence[nn.Module], x: Tensor, crops: Sequence[Sequence[int]] = (),
                 max_elements: int | None = None) -> Tensor | None:
    """Run ``layers`` (the supported kinds, see the module docstring) on x (B, C, H, W) over bands of output rows
    whose largest layer output has at most ``max_elements`` elements (None: :data:`BAND_ELEMENTS`); ``crops``
    (rows, cols) per upsample.

    Returns None when no layer output exceeds ``max_elements`` or a layer cannot be banded: the caller then runs
    the stack whole. Otherwise the result equals the whole-map computation.
    """
    max_elements = BAND_ELEMENTS if max_elements is None else max_elements
    ops = _row_ops(layers, crops)
    if not ops:
        return None
    shapes = _layer_shapes(ops, x)
    batch = x.shape[0]
    largest = max(batch * c * h * w for c, h, w in shapes)
    if largest <= max_elements:
        return None
    in_rows = [x.shape[-2]] + [h for _, h, _ in shapes[:-1]]
    out_rows = shapes[-1][1]
    # Rows of the largest layer per output row (its resolution relative to the output), to size the bands.
    per_output_row = max(batch * c * w * max(1, -(-h // out_rows)) for c, h, w in shapes)
    step = max(1, max_elements // per_output_row)
    out = None
    for start in range(0, out_rows, step):
        stop = min(start + step, out_rows)
        ranges = [(start, stop)]
        for op, rows in zip(reversed(ops), reversed(in_rows)):
            ranges.append(op.in_range(*ranges[-1], rows))
        ranges.reverse()  # ranges[k] = input rows of op k; ranges[-1] = the band's output rows
        band = x[:, :, ranges[0][0]: ranges[0][1]]
        for k, op in enumerate(ops):
            band = op.run(band, *ranges[k + 1], ranges[k][0], in_rows[k])
        if out is None:
            out = band.new_empty(batch, band.shape[1], out_rows, band.shape[-1])
        out[:, :, start:stop] = band
        del band
    return out


def run_whole(layers: Sequence[nn.Module], x: Tensor, crops: Sequence[Sequence[int]] = ()) -> Tensor:
    """The stack run on the whole map, layer by layer, cropping the k-th upsample's output to ``crops[k]``."""
    crops = iter(crops)
    for layer in layers:
        x = layer(x)
        if isinstance(layer, nn.Upsample):
            size = next(crops)
            x = x[..., : size[0], : size[1]]
    return x


def banded_or_whole(layers: Sequence[nn.Module], x: Tensor, crops: Sequence[Sequence[int]] = ()) -> Tensor:
    """:func:`run_in_bands` where it applies (inference only), else :func:`run_whole`."""
    if not torch.is_grad_enabled():
        out = run_in_bands(layers, x, crops)
        if out is not None:
            return out
    return run_whole(layers, x, crops)
