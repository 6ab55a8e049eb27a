"""A forward's memory without running it: the high-water mark of its live tensor bytes, traced on shapes alone.

Measuring a method's peak memory at 8192² on a CPU means running its forward there — hours for the quadratic
methods — and finding the largest size that fits a budget means doing it at several sizes. Every network here
allocates the same tensors whatever the pixel values (the data-dependent parts — AdaAttN's key sub-sampling, the
bands, the chunk sizes — depend on shapes only), so the allocations can be traced instead of computed:
:func:`estimate_working_set` runs the forward under ``FakeTensorMode`` (tensors carry shapes, dtypes and strides, no
data; each op runs its meta kernel, microseconds instead of seconds) with a dispatch mode (:class:`LiveTensorBytes`)
that adds the bytes of every new storage an op returns and subtracts them when the storage is freed (a weakref
finaliser: the storage's last tensor or view gone). Views and in-place results share a storage and count once.

What it is: the peak of the bytes held by *tensors* during the forward above what was live before it (weights and
inputs excluded, as in the measured working set of :mod:`harness.complexity.measure`). What it is not: a kernel's
private scratch (oneDNN's convolution workspaces, a fused attention kernel's per-thread blocks) and the C allocator's
own overhead. So it is compared with the measured working set wherever both exist (the ``estimated_memory_mib``
column beside ``peak_memory_mib`` of every complexity cell) and :func:`largest_square_side` reports the size whose
*estimate* fits the budget — read together with that ratio.

One choice had to be mirrored: which SDPA kernel PyTorch picks. ``methods.ops`` asks ``torch._fused_sdp_choice``
before calling SDPA (the math kernel would materialise the L×S scores); on fake tensors that answer is always "math",
which would route the trace through the chunked path the real run does not take. :class:`LiveTensorBytes` answers it
with PyTorch's own choice on small real tensors of the same dtype, rank and last-dimension stride — the inputs the
CPU and CUDA selection rules look at (sequence lengths are not among them).
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from ..errors import ComplexityError

MIB = 2**20
_SDP_CHOICE = torch.ops.aten._fused_sdp_choice.default


def _probe_like(t: Any) -> Any:
    """A small real tensor that PyTorch's SDPA selection cannot tell from ``t``: same dtype, rank and whether the last
    dimension is contiguous; the leading sizes are 1, the sequence length 2, the feature width kept."""
    if not isinstance(t, Tensor):
        return t
    shape = (1,) * (t.dim() - 2) + (2, t.shape[-1]) if t.dim() >= 2 else tuple(t.shape)
    if t.dim() >= 2 and t.stride(-1) != 1 and t.shape[-1] > 1:
        return torch.empty(*shape[:-2], shape[-1], 2, dtype=t.dtype).transpose(-1, -2)
    return torch.empty(shape, dtype=t.dtype)


_CONVOLUTIONS = (torch.ops.aten.convolution.default, torch.ops.aten.conv2d.default)


def _blocked_bytes(channels: int, spatial: int, element: int) -> int:
    return -(-channels // 8) * 8 * spatial * element


def onednn_convolution_scratch(args: Sequence[Any], out: Tensor) -> int:
    """Bytes a CPU convolution holds *beside* its output while it runs (the oneDNN path PyTorch takes for fp32/bf16
    2-D convolutions), as measured on this project's AVX2 CPU (resident-set working set of single convolutions,
    1×1, 3×3 and 9×9, grouped and not, 3–512 channels, 128²–1024²): with NCHW tensors oneDNN computes in a
    channel-blocked layout (blocks of 8 channels) — it reorders the input into it (not for a grouped convolution or
    a ≤ 4-channel input to a spatial kernel, which it reads directly), reorders the weight, computes a blocked
    output and reorders that into the NCHW result, so the peak is max(blocked input + blocked output + weight,
    blocked output + output); with channels_last tensors only the weight is reordered. Returned: that peak minus
    the output (which the tracker counts itself)."""
    x, weight = args[0], args[1]
    element = out.element_size()
    weight_bytes = weight.numel() * element
    if out.dim() != 4 or x.dim() != 4:
        return weight_bytes
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return weight_bytes
    output = out.numel() * element
    out_blocked = _blocked_bytes(out.shape[1], out.shape[0] * out.shape[2] * out.shape[3], element)
    grouped = weight.shape[1] < x.shape[1]  # groups > 1 (depthwise included)
    reads_directly = grouped or x.shape[1] <= 4 and weight.shape[-1] * weight.shape[-2] > 1
    in_blocked = 0 if reads_directly else _blocked_bytes(x.shape[1], x.shape[0] * x.shape[2] * x.shape[3], element)
    return max(in_blocked + out_blocked + weight_bytes, out_blocked + output) - output


ScratchModel = Callable[[Sequence[Any], Tensor], int]
"""(the convolution's args, its output) → bytes held beside the output while it runs."""


class LiveTensorBytes(TorchDispatchMode):
    """Dispatch mode that follows the bytes of the tensor storages the ops inside it create: ``live`` (now),
    ``peak`` (the high-water mark) and ``allocations`` (new storages seen). Storages that existed before the mode
    (weights, inputs) are not counted, nor are the results of ops that return an existing storage (views, in-place
    ops). Works on real and on fake tensors alike (the real case is what the tests check the fake one against).
    ``convolution_scratch``: a model of what a convolution holds beside its output while it runs
    (:func:`onednn_convolution_scratch` on the CPU), added to the peak at each convolution (None: tensors only)."""

    def __init__(self, convolution_scratch: ScratchModel | None = None) -> None:
        super().__init__()
        self.convolution_scratch = convolution_scratch
        self.live = 0
        self.peak = 0
        self.allocations = 0
        self._known: dict[int, int] = {}  # id(storage) → bytes, while the storage lives

    def _count(self, tensor: Tensor) -> None:
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self._known:
            return
        size = storage.nbytes()
        self._known[key] = size
        self.live += size
        self.allocations += 1
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._release, key, size)

    def _release(self, key: int, size: int) -> None:
        if self._known.pop(key, None) is not None:
            self.live -= size

    def adopt(self, tensors: Sequence[Tensor]) -> None:
        """Mark the storages of ``tensors`` as already live (not counted): call before the traced work."""
        for tensor in tensors:
            storage = tensor.untyped_storage()
            self._known[id(storage)] = 0
            weakref.finalize(storage, self._release, id(storage), 0)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is _SDP_CHOICE and any(getattr(a, "fake_mode", None) is not None for a in tree_flatten(args)[0]):
            with torch._C._DisableTorchDispatch():  # the probes are real tensors, outside every mode
                return func(*tree_map(_probe_like, args), **tree_map(_probe_like, kwargs))
        out = func(*args, **kwargs)
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, Tensor):
                self._count(tensor)
        if func in _CONVOLUTIONS and self.convolution_scratch is not None:
            self.peak = max(self.peak, self.live + self.convolution_scratch(args, out))
        return out


