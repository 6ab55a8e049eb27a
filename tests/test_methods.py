"""Registry, weights loading, official key layouts, any-size inputs, α / interpolation / regions (spec §2, §5, §11–14)."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import harness
from harness.io import save_checkpoint
from methods import InputError, OptionError, UnknownMethodError, get_method_info, reload_plugins, unregister_method
from methods.a2k import A2KAttention
from methods.vgg import TAP_DOWNSAMPLING, VGGEncoder, feature_size, map_vgg_r31_state_dict
from methods.weights import MissingWeightsError, StateDictMismatchError, WeightsError, load_into, load_state_dict

from .conftest import shared_asset

pytestmark = pytest.mark.filterwarnings("ignore:weight file .* does not match the official:UserWarning")

BUILTIN = ["adain", "all2all", "styA2K", "styA2K-1head", "styA2K-noDA", "styA2K-noPA", "styA2K-noPA1"]


# ------------------------------------------------------------------------------------------------------------------
# Official key layouts, written from the spec's tables (not from the model), as (key, shape) lists.
# ------------------------------------------------------------------------------------------------------------------
def vgg_normalised_layout():  # spec §2.4: 34 tensors
    convs = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3), 16: (256, 128, 3),
             19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3), 32: (512, 512, 3),
             35: (512, 512, 3), 38: (512, 512, 3), 42: (512, 512, 3), 45: (512, 512, 3), 48: (512, 512, 3),
             51: (512, 512, 3)}
    return [(f"{i}.{leaf}", (o, c, k, k) if leaf == "weight" else (o,)) for i, (o, c, k) in convs.items()
            for leaf in ("weight", "bias")]


def a2k_layout(prefix: str, channels: int):  # spec §5.1: 18 tensors
    out = [(f"{prefix}sim_alpha", (1,)), (f"{prefix}sim_beta", (1,))]
    for name in ("q", "k", "v", "q2", "k2", "v2", "fusion1", "fusion2"):
        out += [(f"{prefix}{name}.weight", (channels, channels, 1, 1)), (f"{prefix}{name}.bias", (channels,))]
    return out


def transform_layout():  # spec §5.2: 38 tensors
    return (a2k_layout("attn_adain_4_1.", 512) + a2k_layout("attn_adain_5_1.", 512)
            + [("merge_conv.weight", (512, 512, 3, 3)), ("merge_conv.bias", (512,))])


def stya2k_decoder_layout():  # spec §5.3: 18 tensors
    convs = {"decoder_layer_1.1": (256, 512), "decoder_layer_2.1": (256, 512), "decoder_layer_2.4": (256, 256),
             "decoder_layer_2.7": (256, 256), "decoder_layer_2.10": (128, 256), "decoder_layer_2.14": (128, 128),
             "decoder_layer_2.17": (64, 128), "decoder_layer_2.21": (64, 64), "decoder_layer_2.24": (3, 64)}
    return [(f"{k}.{leaf}", (o, c, 3, 3) if leaf == "weight" else (o,)) for k, (o, c) in convs.items()
            for leaf in ("weight", "bias")]


def adain_decoder_layout():  # spec §11: keys 1, 5, 8, 11, 14, 18, 21, 25, 28
    convs = {1: (256, 512), 5: (256, 256), 8: (256, 256), 11: (256, 256), 14: (128, 256), 18: (128, 128),
             21: (64, 128), 25: (64, 64), 28: (3, 64)}
    return [(f"{i}.{leaf}", (o, c, 3, 3) if leaf == "weight" else (o,)) for i, (o, c) in convs.items()
            for leaf in ("weight", "bias")]


def synthetic(layout, seed: int, std: float = 0.02, prefix: str = ""):
    g = torch.Generator().manual_seed(seed)
    return {prefix + k: torch.randn(shape, generator=g) * std for k, shape in layout}


def write_official_files(folder, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    vgg = synthetic(vgg_normalised_layout(), seed, std=0.05)
    torch.save(vgg, folder / "vgg_normalised.pth")
    torch.save(synthetic(a2k_layout("", 256), seed + 1), folder / "latest_net_A2K.pth")
    # DataParallel-style prefix: the loader must strip it.
    torch.save(synthetic(transform_layout(), seed + 2, prefix="module."), folder / "latest_net_transform.pth")
    torch.save(synthetic(stya2k_decoder_layout(), seed + 3), folder / "latest_net_decoder.pth")
    torch.save(synthetic(adain_decoder_layout(), seed + 4), folder / "decoder.pth")
    return folder


def num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------------------------
def test_builtins_registered_case_insensitive():
    assert set(BUILTIN) <= set(harness.list_methods())
    assert get_method_info("STYA2K").name == "styA2K"
    assert harness.list_methods("stya2k-no*") == ["styA2K-noDA", "styA2K-noPA", "styA2K-noPA1"]


def test_unknown_method_suggests_closest_and_lists_known():
    with pytest.raises(UnknownMethodError) as err:
        harness.create_method("styA2k-nod", init="random")
    message = str(err.value)
    assert "styA2K-noDA" in message and "did you mean" in message and "adain" in message
    assert "\n" not in message


def test_unknown_option_lists_options():
    with pytest.raises(OptionError, match="no option.*colour.*heads=8"):
        harness.create_method("styA2K", init="random", colour=1)
    with pytest.raises(OptionError, match="DA normaliser"):
        harness.create_method("styA2K", init="random", da_normaliser="sqrt")


def test_metadata():
    info = get_method_info("styA2K")
    assert info.trainable and info.default_size == 512 and "ICCV 2023" in info.paper
    assert [f.filename for f in info.weight_files()] == [
        "latest_net_A2K.pth", "latest_net_transform.pth", "latest_net_decoder.pth", "vgg_normalised.pth"]
    assert info.weights["A2K"].sha256 == "0752d020344ed334ed63a5f671bdd93db71d7ad7f0d69e49074a3065ec2af7d1"
    assert info.weights["decoder"].git_blob_sha1 == "6e30e08c74bd294c8cbd5e3dd486638328646259"
    assert get_method_info("styA2K-noDA").options["use_da"] is False
    assert get_method_info("adain").encoder_layers == ("relu4_1",)
    assert not get_method_info("all2all").has_official_weights


def test_plugin_through_entry_point(tmp_path, monkeypatch):
    """A third-party distribution declares ``[harness.methods]`` in its entry points; its import registers a method."""
    (tmp_path / "tiny_plugin.py").write_text(textwrap.dedent('''
        import torch
        from methods import StyleTransferNet, register_method

        class Identity(StyleTransferNet):
            taps = ("relu1_1",)
            def __init__(self, gain=1.0):
                super().__init__()
                self.gain = torch.nn.Parameter(torch.tensor(float(gain)))
            def transfer(self, content, style):
                return {"relu1_1": content["relu1_1"]}
            def decode(self, features, size):
                return features["relu1_1"][:, :3] * self.gain
            def reset_random(self, generator):
                pass

        @register_method("Tiny-Identity", paper="none", encoder_weights=None, trainable=False)
        def tiny(*, gain: float = 1.0):
            return Identity(gain)
    '''))
    dist = tmp_path / "tiny_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[harness.methods]\ntiny = tiny_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        reload_plugins()
        assert "Tiny-Identity" in harness.list_methods()
        method = harness.create_method("tiny-identity", init="random", gain=0.5)
        assert method.info.plugin == "tiny_plugin"
        out = method.stylize(torch.rand(1, 3, 20, 24), torch.rand(1, 3, 20, 20))
        assert out.shape == (1, 3, 20, 24)
    finally:
        sys.modules.pop("tiny_plugin", None)
        unregister_method("tiny-identity")


# ------------------------------------------------------------------------------------------------------------------
# Parameter counts and official layouts (spec §5, §14 item 7)
# ------------------------------------------------------------------------------------------------------------------
def test_parameter_counts():
    net = harness.create_method("styA2K", init="random").model
    assert num_params(net.A2K) == 526_338
    assert num_params(net.transform) == 6_562_308
    assert num_params(net.decoder) == 4_095_043
    assert num_params(harness.create_method("adain", init="random").model.decoder) == 3_505_219
    no_da = harness.create_method("styA2K-noDA", init="random").model.A2K
    assert {n for n, _ in no_da.named_parameters()} == {"q2.weight", "q2.bias", "k2.weight", "k2.bias", "v2.weight",
                                                        "v2.bias", "fusion2.weight", "fusion2.bias"}


@pytest.mark.parametrize("target,layout", [
    ("encoder.layers", vgg_normalised_layout()),
    ("A2K", a2k_layout("", 256)),
    ("transform", transform_layout()),
    ("decoder", stya2k_decoder_layout()),
])
def test_official_layouts_match_model(target, layout):
    model = harness.create_method("styA2K", init="random").model
    state = model.get_submodule(target).state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(s)) for k, s in layout]


def test_adain_decoder_layout():
    state = harness.create_method("adain", init="random").model.decoder.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [(k, tuple(s)) for k, s in adain_decoder_layout()]


def test_official_files_load_and_record_provenance(tmp_path):
    folder = write_official_files(tmp_path / "w")
    with pytest.warns(UserWarning, match=r"latest_net_A2K\.pth does not match the official.*using it anyway"):
        method = harness.create_method("styA2K", weights=folder)  # synthetic files: checksums differ, still used
    assert not method.untrained and method.provenance.flag() == ""
    files = method.provenance.files
    assert set(files) == {"vgg_normalised.pth", "latest_net_A2K.pth", "latest_net_transform.pth",
                          "latest_net_decoder.pth"}
    assert all(len(r["sha256"]) == 64 and r["source"] == "explicit" for r in files.values())
    transform = load_state_dict(folder / "latest_net_transform.pth")  # `module.` stripped
    assert torch.equal(method.model.transform.merge_conv.weight, transform["merge_conv.weight"])
    vgg = torch.load(folder / "vgg_normalised.pth")
    assert torch.equal(method.model.encoder.layers[42].weight, vgg["42.weight"])
    adain = harness.create_method("adain", weights_dir=folder)
    assert adain.provenance.files["decoder.pth"]["source"] == "weights_dir"


def test_env_weights_dir_and_search_order(tmp_path, monkeypatch):
    env = write_official_files(tmp_path / "env", seed=1)
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    torch.save(synthetic(adain_decoder_layout(), 99), explicit / "decoder.pth")
    monkeypatch.setenv("HARNESS_WEIGHTS", str(env))
    method = harness.create_method("adain", weights=explicit)
    files = method.provenance.files
    assert files["decoder.pth"]["source"] == "explicit" and files["vgg_normalised.pth"]["source"] == "env"


def test_wrong_keys_or_shapes_name_the_file(tmp_path):
    folder = write_official_files(tmp_path / "w")
    bad = synthetic(a2k_layout("", 256), 0)
    bad["fusion3.weight"] = bad.pop("fusion2.weight")
    torch.save(bad, folder / "latest_net_A2K.pth")
    with pytest.raises(StateDictMismatchError, match=r"latest_net_A2K\.pth.*missing.*fusion2\.weight.*unexpected.*fusion3"):
        harness.create_method("styA2K", weights=folder)
    torch.save(synthetic(a2k_layout("", 512), 0), folder / "latest_net_A2K.pth")  # a relu4_1 module in the relu3_1 slot
    with pytest.raises(StateDictMismatchError, match=r"q\.weight: file \(512, 512, 1, 1\) vs model \(256, 256, 1, 1\)"):
        harness.create_method("styA2K", weights=folder)


def test_missing_weights_error_lists_everything(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        harness.create_method("styA2K", weights=tmp_path)
    message = str(err.value)
    for name in ("latest_net_A2K.pth", "latest_net_transform.pth", "latest_net_decoder.pth", "vgg_normalised.pth",
                 "raw.githubusercontent.com/LearningHx/StyA2K", 'init="random"'):
        assert name in message
    with pytest.raises(WeightsError, match='no released weights.*harness.train.*init="random"'):
        harness.create_method("all2all")


# ------------------------------------------------------------------------------------------------------------------
# The real official files in ../shared/assets
# ------------------------------------------------------------------------------------------------------------------
def test_real_official_a2k_loads_strictly():
    path = shared_asset("weights/StyA2K/latest_net_A2K.pth")
    module = A2KAttention(256, 8)
    load_into(module, path)
    assert module.sim_alpha.item() == pytest.approx(1.2699811, abs=1e-6)
    assert module.sim_beta.item() == pytest.approx(0.0215430, abs=1e-6)
    assert torch.equal(module.fusion1.bias, module.fusion2.bias)  # identical gradients → bit-identical (spec §4.1)
    assert module.q.weight.sum().item() == pytest.approx(2.637199, abs=1e-4)
    assert module.k2.weight.sum().item() == pytest.approx(144.0177, abs=1e-3)
    assert module.fusion1.bias.sum().item() == pytest.approx(0.570726, abs=1e-5)
    fc, fs = torch.rand(1, 256, 24, 40), torch.rand(1, 256, 32, 16)
    with torch.inference_mode():
        out = module(fc, fs)
    assert out.shape == fc.shape and torch.isfinite(out).all()


def test_real_partial_vgg_gives_relu3_1():
    from harness.images import load_image_tensor

    state = map_vgg_r31_state_dict(load_state_dict(shared_asset("weights/vgg19_normalised_upto_relu3_1/vgg_r31.pth")))
    assert sorted({k.split(".")[0] for k in state}, key=int) == ["0", "2", "5", "9", "12", "16"]
    encoder = VGGEncoder()
    missing, unexpected = encoder.layers.load_state_dict(state, strict=False)
    assert not unexpected and all(int(k.split(".")[0]) > 16 for k in missing)
    w0 = encoder.layers[0].weight[:, :, 0, 0]  # spec §2.3: 255 × the RGB→BGR permutation, bias = −BGR means
    assert torch.equal(w0, 255 * torch.eye(3).flip(1))
    assert torch.allclose(encoder.layers[0].bias, torch.tensor([-103.939, -116.779, -123.68]), atol=1e-3)
    image = load_image_tensor(shared_asset("images/eval/stya2k/content/content1.png"), size=256)
    with torch.inference_mode():
        relu3 = encoder(image, ["relu3_1"])["relu3_1"]
    assert relu3.shape == (1, 256, 64, 64)
    assert torch.isfinite(relu3).all() and (relu3 > 0).float().mean() > 0.05 and relu3.std() > 0.1


def test_feature_sizes_follow_ceil_pooling():
    encoder = VGGEncoder()
    with torch.inference_mode():
        feats = encoder(torch.rand(1, 3, 37, 70))
    for tap, x in feats.items():
        assert x.shape[-2:] == (feature_size(37, tap), feature_size(70, tap)), tap
        assert x.shape[-1] == -(-70 // TAP_DOWNSAMPLING[tap])


# ------------------------------------------------------------------------------------------------------------------
# init="random", checkpoints, determinism
# ------------------------------------------------------------------------------------------------------------------
def test_random_init_is_seeded_and_flagged():
    a = harness.create_method("styA2K", init="random", seed=3)
    b = harness.create_method("styA2K", init="random", seed=3)
    c = harness.create_method("styA2K", init="random", seed=4)
    assert a.untrained and "UNTRAINED" in a.provenance.flag() and "RANDOM ENCODER" in a.provenance.flag()
    assert torch.equal(a.model.decoder.decoder_layer_2[1].weight, b.model.decoder.decoder_layer_2[1].weight)
    assert not torch.equal(a.model.decoder.decoder_layer_2[1].weight, c.model.decoder.decoder_layer_2[1].weight)
    assert a.model.A2K.sim_alpha.item() == 1.0 and a.model.A2K.sim_beta.item() == 0.0  # spec §4.6
    assert a.model.A2K.q.bias.abs().sum() == 0


def test_random_init_uses_a_local_encoder(tmp_path):
    folder = write_official_files(tmp_path / "w")
    method = harness.create_method("adain", init="random", weights_dir=folder)
    assert method.provenance.encoder_pretrained and method.provenance.flag() == "UNTRAINED (random init, seed 0)"


def test_checkpoint_round_trip(tmp_path):
    folder = write_official_files(tmp_path / "w")
    trained = harness.create_method("all2all", init="random", seed=5, weights_dir=folder, heads=4)
    save_checkpoint(trained, tmp_path / "run" / "harness_checkpoint.pt", {"steps": 10})
    loaded = harness.create_method("all2all", weights=tmp_path / "run", weights_dir=folder)
    assert loaded.options["heads"] == 4 and not loaded.untrained
    assert loaded.provenance.checkpoint.endswith("harness_checkpoint.pt")
    c, s = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert torch.equal(trained.stylize(c, s), loaded.stylize(c, s))
    with pytest.raises(WeightsError, match="checkpoint of method 'all2all', not 'styA2K'"):
        harness.create_method("styA2K", weights=tmp_path / "run")
    with pytest.raises(StateDictMismatchError, match="harness_checkpoint.pt"):
        harness.create_method("styA2K-noDA", weights=_retag(tmp_path, "styA2K-noDA"), weights_dir=folder)


def _retag(tmp_path, name):
    """A checkpoint that claims to be ``name`` but holds all2all's tensors (a wrong-shape case)."""
    payload = torch.load(tmp_path / "run" / "harness_checkpoint.pt", weights_only=True)
    payload["method"], payload["options"] = name, {}
    out = tmp_path / "retag" / "harness_checkpoint.pt"
    out.parent.mkdir()
    torch.save(payload, out)
    return out


