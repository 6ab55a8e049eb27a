"""metrics.temporal: .flo files, backward warping, Ruder et al.'s occlusion mask, Lai et al.'s warping error, flow."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from harness.errors import FlowFileError
from harness.io import FLO_TAG, read_flo, write_flo
from metrics.temporal import (
    LAI2018,
    RUDER2016,
    OcclusionConfig,
    WarpingError,
    backward_warp,
    estimate_flow,
    flow_to_tensor,
    motion_boundaries,
    pair_error,
    reliability_mask,
    resize_flow,
    warping_error,
)

from .conftest import shared_asset


def constant_flow(u: float, v: float, height: int, width: int) -> torch.Tensor:
    return torch.tensor([u, v], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, height, width).clone()


# --------------------------------------------------------------------------- .flo files


def test_flo_round_trip_and_header(tmp_path):
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32) * 10
    path = write_flo(tmp_path / "sub" / "f.flo", flow)
    data = path.read_bytes()
    assert data[:4] == b"PIEH" and np.frombuffer(data[:4], "<f4")[0] == FLO_TAG
    assert np.frombuffer(data[4:12], "<i4").tolist() == [7, 5]  # width, height
    assert len(data) == 12 + 8 * 5 * 7
    assert np.frombuffer(data[12:20], "<f4").tolist() == flow[0, 0].tolist()  # (u, v) of pixel (0, 0) first
    np.testing.assert_array_equal(read_flo(path), flow)
    # a (1, 2, H, W) tensor is written in the same layout
    write_flo(tmp_path / "t.flo", torch.from_numpy(flow).permute(2, 0, 1).unsqueeze(0))
    assert (tmp_path / "t.flo").read_bytes() == data
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left behind


@pytest.mark.parametrize("payload,message", [
    (None, "no such flow file"),
    (b"PIEH", "only 4 bytes"),
    (np.array([1.0], "<f4").tobytes() + np.array([2, 2], "<i4").tobytes() + bytes(32), "tag 1.0"),
    (np.array([FLO_TAG], "<f4").tobytes() + np.array([2, 2], "<i4").tobytes() + bytes(31), "truncated or corrupt"),
])
def test_bad_flo_files_raise_one_line(tmp_path, payload, message):
    path = tmp_path / "bad.flo"
    if payload is not None:
        path.write_bytes(payload)
    with pytest.raises(FlowFileError) as info:
        read_flo(path)
    text = str(info.value)
    assert str(path) in text and message in text and "\n" not in text


def test_resize_flow_rescales_vectors():
    flow = constant_flow(2.0, 1.0, 10, 20).float()
    small = resize_flow(flow, (5, 10))
    assert small.shape == (1, 2, 5, 10)
    torch.testing.assert_close(small[0, :, 2, 3], torch.tensor([1.0, 0.5]))  # u·10/20, v·5/10
    assert resize_flow(flow, (10, 20)) is flow


# --------------------------------------------------------------------------- warping


def test_warp_of_a_shifted_image_with_the_true_flow_has_zero_error():
    rng = np.random.default_rng(1)
    canvas = torch.from_numpy(rng.random((3, 40, 60)))
    previous = canvas[None, :, 5:35, 5:55]   # frame s
    current = canvas[None, :, 7:37, 8:58]    # the camera moved: current(x) = previous(x + (3, 2))
    flow = constant_flow(3.0, 2.0, 30, 50)   # w_{t→s}
    warped, valid = backward_warp(previous, flow)
    # exactly the pixels whose x + 3 ≤ 49 and y + 2 ≤ 29 are valid, and there the warp is the shifted frame
    assert valid.sum().item() == (50 - 3) * (30 - 2)
    assert not valid[0, 0, 28:, :].any() and not valid[0, 0, :, 47:].any()
    torch.testing.assert_close(warped[..., :28, :47], current[..., :28, :47], rtol=0, atol=1e-12)
    assert warping_error(current, previous, flow, definition=RUDER2016).item() == pytest.approx(0.0, abs=1e-20)
    # Lai's border samples count: the warp is exact only inside, so the error is > 0 with the same flow
    assert warping_error(current, previous, flow).item() > 1e-3
    # a wrong (zero) flow: i.i.d. uniform pixels give E‖a − b‖² = 3 channels · 2 · Var = 3 · 2/12 = 0.5 summed,
    # 0.5 / 3 averaged over the channels (Lai's code)
    wrong = warping_error(current, previous, constant_flow(0.0, 0.0, 30, 50), definition=RUDER2016).item()
    assert wrong == pytest.approx(0.5, rel=0.08)
    assert warping_error(current, previous, constant_flow(0.0, 0.0, 30, 50)).item() == pytest.approx(wrong / 3)


def test_warp_is_exact_for_fractional_flow_on_an_affine_image():
    ys, xs = torch.meshgrid(torch.arange(20, dtype=torch.float64), torch.arange(30, dtype=torch.float64), indexing="ij")
    image = lambda x, y: torch.stack([0.1 + 0.02 * x + 0.01 * y, 0.5 + 0.0 * x, 0.9 - 0.015 * x]).unsqueeze(0)  # noqa: E731
    previous = image(xs, ys)
    current = image(xs + 1.3, ys - 0.7)      # current(x) = previous(x + (1.3, −0.7)); bilinear is exact on affine maps
    flow = constant_flow(1.3, -0.7, 20, 30)
    warped, valid = backward_warp(previous, flow)
    assert valid[0, 0, 0, :].sum() == 0 and valid[0, 0, 1, :28].all() and not valid[0, 0, 1, 28:].any()
    torch.testing.assert_close(warped * valid, current * valid, rtol=0, atol=1e-12)
    assert warping_error(current, previous, flow, definition=RUDER2016).item() < 1e-24


def test_warping_error_formula_by_hand():
    current = torch.full((1, 3, 2, 2), 0.5)
    previous = torch.full((1, 3, 2, 2), 0.25)
    previous[0, :, 1, 1] = 0.5                  # this pixel matches exactly
    zero = torch.zeros(1, 2, 2, 2)
    mask = torch.tensor([[[[True, False], [True, True]]]])
    # reliable pixels (0,0), (1,0), (1,1): squared errors summed over RGB 3·0.25², 3·0.25², 0 → mean = 0.125 with the
    # channel sum (ruder2016), 0.125 / 3 with Lai's channel mean (N counts each pixel once per channel)
    assert warping_error(current, previous, zero, mask, definition=RUDER2016).item() == pytest.approx(0.125)
    assert warping_error(current, previous, zero, mask).item() == pytest.approx(0.125 / 3)
    assert warping_error(current, previous, zero, mask, scale=255.0).item() == pytest.approx(0.125 / 3 * 255**2)
    assert warping_error(current, previous, zero, definition=RUDER2016).item() == pytest.approx(3 * 0.0625 * 3 / 4)
    none = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    assert math.isnan(warping_error(current, previous, zero, none, definition=RUDER2016).item())
    # Lai: no reliable pixel → N = H·W·C, the mean over every pixel and channel
    assert warping_error(current, previous, zero, none).item() == pytest.approx(3 * 0.0625 * 3 / 12)


def test_warping_error_metric_accumulates_like_the_functional_twin():
    rng = torch.Generator().manual_seed(0)
    current, previous = torch.rand(4, 3, 8, 9, generator=rng), torch.rand(4, 3, 8, 9, generator=rng)
    backward = constant_flow(0.3, -1.2, 8, 9).float()   # consistent pair: only the out-of-frame pixels are masked
    forward = -backward
    metric = WarpingError(definition="ruder2016")
    assert metric.higher_is_better is False
    values = torch.cat([metric.update(previous[:2], current[:2], forward, backward),
                        metric.update(previous[2:], current[2:], forward, backward)])
    expected = warping_error(current, previous, backward, reliability_mask(backward, forward, definition=RUDER2016),
                             definition=RUDER2016)
    torch.testing.assert_close(values, expected)
    assert reliability_mask(backward, forward, definition=RUDER2016).sum().item() == (9 - 1) * (8 - 2)  # in frame
    lai = WarpingError()  # the default: frame t warped onto t−1 with the forward flow, mask on t−1's grid
    expected_lai = warping_error(previous, current, forward, reliability_mask(forward, backward))
    torch.testing.assert_close(lai.update(previous, current, forward, backward), expected_lai)
    assert lai.config()["definition"] == "lai2018" and metric.config()["definition"] == "ruder2016"
    assert metric.compute().mean == pytest.approx(expected.mean().item()) and metric.compute().n == 4
    metric.reset()
    assert metric.compute().n == 0


# --------------------------------------------------------------------------- occlusion mask


def test_motion_boundary_thresholds_by_hand():
    # u = 0.1·x: central differences 0.1 inside (|∇u|² = 0.01), 0.05 at the borders (0.0025)
    xs = torch.arange(20, dtype=torch.float64)
    flow = torch.stack([0.1 * xs.expand(3, 20), torch.zeros(3, 20, dtype=torch.float64)]).unsqueeze(0)
    boundary = motion_boundaries(flow, differences="central")[0, 0, 1]
    # boundary where |∇u|² > 0.01·u² + 0.002: x = 0 (0.0025 > 0.002) and 0.01 > 0.0001·x² + 0.002 ⇔ x ≤ 8
    assert boundary.tolist() == [True] * 9 + [False] * 11


def test_occlusion_mask_on_a_synthetic_disocclusion():
    h, w = 24, 40
    backward = torch.zeros(1, 2, h, w, dtype=torch.float64)   # w_{t→s}: background static
    forward = torch.zeros(1, 2, h, w, dtype=torch.float64)    # w_{s→t}
    rows = slice(8, 16)
    forward[0, 0, rows, 10:20] = 4.0     # in frame s a square at columns 10..19 moves 4 px right
    backward[0, 0, rows, 14:24] = -4.0   # in frame t it is at columns 14..23
    expected = torch.ones(h, w, dtype=torch.bool)
    expected[rows, 10:14] = False        # uncovered background: its backward flow (0) meets the square's forward flow
    mask = reliability_mask(backward, forward, OcclusionConfig(motion_boundaries=False), RUDER2016)[0, 0]
    assert torch.equal(mask, expected)
    full = reliability_mask(backward, forward, definition=RUDER2016)[0, 0]
    assert not (full & ~mask).any()                               # motion boundaries only remove pixels
    assert not full[rows, 13].any() and not full[rows, 23].any()  # both vertical edges of the moving square
    assert full[10:14, 16:22].all() and full[:5].all()            # its interior and the far background stay reliable
    assert not full[8, 16:22].any() and not full[15, 16:22].any()  # its top and bottom edges are boundaries too
    # a flow leaving the frame is unreliable: columns x with x + 5 > w − 1
    out = reliability_mask(constant_flow(5.0, 0.0, h, w), constant_flow(-5.0, 0.0, h, w), definition=RUDER2016)[0, 0]
    assert out[:, : w - 5].all() and not out[:, w - 5:].any()
    # Lai keeps border-clamped samples: only the forward-backward test applies (here the flows disagree at the border)
    lai = reliability_mask(constant_flow(5.0, 0.0, h, w), constant_flow(-5.0, 0.0, h, w))[0, 0]
    assert lai[:, : w - 5].all()


def _marple8_mask(relative: str) -> np.ndarray:
    return np.asarray(Image.open(shared_asset(f"video/marple8/deepflow/{relative}"))) >= 128


def test_occlusion_mask_agrees_with_the_deepflow_reliability_masks_of_marple8():
    """reliable_<j>_<i>.pgm (smoothed, 0..254; thresholded at 128) is artistic-videos' mask on frame j's grid from
    backward_<j>_<i>.flo checked against forward_<i>_<j>.flo — the mask for warping frame i into frame j. Measured:
    99.89–99.93 % of the pixels agree; the other orientation agrees on only ~97.6 %."""
    agreements = []
    for i in range(1, 5):
        j = i + 1
        forward = flow_to_tensor(read_flo(shared_asset(f"video/marple8/deepflow/forward_{i}_{j}.flo")))
        backward = flow_to_tensor(read_flo(shared_asset(f"video/marple8/deepflow/backward_{j}_{i}.flo")))
        ours = reliability_mask(backward, forward, definition=RUDER2016)[0, 0].numpy()
        agreement = float((ours == _marple8_mask(f"reliable_{j}_{i}.pgm")).mean())
        other = float((ours == _marple8_mask(f"reliable_{i}_{j}.pgm")).mean())
        assert agreement >= 0.995, (i, j, agreement)
        assert agreement > other + 0.01
        agreements.append(agreement)
    assert np.mean(agreements) >= 0.997


# --------------------------------------------------------------------------- flow estimation


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_estimated_flow_recovers_a_known_shift(backend):
    import cv2

    rng = np.random.default_rng(2)
    canvas = cv2.GaussianBlur((rng.random((120, 160, 3)) * 255).astype(np.uint8), (0, 0), 2.0)
    source = canvas[20:100, 20:140]
    target = canvas[18:98, 23:143]
    # source(x, y) = canvas(x + 20, y + 20) = target(x − 3, y + 2), so w_{source→target} = (−3, +2)
    flow = estimate_flow(source, target, backend)
    assert flow.shape == (80, 120, 2) and flow.dtype == np.float32
    inner = flow[16:-16, 16:-16].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [-3.0, 2.0], atol=0.25)
    # the flow makes the warp fit: the error with it is far below the error without it
    s = torch.from_numpy(source).permute(2, 0, 1)[None].double() / 255
    t = torch.from_numpy(target).permute(2, 0, 1)[None].double() / 255
    backward = flow_to_tensor(estimate_flow(target, source, backend))
    assert warping_error(t, s, backward).item() < 0.1 * warping_error(t, s, torch.zeros_like(backward)).item()


def test_unknown_backend_is_an_input_error():
    frame = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown flow backend 'raft'"):
        estimate_flow(frame, frame, "raft")


# --------------------------------------------------------------------------- Lai et al.'s released code


def _lai_reference(img1: np.ndarray, img2: np.ndarray, fw_flow: np.ndarray, bw_flow: np.ndarray) -> float:
    """evaluate_WarpError.py + utils.detect_occlusion of Lai et al., rewritten with explicit loops: img1 = frame t−1,
    img2 = frame t (H, W, 3) in [0, 1], fw_flow w_{t−1→t}, bw_flow w_{t→t−1} (H, W, 2)."""
    h, w = img1.shape[:2]

    def resample(image, flow):  # Resample2d: bilinear, indices clamped to the border, weights from the raw position
        out = np.zeros_like(image)
        for y in range(h):
            for x in range(w):
                xf, yf = x + flow[y, x, 0], y + flow[y, x, 1]
                alpha, beta = xf - np.floor(xf), yf - np.floor(yf)
                xl, xr = min(max(int(np.floor(xf)), 0), w - 1), min(max(int(np.floor(xf)) + 1, 0), w - 1)
                yt, yb = min(max(int(np.floor(yf)), 0), h - 1), min(max(int(np.floor(yf)) + 1, 0), h - 1)
                out[y, x] = ((1 - alpha) * (1 - beta) * image[yt, xl] + alpha * (1 - beta) * image[yt, xr]
                             + (1 - alpha) * beta * image[yb, xl] + alpha * beta * image[yb, xr])
        return out

    # compute_flow_occlusion.py calls detect_occlusion(bw_flow, fw_flow), whose parameters are named (fw, bw)
    a, b = bw_flow, fw_flow
    a_w = resample(a, b)
    mag = lambda f: f[..., 0] ** 2 + f[..., 1] ** 2  # noqa: E731
    mask1 = mag(a_w + b) > 0.01 * (mag(a_w) + mag(b)) + 0.5
    du, dv = np.zeros((h, w, 2)), np.zeros((h, w, 2))
    du[:, :-1] = b[:, :-1] - b[:, 1:]
    dv[:-1, :] = b[:-1, :] - b[1:, :]
    mask2 = (du[..., 0] ** 2 + dv[..., 0] ** 2) + (du[..., 1] ** 2 + dv[..., 1] ** 2) > 0.01 * mag(b) + 0.002
    noc = np.repeat((~(mask1 | mask2)).astype(np.float64)[..., None], 3, axis=2)  # read back as a 3-channel image
    diff = (resample(img2, fw_flow) - img1) * noc
    n = noc.sum() or diff.size
    return float(np.square(diff).sum() / n)


def test_the_default_is_lai_et_als_released_code_and_the_channel_sum_is_three_times_it():
    rng = np.random.default_rng(7)
    h, w = 14, 17
    img1, img2 = rng.random((h, w, 3)), rng.random((h, w, 3))
    ys, xs = np.mgrid[0:h, 0:w]
    fw = np.stack([1.5 * np.sin(xs / 3.0) + 0.4, 1.2 * np.cos(ys / 4.0) - 2.5], axis=-1)  # leaves the frame at the top
    bw = -fw + rng.normal(0, 0.6, fw.shape)                                                # partly inconsistent
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    ours = pair_error(tensor(img1), tensor(img2), tensor(fw), tensor(bw)).item()
    reference = _lai_reference(img1, img2, fw, bw)
    assert 0 < reference and ours == pytest.approx(reference, rel=1e-9)
    mask = reliability_mask(tensor(fw), tensor(bw))
    assert 0 < mask.double().mean() < 1  # the test exercises both reliable and occluded pixels
    summed = warping_error(tensor(img1), tensor(img2), tensor(fw), mask, definition=replace(LAI2018, channels="sum"))
    assert summed.item() == pytest.approx(3 * ours, rel=1e-12)
