"""FID and ArtFID: the Fréchet distance against scipy, the feature networks against their reference code on synthetic
weights of the exact layout, ArtFID against the ``art-fid`` package itself, the bootstrap interval, FID∞'s floor."""
from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from methods.errors import InputError
from methods.weights import Loading, StateDictMismatchError
from metrics.fid import ArtFID, FID, fid_infinity, frechet_distance, frechet_distance_fast
from metrics.inception import (ART_INCEPTION, FID_INCEPTION, ArtInception, fid_inception_layout, load_art_inception,
                               load_fid_inception)

ROOT = Path(__file__).resolve().parents[1]


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid's / art-fid's numpy formula (scipy.linalg.sqrtm of Σ₁Σ₂)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.mark.parametrize("n, m, d", [(50, 40, 8), (12, 9, 32)])
def test_the_frechet_distance_matches_scipy(n, m, d):
    generator = torch.Generator().manual_seed(n)
    a = torch.randn(n, d, generator=generator, dtype=torch.float64)
    b = torch.randn(m, d, generator=generator, dtype=torch.float64) * 1.5 + 0.3
    expected = scipy_frechet(a.numpy(), b.numpy())
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_fast(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_fast(a, a) == pytest.approx(0, abs=1e-9)
    with pytest.raises(InputError, match="at least 2 images"):
        frechet_distance(a[:1], b)


class PooledProjection(nn.Module):
    """A cheap deterministic stand-in feature network (global mean of a fixed 1×1 projection)."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 1)
        with torch.no_grad():
            self.proj.weight.copy_(torch.linspace(-1, 1, dim * 3).view(dim, 3, 1, 1))
            self.proj.bias.zero_()

    def forward(self, images):
        return self.proj(images).tanh().mean(dim=(2, 3)) + images.std(dim=(1, 2, 3))[:, None]


def _pairs(count=12, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    contents = [torch.rand(1, 3, size, size, generator=generator) for _ in range(3)]
    styles = [torch.rand(1, 3, size, size, generator=generator) ** 2 for _ in range(4)]
    pairs = [(c, s) for c in range(3) for s in range(4)][:count]
    outputs = [(contents[c] + styles[s]) / 2 for c, s in pairs]
    return contents, styles, pairs, outputs


def test_fid_is_the_distance_of_the_outputs_to_one_style_per_pair_or_each_style_once():
    contents, styles, pairs, outputs = _pairs()
    net = PooledProjection().requires_grad_(False)
    metric = FID(network=net, bootstrap=50)
    for (c, s), out in zip(pairs, outputs):
        metric.update(out, contents[c], styles[s], [(c, s)])
    summary = metric.compute()
    out_features = net(torch.cat(outputs)).double()
    style_features = net(torch.cat([styles[s] for _, s in pairs])).double()
    assert summary.value == pytest.approx(scipy_frechet(out_features.numpy(), style_features.numpy()), rel=1e-6)
    assert summary.n == 12 and summary.ci_low <= summary.ci_high
    again = FID(network=net, bootstrap=50)
    for (c, s), out in zip(pairs, outputs):
        again.update(out, contents[c], styles[s], [(c, s)])
    assert again.compute() == summary  # seeded bootstrap: the same numbers
    unique = FID(network=net, style_set="unique", bootstrap=0)
    for (c, s), out in zip(pairs, outputs):
        unique.update(out, contents[c], styles[s], [(c, s)])
    each_once = net(torch.cat(styles)).double()
    assert unique.compute().value == pytest.approx(scipy_frechet(out_features.numpy(), each_once.numpy()), rel=1e-6)


def test_fid_infinity_needs_5000_images_and_removes_the_small_sample_bias():
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(InputError, match="at least 5000 images.*silently return plain FID"):
        fid_infinity(torch.randn(100, 4, generator=generator), torch.randn(100, 4, generator=generator))
    a = torch.randn(6000, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(6000, 4, generator=generator, dtype=torch.float64)
    plain = frechet_distance(a, b)
    infinite = fid_infinity(a, b)
    assert abs(infinite) < plain  # same distribution: FID∞ extrapolates the O(1/n) bias away


# ----------------------------------------------------------------------------------------------------------------------
# Feature networks on synthetic weights of the exact layout
# ----------------------------------------------------------------------------------------------------------------------
def test_the_fid_inception_is_torch_fidelity_s_on_a_strictly_loaded_file(tmp_path):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = tmp_path / FID_INCEPTION.filename
    torch.save(fid_inception_layout(seed=3), path)
    with pytest.warns(UserWarning, match="does not match the official"):  # a synthetic file, not the release
        network, provenance = load_fid_inception(Loading(weights_dir=str(tmp_path), download=False))
    assert provenance["pretrained"] and provenance["resize"] == "tf1"
    reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    images = torch.rand(2, 3, 64, 90, generator=torch.Generator().manual_seed(0))
    expected = reference((images * 255).round().to(torch.uint8))[0]
    assert torch.allclose(network(images), expected, rtol=1e-5, atol=1e-6)
    state = fid_inception_layout(seed=3)
    state["unexpected.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.warns(UserWarning), pytest.raises(StateDictMismatchError, match="unexpected.weight"):
        load_fid_inception(Loading(weights_dir=str(tmp_path), download=False))


def _calibrated_art_inception(seed: int = 0) -> ArtInception:
    """Synthetic art_inception weights whose activations stay O(1): seeded init, BN statistics measured."""
    torch.manual_seed(seed)
    network = ArtInception(init_weights=True)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None
    network.train()
    with torch.no_grad():
        for _ in range(2):
            network(torch.rand(4, 3, 96, 96))
    return network.eval()


def test_the_art_inception_loads_strictly(tmp_path):
    path = tmp_path / ART_INCEPTION.filename
    state = _calibrated_art_inception().state_dict()
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # DataParallel prefixes are stripped
    network, provenance = load_art_inception(Loading(weights_dir=str(tmp_path), download=False))
    assert provenance["pretrained"] and torch.equal(network.fc1.weight, state["fc1.weight"])
    del state["AuxLogits2.fc.bias"]
    torch.save(state, path)
    with pytest.raises(StateDictMismatchError, match="art_inception.pth.*AuxLogits2.fc.bias"):
        load_art_inception(Loading(weights_dir=str(tmp_path), download=False))


# ----------------------------------------------------------------------------------------------------------------------
# ArtFID against the art-fid package itself
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def art_fid_package(tmp_path_factory):
    """The ``art-fid`` 0.0.2 package's code, installed without its dependencies (it pins numpy<2, which must not
    downgrade this environment's numpy) into a private folder; its unused imports (requests, scikit-learn) are
    stubbed while it is imported."""
    try:
        import art_fid  # noqa: F401
        return sys.modules["art_fid"]
    except ImportError:
        pass
    target = tmp_path_factory.mktemp("art-fid")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                           "art-fid==0.0.2"], capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"the art-fid package could not be installed here (no package index?): {done.stderr[-300:]}")
    stubs = {name: types.ModuleType(name) for name in ("requests", "sklearn", "sklearn.linear_model")}
    for name, module in stubs.items():
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    stubs["sklearn.linear_model"].LinearRegression = None  # only FID∞ uses it
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    sys.path.insert(0, str(target))
    try:
        import art_fid.art_fid  # noqa: F401
    finally:
        sys.path.remove(str(target))
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return sys.modules["art_fid"]


class _LPIPSLike(nn.Module):
    """A deterministic stand-in for lpips.LPIPS (inputs in [-1, 1]), shared by both sides of the comparison."""

    def forward(self, x, y):
        return (x - y).abs().mean(dim=(1, 2, 3), keepdim=True) * 0.3


def test_artfid_equals_the_art_fid_package(tmp_path, monkeypatch, art_fid_package):
    from harness.images import load_image_tensor, save_image

    package = art_fid_package.art_fid
    network = _calibrated_art_inception(seed=1)
    cache = tmp_path / "tmp" / "art_fid"
    cache.mkdir(parents=True)
    torch.save(network.state_dict(), cache / "art_inception.pth")
    monkeypatch.setattr(package.utils.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    # the package's own LPIPS wrapper (its 2x − 1 mapping) around the stand-in instead of lpips' AlexNet
    monkeypatch.setattr(package.image_metrics.lpips, "LPIPS", lambda net, **kw: _LPIPSLike())

    contents, styles, pairs, outputs = _pairs(count=8, size=80, seed=4)
    folders = {name: tmp_path / name for name in ("stylized", "style", "content")}
    for folder in folders.values():
        folder.mkdir()
    for (c, s), out in zip(pairs, outputs):
        stem = f"c{c}__s{s}.png"
        save_image(out[0], folders["stylized"] / stem)
        save_image(contents[c][0], folders["content"] / stem)  # the package pairs by sorted file name
        save_image(styles[s][0], folders["style"] / stem)  # one style per output, as StyleID's folders
    stylised_files = sorted(str(p) for p in folders["stylized"].iterdir())
    style_files = sorted(str(p) for p in folders["style"].iterdir())
    model = package.inception.Inception3()
    model.load_state_dict(torch.load(cache / "art_inception.pth"), strict=False)
    package_stylised = package.get_activations(stylised_files, model, batch_size=4, num_workers=0)
    package_style = package.get_activations(style_files, model, batch_size=4, num_workers=0)
    content_distance = float(package.compute_content_distance(str(folders["stylized"]), str(folders["content"]), 4,
                                                              "lpips", "cpu", num_workers=0))
    generator = torch.Generator().manual_seed(9)  # the package's Fréchet formula, on well-conditioned data
    a, b = torch.randn(60, 5, generator=generator, dtype=torch.float64), torch.randn(50, 5, generator=generator,
                                                                                      dtype=torch.float64)
    mu_a, mu_b, s_a, s_b = a.mean(0), b.mean(0), np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    assert frechet_distance(a, b) == pytest.approx(package.compute_frechet_distance(mu_a.numpy(), s_a, mu_b.numpy(),
                                                                                   s_b), rel=1e-8)

    loaded, _ = load_art_inception(Loading(weights_dir=str(cache), download=False))
    metric = ArtFID(_LPIPSLike(), network=loaded, bootstrap=20)
    for (c, s), _out in zip(pairs, outputs):
        stem = f"c{c}__s{s}.png"
        read = [load_image_tensor(folders[k] / stem, size=None) for k in ("stylized", "content", "style")]
        metric.update(*read, [(c, s)])
    ours_stylised, ours_style = torch.cat(metric._outputs), torch.cat(metric._styles)
    for ours, theirs in ((ours_stylised.numpy(), package_stylised), (ours_style.numpy(), package_style)):
        # the same files in the same order; float32 noise of batch 4 (theirs) vs 1 (ours) through 94 convolutions
        assert np.abs(ours - theirs).max() <= 2e-5 * np.abs(theirs).max()
    summary = metric.compute()
    fid = frechet_distance(torch.from_numpy(package_stylised), torch.from_numpy(package_style))
    assert summary.value == pytest.approx((1 + content_distance) * (1 + fid), rel=1e-4)
    assert summary.n == 8 and summary.ci_low <= summary.ci_high


# ----------------------------------------------------------------------------------------------------------------------
# In a run
# ----------------------------------------------------------------------------------------------------------------------
def test_a_run_computes_set_metrics_once_per_method_from_its_saved_outputs(tmp_path, eval_images):
    import pandas as pd

    from harness.errors import ConfigError
    from harness.run import RunConfig, execute_run

    content, style = eval_images
    config = RunConfig(methods=["adain", "styA2K"], out=tmp_path / "run", content=[str(content)], style=[str(style)],
                       size=80, init="random", metrics=["ssim", "fid"], progress=False,
                       metric_options={"fid": {"bootstrap": 30}})
    execute_run(config)
    rows = pd.read_csv(tmp_path / "run" / "set_metrics.csv")
    assert list(rows["method"]) == ["adain", "styA2K"] and set(rows["n"]) == {4} and set(rows["bootstrap"]) == {30}
    assert (rows["ci_low"] <= rows["ci_high"]).all() and rows["untrained"].all()
    table = pd.read_csv(tmp_path / "run" / "table.csv")
    assert {"fid_mean", "fid_ci_low", "fid_ci_high", "ssim_mean"} <= set(table.columns)
    assert "FID ↓" in (tmp_path / "run" / "table.md").read_text()
    execute_run(config)  # resumed: nothing stylised again, the set metrics recomputed from the saved files
    assert pd.read_csv(tmp_path / "run" / "set_metrics.csv").equals(rows)
    for options, message in (({"fid": {"nope": 1}}, "metric option fid.nope: unknown"),
                             ({"fid": {"bootstrap": "x"}}, "fid.bootstrap must be int"),
                             ({"artfid": {"variant": "bogus"}}, "ArtFID variant must be one of artfid, styleid")):
        bad = RunConfig(**{**config.__dict__, "out": tmp_path / "bad", "metrics": ["fid", "artfid"],
                           "metric_options": options})
        with pytest.raises(ConfigError, match=message):
            execute_run(bad)
    assert not (tmp_path / "bad" / "metrics.csv").exists()


def test_the_styleid_variant_resizes_as_torchvision_resize_512_on_pil():
    from PIL import Image
    from torchvision.transforms import Resize, ToTensor

    from metrics.fid import resize_shorter_side

    generator = torch.Generator().manual_seed(5)
    image = (torch.rand(1, 3, 300, 420, generator=generator) * 255).round() / 255
    pil = Image.fromarray((image[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    expected = ToTensor()(Resize(512)(pil))
    ours = resize_shorter_side(image, 512)
    assert ours.shape[-2:] == expected.shape[-2:] == (512, 716)
    assert torch.equal(ours[0], expected)
