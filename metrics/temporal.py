"""Temporal consistency of stylised video: the flow-based warping error of Lai et al. (ECCV 2018) with the occlusion
test of Ruder et al. (GCPR 2016) — the "optical-flow error" of the StyA2K paper's Table 3 (spec §8, §12).

Conventions
-----------
* Images are float tensors ``(B, C, H, W)`` (C = 3 for RGB frames) with values in ``[0, 1]``.
* A flow field from frame *a* to frame *b* is defined on *a*'s pixel grid: ``w_{a→b}(x) = (u, v)`` says that the
  pixel at ``x = (x, y)`` (column, row; pixel centres at integer coordinates) of *a* is found at ``x + w(x)`` in *b*.
  Tensors hold it as ``(B, 2, H, W)`` (channel 0 = u, horizontal, rightwards; channel 1 = v, vertical, downwards);
  files and OpenCV as ``(H, W, 2)`` float32 arrays in the same order (Middlebury ``.flo``).
* **Backward warping**: ``warp(I_b, w_{a→b})(x) = I_b(x + w_{a→b}(x))`` with bilinear interpolation — frame *b*
  brought onto *a*'s grid. A sample position outside ``[0, W−1] × [0, H−1]`` is *invalid* (it counts as occluded).
  To compare stylised frame ``O_t`` with its predecessor we therefore need the **backward** flow ``ŵ = w_{t→t−1}``
  (estimated on the *input* frames) and compute ``warp(O_{t−1}, ŵ)``.

Occlusion mask (Ruder et al., forward–backward consistency)
-----------------------------------------------------------
On frame t's grid, with ``ŵ = w_{t→s}`` (s = t−1, or t−k for the long-range variant) and the forward flow
``w = w_{s→t}``, let ``w̃(x) = w(x + ŵ(x))`` (bilinear). A pixel is *unreliable* when

* it leaves the frame:   ``x + ŵ(x) ∉ [0, W−1] × [0, H−1]``;
* it is disoccluded:     ``|w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5``;
* it is on a motion boundary: ``|∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002``, with the central differences
  ``∂f/∂x ≈ (f(x+1) − f(x−1)) / 2`` (one-sided ``(f(1) − f(0)) / 2`` at the image border, i.e. replicated edges);

``M_t(x) = 1`` on the remaining (reliable) pixels. Thresholds are in pixels of the resolution the flow lives at.
This is the ``consistencyChecker`` of the artistic-videos code: its ``reliable_j_i.pgm`` is the mask on frame j's grid
from ``backward_j_i.flo`` checked against ``forward_i_j.flo`` (the mask for warping frame i into frame j), smoothed
and stored as 0..254; thresholded at 128 it agrees with :func:`reliability_mask` on 99.9 % of the pixels of the
marple8 example (tests/test_temporal.py).

Warping error (Lai et al.)
--------------------------
For stylised frames ``O_1 … O_N`` in ``[0, 1]`` and an intensity ``scale`` σ (1 → [0, 1] units, 255 → 8-bit units)::

    E_t   = Σ_x M_t(x) · Σ_c σ² (O_t(x, c) − warp(O_{t−1}, ŵ_t)(x, c))²  /  Σ_x M_t(x)
    E     = 1/(N−1) · Σ_{t=2..N} E_t

i.e. the squared Euclidean distance over the RGB channels (**summed** over channels, as ‖·‖²₂ in Lai et al.'s
Eq. 9), averaged over the reliable pixels, then over the frame pairs. A pair without any reliable pixel gives NaN.
The **floor** is the same error of the unstylised input frames (flow and mask errors, lighting changes); the
**long-range** variant uses pairs (t, t−k) with the flow between those frames, averaged over t = k+1 … N.
The scale of the paper's Table 3 numbers (2.5–8.5) is not stated; it is *not* comparable to ours in absolute terms.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from methods.errors import InputError

from .base import Summary, summarize

__all__ = [
    "FLOW_BACKENDS",
    "OcclusionConfig",
    "WarpingError",
    "backward_warp",
    "estimate_flow",
    "flow_to_array",
    "flow_to_tensor",
    "motion_boundaries",
    "reliability_mask",
    "resize_flow",
    "warping_error",
]

FLOW_BACKENDS = ("dis", "farneback")
"""Optical-flow estimators of :func:`estimate_flow` (OpenCV): DIS (preset MEDIUM) and Farnebäck."""


def flow_to_array(flow: np.ndarray | Tensor) -> np.ndarray:
    """A flow as an ``(H, W, 2)`` float32 array, from an array of that shape or a ``(2, H, W)`` / ``(1, 2, H, W)``
    tensor."""
    if isinstance(flow, Tensor):
        t = flow.detach().to("cpu", torch.float32)
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 2:
            raise InputError(f"flow tensor must have shape (2, H, W) or (1, 2, H, W), got {tuple(flow.shape)}")
        return t.permute(1, 2, 0).contiguous().numpy()
    array = np.asarray(flow, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 2:
        raise InputError(f"flow array must have shape (H, W, 2), got {array.shape}")
    return array


def flow_to_tensor(flow: np.ndarray | Tensor) -> Tensor:
    """A flow as a ``(1, 2, H, W)`` float32 tensor (from ``(H, W, 2)`` arrays; tensors of shape ``(B, 2, H, W)`` or
    ``(2, H, W)`` are passed through / given a batch dimension)."""
    if isinstance(flow, Tensor):
        t = flow if flow.dim() == 4 else flow.unsqueeze(0)
        if t.dim() != 4 or t.shape[1] != 2:
            raise InputError(f"flow tensor must have shape (B, 2, H, W), got {tuple(flow.shape)}")
        return t.to(torch.float32) if not t.is_floating_point() else t
    return torch.from_numpy(flow_to_array(flow).copy()).permute(2, 0, 1).unsqueeze(0)


def resize_flow(flow: Tensor, size: Sequence[int]) -> Tensor:
    """Resample a flow ``(B, 2, H, W)`` to ``size = (h, w)`` (bilinear, ``align_corners=False``) and rescale its
    vectors to the new pixel units: ``u ← u·w/W``, ``v ← v·h/H``. Unchanged when the size already matches."""
    h, w = int(size[0]), int(size[1])
    if tuple(flow.shape[-2:]) == (h, w):
        return flow
    H, W = flow.shape[-2:]
    out = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
    factors = torch.tensor([w / W, h / H], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)
    return out * factors


# ----------------------------------------------------------------------------------------------------------------------
# Flow estimation (OpenCV)
# ----------------------------------------------------------------------------------------------------------------------
def _gray_u8(frame: np.ndarray | Tensor) -> np.ndarray:
    """An RGB frame — ``(H, W, 3)`` uint8 array, or a ``(3, H, W)`` / ``(1, 3, H, W)`` float tensor in [0, 1] — as an
    ``(H, W)`` uint8 grey image (ITU-R BT.601 luma, OpenCV's ``COLOR_RGB2GRAY``)."""
    import cv2

    if isinstance(frame, Tensor):
        t = frame.detach().to("cpu", torch.float32)
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 3 or t.shape[0] != 3:
            raise InputError(f"frame tensor must have shape (3, H, W) or (1, 3, H, W), got {tuple(frame.shape)}")
        frame = (t.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(f"frame array must be (H, W, 3) uint8 RGB, got {array.shape} {array.dtype}")
    return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)


def estimate_flow(source: np.ndarray | Tensor, target: np.ndarray | Tensor, backend: str = "dis") -> np.ndarray:
    """Optical flow ``w_{source→target}`` on ``source``'s grid: ``(H, W, 2)`` float32, so that
    ``source(x) ≈ target(x + w(x))``. Frames: ``(H, W, 3)`` uint8 RGB arrays or ``(3, H, W)`` float tensors in [0, 1],
    converted to 8-bit grey.

    Backends: ``"dis"`` — ``cv2.DISOpticalFlow_create(DISOPTICAL_FLOW_PRESET_MEDIUM)`` (dense inverse search with
    variational refinement); ``"farneback"`` — ``cv2.calcOpticalFlowFarneback`` with pyramid scale 0.5, 5 levels,
    window 15, 3 iterations, poly_n 5, poly_sigma 1.2 (OpenCV's documented example settings, one more level).
    """
    import cv2

    a, b = _gray_u8(source), _gray_u8(target)
    if a.shape != b.shape:
        raise InputError(f"frames differ in size: {a.shape[::-1]} and {b.shape[::-1]} (W×H)")
    if backend == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(a, b, None)
    elif backend == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 3, 5, 1.2, 0)
    else:
        raise InputError(f"unknown flow backend {backend!r}; known: {', '.join(FLOW_BACKENDS)} (or a folder of .flo files)")
    return np.asarray(flow, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------------------
# Warping and the occlusion mask
# ----------------------------------------------------------------------------------------------------------------------
def _check_flow(flow: Tensor, like: Tensor, name: str) -> Tensor:
    flow = flow_to_tensor(flow)
    if flow.shape[-2:] != like.shape[-2:] or flow.shape[0] not in (1, like.shape[0]):
        raise InputError(f"{name} {tuple(flow.shape)} does not match the frames {tuple(like.shape)} (need (B|1, 2, H, W))")
    return flow.to(like.device, like.dtype if like.is_floating_point() else torch.float32)


def sample_positions(flow: Tensor) -> tuple[Tensor, Tensor]:
    """The sampling positions ``x + u``, ``y + v`` of a flow ``(B, 2, H, W)``: two ``(B, H, W)`` tensors."""
    _, _, height, width = flow.shape
    ys = torch.arange(height, dtype=flow.dtype, device=flow.device).view(1, height, 1)
    xs = torch.arange(width, dtype=flow.dtype, device=flow.device).view(1, 1, width)
    return xs + flow[:, 0], ys + flow[:, 1]


def backward_warp(image: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Backward-warp ``image`` (B, C, H, W) with ``flow`` (B|1, 2, H, W) defined on the *output* grid:
    ``out(x) = image(x + flow(x))``, bilinear (``grid_sample``, ``align_corners=True`` so that pixel centres are the
    integer coordinates; positions outside are clamped to the border).

    Returns ``(warped (B, C, H, W), valid (B, 1, H, W) bool)`` where ``valid`` is False when ``x + flow(x)`` lies
    outside ``[0, W−1] × [0, H−1]`` (also for NaN flow).
    """
    if image.dim() != 4:
        raise InputError(f"image must have shape (B, C, H, W), got {tuple(image.shape)}")
    flow = _check_flow(flow, image, "flow")
    if flow.shape[0] != image.shape[0]:
        flow = flow.expand(image.shape[0], -1, -1, -1)
    _, _, height, width = image.shape
    px, py = sample_positions(flow)
    valid = (px >= 0) & (px <= width - 1) & (py >= 0) & (py <= height - 1)
    grid = torch.stack(
        [2.0 * px / max(width - 1, 1) - 1.0, 2.0 * py / max(height - 1, 1) - 1.0], dim=-1
    )  # (B, H, W, 2) in [-1, 1]
    grid = torch.nan_to_num(grid, nan=0.0)
    warped = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True)
    return warped, valid.unsqueeze(1)


def _central_difference(f: Tensor, dim: int) -> Tensor:
    """``(f[i+1] − f[i−1]) / 2`` along ``dim`` with replicated edges (so ``(f[1] − f[0]) / 2`` at the first index)."""
    n = f.shape[dim]
    if n < 2:
        return torch.zeros_like(f)
    idx = torch.arange(n, device=f.device)
    nxt = f.index_select(dim, (idx + 1).clamp_max(n - 1))
    prv = f.index_select(dim, (idx - 1).clamp_min(0))
    return 0.5 * (nxt - prv)


def motion_boundaries(flow: Tensor, rel: float = 0.01, abs_: float = 0.002) -> Tensor:
    """Motion-boundary mask of a flow ``(B, 2, H, W)``: ``|∇u|² + |∇v|² > rel·|w|² + abs_`` with central differences
    (see the module docstring). Returns ``(B, 1, H, W)`` bool, True on a boundary."""
    flow = flow_to_tensor(flow)
    grad = _central_difference(flow, 3).square() + _central_difference(flow, 2).square()  # (B, 2, H, W)
    return (grad.sum(1, keepdim=True) > rel * flow.square().sum(1, keepdim=True) + abs_)


@dataclass(frozen=True)
class OcclusionConfig:
    """Thresholds of Ruder et al.'s consistency check (their defaults), in pixels² at the flow's resolution:
    disoccluded where ``|w̃ + ŵ|² > consistency_rel·(|w̃|² + |ŵ|²) + consistency_abs``, motion boundary where
    ``|∇ŵ|² > boundary_rel·|ŵ|² + boundary_abs``; ``motion_boundaries=False`` skips the second test."""

    consistency_rel: float = 0.01
    consistency_abs: float = 0.5
    boundary_rel: float = 0.01
    boundary_abs: float = 0.002
    motion_boundaries: bool = True


def reliability_mask(backward_flow: Tensor, forward_flow: Tensor, config: OcclusionConfig = OcclusionConfig()) -> Tensor:
    """Ruder et al.'s mask on frame t's grid: ``backward_flow`` ŵ = w_{t→s} (B, 2, H, W) checked against
    ``forward_flow`` w = w_{s→t} (same shape). Returns ``(B, 1, H, W)`` bool, **True = reliable** (inside the frame,
    forward–backward consistent and, unless disabled, not on a motion boundary); ``~mask`` is the occlusion mask.
    """
    bwd = flow_to_tensor(backward_flow)
    fwd = _check_flow(forward_flow, bwd, "forward flow")
    fwd_at, inside = backward_warp(fwd.expand(bwd.shape[0], -1, -1, -1), bwd)  # w̃(x) = w(x + ŵ(x))
    lhs = (fwd_at + bwd).square().sum(1, keepdim=True)
    rhs = config.consistency_rel * (fwd_at.square().sum(1, keepdim=True) + bwd.square().sum(1, keepdim=True))
    reliable = inside & (lhs <= rhs + config.consistency_abs)
    if config.motion_boundaries:
        reliable &= ~motion_boundaries(bwd, config.boundary_rel, config.boundary_abs)
    return reliable


# ----------------------------------------------------------------------------------------------------------------------
# The warping error
# ----------------------------------------------------------------------------------------------------------------------
def warping_error(
    current: Tensor,
    previous: Tensor,
    backward_flow: Tensor,
    mask: Tensor | None = None,
    scale: float = 1.0,
) -> Tensor:
    """Lai et al.'s warping error of each pair: ``current`` O_t and ``previous`` O_s (B, C, H, W) in [0, 1],
    ``backward_flow`` ŵ = w_{t→s} (B|1, 2, H, W), ``mask`` M_t (B|1, 1, H, W), True/1 = reliable (None: every pixel
    whose sample position lies inside the frame). Returns ``(B,)`` float64::

        E = Σ_x M(x)·valid(x) · Σ_c scale² (O_t(x, c) − O_s(x + ŵ(x), c))²  /  Σ_x M(x)·valid(x)

    (NaN where no pixel is reliable). ``valid`` is the in-frame test of :func:`backward_warp`.
    """
    if current.shape != previous.shape or current.dim() != 4:
        raise InputError(f"current {tuple(current.shape)} and previous {tuple(previous.shape)} must be equal (B, C, H, W)")
    current64, previous64 = current.to(torch.float64), previous.to(torch.float64)
    warped, valid = backward_warp(previous64, _check_flow(backward_flow, previous64, "backward flow"))
    weight = valid.to(torch.float64)
    if mask is not None:
        if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != current.shape[-2:]:
            raise InputError(f"mask must have shape (B|1, 1, H, W) matching the frames, got {tuple(mask.shape)}")
        weight = weight * mask.to(weight.device, torch.float64)
    squared = (scale * (current64 - warped)).square().sum(1, keepdim=True)  # (B, 1, H, W)
    count = weight.sum((1, 2, 3))
    total = (weight * squared).sum((1, 2, 3))
    return torch.where(count > 0, total / count.clamp_min(1e-12), torch.full_like(total, float("nan")))


class WarpingError:
    """Metric object (the :class:`metrics.base.Metric` protocol adapted to frame pairs): :meth:`update` takes a batch
    of (current, previous) frames with their backward flow and mask, returns the per-pair errors (B,) and accumulates
    them; :meth:`compute` → :class:`metrics.base.Summary` over the pairs seen (the mean is E of the module docstring);
    :meth:`reset`. Lower is better. Functional twin: :func:`warping_error`."""

    name = "warping_error"
    higher_is_better = False
    unit = ""

    def __init__(self, scale: float = 1.0, occlusion: OcclusionConfig = OcclusionConfig()) -> None:
        self.scale = float(scale)
        self.occlusion = occlusion
        self._values: list[Tensor] = []

    @torch.inference_mode()
    def update(
        self,
        current: Tensor,
        previous: Tensor,
        backward_flow: Tensor,
        forward_flow: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Per-pair errors; the mask is ``mask`` if given, else :func:`reliability_mask` of the two flows when
        ``forward_flow`` is given, else only the in-frame test."""
        if mask is None and forward_flow is not None:
            mask = reliability_mask(backward_flow, forward_flow, self.occlusion)
        values = warping_error(current, previous, backward_flow, mask, self.scale).detach().cpu().flatten()
        self._values.append(values)
        return values

    def compute(self) -> Summary:
        """Summary over the pairs with a defined (non-NaN) error."""
        values = torch.cat(self._values) if self._values else torch.empty(0, dtype=torch.float64)
        return summarize(values[~torch.isnan(values)])

    def reset(self) -> None:
        self._values.clear()

    def config(self) -> dict:
        return {"name": self.name, "higher_is_better": self.higher_is_better, "scale": self.scale,
                "occlusion": asdict(self.occlusion),
                "definition": "mean over pairs of [sum_x M(x) sum_c (scale*(O_t - warp(O_s)))^2 / sum_x M(x)]"}