@dataclass(frozen=True)
class MemoryEstimate:
    """Result of :func:`estimate_working_set`: ``peak_mib`` — high-water mark of the live tensor bytes the forward
    created (MiB, weights and inputs excluded); ``output_mib`` — what was still held when it returned (the output);
    ``allocations`` — tensor storages it created; the input shapes (B, 3, H, W)."""

    peak_mib: float
    output_mib: float
    allocations: int
    content_shape: tuple[int, ...]
    style_shape: tuple[int, ...]


def estimate_working_set(
    model: nn.Module,
    content_shape: Sequence[int],
    style_shape: Sequence[int] | None = None,
    *,
    autocast_dtype: torch.dtype | None = None,
    forward: Callable[[nn.Module, Tensor, Tensor], Any] | None = None,
    convolution_scratch: ScratchModel | None | str = "auto",
) -> MemoryEstimate:
    """Trace ``forward(model, content, style)`` (default ``model(content, style)``) under ``torch.inference_mode``
    on fake inputs of ``content_shape`` and ``style_shape`` (default: the content's), both (B, 3, H, W), and return
    its tensor high-water mark (see the module docstring). ``autocast_dtype``: trace under autocast to that dtype
    on the model's device type (bf16 runs). The model's parameters stay real and are not counted; nothing is
    computed, so any size traces in seconds (a Python loop over chunks or row bands still runs once per chunk).
    ``convolution_scratch``: ``"auto"`` — :func:`onednn_convolution_scratch` for a model on the CPU, none elsewhere
    (cuDNN's workspaces are not modelled); a model of your own; or None (tensors only)."""
    style_shape = tuple(content_shape) if style_shape is None else tuple(style_shape)
    content_shape = tuple(content_shape)
    for name, shape in (("content", content_shape), ("style", style_shape)):
        if len(shape) != 4 or any(int(s) < 1 for s in shape):
            raise ComplexityError(f"{name} shape must be (B, 3, H, W) with positive sides, got {shape}")
    parameter = next(iter(model.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else torch.float32
    run = forward or (lambda m, c, s: m(c, s))
    if convolution_scratch == "auto":
        convolution_scratch = onednn_convolution_scratch if device.type == "cpu" else None
    tracker = LiveTensorBytes(convolution_scratch)
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
    with fake_mode:
        content = torch.empty(content_shape, dtype=dtype, device=device)
        style = torch.empty(style_shape, dtype=dtype, device=device)
        # The weights' fake twins, made now (the mode memoises them) and marked live: a view of a weight inside the
        # forward (a chunk of an in-projection) is then not counted as an allocation.
        resident = [fake_mode.from_tensor(t) for t in (*model.parameters(), *model.buffers())]
        tracker.adopt([content, style, *resident])
        with torch.inference_mode(), tracker:
            if autocast_dtype is None:
                out = run(model, content, style)
            else:
                with torch.autocast(device.type, dtype=autocast_dtype):
                    out = run(model, content, style)
        output = sum(t.untyped_storage().nbytes() for t in tree_flatten(out)[0] if isinstance(t, Tensor))
        del out, content, style, resident
    return MemoryEstimate(tracker.peak / MIB, output / MIB, tracker.allocations, content_shape, style_shape)


@dataclass(frozen=True)
class LargestSize:
    """Result of :func:`largest_square_side`: the largest side S (a multiple of ``multiple``) whose S×S forward's
    estimate is within ``budget_mib``, its estimate, and the estimate at the next multiple (which is over). ``side``
    is None when even ``multiple`` is over the budget; ``limited`` is True when the search stopped at its ``limit``
    still within the budget."""

    budget_mib: float
    side: int | None
    peak_mib: float | None
    next_side: int
    next_peak_mib: float
    limited: bool = False
    estimates: int = 0


def largest_square_side(
    estimate: Callable[[int], float],
    budget_mib: float,
    *,
    multiple: int = 64,
    start: int = 512,
    limit: int = 65536,
) -> LargestSize:
    """The largest S, a multiple of ``multiple`` in [``multiple``, ``limit``], with ``estimate(S) ≤ budget_mib``,
    where ``estimate(S)`` is the memory (MiB) at S×S (e.g. a :func:`estimate_working_set` peak). Doubles from
    ``start`` until over the budget, then bisects; assumes the memory grows with S (it does for every method here:
    features, attention and bands all grow with the pixel count). ``estimates`` counts the calls made."""
    if not budget_mib > 0 or not math.isfinite(budget_mib):
        raise ComplexityError(f"the memory budget must be a positive number of MiB, got {budget_mib!r}")
    if multiple < 1 or limit < multiple:
        raise ComplexityError(f"need 1 ≤ multiple ≤ limit, got multiple={multiple}, limit={limit}")
    seen: dict[int, float] = {}

    def at(steps: int) -> float:  # memory at side = steps × multiple
        if steps not in seen:
            seen[steps] = float(estimate(steps * multiple))
        return seen[steps]

    top = limit // multiple
    low, high = 0, max(1, min(top, start // multiple))  # invariant: at(low) fits (or low = 0); at(high) tried next
    while at(high) <= budget_mib:
        low = high
        if high == top:
            return LargestSize(budget_mib, high * multiple, at(high), high * multiple, at(high), True, len(seen))
        high = min(top, high * 2)
    while high - low > 1:
        middle = (low + high) // 2
        if at(middle) <= budget_mib:
            low = middle
        else:
            high = middle
    side = low * multiple if low else None
    return LargestSize(budget_mib, side, at(low) if low else None, high * multiple, at(high), False, len(seen))