def test_stylize_is_deterministic_and_clamped():
    method = harness.create_method("styA2K", init="random")
    c, s = torch.rand(2, 3, 64, 64), torch.rand(1, 3, 64, 64)
    a, b = method.stylize(c, s), method.stylize(c, s)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1 and a.shape == (2, 3, 64, 64)


# ------------------------------------------------------------------------------------------------------------------
# Any size
# ------------------------------------------------------------------------------------------------------------------
ODD_PAIRS = [((96, 160), (200, 120)), ((65, 77), (130, 59)), ((64, 64), (128, 96)), ((300, 41), (57, 57))]


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("content_hw,style_hw", ODD_PAIRS)
def test_any_size_gives_content_size(name, content_hw, style_hw):
    method = harness.create_method(name, init="random")
    out = method.model(torch.rand(1, 3, *content_hw), torch.rand(1, 3, *style_hw))
    assert out.shape == (1, 3, *content_hw) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["styA2K", "styA2K-noPA1"])
def test_reflect_remainder_any_size(name):
    method = harness.create_method(name, init="random", remainder="reflect")
    out = method.stylize(torch.rand(1, 3, 50, 70), torch.rand(1, 3, 20, 33))
    assert out.shape == (1, 3, 50, 70)


def test_too_small_inputs_raise_clear_errors():
    stya2k = harness.create_method("styA2K", init="random")
    with pytest.raises(InputError, match=r"style image 40×200 is too small.*at least 57 px"):
        stya2k.stylize(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 40, 200))
    with pytest.raises(InputError, match=r"content image 16×64 is too small.*at least 17 px"):
        stya2k.stylize(torch.rand(1, 3, 16, 64), torch.rand(1, 3, 64, 64))
    # The smallest accepted content is defined: no whole relu3_1 block, so attention contributes nothing there.
    assert stya2k.stylize(torch.rand(1, 3, 17, 17), torch.rand(1, 3, 64, 64)).shape == (1, 3, 17, 17)
    adain = harness.create_method("adain", init="random")
    with pytest.raises(InputError, match="at least 9 px"):
        adain.stylize(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 64, 64))


