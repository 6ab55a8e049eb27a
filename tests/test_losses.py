"""Training losses against hand-computed values and the slow loop references of ``reference_impls`` (spec §6.2, §9,
§10.1, §11, §14 item 6)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import harness
from methods.losses import shallow_keys, style_statistics_loss, weighted_total
from methods.recipes import ADAIN_RECIPE, STYA2K_RECIPE, lr_factor
from methods.stya2k import LOSS_TAPS, a2k_star_target
from methods.vgg import TAP_NAMES

from .reference_impls import ref_all_to_all, ref_distributed_attention, ref_mean_std, ref_mvn, ref_progressive_attention

F64 = dict(rtol=1e-9, atol=1e-9)


def test_style_statistics_loss_hand_computed():
    out = {"a": torch.ones(1, 1, 2, 2)}  # mean 1, unbiased var 0
    style = {"a": torch.tensor([[[[0.0, 2.0], [0.0, 2.0]]]])}  # mean 1, unbiased var 4/3
    expected = (math.sqrt(1e-5) - math.sqrt(4 / 3 + 1e-5)) ** 2
    assert style_statistics_loss(out, style, ["a"]).item() == pytest.approx(expected, rel=1e-6)


def test_style_statistics_loss_matches_reference_statistics():
    torch.manual_seed(0)
    out = {t: torch.randn(2, 3, 5, 4, dtype=torch.float64) for t in "ab"}
    style = {t: torch.randn(2, 3, 7, 3, dtype=torch.float64) for t in "ab"}
    expected = 0.0
    for t in "ab":
        (m1, s1), (m2, s2) = ref_mean_std(out[t]), ref_mean_std(style[t])
        expected += ((m1 - m2) ** 2).mean() + ((s1 - s2) ** 2).mean()
    torch.testing.assert_close(style_statistics_loss(out, style, "ab"), expected, **F64)


def fake_features(crop: int = 256, batch: int = 1, dtype=torch.float32):
    sizes = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu5_1": 16}
    channels = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512, "relu5_1": 512}
    return {t: torch.rand(batch, channels[t], crop // sizes[t], crop // sizes[t], dtype=dtype) for t in TAP_NAMES}


def test_shallow_key_channels_and_head_widths():
    """Spec §14 item 6: keys 192/448/960/1472 channels (head dims 24/56/120/184), values 128/256/512/512 (16/32/64/64)."""
    feats = fake_features(64)
    widths = [shallow_keys(feats, tap).shape[1] for tap in LOSS_TAPS]
    assert widths == [192, 448, 960, 1472]
    assert [w // 8 for w in widths] == [24, 56, 120, 184]
    assert [feats[t].shape[1] // 8 for t in LOSS_TAPS] == [16, 32, 64, 64]


def test_shallow_keys_nearest_resize_then_normalise():
    feats = fake_features(32, dtype=torch.float64)
    keys = shallow_keys(feats, "relu3_1")
    expected = torch.cat([ref_mvn(feats["relu1_1"][..., ::4, ::4]), ref_mvn(feats["relu2_1"][..., ::2, ::2]),
                          ref_mvn(feats["relu3_1"])], dim=1)  # nearest ×2^k down = top-left pixel of each cell
    torch.testing.assert_close(keys, expected, **F64)
    torch.testing.assert_close(shallow_keys(feats, "relu3_1", shallow=False), ref_mvn(feats["relu3_1"]), **F64)


@pytest.mark.parametrize("heads", [8, 1])
def test_a2k_star_target_matches_loop_reference(heads):
    torch.manual_seed(1)
    kc, ks = torch.randn(2, 16, 8, 12, dtype=torch.float64), torch.randn(2, 16, 12, 8, dtype=torch.float64)
    v = torch.randn(2, 8, 12, 8, dtype=torch.float64)  # value width ≠ key width, as in the loss
    target = a2k_star_target(heads=heads)(kc, ks, v, 4)
    expected = ref_distributed_attention(kc, ks, v, 4, heads, 1.0, 0.0) + ref_progressive_attention(kc, ks, v, 4, heads)
    torch.testing.assert_close(target, expected, **F64)
    only_pa = a2k_star_target(heads=heads, use_da=False)(kc, ks, v, 4)
    torch.testing.assert_close(only_pa, ref_progressive_attention(kc, ks, v, 4, heads), **F64)
    same_place = a2k_star_target(heads=heads, use_da=False, pa_step1=False)(kc, ks, v, 4)
    torch.testing.assert_close(same_place, ref_progressive_attention(kc, ks, v, 4, heads, step1=False), **F64)


def test_ablation_changes_the_loss_target_unless_asked_not_to():
    kc, ks, v = torch.randn(1, 16, 8, 8), torch.randn(1, 16, 8, 8), torch.randn(1, 8, 8, 8)
    follows = harness.create_method("styA2K-noDA", init="random").model.loss_target(kc, ks, v, 4)
    full = harness.create_method("styA2K-noDA", init="random", loss_follows_ablation=False).model.loss_target(kc, ks, v, 4)
    torch.testing.assert_close(follows, a2k_star_target(use_da=False)(kc, ks, v, 4))
    torch.testing.assert_close(full, a2k_star_target()(kc, ks, v, 4))


def test_all2all_target_matches_plain_softmax():
    torch.manual_seed(2)
    kc, ks, v = torch.randn(1, 16, 6, 5, dtype=torch.float64), torch.randn(1, 16, 4, 7, dtype=torch.float64), \
        torch.randn(1, 8, 4, 7, dtype=torch.float64)
    target = harness.create_method("all2all", init="random").model.loss_target(kc, ks, v, 16)
    torch.testing.assert_close(target, ref_all_to_all(kc, ks, v, 8), **F64)


def test_stya2k_training_loss_terms_against_reference():
    """Recompute both terms of the full loss from the network's own output with the loop references."""
    torch.manual_seed(3)
    method = harness.create_method("styA2K", init="random")
    net = method.model.double()
    content, style = torch.rand(1, 3, 64, 64, dtype=torch.float64), torch.rand(1, 3, 64, 64, dtype=torch.float64)
    terms = net.training_loss(content, style, {"global_style": 10.0, "a2k": 1.25})
    with torch.no_grad():
        fc, fs = net.encoder(content), net.encoder(style)
        fo = net.encoder(net(content, style))
        expected_a2k = 0.0
        for tap, side in zip(LOSS_TAPS, (16, 8, 8, 4)):
            kc, ks = shallow_keys(fc, tap), shallow_keys(fs, tap)
            t = ref_distributed_attention(kc, ks, fs[tap], side, 8) + ref_progressive_attention(kc, ks, fs[tap], side, 8)
            expected_a2k += F.mse_loss(fo[tap], t + fc[tap])
        expected_style = 0.0
        for tap in TAP_NAMES[:4]:
            (m1, s1), (m2, s2) = ref_mean_std(fo[tap]), ref_mean_std(fs[tap])
            expected_style += ((m1 - m2) ** 2).mean() + ((s1 - s2) ** 2).mean()
    torch.testing.assert_close(terms["a2k"], expected_a2k, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(terms["global_style"], expected_style, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(terms["loss"], 10 * expected_style + 1.25 * expected_a2k, rtol=1e-7, atol=1e-9)


def test_adain_loss_against_hand_composition():
    torch.manual_seed(4)
    net = harness.create_method("adain", init="random").model.double()
    content, style = torch.rand(2, 3, 48, 48, dtype=torch.float64), torch.rand(2, 3, 40, 56, dtype=torch.float64)
    terms = net.training_loss(content, style, {"content": 1.0, "style": 10.0})
    with torch.no_grad():
        c4, fs = net.encoder(content)["relu4_1"], net.encoder(style)
        (mc, sc), (ms, ss) = ref_mean_std(c4), ref_mean_std(fs["relu4_1"])
        t = (c4 - mc) / sc * ss + ms
        fo = net.encoder(net.decode({"relu4_1": t}, (48, 48)))
        expected_content = ((fo["relu4_1"] - t) ** 2).mean()
    torch.testing.assert_close(terms["content"], expected_content, rtol=1e-7, atol=1e-9)
    assert terms["loss"].item() == pytest.approx(terms["content"].item() + 10 * terms["style"].item(), rel=1e-9)


def test_gradients_reach_only_trainable_parts_and_fusion_biases_match():
    """Spec §4.1: fusion1.bias and fusion2.bias always receive identical gradients (their outputs are summed)."""
    method = harness.create_method("styA2K", init="random")
    terms = method.model.training_loss(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64), dict(STYA2K_RECIPE.loss_weights))
    terms["loss"].backward()
    assert all(p.grad is None for p in method.model.encoder.parameters())
    a2k = method.model.A2K
    assert a2k.fusion1.bias.grad is not None and a2k.fusion1.bias.grad.abs().sum() > 0
    torch.testing.assert_close(a2k.fusion1.bias.grad, a2k.fusion2.bias.grad)
    assert method.model.decoder.decoder_layer_2[24].weight.grad.abs().sum() > 0


def test_weights_must_name_known_terms():
    with pytest.raises(ValueError, match="unknown term.*'style'"):
        weighted_total({"content": torch.tensor(1.0)}, {"style": 1.0})


def test_official_and_paper_lr_schedules():
    """Spec §6.4 / §14 item 8: per-epoch LR 2e-4, 2e-4, 6e-5, 1.8e-5, 5.4e-6 (code) and 1, 1, .75, .5, .25 (paper)."""
    lrs = [STYA2K_RECIPE.lr * lr_factor(STYA2K_RECIPE, e, 0) for e in range(5)]
    assert lrs == pytest.approx([2e-4, 2e-4, 6e-5, 1.8e-5, 5.4e-6], rel=1e-12)
    from dataclasses import replace

    paper = replace(STYA2K_RECIPE, schedule="paper")
    assert [lr_factor(paper, e, 0) for e in range(5)] == pytest.approx([1, 1, 0.75, 0.5, 0.25])
    assert ADAIN_RECIPE.lr * lr_factor(ADAIN_RECIPE, 0, 20_000) == pytest.approx(1e-4 / 2)
