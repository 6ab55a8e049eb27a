"""MicroAST (methods/microast.py) against an independent float64 reference written from the official code's
semantics, on the real official files (../shared/assets/weights/MicroAST) and on seeded random ones."""
from __future__ import annotations

import pytest
import torch

from methods import InputError, create_method, get_method_info
from methods.weights import StateDictMismatchError, load_state_dict

from .conftest import shared_asset
from .reference_baselines import ref_microast

PARTS = ("content_encoder", "style_encoder", "modulator", "decoder")


def official_states() -> dict[str, dict[str, torch.Tensor]]:
    folder = shared_asset("weights/MicroAST")
    return {part: load_state_dict(folder / f"{part}_iter_160000.pth.tar") for part in PARTS}


@pytest.fixture(scope="module")
def official():
    folder = shared_asset("weights/MicroAST")
    return create_method("MicroAST", weights=folder)


def _inputs(content_hw, style_hw, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *content_hw, generator=g), torch.rand(1, 3, *style_hw, generator=g)


def test_official_files_load_strictly_with_provenance(official):
    assert not official.untrained
    files = official.provenance.files
    assert set(files) == {get_method_info("MicroAST").weights[p].filename for p in PARTS}
    assert all(record["verified"] is True for record in files.values())  # sha256 + git blob of the official commit
    assert official.model.encoder is None  # no VGG is built
    n_params = sum(p.numel() for p in official.model.parameters())
    assert n_params == 157_792 * 2 + 2_560 + 153_843  # the four files' parameter counts (PROVENANCE.tsv)


@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_matches_the_reference_on_the_official_weights(official, alpha):
    content, style = _inputs((36, 44), (28, 24), batch=2)
    ours = forward64(official.model, content, style, alpha)
    expected = ref_microast(content.double(), style.double().expand(2, -1, -1, -1), official_states_double(), alpha)
    assert ours.shape == expected.shape == (2, 3, 36, 44)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def forward64(model, content, style, alpha):
    """The network in float64 (its α inside ``transfer``), restored to float32 afterwards."""
    model.double()
    try:
        with torch.inference_mode():
            content, style = content.double(), style.double()
            features = model.transfer(model.encode_for(content, "content"), model.encode_style(style, content.shape[0]),
                                      alpha=alpha)
            return model.decode(features, content.shape[-2:])
    finally:
        model.float()


def official_states_double():
    return {k: {n: t.double() for n, t in v.items()} for k, v in official_states().items()}


@pytest.mark.parametrize("content_hw,style_hw", [((37, 50), (29, 31)), ((5, 9), (5, 5)), ((63, 22), (40, 41))])
def test_any_size_follows_the_crop_rule(content_hw, style_hw):
    method = create_method("MicroAST", init="random", seed=3)
    content, style = _inputs(content_hw, style_hw)
    model = method.model.double()
    with torch.inference_mode():
        ours = model(content.double(), style.double())
    states = {p: {k: v.double() for k, v in getattr(model, p).state_dict().items()} for p in PARTS}
    expected = ref_microast(content.double(), style.double(), states, crop=True)
    assert ours.shape[-2:] == content.shape[-2:]
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_sides_divisible_by_4_are_the_official_computation_uncropped():
    method = create_method("MicroAST", init="random", seed=1)
    content, style = _inputs((32, 20), (24, 36))
    model = method.model.double()
    states = {p: {k: v.double() for k, v in getattr(model, p).state_dict().items()} for p in PARTS}
    with torch.inference_mode():
        ours = model(content.double(), style.double())
    torch.testing.assert_close(ours, ref_microast(content.double(), style.double(), states, crop=False),
                               rtol=1e-10, atol=1e-10)


def test_prepared_style_and_batches_are_bit_identical(official):
    content, style = _inputs((40, 48), (32, 32), batch=3)
    prepared = official.prepare_style(style)
    assert set(prepared.features) == {"s1", "s2", "w1", "w2", "b1", "b2"}
    batched = official.stylize(content, style)
    assert torch.equal(official.stylize(content, prepared), batched)
    singles = torch.cat([official.stylize(content[i:i + 1], style) for i in range(3)])
    torch.testing.assert_close(batched, singles, rtol=0, atol=5e-5)  # float32 conv algorithms differ by batch


def test_alpha_zero_keeps_the_content_path_unmodulated_by_adain(official):
    """At α = 0 the two AdaIN blends return their inputs: the output no longer depends on the style's statistics
    except through the modulated filters (official semantics: α does not bypass the filter modulation)."""
    content, style = _inputs((32, 32), (32, 32))
    states = official_states_double()
    expected = ref_microast(content.double(), style.double(), states, alpha=0.0)
    ours = forward64(official.model, content, style, 0.0)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_trained_weights_carry_the_style_colours(official):
    """A behavioural check of the real files: on a real content/style pair the output's per-channel colour
    statistics move from the content's towards the style's (random weights do not do this)."""
    from harness.images import load_image_tensor
    root = shared_asset("images/eval/stya2k")
    content = load_image_tensor(root / "content" / "content1.png", size=256)
    style = load_image_tensor(root / "style" / "style1.png", size=256)

    def stats(x):
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    out = official.stylize(content, style)
    to_style = (stats(out) - stats(style)).norm()
    from_content = (stats(content) - stats(style)).norm()
    assert to_style < 0.5 * from_content


@pytest.mark.filterwarnings("ignore:weight file .* does not match the official:UserWarning")
def test_too_small_and_wrong_files_are_clear_errors(official, tmp_path):
    with pytest.raises(InputError, match=r"content image 4×9 is too small for MicroASTNet: each side must be at least 5"):
        official.stylize(torch.rand(1, 3, 4, 9), torch.rand(1, 3, 16, 16))
    folder = tmp_path / "bad"
    folder.mkdir()
    states = official_states()
    states["decoder"].pop("dec3.10.conv_layer.bias")
    for part in PARTS:
        torch.save(states[part], folder / f"{part}_iter_160000.pth.tar")
    with pytest.raises(StateDictMismatchError, match=r"decoder_iter_160000.pth.tar .*1 missing key\(s\): "
                                                     r"dec3.10.conv_layer.bias"):
        create_method("MicroAST", weights=folder)
