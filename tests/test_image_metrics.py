"""CFSD, SSIM and the Gram loss against independent references written from their reference code's semantics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods.errors import InputError
from methods.weights import Loading, StateDictMismatchError
from metrics.base import MetricUnavailable
from metrics.cfsd import CFSD, CFSD_LAYER, cfsd, cfsd_from_features
from metrics.gram import GRAM_VARIANTS, GramLoss, gram_loss
from metrics.imagenet_vgg import load_imagenet_vgg
from metrics.ssim import SSIM, ssim


@pytest.fixture(scope="module")
def random_vgg19():
    return load_imagenet_vgg("vgg19", Loading(init="random", download=False))[0].double()


def styleid_patch_similarity_kl(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """StyleID's PatchSimi on relu3_1 features, materialised: transpose(1, 3), reshape, /C, bmm, (log_)softmax,
    kl_div(batchmean) — the reference's exact sequence of operations, one image at a time."""
    values = []
    for s, c in zip(stylised, content):
        def rows(x, log):
            b, ch, h, w = x[None].shape
            f = torch.transpose(x[None], 1, 3).reshape(b, h * w, ch).div(ch)
            sim = torch.bmm(f, torch.transpose(f, 1, 2))
            return (F.log_softmax(sim, dim=-1) if log else F.softmax(sim, dim=-1)).reshape(b, -1)
        values.append(F.kl_div(rows(s, True), rows(c, False), reduction="batchmean"))
    return torch.stack(values)


@pytest.mark.parametrize("chunk_rows", [None, 1, 7, 1000])
def test_cfsd_in_row_chunks_equals_the_materialised_reference(chunk_rows):
    generator = torch.Generator().manual_seed(0)
    out = torch.randn(3, 16, 5, 7, generator=generator, dtype=torch.float64).relu() * 4
    con = torch.randn(3, 16, 5, 7, generator=generator, dtype=torch.float64).relu() * 4
    expected = styleid_patch_similarity_kl(out, con)
    assert torch.allclose(cfsd_from_features(out, con, chunk_rows), expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(cfsd_from_features(con, con, chunk_rows), torch.zeros(3, dtype=torch.float64), atol=1e-12)


def test_cfsd_of_images_uses_relu3_1_of_imagenet_vgg19(random_vgg19):
    generator = torch.Generator().manual_seed(1)
    out, con = (torch.rand(2, 3, 20, 24, generator=generator, dtype=torch.float64) for _ in range(2))
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    reference_features = [random_vgg19[: CFSD_LAYER + 1]((x - mean) / std) for x in (out, con)]
    expected = styleid_patch_similarity_kl(*reference_features)
    assert torch.allclose(cfsd(out, con, random_vgg19, chunk_rows=13), expected, rtol=1e-9)
    metric = CFSD(vgg=random_vgg19)
    assert torch.allclose(metric.update(out, con, con), expected, rtol=1e-9)
    assert metric.compute().n == 2 and not metric.higher_is_better


def test_cfsd_refuses_what_it_cannot_compare(random_vgg19):
    with pytest.raises(InputError, match="same shape"):
        cfsd(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 20), random_vgg19)
    with pytest.raises(InputError, match="at least 4 px"):
        cfsd(torch.rand(1, 3, 3, 16), torch.rand(1, 3, 3, 16), random_vgg19)


