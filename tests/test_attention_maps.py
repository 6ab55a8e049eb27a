"""methods.attention_maps: every map against a slow explicit reference written from the spec formulas (§3, §4.1,
§9, §10.1), and against the module's own output at the point (float64 throughout)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from methods import InputError, create_method
from methods.a2k import distributed_attention, progressive_attention
from methods.all2all import all_to_all_attention
from methods.attention_maps import ATTENTION_LAYERS, attention_maps, attention_module, block_map
from methods.ops import mean_variance_norm


# ------------------------------------------------------------------------------------------- slow references (numpy)
def mvn(x: np.ndarray) -> np.ndarray:
    """(C, H, W) → per-channel (x − mean) / sqrt(unbiased var + 1e-5)."""
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(axis=1)
    var = ((flat - mean[:, None]) ** 2).sum(axis=1) / (flat.shape[1] - 1)
    return (x - mean[:, None, None]) / np.sqrt(var + 1e-5)[:, None, None]


def conv1x1(conv: torch.nn.Conv2d, x: np.ndarray) -> np.ndarray:
    w = conv.weight.detach().numpy()[:, :, 0, 0]
    b = conv.bias.detach().numpy()
    return np.einsum("oc,chw->ohw", w, x) + b[:, None, None]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def block_positions(block: int, grid_w: int, p: int) -> list[tuple[int, int]]:
    by, bx = divmod(block, grid_w)
    return [(by * p + dy, bx * p + dx) for dy in range(p) for dx in range(p)]


def reference_all_to_all(q_conv, k_conv, heads: int, fc: np.ndarray, fs: np.ndarray, fy: int, fx: int,
                         scale: float = 1.0) -> np.ndarray:
    """Spec §10.1 for one content point: softmax over every style position of ⟨q(N(Fc))[pt], k(N(Fs))[s]⟩, per head."""
    qa, ka = conv1x1(q_conv, mvn(fc)), conv1x1(k_conv, mvn(fs))
    d, (hs, ws) = fc.shape[0] // heads, fs.shape[1:]
    out = np.zeros((heads, hs, ws))
    for head in range(heads):
        ch = slice(head * d, (head + 1) * d)
        logits = np.array([[scale * (qa[ch, fy, fx] @ ka[ch, i, j]) for j in range(ws)] for i in range(hs)])
        out[head] = softmax(logits.ravel()).reshape(hs, ws)
    return out


def reference_a2k(module, fc: np.ndarray, fs: np.ndarray, fy: int, fx: int) -> dict:
    """Spec §4.1 for one content point, head by head, with explicit loops (official floor tiling)."""
    C, hs, ws = fs.shape
    h, p = module.heads, module.block_side
    d = C // h
    nc_, ns_ = mvn(fc), mvn(fs)
    gh_s, gw_s = hs // p, ws // p
    gw_c = fc.shape[2] // p
    r = p * p
    out: dict = {"da": None, "blocks": None, "fine": None,
                 "da_vec": np.zeros(C), "pa_vec": np.zeros(C)}
    q_conv, k_conv = (module.q, module.k) if module.use_da else (module.q2, module.k2)
    out["a2a"] = reference_all_to_all(q_conv, k_conv, h, fc, fs, fy, fx)
    if module.use_da:
        Qd, Kd, Vd = conv1x1(module.q, nc_), conv1x1(module.k, ns_), conv1x1(module.v, fs)
        alpha, beta = float(module.sim_alpha), float(module.sim_beta)
        out["da"] = np.zeros((h, gh_s, gw_s))
        out["v_hat"] = np.zeros((h, gh_s * gw_s, d))
        for head in range(h):
            ch = slice(head * d, (head + 1) * d)
            k_hat, v_hat = [], []
            for z in range(gh_s * gw_s):
                pos = block_positions(z, gw_s, p)
                keys = np.stack([Kd[ch, i, j] for i, j in pos])
                vals = np.stack([Vd[ch, i, j] for i, j in pos])
                mu_k, mu_v = keys.mean(axis=0), vals.mean(axis=0)
                w = np.array([sigmoid(beta + alpha * (mu_k @ key)) for key in keys])
                k_hat.append(((w[:, None] * keys).sum(axis=0) + mu_k) / (r + 1))
                v_hat.append(((w[:, None] * vals).sum(axis=0) + mu_v) / (r + 1))
            a = softmax(np.array([Qd[ch, fy, fx] @ kz for kz in k_hat]))
            out["da"][head] = a.reshape(gh_s, gw_s)
            out["v_hat"][head] = np.stack(v_hat)
            out["da_vec"][ch] = sum(a[z] * v_hat[z] for z in range(len(v_hat)))
    if module.use_pa:
        Qp, Kp, Vp = conv1x1(module.q2, nc_), conv1x1(module.k2, ns_), conv1x1(module.v2, fs)
        x_block = (fy // p) * gw_c + fx // p
        content_pos = block_positions(x_block, gw_c, p)
        out["blocks"] = np.zeros(h, dtype=int)
        out["fine"] = np.zeros((h, hs, ws))
        for head in range(h):
            ch = slice(head * d, (head + 1) * d)
            if module.pa_step1:
                scores = []
                for z in range(gh_s * gw_s):
                    style_pos = block_positions(z, gw_s, p)
                    scores.append(sum(Qp[ch, ci, cj] @ Kp[ch, si, sj]
                                      for (ci, cj), (si, sj) in zip(content_pos, style_pos)))
                m = int(np.argmax(scores))  # first index on ties, like torch.argmax
            else:  # same relative location
                gh_c = fc.shape[1] // p
                m = ((fy // p) * gh_s // gh_c) * gw_s + (fx // p) * gw_s // gw_c
            out["blocks"][head] = m
            pos = block_positions(m, gw_s, p)
            a2 = softmax(np.array([Qp[ch, fy, fx] @ Kp[ch, i, j] for i, j in pos]))
            for weight, (i, j) in zip(a2, pos):
                out["fine"][head, i, j] = weight
            out["pa_vec"][ch] = sum(weight * Vp[ch, i, j] for weight, (i, j) in zip(a2, pos))
    return out


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def sharpen(module: torch.nn.Module, seed: int) -> None:
    """Random-init A2K convs are N(0, 0.02) with zero bias, so every map is nearly uniform; larger weights, biases
    and non-default α/β make the test discriminate (argmax, sim_alpha/beta and biases all matter)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.15)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
        if hasattr(module, "sim_alpha"):
            module.sim_alpha.fill_(0.05)
            module.sim_beta.fill_(-0.3)


