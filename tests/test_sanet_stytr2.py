"""SANet (the GlebSBrykin/SANET port) and StyTr² (official) against independent float64 references written from
their code's semantics (tests/reference_baselines.py), with synthetic files of the exact official key layouts."""
from __future__ import annotations

import pytest
import torch

from methods import InputError, create_method, get_method_info
from methods.weights import load_into

from .reference_baselines import ref_sanet, ref_stytr2


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------------------------------------- SANet
def sanet_transform_layout():  # the port's Transform: sanet4_1, sanet5_1 (f, g, h, out_conv 1×1 512), merge_conv
    out = [(f"{m}.{n}.{leaf}", (512, 512, 1, 1) if leaf == "weight" else (512,))
           for m in ("sanet4_1", "sanet5_1") for n in ("f", "g", "h", "out_conv") for leaf in ("weight", "bias")]
    return out + [("merge_conv.weight", (512, 512, 3, 3)), ("merge_conv.bias", (512,))]


def test_sanet_layouts():
    model = create_method("SANet", init="random").model
    assert [(k, tuple(v.shape)) for k, v in model.transform.state_dict().items()] == sanet_transform_layout()
    assert list(model.decoder.state_dict())[::2] == [f"{i}.weight" for i in (1, 5, 8, 11, 14, 18, 21, 25, 28)]
    info = get_method_info("SANet")
    assert [w.filename for w in info.weights.values()] == ["transformer_iter_500000.pth", "decoder_iter_500000.pth"]


def test_sanet_matches_the_port():
    model = create_method("SANet", init="random", seed=4).model.double()
    with torch.no_grad():  # sharper attention than the 0.02-normal init gives
        for name in ("sanet4_1", "sanet5_1"):
            getattr(model.transform, name).f.weight.mul_(30.0)
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 48, 64, generator=g).double(), torch.rand(2, 3, 37, 52, generator=g).double()
    with torch.inference_mode():
        fc, fs = model.encode(content), model.encode(style)
        ours = model.decode(model.transfer(fc, fs), content.shape[-2:])
    expected = ref_sanet(fc["relu4_1"], fs["relu4_1"], fc["relu5_1"], fs["relu5_1"], _state(model.transform),
                         _state(model.decoder))
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["SANet", "StyTr2"])
@pytest.mark.parametrize("content_hw,style_hw", [((37, 50), (29, 31)), ((17, 25), (20, 17)), ((70, 33), (64, 64))])
def test_any_size_gives_the_content_size(name, content_hw, style_hw):
    method = create_method(name, init="random")
    out = method.stylize(torch.rand(2, 3, *content_hw), torch.rand(1, 3, *style_hw))
    assert out.shape == (2, 3, *content_hw) and torch.isfinite(out).all()


# ---------------------------------------------------------------------------------------------------------- StyTr²
def test_stytr2_layout_matches_the_official_transformer():
    model = create_method("StyTr2", init="random").model
    keys = list(model.transformer.state_dict())
    assert keys[:8] == ["encoder_c.layers.0.self_attn.in_proj_weight", "encoder_c.layers.0.self_attn.in_proj_bias",
                        "encoder_c.layers.0.self_attn.out_proj.weight", "encoder_c.layers.0.self_attn.out_proj.bias",
                        "encoder_c.layers.0.linear1.weight", "encoder_c.layers.0.linear1.bias",
                        "encoder_c.layers.0.linear2.weight", "encoder_c.layers.0.linear2.bias"]
    assert keys[-4:] == ["decoder.norm.weight", "decoder.norm.bias", "new_ps.weight", "new_ps.bias"]
    assert len(keys) == 2 * 3 * 12 + 3 * 18 + 2 + 2  # encoder layers 12 tensors, decoder layers 18, norm, new_ps
    assert list(model.embedding.state_dict()) == ["proj.weight", "proj.bias"]
    # torch's own modules with the official arguments hold exactly these keys and shapes
    official = torch.nn.ModuleDict({"self_attn": torch.nn.MultiheadAttention(512, 8, dropout=0.1)})
    ours = {k[len("encoder_c.layers.0."):]: v.shape for k, v in model.transformer.state_dict().items()
            if k.startswith("encoder_c.layers.0.self_attn.")}
    assert ours == {k: v.shape for k, v in official.state_dict().items()}


@pytest.fixture(scope="module")
def stytr2_64():
    model = create_method("StyTr2", init="random", seed=7).model.double()
    return model, {"embedding": _state(model.embedding), "transformer": _state(model.transformer),
                   "decoder": _state(model.decoder)}


def test_stytr2_matches_the_official_computation(stytr2_64):
    """Equal square sides (the official 512² protocol, here 48²): the official CAPE and reshape are defined."""
    model, states = stytr2_64
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 48, 48, generator=g).double(), torch.rand(2, 3, 48, 48, generator=g).double()
    with torch.inference_mode():
        ours = model(content, style)
    torch.testing.assert_close(ours, ref_stytr2(content, style, states), rtol=1e-9, atol=1e-9)


def test_stytr2_other_sizes_put_cape_on_the_content_grid(stytr2_64):
    model, states = stytr2_64
    g = torch.Generator().manual_seed(1)
    content, style = torch.rand(1, 3, 40, 64, generator=g).double(), torch.rand(1, 3, 56, 32, generator=g).double()
    with torch.inference_mode():
        ours = model(content, style)
    torch.testing.assert_close(ours, ref_stytr2(content, style, states, cape_at_style=False), rtol=1e-9, atol=1e-9)


def test_stytr2_prepared_style_alpha_and_small_inputs():
    method = create_method("StyTr2", init="random")
    content, style = torch.rand(1, 3, 40, 40), torch.rand(1, 3, 32, 48)
    prepared = method.prepare_style(style)
    assert set(prepared.features) == {"memory"}  # the style encoder ran once
    assert torch.equal(method.stylize(content, prepared), method.stylize(content, style))
    with pytest.raises(InputError, match="StyTr² defines no content–style trade-off; alpha must be 1"):
        method.stylize(content, style, alpha=0.5)
    with pytest.raises(InputError, match="content image 8×40 is too small for StyTr2Net: each side must be at least 9"):
        method.stylize(torch.rand(1, 3, 8, 40), style)


def test_stytr2_files_load_strictly(tmp_path):
    source = create_method("StyTr2", init="random", seed=3).model
    names = {"embedding": "embedding_iter_160000.pth", "transformer": "transformer_iter_160000.pth",
             "decoder": "decoder_iter_160000.pth"}
    for part, filename in names.items():
        torch.save(getattr(source, part).state_dict(), tmp_path / filename)
    method = create_method("StyTr2", weights=tmp_path)
    assert not method.untrained and method.model.encoder is None
    torch.testing.assert_close(method.model.transformer.state_dict(), source.transformer.state_dict())
    bad = source.transformer.state_dict()
    bad["new_ps.weight"] = bad["new_ps.weight"][:, :256]
    torch.save(bad, tmp_path / names["transformer"])
    with pytest.raises(Exception, match=r"transformer_iter_160000.pth .*new_ps.weight: file \(512, 256, 1, 1\)"):
        load_into(create_method("StyTr2", init="random").model.transformer, tmp_path / names["transformer"])
