"""Tests for metrics/: content / style losses, LPIPS, timing (offline, CPU, no timed assertions).

Expected values are computed by hand (closed forms on tiny tensors), not with the code under test. The stub encoder
returns known features — tap k (0-based in relu1_1..relu5_1) is (k + 1)·image — so every loss has a closed form.
"""
from __future__ import annotations

import math
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from methods import Loading
from methods.errors import InputError
from methods.vgg import TAP_NAMES, VGGEncoder
from methods.weights import (
    ChecksumError,
    StateDictMismatchError,
    WeightFile,
    cache_dir,
    load_state_dict,
    resolve_files,
    sha256_file,
)
from metrics import (
    LPIPS,
    LPIPS_BACKBONES,
    ContentLoss,
    ContentStyleLoss,
    FeatureCache,
    MetricUnavailable,
    StyleLoss,
    TimingResult,
    content_loss,
    count_flops,
    load_vgg,
    lpips_distance,
    measure_latency,
    percentile,
    style_loss,
    time_method,
)
from metrics.perceptual import load_lpips, load_torchvision_backbone
from tests.conftest import shared_asset

VGG_URL = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth"
ALEX_FILE, ALEX_URL = "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
VGG16_FILE, VGG16_URL = "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth"
EPS = 1e-5
VALUES = (0.1, 0.2, 0.3, 0.4)  # the 4 pixels of every channel of the tiny content image
VAR = 0.05 / 3  # unbiased variance of VALUES: deviations ±0.15, ±0.05 → (2·0.0225 + 2·0.0025) / 3
MEAN_SQ_DEV = 0.05 / 4  # mean of (x − mean)² over VALUES