def model(name: str = "styA2K", layer: str = "relu3_1", **options):
    method = create_method(name, init="random", seed=1, **options)
    module = attention_module(method, layer).double()  # the encoder stays float32 (fast); features are cast
    sharpen(module, seed=7)
    return method


def images(content_hw, style_hw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, *content_hw, generator=g), torch.rand(1, 3, *style_hw, generator=g)


def features(method, content, style, layer):
    """float32 encoder features, cast to float64 (what attention_maps feeds a .double() module)."""
    enc = method.model.encoder
    return enc(content, [layer])[layer].double(), enc(style, [layer])[layer].double()


def heads_of(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(1, C, H, W) → (h, d, H·W)."""
    return x[0].reshape(heads, x.shape[1] // heads, -1)


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("layer, content_hw, style_hw, point", [
    ("relu3_1", (64, 64), (64, 96), (37, 21)),
    ("relu5_1", (128, 128), (64, 128), (100, 17)),
])
def test_a2k_maps_match_slow_reference_and_module_output(layer, content_hw, style_hw, point):
    method = model(layer=layer)
    content, style = images(content_hw, style_hw)
    maps = attention_maps(method, content, style, point, layer=layer)
    module = attention_module(method, layer)
    fc, fs = features(method, content, style, layer)
    down = {"relu3_1": 4, "relu4_1": 8, "relu5_1": 16}[layer]
    fy, fx = point[0] // down, point[1] // down
    assert maps.feature_point == (fy, fx) and maps.layer == layer and maps.kind == "a2k"
    assert maps.content_grid == tuple(fc.shape[-2:]) and maps.style_grid == tuple(fs.shape[-2:])
    p = module.block_side
    assert maps.content_block == (fy // p) * (fc.shape[-1] // p) + fx // p
    assert maps.position_in_block == (fy % p) * p + fx % p
    ref = reference_a2k(module, fc[0].numpy(), fs[0].numpy(), fy, fx)

    np.testing.assert_allclose(maps.all_to_all_heads.numpy(), ref["a2a"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(maps.da_scores_heads.numpy(), ref["da"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(maps.pa_block_heads.numpy(), ref["blocks"])
    np.testing.assert_allclose(maps.pa_fine_heads.numpy(), ref["fine"], rtol=1e-9, atol=1e-12)
    assert len(set(ref["blocks"].tolist())) > 1 or layer == "relu5_1"  # heads really disagree (relu3_1 case)

    # consistency with the module: the maps' weights reproduce DA, PA and the module output at the point
    h, C = module.heads, fc.shape[1]
    nc, ns = mean_variance_norm(fc), mean_variance_norm(fs)
    da_out = distributed_attention(module.q(nc), module.k(ns), module.v(fs), p, h, module.sim_alpha,
                                   module.sim_beta)[0, :, fy, fx]
    da_from_map = np.einsum("hz,hzd->hd", maps.da_scores_heads.reshape(h, -1).numpy(), ref["v_hat"]).ravel()
    np.testing.assert_allclose(da_from_map, da_out.numpy(), rtol=1e-9, atol=1e-12)
    pa_out = progressive_attention(module.q2(nc), module.k2(ns), module.v2(fs), p, h)[0, :, fy, fx]
    pa_from_map = torch.einsum("hs,hds->hd", maps.pa_fine_heads.reshape(h, -1), heads_of(module.v2(fs), h))
    torch.testing.assert_close(pa_from_map.reshape(C), pa_out, rtol=1e-9, atol=1e-12)
    full = module(fc, fs)[0, :, fy, fx].numpy()
    w1, b1 = module.fusion1.weight[:, :, 0, 0].numpy(), module.fusion1.bias.numpy()
    w2, b2 = module.fusion2.weight[:, :, 0, 0].numpy(), module.fusion2.bias.numpy()
    np.testing.assert_allclose(w1 @ da_from_map + b1 + w2 @ pa_from_map.reshape(C).numpy() + b2
                               + fc[0, :, fy, fx].numpy(), full, rtol=1e-9, atol=1e-10)


def test_head_selection_mean_and_mode():
    method = model()
    content, style = images((64, 64), (64, 96), seed=3)
    maps = attention_maps(method, content, style, (40, 50))
    blocks = maps.pa_block_heads.tolist()
    counts = {b: blocks.count(b) for b in blocks}
    mode = min(b for b in counts if counts[b] == max(counts.values()))
    assert maps.pa_block == mode
    chosen = [i for i, b in enumerate(blocks) if b == mode]
    torch.testing.assert_close(maps.pa_fine, maps.pa_fine_heads[chosen].mean(0))
    torch.testing.assert_close(maps.all_to_all, maps.all_to_all_heads.mean(0))
    torch.testing.assert_close(maps.da_scores, maps.da_scores_heads.mean(0))
    for m in (maps.all_to_all, maps.da_scores, maps.pa_fine):
        assert float(m.sum()) == pytest.approx(1.0, abs=1e-12)
    # the fine map of the mode lies inside the chosen block only
    oy, ox = maps.block_origin(maps.pa_block)
    p = maps.block_side
    inside = maps.pa_fine[oy:oy + p, ox:ox + p]
    assert float(inside.sum()) == pytest.approx(1.0, abs=1e-12) and bool((inside > 0).all())

    one = attention_maps(method, content, style, (40, 50), head=5)
    assert one.pa_block == blocks[5]
    torch.testing.assert_close(one.all_to_all, maps.all_to_all_heads[5])
    torch.testing.assert_close(one.da_scores, maps.da_scores_heads[5])
    torch.testing.assert_close(one.pa_fine, maps.pa_fine_heads[5])
    spread = block_map(one, one.da_scores)
    torch.testing.assert_close(spread[oy, ox], one.da_scores.reshape(-1)[maps.pa_block])
    assert spread.shape == one.style_grid


@pytest.mark.parametrize("name, options", [
    ("styA2K-noPA1", {}), ("styA2K-noDA", {}), ("styA2K-noPA", {}), ("styA2K-1head", {}),
])
def test_ablation_maps_match_reference(name, options):
    method = model(name, **options)
    content, style = images((64, 64), (64, 64), seed=5)
    maps = attention_maps(method, content, style, (9, 60))
    module = attention_module(method, "relu3_1")
    fc, fs = features(method, content, style, "relu3_1")
    ref = reference_a2k(module, fc[0].numpy(), fs[0].numpy(), 9 // 4, 60 // 4)
    np.testing.assert_allclose(maps.all_to_all_heads.numpy(), ref["a2a"], rtol=1e-9, atol=1e-12)
    assert maps.heads == module.heads
    if module.use_da:
        np.testing.assert_allclose(maps.da_scores_heads.numpy(), ref["da"], rtol=1e-9, atol=1e-12)
    else:
        assert maps.da_scores is None and maps.da_scores_heads is None
    if module.use_pa:
        np.testing.assert_array_equal(maps.pa_block_heads.numpy(), ref["blocks"])
        np.testing.assert_allclose(maps.pa_fine_heads.numpy(), ref["fine"], rtol=1e-9, atol=1e-12)
    else:
        assert maps.pa_block is None and maps.pa_fine is None
    if name == "styA2K-noPA1":  # same-location block on equal grids = the content block itself
        assert not maps.pa_step1 and set(maps.pa_block_heads.tolist()) == {maps.content_block}


def test_reflect_remainder_maps_reproduce_module_output():
    method = model(remainder="reflect")
    content, style = images((72, 72), (80, 72), seed=2)  # relu3_1 18×18 and 20×18: not multiples of p = 8
    point = (70, 66)  # feature cell (17, 16): only a padded block covers it
    maps = attention_maps(method, content, style, point)
    module = attention_module(method, "relu3_1")
    fc, fs = features(method, content, style, "relu3_1")
    assert maps.style_block_grid == (3, 3) and maps.content_block == 2 * 3 + 2
    h, C, (fy, fx) = module.heads, fc.shape[1], maps.feature_point
    nc, ns = mean_variance_norm(fc), mean_variance_norm(fs)
    for m in maps.pa_fine_heads:
        assert float(m.sum()) == pytest.approx(1.0, abs=1e-12)
    pa_out = progressive_attention(module.q2(nc), module.k2(ns), module.v2(fs), 8, h, remainder="reflect")
    pa_from_map = torch.einsum("hs,hds->hd", maps.pa_fine_heads.reshape(h, -1), heads_of(module.v2(fs), h))
    torch.testing.assert_close(pa_from_map.reshape(C), pa_out[0, :, fy, fx], rtol=1e-9, atol=1e-12)
    da_out = distributed_attention(module.q(nc), module.k(ns), module.v(fs), 8, h, module.sim_alpha,
                                   module.sim_beta, remainder="reflect")[0, :, fy, fx]
    # V̂ of the padded style blocks from the reflect-padded value map, explicitly
    v = module.v(fs)[0]
    rows = [min(i, 2 * (v.shape[1] - 1) - i) for i in range(24)]
    cols = [min(j, 2 * (v.shape[2] - 1) - j) for j in range(24)]
    v_pad = v[:, rows][:, :, cols]
    k_pad = module.k(ns)[0][:, rows][:, :, cols]
    da_vec = torch.zeros(C, dtype=torch.float64)
    weights = maps.da_scores_heads.reshape(h, -1)
    d = C // h
    for head in range(h):
        ch = slice(head * d, (head + 1) * d)
        for z in range(9):
            by, bx = divmod(z, 3)
            kz = k_pad[ch, by * 8:(by + 1) * 8, bx * 8:(bx + 1) * 8].reshape(d, -1)
            vz = v_pad[ch, by * 8:(by + 1) * 8, bx * 8:(bx + 1) * 8].reshape(d, -1)
            w = torch.sigmoid(module.sim_beta + module.sim_alpha * (kz.mean(1) @ kz))
            v_hat = ((w * vz).sum(1) + vz.mean(1)) / 65
            da_vec[ch] += weights[head, z] * v_hat
    torch.testing.assert_close(da_vec, da_out, rtol=1e-9, atol=1e-12)


def test_all2all_map_is_its_attention():
    method = model("all2all")
    content, style = images((64, 64), (96, 64), seed=4)
    maps = attention_maps(method, content, style, (63, 0))
    module = attention_module(method, "relu3_1")
    fc, fs = features(method, content, style, "relu3_1")
    fy, fx = 15, 0
    ref = reference_all_to_all(module.q, module.k, 8, fc[0].numpy(), fs[0].numpy(), fy, fx)
    assert maps.kind == "all2all" and maps.da_scores is None and maps.pa_fine is None and maps.block_side is None
    np.testing.assert_allclose(maps.all_to_all_heads.numpy(), ref, rtol=1e-9, atol=1e-12)
    q, k, v = module.q(mean_variance_norm(fc)), module.k(mean_variance_norm(fs)), module.v(fs)
    out = all_to_all_attention(q, k, v, 8)[0, :, fy, fx]
    from_map = torch.einsum("hs,hds->hd", maps.all_to_all_heads.reshape(8, -1), heads_of(v, 8)).reshape(-1)
    torch.testing.assert_close(from_map, out, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(module.fusion1(from_map.reshape(1, -1, 1, 1))[0, :, 0, 0] + fc[0, :, fy, fx],
                               module(fc, fs)[0, :, fy, fx], rtol=1e-9, atol=1e-10)
    scaled = attention_maps(method, content, style, (63, 0), scale=0.5)
    np.testing.assert_allclose(scaled.all_to_all_heads.numpy(),
                               reference_all_to_all(module.q, module.k, 8, fc[0].numpy(), fs[0].numpy(), fy, fx, 0.5),
                               rtol=1e-9, atol=1e-12)


def test_bad_inputs_are_one_line_input_errors():
    method = create_method("styA2K", init="random")
    content, style = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    cases = [
        (dict(point=(64, 3)), "outside"),
        (dict(point=(1.5, 3)), "integer"),
        (dict(point=(3, 3), layer="relu2_1"), "relu3_1"),
        (dict(point=(3, 3), head=8), "head"),
    ]
    for kwargs, needle in cases:
        with pytest.raises(InputError, match=needle) as info:
            attention_maps(method, content, style, **kwargs)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="one content"):
        attention_maps(method, content.expand(2, -1, -1, -1), style, (3, 3))
    with pytest.raises(InputError, match="no attention module"):
        attention_maps(create_method("adain", init="random"), content, style, (3, 3))
    with pytest.raises(InputError, match="outside its whole"):  # zeros remainder: 72 px → relu3_1 18, blocks cover 16
        attention_maps(method, torch.rand(1, 3, 72, 72), style, (70, 3))
    assert set(ATTENTION_LAYERS) == {"relu3_1", "relu4_1", "relu5_1"}