def test_ssim_is_microast_s_script_on_the_saved_files(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from skimage.metrics import structural_similarity

    from harness.images import load_image_tensor, save_image

    generator = torch.Generator().manual_seed(2)
    content = torch.rand(1, 3, 33, 41, generator=generator)
    output = (content * 0.6 + 0.4 * torch.rand(1, 3, 33, 41, generator=generator)).clamp(0, 1)
    for name, image in (("1.png", content), ("1_2.png", output)):
        save_image(image[0], tmp_path / name)
    # MicroAST metrics/calc_ssim.py: cv2.imread (BGR), BGR2GRAY, structural_similarity with its defaults.
    gray = [cv2.cvtColor(cv2.imread(str(tmp_path / n)), cv2.COLOR_BGR2GRAY) for n in ("1.png", "1_2.png")]
    expected = structural_similarity(gray[0], gray[1], full=True)[0]
    loaded = [load_image_tensor(tmp_path / n, size=None) for n in ("1.png", "1_2.png")]
    assert ssim(loaded[1], loaded[0]).item() == pytest.approx(expected, abs=1e-12)
    rgb = structural_similarity(cv2.imread(str(tmp_path / "1.png")), cv2.imread(str(tmp_path / "1_2.png")),
                                channel_axis=-1)
    assert SSIM("rgb").update(loaded[1], loaded[0], loaded[0]).item() == pytest.approx(rgb, abs=1e-12)
    assert ssim(loaded[0], loaded[0]).item() == 1.0 and SSIM().higher_is_better
    with pytest.raises(InputError, match="at least 7 px"):
        ssim(torch.rand(1, 3, 6, 30), torch.rand(1, 3, 6, 30))


def _gram_reference(output, style, vgg, indices, divisor):
    """A loop over images and layers in numpy: G = F Fᵀ / divisor(C, H, W), mean squared difference, summed."""
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    values = []
    for i in range(output.shape[0]):
        total = 0.0
        for layer in indices:
            grams = []
            for image in (output[i:i + 1], style[i:i + 1]):
                x = torch.from_numpy((image.numpy() - mean) / std)
                feature = vgg[: layer + 1](x)[0].numpy()
                c, h, w = feature.shape
                flat = feature.reshape(c, h * w)
                grams.append(flat @ flat.T / divisor(c, h, w))
            total += float(np.mean((grams[0] - grams[1]) ** 2))
        values.append(total)
    return np.array(values)


def test_gram_loss_matches_a_loop_reference(random_vgg19):
    generator = torch.Generator().manual_seed(3)
    out = torch.rand(2, 3, 32, 40, generator=generator, dtype=torch.float64)
    sty = torch.rand(2, 3, 48, 32, generator=generator, dtype=torch.float64)
    config = GRAM_VARIANTS["gatys"]
    expected = _gram_reference(out, sty, random_vgg19, config.layers, lambda c, h, w: c * h * w)
    assert np.allclose(gram_loss(out, sty, random_vgg19, config).numpy(), expected, rtol=1e-9)
    hw = GramLoss(vgg=random_vgg19, normalization="hw")
    expected_hw = _gram_reference(out, sty, random_vgg19, config.layers, lambda c, h, w: h * w)
    assert np.allclose(hw.update(out, out, sty).numpy(), expected_hw, rtol=1e-9)
    assert gram_loss(out, out, random_vgg19).abs().max() < 1e-12
    with pytest.raises(InputError, match="at least 16 px"):
        gram_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32), random_vgg19.float())


def test_the_rt_games_variant_is_vgg16_relu_x_y(tmp_path):
    vgg16 = load_imagenet_vgg("vgg16", Loading(init="random", download=False))[0].double()
    config = GRAM_VARIANTS["rt-games"]
    assert [type(vgg16[i]).__name__ for i in config.layers] == ["ReLU"] * 4
    assert [vgg16[i - 1].out_channels for i in config.layers] == [64, 128, 256, 512]
    out, sty = torch.rand(1, 3, 16, 16, dtype=torch.float64), torch.rand(1, 3, 16, 16, dtype=torch.float64)
    expected = _gram_reference(out, sty, vgg16, config.layers, lambda c, h, w: c * h * w)
    assert np.allclose(GramLoss("rt-games", vgg=vgg16).update(out, out, sty).numpy(), expected, rtol=1e-9)


def test_imagenet_vgg_weights_load_strictly_or_are_unavailable(tmp_path):
    from torchvision import models

    with pytest.raises(MetricUnavailable, match="vgg19-dcbb9e9d.pth"):
        load_imagenet_vgg("vgg19", Loading(weights_dir=str(tmp_path), download=False))
    state = models.vgg19(weights=None).state_dict()
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)  # a synthetic file of the exact layout (its sha256 does not start with dcbb9e9d)
    with pytest.warns(UserWarning, match="does not match the official"):
        features, provenance = load_imagenet_vgg("vgg19", Loading(weights_dir=str(tmp_path), download=False))
    assert torch.equal(features[0].weight, state["features.0.weight"]) and provenance["pretrained"]
    del state["features.28.bias"]
    torch.save(state, path)
    with pytest.warns(UserWarning), pytest.raises(StateDictMismatchError, match=r"vgg19-dcbb9e9d.pth.*28\.bias"):
        load_imagenet_vgg("vgg19", Loading(weights_dir=str(tmp_path), download=False))