class StubEncoder(nn.Module):
    """tap k ↦ (k + 1) · image; counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, ...]] = []

    def forward(self, x, taps):
        self.calls.append(tuple(taps))
        return {t: (TAP_NAMES.index(t) + 1) * x for t in taps}


def tiny(batch: int = 1, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """(batch, 3, 2, 2) with every channel = scale · VALUES + shift."""
    x = torch.tensor(VALUES, dtype=torch.float32).view(1, 1, 2, 2).expand(batch, 3, 2, 2)
    return (scale * x + shift).contiguous()


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to download fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# ----------------------------------------------------------------------------------------------------------------------
# Content / style: definitions on the stub encoder
# ----------------------------------------------------------------------------------------------------------------------
def test_identical_images_give_zero_losses():
    enc = StubEncoder()
    x = tiny(2)
    assert torch.equal(content_loss(x, x, enc), torch.zeros(2))
    assert torch.equal(style_loss(x, x, enc), torch.zeros(2))


def test_shift_of_features_hand_values():
    enc = StubEncoder()
    content, out = tiny(), tiny(shift=0.1)
    # style: layer k feature shifted by (k+1)·0.1 → mean term (k+1)²·0.01, std term 0; Σ_{k=1..5} k² = 55
    assert style_loss(out, content, enc).item() == pytest.approx(0.55, abs=1e-6)
    assert style_loss(out, content, enc, reduction="mean").item() == pytest.approx(0.11, abs=1e-6)
    # content with mvn: a shift is normalised away
    assert content_loss(out, content, enc).item() == pytest.approx(0.0, abs=1e-10)
    # content on raw features (relu4_1 ×4, relu5_1 ×5): 0.4² + 0.5² = 0.41
    assert content_loss(out, content, enc, normalize=False).item() == pytest.approx(0.41, abs=1e-6)
    assert content_loss(out, content, enc, normalize=False, reduction="mean").item() == pytest.approx(0.205, abs=1e-6)
    # custom layers
    assert style_loss(out, content, enc, layers=["relu2_1"]).item() == pytest.approx(0.04, abs=1e-6)


@pytest.mark.parametrize("scale, shift", [(0.5, 0.2), (0.02, 0.3)])
def test_positive_scale_hand_values(scale, shift):
    enc = StubEncoder()
    content, out = tiny(), tiny(scale=scale, shift=shift)
    mean = sum(VALUES) / 4  # 0.25

    def std(f):  # std of f·VALUES with the 1e-5 added to the unbiased variance
        return math.sqrt(f * f * VAR + EPS)

    # content: mvn(f·(a·x + b)) − mvn(f·x) = (x − m)·f·[a/std(a·f) − 1/std(f)]
    expected_content = sum(MEAN_SQ_DEV * f * f * (scale / std(scale * f) - 1 / std(f)) ** 2 for f in (4, 5))
    got = content_loss(out, content, enc).item()
    assert got == pytest.approx(expected_content, rel=1e-3, abs=1e-8)
    if scale == 0.5:
        assert got < 1e-7  # mvn makes it invariant to a positive scale and shift, up to the ε in the std
    else:
        assert got > 1e-3  # … which matters once the feature variance is comparable to ε
    # style: mean term (f·(a·m + b) − f·m)², std term (std(a·f) − std(f))²
    expected_style = sum((f * (scale * mean + shift) - f * mean) ** 2 + (std(scale * f) - std(f)) ** 2
                         for f in range(1, 6))
    assert style_loss(out, content, enc).item() == pytest.approx(expected_style, rel=1e-5)


def test_per_image_values_and_batch_mean_equals_batch_mse():
    enc = StubEncoder()
    content = tiny(2)
    out = torch.cat([tiny(shift=0.1), tiny(shift=0.2)])
    values = style_loss(out, content, enc)
    assert values.shape == (2,)
    assert values.tolist() == pytest.approx([55 * 0.01, 55 * 0.04], abs=1e-6)
    raw = content_loss(out, content, enc, normalize=False)
    assert raw.tolist() == pytest.approx([0.16 + 0.25, 4 * (0.16 + 0.25)], abs=1e-6)
    batch_mse = sum(F.mse_loss(f * out, f * content).item() for f in (4, 5))  # torch.nn.MSELoss on the batch
    assert raw.mean().item() == pytest.approx(batch_mse, rel=1e-6)


def test_single_style_is_compared_with_every_output():
    enc = StubEncoder()
    out = torch.rand(3, 3, 4, 4)
    style = torch.rand(1, 3, 5, 6)  # any size
    assert torch.allclose(style_loss(out, style, enc), style_loss(out, style.expand(3, -1, -1, -1), enc))


def test_feature_dicts_and_errors():
    feats = {"relu4_1": torch.rand(2, 8, 3, 3), "relu5_1": torch.rand(2, 8, 2, 2)}
    assert content_loss(feats, feats).tolist() == [0.0, 0.0]
    with pytest.raises(InputError, match="lacks tap"):
        content_loss({"relu4_1": feats["relu4_1"]}, feats)
    with pytest.raises(ValueError, match="encoder"):
        content_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    one = {t: torch.rand(1, 4, 1, 1) for t in TAP_NAMES}
    with pytest.raises(InputError, match="at least 2 positions"):
        style_loss(one, one)


def test_microast_variant_means_over_layers_on_raw_features():
    enc = StubEncoder()
    content, out = tiny(), tiny(shift=0.1)
    metric = ContentStyleLoss(enc, variant="microast")
    values = metric.update(out, content, content)
    assert values["content_loss"].item() == pytest.approx(0.205, abs=1e-6)  # (0.4² + 0.5²) / 2, raw features
    assert values["style_loss"].item() == pytest.approx(0.11, abs=1e-6)  # 55·0.01 / 5
    default = ContentStyleLoss(enc).update(out, content, content)
    assert default["content_loss"].item() == pytest.approx(0.0, abs=1e-10)
    assert default["style_loss"].item() == pytest.approx(0.55, abs=1e-6)
    config = metric.config()
    assert config["content_loss"]["variant"] == "microast"
    assert config["content_loss"]["reduction"] == "mean" and config["content_loss"]["content_normalize"] is False
    assert config["style_loss"]["style_layers"] == list(TAP_NAMES)
    assert config["content_loss"]["content_layers"] == ["relu4_1", "relu5_1"]
    # explicit settings override the variant
    custom = ContentLoss(enc, variant="microast", reduction="sum", content_layers=["relu3_1"])
    assert custom.config()["reduction"] == "sum" and custom.config()["content_layers"] == ["relu3_1"]
    assert custom.higher_is_better is False and StyleLoss.higher_is_better is False


def test_invalid_configuration():
    enc = StubEncoder()
    with pytest.raises(ValueError, match="unknown content/style variant"):
        ContentLoss(enc, variant="nope")
    with pytest.raises(ValueError, match="unknown VGG tap"):
        StyleLoss(enc, style_layers=["relu6_1"])
    with pytest.raises(ValueError, match="reduction"):
        StyleLoss(enc, reduction="max")
    with pytest.raises(ValueError, match="share ONE encoder"):
        ContentLoss(StubEncoder(), cache=FeatureCache(enc))


def test_each_image_is_encoded_once_per_update():
    enc = StubEncoder()
    out, content, style = tiny(2, shift=0.1), tiny(2), tiny(1, scale=0.5)
    combined = ContentStyleLoss(enc)
    combined.update(out, content, style)
    assert len(enc.calls) == 3  # output (union of taps), content, style
    assert set(enc.calls[0]) == set(TAP_NAMES)
    assert set(enc.calls[1]) == {"relu4_1", "relu5_1"}
    # two separate metrics on one cache, updated one after the other, also encode each image once
    enc.calls.clear()
    cache = FeatureCache(enc)
    c_metric, s_metric = ContentLoss(cache=cache), StyleLoss(cache=cache)
    c_metric.update(out, content, style)
    s_metric.update(out, content, style)
    assert len(enc.calls) == 3
    # reuse is by value: a buffer rewritten in place is encoded again
    out.add_(0.1)
    s_metric.update(out, content, style)
    assert len(enc.calls) == 4
    assert s_metric.compute().n == 4
    summary = combined.compute()
    assert summary["style_loss"].n == 2 and summary["content_loss"].n == 2
    combined.reset()
    assert combined.compute()["style_loss"].n == 0


def test_input_validation_names_expected_shape_and_range():
    metric = ContentStyleLoss(StubEncoder())
    good = torch.rand(1, 3, 4, 4)
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        metric.update(torch.rand(1, 1, 4, 4), good, good)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        metric.update(good * 255, good, good)
    with pytest.raises(InputError, match="same shape"):
        metric.update(good, torch.rand(1, 3, 5, 5), good)
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        content_loss(torch.rand(3, 4, 4), good, StubEncoder())
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        style_loss(good, good - 2, StubEncoder())


# ----------------------------------------------------------------------------------------------------------------------
# Content / style: the real encoder through the resolver
# ----------------------------------------------------------------------------------------------------------------------
def test_random_vgg_end_to_end_is_flagged_and_downloads_nothing(no_network):
    encoder, provenance = load_vgg(Loading(init="random"))
    assert provenance["pretrained"] is False and "RANDOM" in provenance["flag"] and provenance["seed"] == 0
    assert not cache_dir().exists() or not any(cache_dir().rglob("*"))
    metric = ContentStyleLoss(encoder, encoder_provenance=provenance)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    values = metric.update(x, y, y[:1])
    for v in values.values():
        assert v.shape == (2,) and torch.isfinite(v).all() and (v > 0).all()
    same = metric.update(x, x, x)
    assert same["content_loss"].tolist() == [0.0, 0.0] and same["style_loss"].tolist() == [0.0, 0.0]
    assert metric.config()["content_loss"]["encoder"]["pretrained"] is False
    # seeded: the same encoder again
    again, _ = load_vgg(Loading(init="random"))
    assert all(torch.equal(a, b) for a, b in zip(encoder.state_dict().values(), again.state_dict().values()))
    with pytest.raises(InputError, match="relu5_1"):
        metric.update(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16))


def test_missing_vgg_is_unavailable_offline(no_network):
    with pytest.raises(MetricUnavailable) as info:
        load_vgg()
    assert "vgg_normalised.pth" in str(info.value) and VGG_URL in str(info.value)
    assert [m.filename for m in info.value.missing] == ["vgg_normalised.pth"]


def test_local_vgg_file_is_loaded(tmp_path):
    reference = VGGEncoder()
    reference.reset_random(torch.Generator().manual_seed(7))
    torch.save(reference.layers.state_dict(), tmp_path / "vgg_normalised.pth")
    encoder, provenance = load_vgg(Loading(weights_dir=tmp_path))
    assert provenance["pretrained"] is True and provenance["source"] == "weights_dir" and provenance["flag"] == ""
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), encoder.state_dict().values()))
    # init="random" still prefers the local file
    assert load_vgg(Loading(weights_dir=tmp_path, init="random"))[1]["pretrained"] is True


# ----------------------------------------------------------------------------------------------------------------------
# LPIPS
# ----------------------------------------------------------------------------------------------------------------------
ALEX_CONVS = {0: "slice1", 3: "slice2", 6: "slice3", 8: "slice4", 10: "slice5"}  # torchvision index → lpips slice


@pytest.fixture(scope="module")
def alex_state():
    torch.manual_seed(1)
    return torchvision.models.alexnet(weights=None).state_dict()


@pytest.fixture
def alex_dir(tmp_path, alex_state):
    torch.save(alex_state, tmp_path / ALEX_FILE)
    return tmp_path


def test_lpips_offline_without_backbone_is_unavailable(no_network):
    with pytest.raises(MetricUnavailable) as info:
        LPIPS()
    message = str(info.value)
    assert ALEX_FILE in message and ALEX_URL in message and "weights_dir=DIR" in message
    with pytest.raises(MetricUnavailable, match=VGG16_FILE) as info:
        LPIPS(net="vgg")
    assert VGG16_URL in str(info.value)
    assert LPIPS_BACKBONES["alex"].sha256 == "7be5be79" and LPIPS_BACKBONES["vgg"].sha256 == "397923af"


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # lpips 0.1.4 → torchvision
def test_lpips_with_torchvision_layout_backbone(alex_dir, alex_state):
    with pytest.warns(UserWarning, match="does not match the official"):  # synthetic file: sha256 prefix differs
        metric = LPIPS(loading=Loading(weights_dir=alex_dir))
    assert metric.name == "lpips" and metric.higher_is_better is False and metric.pretrained
    assert metric.config()["weights"]["backbone"]["verified"] is False
    for index, slice_name in ALEX_CONVS.items():
        conv = getattr(getattr(metric.model.net, slice_name), str(index))
        assert torch.equal(conv.weight, alex_state[f"features.{index}.weight"])
        assert torch.equal(conv.bias, alex_state[f"features.{index}.bias"])

    torch.manual_seed(3)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    same = metric.update(x, x, y)
    assert same.tolist() == [0.0, 0.0]
    values = metric.update(y, x, y)
    assert values.shape == (2,) and (values > 0).all()

    import lpips

    reference = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False)
    with torch.no_grad():
        for index, slice_name in ALEX_CONVS.items():
            conv = getattr(getattr(reference.net, slice_name), str(index))
            conv.weight.copy_(alex_state[f"features.{index}.weight"])
            conv.bias.copy_(alex_state[f"features.{index}.bias"])
        expected = reference(2 * y - 1, 2 * x - 1).flatten().double()
    assert torch.allclose(values, expected, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        assert torch.allclose(lpips_distance(y, x, metric.model).double(), expected, rtol=1e-5, atol=1e-7)
    assert metric.compute().n == 4


def test_lpips_backbone_loading_is_strict(alex_state):
    model, provenance = load_lpips(loading=Loading(init="random"))
    assert provenance["pretrained"] is False and "RANDOM" in provenance["flag"]
    incomplete = {k: v for k, v in alex_state.items() if k != "features.10.bias"}
    with pytest.raises(StateDictMismatchError, match="features.10.bias"):
        load_torchvision_backbone(model.net, incomplete, "incomplete.pth")
    extra = {**alex_state, "features.13.weight": torch.zeros(1)}
    with pytest.raises(StateDictMismatchError, match="features.13.weight"):
        load_torchvision_backbone(model.net, extra, "extra.pth")
    wrong = {**alex_state, "features.3.weight": torch.zeros(192, 64, 3, 3)}
    with pytest.raises(StateDictMismatchError, match="features.3.weight"):
        load_torchvision_backbone(model.net, wrong, "wrong.pth")


def test_lpips_input_validation(alex_dir):
    with pytest.warns(UserWarning):
        metric = LPIPS(loading=Loading(weights_dir=alex_dir))
    good = torch.rand(1, 3, 32, 32)
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        metric.update(torch.rand(1, 4, 32, 32), good, good)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        metric.update(good, good * 2 - 1.5, good)
    with pytest.raises(InputError, match="at least 31 px"):
        metric.update(torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30), good)


@pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")  # lpips 0.1.4 → torchvision
def test_lpips_two_sides_equal_the_package_forward_bit_for_bit():
    """lpips_distance computes each side (lpips_features) and their comparison apart; the package's forward on the
    same model and inputs must give the same bits, and a kept content side the same values."""
    import lpips

    from metrics.perceptual import lpips_features, lpips_from_features

    torch.manual_seed(4)
    model = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False).eval()
    output, content = torch.rand(3, 3, 40, 56), torch.rand(3, 3, 40, 56)
    with torch.no_grad():
        expected = model(2 * output - 1, 2 * content - 1).reshape(-1)
        assert torch.equal(lpips_distance(output, content, model), expected)
        sides = lpips_features(content, model)
        assert [tuple(f.shape[:2]) for f in sides] == [(3, 64), (3, 192), (3, 384), (3, 256), (3, 256)]
        assert torch.allclose(sides[0].square().sum(1), torch.ones(()), atol=1e-5)  # unit length per position
        kept = [torch.cat(layer) for layer in zip(*(lpips_features(content[i : i + 1], model) for i in range(3)))]
        assert torch.allclose(lpips_from_features(lpips_features(output, model), kept, model), expected,
                              rtol=1e-5, atol=1e-7)
    with pytest.raises(InputError, match="at least 31 px"):
        lpips_features(torch.rand(1, 3, 30, 64), model)


def test_shared_lpips_heads_equal_the_packaged_ones():
    import lpips

    shared = load_state_dict(shared_asset("weights/lpips_linear_layers/v0.1_alex.pth"))
    packaged = load_state_dict(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth")
    assert shared.keys() == packaged.keys()
    assert all(torch.equal(shared[k], packaged[k]) for k in shared)


# ----------------------------------------------------------------------------------------------------------------------
# sha256 prefixes in methods.weights
# ----------------------------------------------------------------------------------------------------------------------
def test_sha256_prefix_match_and_mismatch(tmp_path, recwarn):
    src = tmp_path / "src" / "w.pth"
    src.parent.mkdir()
    src.write_bytes(b"weights")
    digest = sha256_file(src)
    local = tmp_path / "local"
    local.mkdir()
    (local / "w.pth").write_bytes(b"weights")

    ok = resolve_files([WeightFile("w.pth", sha256=digest[:8].upper())], weights_dir=local)["w.pth"]
    assert ok.verified is True and not recwarn.list
    wrong_prefix = ("0" if digest[0] != "0" else "1") + digest[1:8]
    with pytest.warns(UserWarning, match=rf"expected {wrong_prefix}\.\.\. \(a prefix\)"):
        bad = resolve_files([WeightFile("w.pth", sha256=wrong_prefix)], weights_dir=local)["w.pth"]
    assert bad.verified is False

    spec = WeightFile("w.pth", url=src.as_uri(), sha256=digest[:8])
    assert resolve_files([spec], download=True, progress=False)["w.pth"].source == "download"
    (cache_dir() / "w.pth").unlink()
    with pytest.raises(ChecksumError, match="a prefix"):
        resolve_files([WeightFile("w.pth", url=src.as_uri(), sha256=wrong_prefix)], download=True, progress=False)
    assert not (cache_dir() / "w.pth").exists()


# ----------------------------------------------------------------------------------------------------------------------
# Timing (no timed assertions)
# ----------------------------------------------------------------------------------------------------------------------
def test_percentiles_by_linear_interpolation():
    samples = [4.0, 1.0, 3.0, 2.0]  # sorted 1, 2, 3, 4: rank q/100·3
    assert percentile(samples, 10) == pytest.approx(1.3)
    assert percentile(samples, 50) == pytest.approx(2.5)
    assert percentile(samples, 90) == pytest.approx(3.7)
    assert percentile(samples, 0) == 1.0 and percentile(samples, 100) == 4.0
    assert percentile([5.0], 90) == 5.0
    ten = [float(i) for i in range(10, 0, -1)]  # 1..10: p10 rank 0.9 → 1.9, p90 rank 8.1 → 9.1
    assert percentile(ten, 10) == pytest.approx(1.9) and percentile(ten, 90) == pytest.approx(9.1)
    with pytest.raises(ValueError):
        percentile([], 50)

    result = TimingResult.from_samples([0.4, 0.1, 0.3, 0.2], batch_size=2)
    assert result.median_s == pytest.approx(0.25)
    assert (result.p10_s, result.p90_s) == (pytest.approx(0.13), pytest.approx(0.37))
    assert result.images_per_s == pytest.approx(8.0)
    assert TimingResult.higher_is_better("images_per_s") is True
    assert not any(TimingResult.higher_is_better(k) for k in ("median_s", "p10_s", "p90_s", "peak_memory_mib"))


def test_warmup_calls_are_not_timed():
    calls = []
    clock_reads = []

    def clock():  # reads the number of calls made so far, not the time
        clock_reads.append(len(calls))
        return float(len(calls))

    result = measure_latency(lambda: calls.append(1), warmup=3, repeats=4, clock=clock)
    assert len(calls) == 7 and len(result.runs) == 4
    assert clock_reads[0] == 3  # the first timed run starts after the three warm-up calls
    assert result.runs == (1.0, 1.0, 1.0, 1.0)  # each timed interval holds exactly one call
    assert result.warmup == 3 and result.device == "cpu" and "ru_maxrss" in result.memory_kind
    assert result.peak_memory_mib is None or result.peak_memory_mib >= 0
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(lambda: None, repeats=0)


def test_count_flops():
    linear = nn.Linear(4, 3)
    assert count_flops(lambda: linear(torch.rand(2, 4))) == 2 * 2 * 4 * 3  # 48
    conv = nn.Conv2d(2, 4, kernel_size=3)  # (1, 2, 5, 5) → (1, 4, 3, 3): 2 · (4·3·3 outputs) · (2·3·3 MACs each)
    assert count_flops(lambda: conv(torch.rand(1, 2, 5, 5))) == 2 * (4 * 3 * 3) * (2 * 3 * 3)
    assert count_flops(lambda: torch.relu(torch.rand(10))) == 0  # elementwise ops are not counted


def test_time_method_runs_the_model_forward_on_random_inputs():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, kernel_size=1)
            self.seen = []

        def forward(self, content, style):
            self.seen.append((tuple(content.shape), tuple(style.shape), torch.is_inference_mode_enabled()))
            return self.conv(content) + style.mean()

    class FakeMethod:
        name = "fake"
        options = {"k": 1}
        device = torch.device("cpu")
        model = Net()

    result = time_method(FakeMethod(), 8, batch_size=2, style_size=(6, 4), warmup=1, repeats=3, flops=True)
    seen = FakeMethod.model.seen
    assert len(seen) == 1 + 3 + 1  # warm-up + timed + one FLOP-counting call
    assert all(s == ((2, 3, 8, 8), (2, 3, 6, 4), True) for s in seen)
    assert result.flops == 2 * (2 * 3 * 8 * 8) * 3  # the 1×1 conv; the mean and the addition are not counted
    assert result.batch_size == 2 and len(result.runs) == 3 and result.extra["method"] == "fake"
    assert result.images_per_s == pytest.approx(2 / result.median_s)
    assert result.to_dict()["runs"] == list(result.runs)


def test_metrics_are_modules_that_move_their_networks():
    """A metric is an nn.Module: ``.to()`` moves (here: casts) the encoder it holds, and the content and style
    losses sharing one cache share that one encoder."""
    encoder = VGGEncoder()
    metric = ContentStyleLoss(encoder)
    assert isinstance(metric.content, nn.Module) and metric.content.encoder is encoder is metric.style.encoder
    metric.content.to(torch.float64)
    assert next(encoder.parameters()).dtype == torch.float64
    assert sum(p.numel() for p in metric.style.parameters()) == sum(p.numel() for p in encoder.parameters())
    values = metric.content(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    assert values.shape == (1,) and metric.content.compute().n == 1  # forward is update
