"""AdaAttN (methods/adaattn.py) against an independent float64 reference written from the official code's semantics
(tests/reference_baselines.py), the real official relu3_1 module file, and the release archive resolver."""
from __future__ import annotations

import zipfile

import pytest
import torch

from methods import InputError, create_method, get_method_info
from methods.adaattn import AdaAttN, sample_positions
from methods.vgg import TAP_NAMES
from methods.weights import ChecksumError, WeightsError, cache_dir, load_into, load_state_dict, sha256_file

from .conftest import shared_asset
from .reference_baselines import ref_adaattn, ref_adaattn_module

pytestmark = pytest.mark.filterwarnings("ignore:weight file .* does not match the official:UserWarning")


def adaattn_3_layout():  # spec §10.2
    return [("f.weight", (448, 448, 1, 1)), ("f.bias", (448,)), ("g.weight", (448, 448, 1, 1)), ("g.bias", (448,)),
            ("h.weight", (256, 256, 1, 1)), ("h.bias", (256,))]


def transformer_layout():  # spec §10.2
    out = []
    for prefix, key in (("attn_adain_4_1.", 960), ("attn_adain_5_1.", 1472)):
        out += [(f"{prefix}f.weight", (key, key, 1, 1)), (f"{prefix}f.bias", (key,)),
                (f"{prefix}g.weight", (key, key, 1, 1)), (f"{prefix}g.bias", (key,)),
                (f"{prefix}h.weight", (512, 512, 1, 1)), (f"{prefix}h.bias", (512,))]
    return out + [("merge_conv.weight", (512, 512, 3, 3)), ("merge_conv.bias", (512,))]


@pytest.mark.parametrize("target,layout", [("adaattn_3", adaattn_3_layout()), ("transformer", transformer_layout())])
def test_official_layouts_match_the_model(target, layout):
    model = create_method("AdaAttN", init="random").model
    got = [(k, tuple(v.shape)) for k, v in getattr(model, target).state_dict().items()]
    assert got == layout


def test_real_official_relu3_1_module_loads_strictly():
    path = shared_asset("weights/AdaAttN/latest_net_adaattn_3.pth")
    model = create_method("AdaAttN", init="random").model
    load_into(model.adaattn_3, path)
    spec = get_method_info("AdaAttN").weights["adaattn_3"]
    assert sha256_file(path) == spec.sha256
    torch.testing.assert_close(model.adaattn_3.f.weight, load_state_dict(path)["f.weight"])


def _features64(model, content, style):
    with torch.inference_mode():
        fc = model.encoder(content.double(), TAP_NAMES)
        fs = model.encoder(style.double(), TAP_NAMES)
    return fc, fs


@pytest.fixture
def model64():
    """AdaAttN with the real relu3_1 module where available (else seeded random), random elsewhere, in float64."""
    method = create_method("AdaAttN", init="random", seed=2, max_sample=50)
    model = method.model
    try:
        load_into(model.adaattn_3, shared_asset("weights/AdaAttN/latest_net_adaattn_3.pth"))
    except pytest.skip.Exception:
        pass
    with torch.no_grad():  # larger attention logits than the 0.02-normal init, so the softmax is not nearly flat
        for module in (model.transformer.attn_adain_4_1, model.transformer.attn_adain_5_1):
            module.f.weight.mul_(20.0)
            module.g.weight.mul_(20.0)
    return model.double()


def _states(model):
    def sd(m):
        return {k: v.detach() for k, v in m.state_dict().items()}
    return {"adaattn_3": sd(model.adaattn_3), "transformer": sd(model.transformer), "decoder": sd(model.decoder)}


def test_matches_the_reference_with_key_sampling(model64):
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 48, 64, generator=g), torch.rand(2, 3, 40, 56, generator=g)
    fc, fs = _features64(model64, content, style)
    assert fs["relu3_1"].shape[-2] * fs["relu3_1"].shape[-1] > 50  # the relu3_1 keys are sub-sampled
    with torch.inference_mode():
        ours = model64.decode(model64.transfer(fc, fs), content.shape[-2:])
    expected = ref_adaattn([fc[t] for t in TAP_NAMES], [fs[t] for t in TAP_NAMES], _states(model64), max_sample_3=50)
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-9)


def test_the_subsample_is_the_official_global_seed_permutation():
    before = torch.get_rng_state()
    index = sample_positions(1000, 100, 6666, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone
    torch.manual_seed(6666)
    assert torch.equal(index, torch.randperm(1000)[:100])
    assert sample_positions(100, 100, 6666, torch.device("cpu")) is None


def test_full_attention_option_equals_the_reference_without_sampling():
    module = AdaAttN(16, 24, max_sample=None, backend="chunked").double()
    g = torch.Generator().manual_seed(1)
    c, s = torch.randn(1, 16, 9, 7, generator=g, dtype=torch.float64), torch.randn(1, 16, 8, 8, generator=g,
                                                                                    dtype=torch.float64)
    kc, ks = torch.randn(1, 24, 9, 7, generator=g, dtype=torch.float64), torch.randn(1, 24, 8, 8, generator=g,
                                                                                      dtype=torch.float64)
    state = {k: v.detach() for k, v in module.state_dict().items()}
    expected = ref_adaattn_module(c, s, kc, ks, state, "", max_sample=10**9, seed=None)
    torch.testing.assert_close(module(c, s, kc, ks), expected, rtol=1e-10, atol=1e-10)
    full = create_method("AdaAttN", init="random", key_sampling=False).model
    assert full.adaattn_3.max_sample is None and full.transformer.attn_adain_4_1.max_sample is None


@pytest.mark.parametrize("content_hw,style_hw", [((37, 50), (29, 31)), ((17, 17), (17, 23)), ((70, 33), (64, 64))])
def test_any_size_gives_the_content_size(content_hw, style_hw):
    method = create_method("AdaAttN", init="random")
    out = method.stylize(torch.rand(1, 3, *content_hw), torch.rand(1, 3, *style_hw))
    assert out.shape[-2:] == content_hw and torch.isfinite(out).all()


def test_too_small_inputs_are_one_clear_line():
    method = create_method("AdaAttN", init="random")
    with pytest.raises(InputError, match=r"style image 16×40 is too small for AdaAttNNet: each side must be at least 17"):
        method.stylize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 16, 40))


