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
For stylised frames ``O_1 … O_N`` in ``[0, 1]`` and an intensity ``scale`` σ (1 → [0, 1] units, 255 → 8-bit units),
the default (:data:`LAI2018`) is what Lai et al.'s released ``evaluate_WarpError.py`` computes::

    E_t   = Σ_x M_{t−1}(x) · Σ_c σ² (O_{t−1}(x, c) − warp(O_t, w_{t−1→t})(x, c))²  /  (3 · Σ_x M_{t−1}(x))
    E     = 1/(N−1) · Σ_{t=2..N} E_t

i.e. frame t warped onto frame t−1 with the **forward** flow, the squared error **averaged** over the RGB channels
(their mask is read as a 3-channel image, so N counts each pixel three times) and over the reliable pixels, then
over the pairs; samples outside the frame take the border value and count; the mask is their ``detect_occlusion``
(the forward–backward test above on frame t−1's grid, motion boundaries from forward differences), and a pair
without a reliable pixel is averaged over all pixels. :data:`RUDER2016` is the other reading: frame t−1 warped onto
t with the backward flow, Ruder's mask (out-of-frame samples unreliable, central differences) and the squared
distance **summed** over the channels, as ‖·‖²₂ in Lai's Eq. 9 — exactly 3× the channel mean on the same flow and
mask. Each choice is a field of :class:`WarpingDefinition`. The floor is the same error of the unstylised input
frames (flow and mask errors, lighting changes); the long-range variant uses pairs (t−k, t) with the flow between
those frames. Which numbers each reproduces: Lai et al.'s (ECCV 2018) tables and every paper that runs their released
script are :data:`LAI2018` (often reported ×1000 or ×100: say which); the StyA2K paper's Table 3 does not say which
code it ran, and its scale (2.5–8.5) is not stated: compare orderings, not values.
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
    "pair_error",
    "pair_mask",
    "WarpingDefinition",
    "RUDER2016",
    "LAI2018",
    "DEFINITIONS",
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


def _forward_difference(f: Tensor, dim: int) -> Tensor:
    """``f[i] − f[i+1]`` along ``dim``, 0 at the last index (Lai et al.'s ``compute_flow_gradients``)."""
    out = torch.zeros_like(f)
    n = f.shape[dim]
    if n > 1:
        out.narrow(dim, 0, n - 1).copy_(f.narrow(dim, 0, n - 1) - f.narrow(dim, 1, n - 1))
    return out


def motion_boundaries(flow: Tensor, rel: float = 0.01, abs_: float = 0.002, differences: str = "forward") -> Tensor:
    """Motion-boundary mask of a flow ``(B, 2, H, W)``: ``|∇u|² + |∇v|² > rel·|w|² + abs_`` with ``"forward"``
    differences (Lai) or ``"central"`` ones (Ruder; see the module docstring). Returns ``(B, 1, H, W)`` bool, True
    on a boundary."""
    flow = flow_to_tensor(flow)
    diff = {"forward": _forward_difference, "central": _central_difference}[differences]
    grad = diff(flow, 3).square() + diff(flow, 2).square()  # (B, 2, H, W)
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


@dataclass(frozen=True)
class WarpingDefinition:
    """Every choice that makes one warping error differ from another, named (see the module docstring).

    * ``channels``: ``"mean"`` — the squared error averaged over the RGB channels (Lai et al.'s released
      ``evaluate_WarpError.py``: its mask is read as a 3-channel image, so N counts each pixel three times) — or
      ``"sum"`` (‖·‖²₂ over the channels, as Lai's Eq. 9 is written): exactly 3× the mean on RGB frames;
    * ``direction``: ``"forward"`` — frame t warped onto frame t−1 with the forward flow w_{t−1→t}, compared with
      frame t−1 on its grid (Lai's code) — or ``"backward"``: frame t−1 warped onto frame t with w_{t→t−1};
    * ``out_of_frame``: ``"border"`` — samples outside the frame take the border value and count (Lai's
      ``Resample2d`` clamps) — or ``"unreliable"`` (Ruder et al.'s consistency checker masks them);
    * ``differences``: motion-boundary gradients by ``"forward"`` differences ``f(x) − f(x+1)`` (0 on the last
      row/column; Lai) or ``"central"`` ones with replicated edges (Ruder);
    * ``empty_mask``: a pair without any reliable pixel gives the error over ``"all_pixels"`` (Lai: N = H·W·C) or
      ``"nan"``.
    """

    channels: str = "mean"
    direction: str = "forward"
    out_of_frame: str = "border"
    differences: str = "forward"
    empty_mask: str = "all_pixels"

    def __post_init__(self) -> None:
        for key, allowed in (("channels", ("mean", "sum")), ("direction", ("forward", "backward")),
                             ("out_of_frame", ("border", "unreliable")), ("differences", ("forward", "central")),
                             ("empty_mask", ("all_pixels", "nan"))):
            if getattr(self, key) not in allowed:
                raise InputError(f"warping error {key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")


LAI2018 = WarpingDefinition()
"""Lai et al.'s released evaluation code (``evaluate_WarpError.py`` + ``utils.detect_occlusion``): the default."""
RUDER2016 = WarpingDefinition(channels="sum", direction="backward", out_of_frame="unreliable", differences="central",
                              empty_mask="nan")
"""Ruder et al.'s artistic-videos consistency checker conventions with Lai's Eq. 9 as written (channel sum): what
this harness computed before the released code's definition became the default (3× Lai's value on RGB frames)."""
DEFINITIONS: dict[str, WarpingDefinition] = {"lai2018": LAI2018, "ruder2016": RUDER2016}


def reliability_mask(flow: Tensor, other_flow: Tensor, config: OcclusionConfig = OcclusionConfig(),
                     definition: WarpingDefinition = LAI2018) -> Tensor:
    """The consistency mask on the grid ``flow`` is defined on: ``flow`` ŵ = w_{a→b} (B, 2, H, W) checked against
    ``other_flow`` w = w_{b→a} (same shape). Returns ``(B, 1, H, W)`` bool, **True = reliable** (forward–backward
    consistent, unless disabled not on a motion boundary, and with ``definition.out_of_frame="unreliable"`` inside
    the frame); ``~mask`` is the occlusion mask. (Lai's ``detect_occlusion(bw_flow, fw_flow)`` on frame t−1 is
    ``reliability_mask(w_{t−1→t}, w_{t→t−1})``; Ruder's mask on frame t is ``reliability_mask(w_{t→t−1},
    w_{t−1→t}, definition=RUDER2016)``.)
    """
    bwd = flow_to_tensor(flow)
    fwd = _check_flow(other_flow, bwd, "other flow")
    fwd_at, inside = backward_warp(fwd.expand(bwd.shape[0], -1, -1, -1), bwd)  # w̃(x) = w(x + ŵ(x))
    lhs = (fwd_at + bwd).square().sum(1, keepdim=True)
    rhs = config.consistency_rel * (fwd_at.square().sum(1, keepdim=True) + bwd.square().sum(1, keepdim=True))
    reliable = lhs <= rhs + config.consistency_abs
    if definition.out_of_frame == "unreliable":
        reliable &= inside
    if config.motion_boundaries:
        reliable &= ~motion_boundaries(bwd, config.boundary_rel, config.boundary_abs, definition.differences)
    return reliable


# ----------------------------------------------------------------------------------------------------------------------
# The warping error
# ----------------------------------------------------------------------------------------------------------------------
def warping_error(
    target: Tensor,
    source: Tensor,
    flow: Tensor,
    mask: Tensor | None = None,
    scale: float = 1.0,
    definition: WarpingDefinition = LAI2018,
) -> Tensor:
    """The warping error of each pair: ``source`` (B, C, H, W) in [0, 1] warped onto ``target``'s grid with ``flow``
    (B|1, 2, H, W), defined on that grid (``warp(source)(x) = source(x + flow(x))``), compared with ``target``;
    ``mask`` (B|1, 1, H, W), True/1 = reliable (None: every pixel). Returns ``(B,)`` float64::

        E = Σ_x M(x) · Σ_c scale² (target(x, c) − warp(source)(x, c))²  /  (Σ_x M(x) · C)       (channels "mean")

    (``· C`` dropped with ``channels="sum"``). With ``out_of_frame="unreliable"`` pixels whose sample lies outside
    the frame are masked too; a pair without a reliable pixel is NaN (``empty_mask="nan"``) or the error over every
    pixel (Lai). Lai's pair (t−1, t): ``warping_error(O_{t−1}, O_t, w_{t−1→t}, mask)``; Ruder's:
    ``warping_error(O_t, O_{t−1}, w_{t→t−1}, mask, definition=RUDER2016)``.
    """
    if target.shape != source.shape or target.dim() != 4:
        raise InputError(f"target {tuple(target.shape)} and source {tuple(source.shape)} must be equal (B, C, H, W)")
    target64, source64 = target.to(torch.float64), source.to(torch.float64)
    warped, valid = backward_warp(source64, _check_flow(flow, source64, "flow"))
    weight = valid.to(torch.float64)
    if definition.out_of_frame == "border":  # border-clamped samples count (Lai's Resample2d)
        weight = torch.ones_like(weight)
    if mask is not None:
        if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[-2:] != target.shape[-2:]:
            raise InputError(f"mask must have shape (B|1, 1, H, W) matching the frames, got {tuple(mask.shape)}")
        weight = weight * mask.to(weight.device, torch.float64)
    squared = (scale * (target64 - warped)).square().sum(1, keepdim=True)  # (B, 1, H, W), summed over channels
    channels = target.shape[1] if definition.channels == "mean" else 1
    count = weight.sum((1, 2, 3)) * channels
    total = (weight * squared).sum((1, 2, 3))
    if definition.empty_mask == "all_pixels":
        everything = squared.sum((1, 2, 3)) / (squared[0].numel() * channels)
        return torch.where(count > 0, total / count.clamp_min(1e-12), everything)
    return torch.where(count > 0, total / count.clamp_min(1e-12), torch.full_like(total, float("nan")))


def pair_mask(forward_flow: Tensor, backward_flow: Tensor, occlusion: OcclusionConfig = OcclusionConfig(),
              definition: WarpingDefinition = LAI2018) -> Tensor:
    """The consistency mask of frames (s, t) with flows w_{s→t}, w_{t→s}, on the grid of ``definition``'s target
    frame (s for ``"forward"``, t for ``"backward"``): (B, 1, H, W) bool, True = reliable."""
    if definition.direction == "forward":
        return reliability_mask(forward_flow, backward_flow, occlusion, definition)
    return reliability_mask(backward_flow, forward_flow, occlusion, definition)


def pair_error(previous: Tensor, current: Tensor, forward_flow: Tensor, backward_flow: Tensor, scale: float = 1.0,
               definition: WarpingDefinition = LAI2018, occlusion: OcclusionConfig = OcclusionConfig(),
               mask: Tensor | None = None) -> Tensor:
    """The warping error of frames (s, t) = (``previous``, ``current``) (B, C, H, W) with their flows
    ``forward_flow`` w_{s→t} and ``backward_flow`` w_{t→s}, in ``definition``'s direction, with its consistency mask
    (:func:`pair_mask`) unless ``mask`` is given. Returns ``(B,)`` float64."""
    if mask is None:
        mask = pair_mask(forward_flow, backward_flow, occlusion, definition)
    if definition.direction == "forward":
        return warping_error(previous, current, forward_flow, mask, scale, definition)
    return warping_error(current, previous, backward_flow, mask, scale, definition)


class WarpingError:
    """Metric object (the :class:`metrics.base.Metric` protocol adapted to frame pairs): :meth:`update` takes a batch
    of (current, previous) frames with their backward flow and mask, returns the per-pair errors (B,) and accumulates
    them; :meth:`compute` → :class:`metrics.base.Summary` over the pairs seen (the mean is E of the module docstring);
    :meth:`reset`. Lower is better. Functional twin: :func:`warping_error`."""

    name = "warping_error"
    higher_is_better = False
    unit = ""

    def __init__(self, scale: float = 1.0, occlusion: OcclusionConfig = OcclusionConfig(),
                 definition: WarpingDefinition | str = LAI2018) -> None:
        self.scale = float(scale)
        self.occlusion = occlusion
        if isinstance(definition, str):
            if definition not in DEFINITIONS:
                raise InputError(f"unknown warping-error definition {definition!r}; known: {', '.join(DEFINITIONS)}")
            definition = DEFINITIONS[definition]
        self.definition = definition
        self._values: list[Tensor] = []

    @torch.inference_mode()
    def update(self, previous: Tensor, current: Tensor, forward_flow: Tensor, backward_flow: Tensor,
               mask: Tensor | None = None) -> Tensor:
        """Per-pair errors of frames (s, t) with the flows w_{s→t}, w_{t→s} (:func:`pair_error`); the consistency
        mask unless ``mask`` (on the grid of the definition's target frame) is given."""
        values = pair_error(previous, current, forward_flow, backward_flow, self.scale, self.definition,
                            self.occlusion, mask).detach().cpu().flatten()
        self._values.append(values)
        return values

    def compute(self) -> Summary:
        """Summary over the pairs with a defined (non-NaN) error."""
        values = torch.cat(self._values) if self._values else torch.empty(0, dtype=torch.float64)
        return summarize(values[~torch.isnan(values)])

    def reset(self) -> None:
        self._values.clear()

    def config(self) -> dict:
        name = next((k for k, v in DEFINITIONS.items() if v == self.definition), "custom")
        return {"name": self.name, "higher_is_better": self.higher_is_better, "scale": self.scale,
                "occlusion": asdict(self.occlusion), "definition": name, "choices": asdict(self.definition),
                "formula": "mean over pairs of [sum_x M(x) sum_c (scale*(target - warp(source)))^2 / "
                           f"(sum_x M(x){' * C' if self.definition.channels == 'mean' else ''})]"}