def test_input_validation_messages():
    method = harness.create_method("adain", init="random")
    with pytest.raises(InputError, match=r"values in \[0, 1\]"):
        method.stylize(torch.rand(1, 3, 32, 32) * 255, torch.rand(1, 3, 32, 32))
    with pytest.raises(InputError, match=r"\(B, 3, H, W\)"):
        method.stylize(torch.rand(3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(InputError, match="alpha"):
        method.stylize(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), alpha=1.5)


def test_multiples_of_64_need_no_crops():
    """On sides divisible by 64 every crop is a no-op: the graph is the official one (spec §4.5)."""
    net = harness.create_method("styA2K", init="random").model
    c, s = torch.rand(1, 3, 128, 192), torch.rand(1, 3, 128, 192)
    with torch.inference_mode():
        fc, fs = net.encode(c), net.encode(s)
        s3 = net.A2K(fc["relu3_1"], fs["relu3_1"])
        tr = net.transform
        a4 = tr.attn_adain_4_1(fc["relu4_1"], fs["relu4_1"])
        a5 = F.interpolate(tr.attn_adain_5_1(fc["relu5_1"], fs["relu5_1"]), scale_factor=2, mode="nearest")
        t = tr.merge_conv(tr.merge_conv_pad(a4 + a5))
        expected = net.decoder.decoder_layer_2(torch.cat([net.decoder.decoder_layer_1(t), s3], dim=1))
        assert torch.allclose(net(c, s), expected, atol=1e-6)


# ------------------------------------------------------------------------------------------------------------------
# α, interpolation, regions (spec §12)
# ------------------------------------------------------------------------------------------------------------------
def test_alpha_zero_decodes_content_features():
    method = harness.create_method("adain", init="random")
    c, s = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    net = method.model
    net.decoder[-1].bias.data.fill_(0.5)  # centre the random decoder's output so that clamping hides nothing
    with torch.inference_mode():
        expected = net.decode({"relu4_1": net.encode(c)["relu4_1"]}, (64, 64)).clamp(0, 1)
    assert torch.allclose(method.stylize(c, s, alpha=0.0), expected, atol=1e-6)
    half, full = method.stylize(c, s, alpha=0.5), method.stylize(c, s)
    assert not torch.allclose(half, expected, rtol=0, atol=1e-7) and not torch.allclose(half, full, rtol=0, atol=1e-7)


def test_interpolation_equals_blending_per_layer_a2k_outputs():
    method = harness.create_method("styA2K", init="random", seed=1)
    net = method.model
    for p in net.transform.merge_conv.parameters():  # make the merge conv matter
        p.data.normal_(0, 0.05)
    c, s1, s2 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.rand(1, 3, 96, 64)
    w = (0.3, 0.7)
    with torch.inference_mode():
        fc = net.encode(c)
        parts = []
        for s in (s1, s2):
            fs = net.encode(s)
            parts.append((net.A2K(fc["relu3_1"], fs["relu3_1"]),
                          net.transform.attn_adain_4_1(fc["relu4_1"], fs["relu4_1"]),
                          net.transform.attn_adain_5_1(fc["relu5_1"], fs["relu5_1"])))
        s3, a4, a5 = (w[0] * x + w[1] * y for x, y in zip(*parts))
        t = net.transform.merge_conv(net.transform.merge_conv_pad(a4 + F.interpolate(a5, scale_factor=2)))
        expected = net.decoder(t, s3, (64, 64)).clamp(0, 1)
    assert torch.allclose(method.interpolate(c, [s1, s2], [3, 7]), expected, atol=1e-5)
    assert torch.allclose(method.interpolate(c, [s1, s2], [1, 0]), method.stylize(c, s1), atol=1e-6)


def test_regions_with_full_masks_equal_single_style():
    method = harness.create_method("styA2K", init="random")
    c, s1, s2 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    ones, zeros = torch.ones(64, 64), torch.zeros(64, 64)
    assert torch.allclose(method.stylize_regions(c, [s1, s2], [ones, zeros]), method.stylize(c, s1), atol=1e-6)
    left = torch.zeros(64, 64)
    left[:, :32] = 1
    mixed = method.stylize_regions(c, [s1, s2], torch.stack([left, 1 - left]))
    assert mixed.shape == (1, 3, 64, 64)
    with pytest.raises(InputError, match="one mask per style"):
        method.stylize_regions(c, [s1, s2], [ones])


@pytest.mark.parametrize("name", ["styA2K", "adain"])
def test_single_style_broadcasts_over_content_batch(name):
    method = harness.create_method(name, init="random")
    c, s = torch.rand(3, 3, 64, 80), torch.rand(1, 3, 72, 64)
    broadcast = method.stylize(c, s)
    explicit = method.stylize(c, s.repeat(3, 1, 1, 1))
    single = torch.cat([method.stylize(c[i : i + 1], s) for i in range(3)])
    assert torch.allclose(broadcast, explicit, atol=1e-6) and torch.allclose(broadcast, single, atol=1e-5)


@pytest.mark.parametrize("folder_name", ["styA2K", "stya2k"])
def test_weights_dir_finds_a_checkpoint_under_the_registered_or_lower_case_name(tmp_path, folder_name):
    folder = write_official_files(tmp_path / "w")
    trained = harness.create_method("styA2K", init="random", seed=3, weights_dir=folder)
    save_checkpoint(trained, folder / folder_name / "harness_checkpoint.pt", {"steps": 1})
    loaded = harness.create_method("styA2K", weights_dir=folder)
    assert loaded.provenance.checkpoint == str(folder / folder_name / "harness_checkpoint.pt")


@pytest.mark.parametrize("name", ["styA2K", "adain", "all2all", "AdaAttN", "SANet", "StyTr2", "MicroAST"])
def test_channels_last_gives_the_default_values_up_to_float_rounding(name):
    """``memory_format=torch.channels_last`` changes only the convolutions' layout: plain and prepared calls on a
    non-square content with a style of another size equal the default layout's to float rounding."""
    from methods import Loading, load_method

    method = load_method(name, Loading(init="random"))
    torch.manual_seed(0)
    content, style = torch.rand(2, 3, 64, 96), torch.rand(1, 3, 80, 72)
    expected = method.stylize(content, style)
    method.to(memory_format=torch.channels_last)
    assert method.memory_format == torch.channels_last
    got = method.stylize(content, style)
    prepared = method.stylize(method.prepare_content(content), method.prepare_style(style))
    assert got.shape == expected.shape == (2, 3, 64, 96)
    assert (got - expected).abs().max() < 1e-4 and (prepared - expected).abs().max() < 1e-4
    with pytest.raises(ValueError, match="channels_last"):
        method.to(memory_format=torch.preserve_format)