def test_training_loss_terms_and_gradients():
    model = create_method("AdaAttN", init="random").model.train()
    g = torch.Generator().manual_seed(0)
    out = model.training_loss(torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g),
                              dict(get_method_info("AdaAttN").recipe.loss_weights))
    assert set(out) == {"content", "global_style", "local", "loss"}
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert model.adaattn_3.f.weight.grad is not None and model.decoder.decoder_layer_1[1].weight.grad.abs().sum() > 0
    assert model.encoder.layers[2].weight.grad is None  # the VGG stays frozen


# ------------------------------------------------------------------------------------------ the release archive
def _release(tmp_path, corrupt_member: str | None = None):
    """A zip of the official layout (AdaAttN/latest_net_*.pth) with the real relu3_1 file, and a VGG file."""
    model = create_method("AdaAttN", init="random", seed=5).model
    members = tmp_path / "members"
    members.mkdir()
    real = shared_asset("weights/AdaAttN/latest_net_adaattn_3.pth")
    torch.save(model.transformer.state_dict(), members / "latest_net_transformer.pth")
    torch.save(model.decoder.state_dict(), members / "latest_net_decoder.pth")
    archive = tmp_path / "AdaAttN_model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(real if corrupt_member != "adaattn_3" else members / "latest_net_decoder.pth",
                 "AdaAttN/latest_net_adaattn_3.pth")
        zf.write(members / "latest_net_transformer.pth", "AdaAttN/latest_net_transformer.pth")
        zf.write(members / "latest_net_decoder.pth", "AdaAttN/latest_net_decoder.pth")
    vgg = tmp_path / "vgg_normalised.pth"
    torch.save(model.encoder.layers.state_dict(), vgg)
    return archive, vgg, model


def test_files_come_from_a_local_release_archive(tmp_path):
    archive, vgg, reference = _release(tmp_path)
    weights_dir = tmp_path / "W"
    (weights_dir / "AdaAttN").mkdir(parents=True)
    archive.rename(weights_dir / "AdaAttN" / archive.name)
    vgg.rename(weights_dir / vgg.name)
    method = create_method("AdaAttN", weights_dir=weights_dir, download=False)
    files = method.provenance.files
    assert files["latest_net_adaattn_3.pth"]["source"] == "archive"
    assert files["latest_net_adaattn_3.pth"]["verified"] is True  # the member's published sha256
    torch.testing.assert_close(method.model.decoder.state_dict(), reference.decoder.state_dict())
    x = torch.rand(1, 3, 32, 32)
    assert method.stylize(x, x).shape == x.shape


def test_files_come_from_google_drive_through_gdown(tmp_path, monkeypatch):
    gdown = pytest.importorskip("gdown")
    archive, vgg, _ = _release(tmp_path)
    calls = []

    def fake_download(id=None, output=None, quiet=False, **kwargs):  # noqa: A002  (gdown's own argument name)
        calls.append(id)
        output_path = tmp_path / "downloaded"
        output_path.write_bytes(archive.read_bytes())
        import shutil
        shutil.copy(output_path, output)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    monkeypatch.delenv("HARNESS_OFFLINE")
    (tmp_path / "vgg").mkdir()
    vgg = vgg.rename(tmp_path / "vgg" / vgg.name)  # the archive itself is nowhere on disk but in tmp_path
    method = create_method("AdaAttN", weights_dir=vgg.parent)
    assert calls == ["1XvpD1eI4JeCBIaW5uwMT6ojF_qlzM_lo"]  # one download for the three members
    assert {r["source"] for k, r in method.provenance.files.items() if k != "vgg_normalised.pth"} == {"archive"}


def test_a_wrong_member_is_a_checksum_error_and_leaves_nothing(tmp_path):
    archive, vgg, _ = _release(tmp_path, corrupt_member="adaattn_3")
    with pytest.raises(ChecksumError, match=r"checksum mismatch for AdaAttN/latest_net_adaattn_3.pth in .*AdaAttN_model.zip"):
        create_method("AdaAttN", weights_dir=tmp_path, download=False)
    assert not list(cache_dir().glob("**/*latest_net_adaattn_3.pth*"))  # no file and no temporary left


def test_a_damaged_archive_names_itself(tmp_path):
    (tmp_path / "AdaAttN_model.zip").write_bytes(b"not a zip")
    with pytest.raises(WeightsError, match=r"AdaAttN_model.zip is not a readable zip file"):
        create_method("AdaAttN", weights_dir=tmp_path, download=False)


def test_a_prepared_style_keeps_its_keys_and_is_bit_identical():
    method = create_method("AdaAttN", init="random", seed=1)
    g = torch.Generator().manual_seed(3)
    content, style = torch.rand(2, 3, 40, 48, generator=g), torch.rand(1, 3, 36, 36, generator=g)
    prepared = method.prepare_style(style)
    assert {"key:relu3_1", "key:relu4_1", "key:relu5_1"} <= set(prepared.features)
    assert prepared.features["key:relu3_1"].shape[1] == 448
    assert torch.equal(method.stylize(content, prepared), method.stylize(content, style))
