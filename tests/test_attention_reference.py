"""Independent correctness tests of the StyA2K / all-to-all attention kernels against slow loop references.

The references (tests/reference_impls.py) are written from the specification (styA2K-spec.md §1, §3, §4.1, §9,
§10.1, §13, §14), not from ``methods/``. Tiny tensors, float64 where exactness helps, CPU only.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from methods import a2k as A
from methods import all2all as AA
from methods import ops
try:  # tests/ is a package (tests/__init__.py) or a plain directory
    from . import reference_impls as R
except ImportError:  # pragma: no cover
    import reference_impls as R

block_pixels = R.block_pixels
official_style_a2k_forward = R.official_style_a2k_forward
ref_a2k_forward = R.ref_a2k_forward
ref_aggregate_blocks = R.ref_aggregate_blocks
ref_all_to_all = R.ref_all_to_all
ref_all_to_all_module = R.ref_all_to_all_module
ref_attention = R.ref_attention
ref_distributed_attention = R.ref_distributed_attention
ref_from_blocks = R.ref_from_blocks
ref_match_blocks = R.ref_match_blocks
ref_mean_std = R.ref_mean_std
ref_mvn = R.ref_mvn
ref_progressive_attention = R.ref_progressive_attention
ref_same_location_index = R.ref_same_location_index
ref_to_blocks = R.ref_to_blocks

F64 = dict(rtol=1e-10, atol=1e-11)
BACKENDS = ("sdpa", "chunked", "naive")
OFFICIAL_NAMES = ["sim_alpha", "sim_beta"] + [
    f"{m}.{t}" for m in ("q", "k", "v", "q2", "k2", "v2", "fusion1", "fusion2") for t in ("weight", "bias")
]


def randomise_(mod: torch.nn.Module, alpha: float = 1.37, beta: float = -0.21, wstd: float = 0.35) -> torch.nn.Module:
    """float64 module with random non-zero weights AND biases, and sim_alpha/sim_beta ≠ 1/0."""
    mod = mod.double()
    with torch.no_grad():
        for name, prm in mod.named_parameters():
            if name == "sim_alpha":
                prm.fill_(alpha)
            elif name == "sim_beta":
                prm.fill_(beta)
            elif name.endswith("bias"):
                prm.copy_(torch.randn_like(prm) * 0.5)
            else:
                prm.copy_(torch.randn_like(prm) * wstd)
    return mod.eval()


def feats(B, C, H, W):
    """Non-negative, ReLU-like features with a non-zero mean (like VGG activations)."""
    return torch.rand(B, C, H, W, dtype=torch.float64) * 2.0 + 0.1 * torch.randn(B, C, H, W, dtype=torch.float64)


# =============================================================================================== §1 statistics
def test_calc_mean_std_matches_loop_reference():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64) * 3 + 1
    mean, std = ops.calc_mean_std(x)
    rmean, rstd = ref_mean_std(x)
    assert mean.shape == (2, 3, 1, 1) and std.shape == (2, 3, 1, 1)
    torch.testing.assert_close(mean, rmean, **F64)
    torch.testing.assert_close(std, rstd, **F64)


def test_std_eps_is_added_to_unbiased_variance():
    torch.manual_seed(0)
    # constant map: var = 0 → std = sqrt(1e-5) exactly (eps on the variance, not on the std)
    c = torch.full((1, 2, 3, 4), 2.5, dtype=torch.float64)
    _, std = ops.calc_mean_std(c)
    torch.testing.assert_close(std, torch.full_like(std, math.sqrt(1e-5)), **F64)
    # two values {0, 2}: unbiased var = 2 (biased would be 1)
    x = torch.tensor([0.0, 2.0], dtype=torch.float64).view(1, 1, 1, 2)
    _, std = ops.calc_mean_std(x)
    assert std.item() == pytest.approx(math.sqrt(2.0 + 1e-5), rel=1e-14)


def test_mean_variance_norm_matches_loop_reference():
    torch.manual_seed(1)
    x = feats(2, 4, 6, 5)
    torch.testing.assert_close(ops.mean_variance_norm(x), ref_mvn(x), **F64)


# =============================================================================================== §3 blocking
BLOCK_SHAPES = [(2, 3, 8, 8, 4), (1, 2, 8, 12, 4), (2, 3, 9, 6, 3), (1, 2, 6, 4, 1), (1, 1, 4, 4, 4)]


def unfold_blocks(x, p):
    """Spec §3: F.unfold(kernel=stride=p) → (B, C·r, n) viewed (B, C, r, n) → (B, C, n, r)."""
    B, C = x.shape[:2]
    u = F.unfold(x, kernel_size=p, stride=p)
    return u.view(B, C, p * p, -1).transpose(2, 3)


@pytest.mark.parametrize("B,C,H,W,p", BLOCK_SHAPES + [(2, 3, 10, 13, 4), (1, 2, 7, 5, 2)])
def test_to_blocks_equals_unfold_and_loop_reference(B, C, H, W, p):
    torch.manual_seed(2)
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    blk = ops.to_blocks(x, p)
    n = (H // p) * (W // p)
    assert blk.shape == (B, C, n, p * p)
    assert torch.equal(blk, unfold_blocks(x, p))
    assert torch.equal(blk, ref_to_blocks(x, p))


@pytest.mark.parametrize("B,C,H,W,p", BLOCK_SHAPES)
def test_from_blocks_inverts_to_blocks_divisible(B, C, H, W, p):
    torch.manual_seed(3)
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    grid = (H // p, W // p)
    assert torch.equal(ops.from_blocks(ops.to_blocks(x, p), p, grid), x)
    assert torch.equal(ops.from_blocks(ops.to_blocks(x, p), p, grid, size=(H, W)), x)
    blocks = torch.randn(B, C, grid[0] * grid[1], p * p, dtype=torch.float64)
    assert torch.equal(ops.to_blocks(ops.from_blocks(blocks, p, grid), p), blocks)


@pytest.mark.parametrize("H,W,p", [(10, 13, 4), (7, 5, 2), (9, 9, 4), (5, 11, 3)])
def test_from_blocks_non_divisible_floor_tiling_and_zero_strip(H, W, p):
    torch.manual_seed(4)
    B, C = 2, 3
    grid = (H // p, W // p)
    blocks = torch.randn(B, C, grid[0] * grid[1], p * p, dtype=torch.float64)
    out = ops.from_blocks(blocks, p, grid, size=(H, W))
    assert out.shape == (B, C, H, W)
    fold = F.fold(blocks.transpose(2, 3).reshape(B, C * p * p, -1), output_size=(H, W), kernel_size=p, stride=p)
    assert torch.equal(out, fold)
    assert torch.equal(out, ref_from_blocks(blocks, p, grid, (H, W)))
    # round trip keeps the tiled area and zeroes the bottom/right strip
    x = torch.randn(B, C, H, W, dtype=torch.float64)
    rt = ops.from_blocks(ops.to_blocks(x, p), p, grid, size=(H, W))
    hh, ww = grid[0] * p, grid[1] * p
    assert torch.equal(rt[..., :hh, :ww], x[..., :hh, :ww])
    assert (rt[..., hh:, :] == 0).all() and (rt[..., :, ww:] == 0).all()


@pytest.mark.parametrize("shape,heads", [((2, 6, 3, 4), 3), ((1, 8, 2, 5, 4), 2), ((2, 4, 7), 1), ((1, 8, 3), 8)])
def test_split_and_merge_heads_contiguous_channels(shape, heads):
    torch.manual_seed(5)
    x = torch.randn(*shape, dtype=torch.float64)
    C = shape[1]
    d = C // heads
    s = ops.split_heads(x, heads)
    assert s.shape == (shape[0], heads, d, *shape[2:])
    for k in range(heads):
        for i in range(d):
            assert torch.equal(s[:, k, i], x[:, k * d + i])
    assert torch.equal(ops.merge_heads(s), x)


# =============================================================================================== DA step 1
@pytest.mark.parametrize("normaliser", ["r+1", "n", "p"])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_aggregate_blocks_matches_loop_reference(normaliser, as_tensor):
    torch.manual_seed(6)
    B, h, dk, dv, n, p = 2, 3, 4, 5, 6, 3
    r = p * p
    keys = torch.randn(B, h, dk, n, r, dtype=torch.float64) * 0.7
    values = torch.randn(B, h, dv, n, r, dtype=torch.float64)
    alpha, beta = 1.37, -0.21
    a = torch.tensor([alpha], dtype=torch.float64) if as_tensor else alpha
    b = torch.tensor([beta], dtype=torch.float64) if as_tensor else beta
    Khat, Vhat = A.aggregate_blocks(keys, values, a, b, normaliser=normaliser)
    rK, rV = ref_aggregate_blocks(keys, values, alpha, beta, normaliser)
    assert Khat.shape == (B, h, dk, n) and Vhat.shape == (B, h, dv, n)
    torch.testing.assert_close(Khat, rK, **F64)
    torch.testing.assert_close(Vhat, rV, **F64)


def test_aggregate_blocks_normalisers_differ_by_the_denominator_only():
    """K̂ scales exactly as 1/D with D = r+1 (official), r (paper Eq. 8), p (Algorithm 1)."""
    torch.manual_seed(7)
    keys = torch.randn(1, 2, 3, 4, 16, dtype=torch.float64)
    values = torch.randn(1, 2, 5, 4, 16, dtype=torch.float64)
    out = {nm: A.aggregate_blocks(keys, values, 0.8, 0.3, normaliser=nm) for nm in ("r+1", "n", "p")}
    torch.testing.assert_close(out["n"][0] * 16, out["r+1"][0] * 17, **F64)
    torch.testing.assert_close(out["p"][1] * 4, out["r+1"][1] * 17, **F64)


# =============================================================================================== DA full
DA_PA_SIZES = [
    # (content H, W), (style H, W), p
    ((12, 20), (16, 8), 4),   # different sizes AND different block counts (n_c=15, n_s=8)
    ((14, 22), (17, 9), 4),   # both with a remainder strip
    ((8, 8), (8, 8), 2),      # square equal sizes
    ((6, 9), (9, 6), 3),      # non-square, p=3
]


def qkv(B, Cq, Cv, hw_c, hw_s):
    q = torch.randn(B, Cq, *hw_c, dtype=torch.float64)
    k = torch.randn(B, Cq, *hw_s, dtype=torch.float64)
    v = torch.randn(B, Cv, *hw_s, dtype=torch.float64)
    return q, k, v


@pytest.mark.parametrize("hw_c,hw_s,p", DA_PA_SIZES)
@pytest.mark.parametrize("normaliser", ["r+1", "n", "p"])
def test_distributed_attention_matches_loop_reference(hw_c, hw_s, p, normaliser):
    torch.manual_seed(8)
    q, k, v = qkv(2, 4, 6, hw_c, hw_s)   # 2 heads: dq = 2, dv = 3
    out = A.distributed_attention(q, k, v, p, 2, alpha=1.37, beta=-0.21, normaliser=normaliser)
    ref = ref_distributed_attention(q, k, v, p, 2, 1.37, -0.21, normaliser)
    assert out.shape == (2, 6, *hw_c)
    torch.testing.assert_close(out, ref, **F64)


def test_distributed_attention_remainder_strip_is_exactly_zero():
    torch.manual_seed(9)
    q, k, v = qkv(1, 4, 4, (14, 22), (17, 9))
    out = A.distributed_attention(q, k, v, 4, 2, alpha=torch.tensor([1.1], dtype=torch.float64))
    assert torch.equal(out[..., 12:, :], torch.zeros_like(out[..., 12:, :]))
    assert torch.equal(out[..., :, 20:], torch.zeros_like(out[..., :, 20:]))
    assert (out[..., :12, :20] != 0).all()


@pytest.mark.parametrize("hw_c,hw_s,p", DA_PA_SIZES[:2])
def test_distributed_attention_backends_agree(hw_c, hw_s, p):
    torch.manual_seed(10)
    q, k, v = qkv(2, 4, 6, hw_c, hw_s)
    outs = [A.distributed_attention(q, k, v, p, 2, 0.9, 0.1, backend=b) for b in BACKENDS]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], **F64)


def test_distributed_attention_has_no_sqrt_d_scaling():
    """Large logits: a 1/√d scaled softmax would differ clearly from the unscaled reference."""
    torch.manual_seed(11)
    q, k, v = qkv(1, 16, 4, (4, 4), (8, 8))
    q = q * 4
    k = k * 4
    out = A.distributed_attention(q, k, v, 2, 1, normaliser="p")
    torch.testing.assert_close(out, ref_distributed_attention(q, k, v, 2, 1, normaliser="p"), **F64)
    scaled = ref_distributed_attention(q / 4.0, k, v, 2, 1, normaliser="p")
    assert (out - scaled).abs().max() > 1e-3


# =============================================================================================== PA step 1
def _match(Q, K, **kw):
    """match_blocks on the reference layout (B, h, d, n, r), passed as strided (B, h, n, r, d) views."""
    return A.match_blocks(Q.permute(0, 1, 3, 4, 2), K.permute(0, 1, 3, 4, 2), **kw)


def test_match_blocks_matches_loop_reference():
    torch.manual_seed(12)
    B, h, d, n_c, n_s, r = 2, 3, 2, 7, 5, 4
    Q = torch.randn(B, h, d, n_c, r, dtype=torch.float64)
    K = torch.randn(B, h, d, n_s, r, dtype=torch.float64)
    idx = _match(Q, K)
    ridx, scores = ref_match_blocks(Q, K)
    assert idx.shape == (B, h, n_c) and idx.dtype == torch.long
    chosen = torch.gather(scores, -1, idx.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(chosen, scores.max(-1).values, **F64)   # always: the chosen score is the max
    top2 = scores.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 1e-9
    assert clear.float().mean() > 0.9
    assert torch.equal(idx[clear], ridx[clear])


def test_match_blocks_per_head_and_per_sample():
    """Different heads / samples are matched independently: build inputs where each (b, h) prefers another block."""
    torch.manual_seed(13)
    B, h, d, n, r = 2, 3, 2, 4, 4
    K = torch.randn(B, h, d, n, r, dtype=torch.float64)
    Q = torch.zeros(B, h, d, n, r, dtype=torch.float64)
    want = torch.empty(B, h, n, dtype=torch.long)
    for b in range(B):
        for hh in range(h):
            for x in range(n):
                z = (x + b + 2 * hh) % n
                want[b, hh, x] = z
                Q[b, hh, :, x, :] = K[b, hh, :, z, :] * 10   # strongly aligned with block z only
    _, scores = ref_match_blocks(Q, K)
    assert torch.equal(scores.argmax(-1), want), "test construction: target must be the reference argmax"
    assert torch.equal(_match(Q, K), want)


def test_match_blocks_exact_ties_pick_first_index():
    torch.manual_seed(14)
    # integer-valued inputs: every score is an exact integer, so ties are exact whatever the summation order
    Q = torch.randint(-3, 4, (1, 2, 2, 5, 4)).double()
    K = torch.randint(-3, 4, (1, 2, 2, 6, 4)).double()
    K[:, :, :, 4] = K[:, :, :, 1]      # block 4 duplicates block 1
    K[:, :, :, 5] = K[:, :, :, 0]      # block 5 duplicates block 0
    ridx, scores = ref_match_blocks(Q, K)
    assert ((scores[..., 4] == scores[..., 1]).all() and (scores[..., 5] == scores[..., 0]).all())
    idx = _match(Q, K)
    assert torch.equal(idx, ridx)
    assert not ((idx == 4) | (idx == 5)).any()


@pytest.mark.parametrize("chunk", [1, 5, 37, 200])
def test_match_blocks_chunked_equals_unchunked(chunk):
    torch.manual_seed(15)
    Q = torch.randn(2, 2, 3, 9, 4, dtype=torch.float64)
    K = torch.randn(2, 2, 3, 6, 4, dtype=torch.float64)
    assert torch.equal(_match(Q, K, chunk_elements=chunk), _match(Q, K))


def test_same_location_index_formula():
    assert torch.equal(A.same_location_index((3, 4), (3, 4)).cpu(), torch.arange(12))
    for cg, sg in [((3, 5), (4, 2)), ((4, 2), (3, 5)), ((2, 2), (1, 1)), ((5, 3), (5, 7))]:
        got = A.same_location_index(cg, sg).cpu()
        assert got.dtype == torch.long and got.shape == (cg[0] * cg[1],)
        assert torch.equal(got, ref_same_location_index(cg, sg))
    # hand-checked example: content grid 3×5, style grid 4×2; content block (2, 4) → style (floor(8/3), floor(8/5))
    assert int(A.same_location_index((3, 5), (4, 2))[2 * 5 + 4]) == 2 * 2 + 1


# =============================================================================================== PA full
@pytest.mark.parametrize("hw_c,hw_s,p", DA_PA_SIZES)
def test_progressive_attention_matches_loop_reference(hw_c, hw_s, p):
    torch.manual_seed(16)
    q, k, v = qkv(2, 4, 6, hw_c, hw_s)
    out = A.progressive_attention(q, k, v, p, 2)
    ref, margin = ref_progressive_attention(q, k, v, p, 2, return_margin=True)
    assert margin > 1e-6, "test construction: PA step-1 near-tie"
    assert out.shape == (2, 6, *hw_c)
    torch.testing.assert_close(out, ref, **F64)


def test_progressive_attention_remainder_strip_is_exactly_zero():
    torch.manual_seed(17)
    q, k, v = qkv(2, 4, 4, (14, 22), (17, 9))
    out = A.progressive_attention(q, k, v, 4, 2)
    assert torch.equal(out[..., 12:, :], torch.zeros_like(out[..., 12:, :]))
    assert torch.equal(out[..., :, 20:], torch.zeros_like(out[..., :, 20:]))


@pytest.mark.parametrize("hw", [(8, 12), (12, 12)])
def test_progressive_attention_without_step1_is_same_location_regional_attention(hw):
    """Spec §14 item 5 / §9.4: with equal grids, m[x] = x: each content block attends inside the style block at the
    same location. Written out directly here (no argmax involved)."""
    torch.manual_seed(18)
    p, heads = 4, 2
    q, k, v = qkv(2, 4, 6, hw, hw)
    out = A.progressive_attention(q, k, v, p, heads, step1=False)
    direct = torch.zeros_like(out)
    for b in range(2):
        for hh in range(heads):
            cq, cv = slice(2 * hh, 2 * hh + 2), slice(3 * hh, 3 * hh + 3)
            for by in range(hw[0] // p):
                for bx in range(hw[1] // p):
                    Qx = block_pixels(q[b, cq], p, by, bx)          # (dq, r)
                    Kx = block_pixels(k[b, cq], p, by, bx)          # same location
                    Vx = block_pixels(v[b, cv], p, by, bx)
                    att = torch.softmax(Qx.T @ Kx, dim=-1)           # (r, r), softmax over y'
                    direct[b, cv, by * p:(by + 1) * p, bx * p:(bx + 1) * p] = (Vx @ att.T).view(3, p, p)
    torch.testing.assert_close(out, direct, **F64)
    torch.testing.assert_close(out, ref_progressive_attention(q, k, v, p, heads, step1=False), **F64)


@pytest.mark.parametrize("hw_c,hw_s,p", [((12, 20), (16, 8), 4), ((14, 10), (9, 17), 4), ((6, 9), (12, 3), 3)])
def test_progressive_attention_without_step1_unequal_grids_follows_same_location_index(hw_c, hw_s, p):
    torch.manual_seed(19)
    q, k, v = qkv(1, 4, 4, hw_c, hw_s)
    out = A.progressive_attention(q, k, v, p, 2, step1=False)
    torch.testing.assert_close(out, ref_progressive_attention(q, k, v, p, 2, step1=False), **F64)


@pytest.mark.parametrize("step1", [True, False])
def test_progressive_attention_backends_agree(step1):
    torch.manual_seed(20)
    q, k, v = qkv(2, 4, 6, (12, 20), (16, 8))
    outs = [A.progressive_attention(q, k, v, 4, 2, step1=step1, backend=b) for b in BACKENDS]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], **F64)


# =============================================================================================== A2K module
def make_a2k(C, p, **kw):
    return randomise_(A.A2KAttention(C, p, **kw))


def test_a2k_official_parameter_names_shapes_and_init():
    torch.manual_seed(21)
    m = A.A2KAttention(256, 8)
    sd = m.state_dict()
    assert sorted(sd) == sorted(OFFICIAL_NAMES)
    assert sd["sim_alpha"].shape == (1,) and sd["sim_beta"].shape == (1,)
    for name in OFFICIAL_NAMES[2:]:
        assert sd[name].shape == ((256, 256, 1, 1) if name.endswith("weight") else (256,))
    assert sum(t.numel() for t in m.parameters()) == 526_338   # spec §5.1 / §14 item 7
    assert m.sim_alpha.item() == 1.0 and m.sim_beta.item() == 0.0


@pytest.mark.parametrize("kw,names", [
    (dict(use_da=False), ["q2", "k2", "v2", "fusion2"]),
    (dict(use_pa=False), ["sim_alpha", "sim_beta", "q", "k", "v", "fusion1"]),
])
def test_a2k_ablation_drops_branch_parameters(kw, names):
    torch.manual_seed(22)
    m = A.A2KAttention(16, 4, **kw)
    want = [n for n in OFFICIAL_NAMES if n.split(".")[0] in names]
    assert sorted(m.state_dict()) == sorted(want)


@pytest.mark.parametrize("hw,p,B", [((8, 8), 4, 2), ((12, 12), 4, 1), ((8, 8), 2, 1)])
def test_a2k_forward_equals_official_computation(hw, p, B):
    """Square, equal-size inputs with sides multiple of p, 8 heads: equals the official unfold/fold computation."""
    torch.manual_seed(23)
    C = 16
    m = make_a2k(C, p)
    fc, fs = feats(B, C, *hw), feats(B, C, *hw)
    with torch.no_grad():
        out = m(fc, fs)
        ref = official_style_a2k_forward(m, fc, fs, p, head=8)
    assert out.shape == fc.shape
    torch.testing.assert_close(out, ref, **F64)


def test_a2k_official_style_and_loop_references_agree():
    """Cross-check of the two references themselves (both written from the spec)."""
    torch.manual_seed(24)
    m = make_a2k(16, 4)
    fc, fs = feats(1, 16, 8, 8), feats(1, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ref_a2k_forward(m, fc, fs, 4, 8), official_style_a2k_forward(m, fc, fs, 4), **F64)


@pytest.mark.parametrize("hw_c,hw_s", [((12, 20), (16, 8)), ((10, 14), (9, 13)), ((8, 12), (12, 8))])
def test_a2k_forward_general_sizes_vs_loop_reference(hw_c, hw_s):
    torch.manual_seed(25)
    m = make_a2k(4, 4, heads=2)
    fc, fs = feats(2, 4, *hw_c), feats(2, 4, *hw_s)
    with torch.no_grad():
        out = m(fc, fs)
        ref = ref_a2k_forward(m, fc, fs, 4, 2)
    torch.testing.assert_close(out, ref, **F64)


def test_a2k_remainder_strip_is_fusion_biases_plus_content():
    """Spec §3.1 item 3 / §14 item 4: official remainder mode, DA and PA are 0 in the strip."""
    torch.manual_seed(26)
    m = make_a2k(8, 4, heads=2)
    fc, fs = feats(2, 8, 10, 14), feats(2, 8, 13, 9)
    with torch.no_grad():
        out = m(fc, fs)
    expect = (m.fusion1.bias + m.fusion2.bias).view(1, -1, 1, 1) + fc
    assert torch.equal(out[..., 8:, :], expect[..., 8:, :])
    assert torch.equal(out[..., :, 12:], expect[..., :, 12:])
    assert ((out[..., :8, :12] - expect[..., :8, :12]).abs() > 1e-12).all()


@pytest.mark.parametrize("kw", [
    dict(use_da=False),
    dict(use_pa=False),
    dict(use_pa=False, da_normaliser="n"),
    dict(use_pa=False, da_normaliser="p"),
    dict(pa_step1=False),
    dict(heads=1),
])
def test_a2k_ablations_vs_loop_reference(kw):
    torch.manual_seed(27)
    C, p = 4, 4
    heads = kw.get("heads", 2)
    m = make_a2k(C, p, **{**kw, "heads": heads})
    fc, fs = feats(2, C, 12, 8), feats(2, C, 8, 12)
    with torch.no_grad():
        out = m(fc, fs)
        ref = ref_a2k_forward(m, fc, fs, p, heads, use_da=kw.get("use_da", True), use_pa=kw.get("use_pa", True),
                              pa_step1=kw.get("pa_step1", True), normaliser=kw.get("da_normaliser", "r+1"))
    torch.testing.assert_close(out, ref, **F64)


def test_a2k_single_head_equals_official_style_with_one_head():
    torch.manual_seed(28)
    m = make_a2k(8, 4, heads=1)
    fc, fs = feats(2, 8, 8, 8), feats(2, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(m(fc, fs), official_style_a2k_forward(m, fc, fs, 4, head=1), **F64)


@pytest.mark.parametrize("hw_c,hw_s", [((10, 14), (9, 13)), ((12, 8), (7, 10)), ((2, 2), (2, 2))])
def test_a2k_reflect_remainder_vs_reference(hw_c, hw_s):
    """'reflect': q, k, v (after the 1×1 convs; mvn on the unpadded maps) padded bottom/right to a multiple of p
    (replicate when the side is too small to reflect), output cropped back."""
    torch.manual_seed(29)
    m = make_a2k(4, 4, heads=2, remainder="reflect")
    fc, fs = feats(1, 4, *hw_c), feats(1, 4, *hw_s)
    with torch.no_grad():
        out = m(fc, fs)
        ref = ref_a2k_forward(m, fc, fs, 4, 2, remainder="reflect")
    assert out.shape == fc.shape
    torch.testing.assert_close(out, ref, **F64)


@pytest.mark.parametrize("backend", ["chunked", "naive"])
def test_a2k_backends_agree(backend):
    torch.manual_seed(30)
    m = make_a2k(8, 4, heads=2)
    m2 = make_a2k(8, 4, heads=2, backend=backend)
    m2.load_state_dict(m.state_dict())
    fc, fs = feats(2, 8, 12, 20), feats(2, 8, 16, 8)
    with torch.no_grad():
        torch.testing.assert_close(m2(fc, fs), m(fc, fs), **F64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a2k_forward_is_deterministic(dtype):
    torch.manual_seed(31)
    m = make_a2k(16, 4).to(dtype)
    fc, fs = feats(2, 16, 12, 12).to(dtype), feats(2, 16, 12, 12).to(dtype)
    with torch.no_grad():
        o1, o2 = m(fc, fs), m(fc, fs)
    assert torch.equal(o1, o2)


def test_a2k_gradients_flow_to_all_parameters():
    """PA's argmax is non-differentiable but gradients must reach every parameter through the gathered tensors."""
    torch.manual_seed(32)
    m = make_a2k(4, 4, heads=2).train()
    fc, fs = feats(1, 4, 8, 8), feats(1, 4, 8, 8)
    m(fc, fs).square().sum().backward()
    for name, prm in m.named_parameters():
        assert prm.grad is not None and prm.grad.abs().sum() > 0, name


# =============================================================================================== all-to-all
@pytest.mark.parametrize("heads", [1, 2])
@pytest.mark.parametrize("backend", BACKENDS)
def test_all_to_all_attention_matches_loop_reference(heads, backend):
    torch.manual_seed(33)
    q, k, v = qkv(2, 4, 6, (3, 5), (4, 2))
    out = AA.all_to_all_attention(q, k, v, heads, backend=backend)
    assert out.shape == (2, 6, 3, 5)
    torch.testing.assert_close(out, ref_all_to_all(q, k, v, heads), **F64)


def test_all_to_all_module_parameters_and_forward():
    torch.manual_seed(34)
    m = AA.AllToAllAttention(16)
    assert sorted(m.state_dict()) == sorted(f"{n}.{t}" for n in ("q", "k", "v", "fusion1") for t in ("weight", "bias"))
    m = randomise_(m)
    fc, fs = feats(2, 16, 4, 6), feats(2, 16, 5, 3)
    with torch.no_grad():
        out = m(fc, fs)
        ref = ref_all_to_all_module(m, fc, fs, heads=8)
    torch.testing.assert_close(out, ref, **F64)


def test_all_to_all_module_single_head():
    torch.manual_seed(35)
    m = randomise_(AA.AllToAllAttention(6, heads=1))
    fc, fs = feats(1, 6, 3, 4), feats(1, 6, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(m(fc, fs), ref_all_to_all_module(m, fc, fs, heads=1), **F64)


# =============================================================================================== attention()
ATT_SHAPES = [
    # (batch dims, L, S, d, e)
    ((), 7, 5, 3, 3),
    ((2,), 9, 4, 3, 5),
    ((2, 3), 11, 6, 4, 2),
    ((2, 2, 3), 5, 7, 4, 6),        # rank-5 tensors
    ((1, 2, 1, 2), 6, 3, 2, 4),     # rank-6 tensors
]


@pytest.mark.parametrize("batch,L,S,d,e", ATT_SHAPES)
def test_naive_attention_matches_loop_reference(batch, L, S, d, e):
    torch.manual_seed(36)
    q = torch.randn(*batch, L, d, dtype=torch.float64)
    k = torch.randn(*batch, S, d, dtype=torch.float64)
    v = torch.randn(*batch, S, e, dtype=torch.float64)
    torch.testing.assert_close(ops.naive_attention(q, k, v), ref_attention(q, k, v), **F64)
    torch.testing.assert_close(ops.attention(q, k, v, backend="naive"), ref_attention(q, k, v), **F64)


@pytest.mark.parametrize("batch,L,S,d,e", ATT_SHAPES)
@pytest.mark.parametrize("backend,max_el", [("sdpa", None), ("chunked", 1), ("chunked", 7), ("chunked", 37),
                                            ("chunked", None)])
def test_attention_backends_equal_naive_float32(batch, L, S, d, e, backend, max_el):
    torch.manual_seed(37)
    q = torch.randn(*batch, L, d) * 1.5
    k = torch.randn(*batch, S, d) * 1.5
    v = torch.randn(*batch, S, e)
    kw = {} if max_el is None else dict(max_score_elements=max_el)
    out = ops.attention(q, k, v, backend=backend, **kw)
    ref = ops.attention(q, k, v, backend="naive")
    assert out.shape == (*batch, L, e) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ref.double(), ref_attention(q.double(), k.double(), v.double()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_el", [1, 10, 1000])
def test_chunked_attention_direct(max_el):
    torch.manual_seed(38)
    q, k, v = torch.randn(2, 3, 13, 4), torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(ops.chunked_attention(q, k, v, max_score_elements=max_el),
                               ops.naive_attention(q, k, v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_scale_one_means_no_sqrt_d(backend):
    torch.manual_seed(39)
    d = 16
    q, k, v = (torch.randn(2, 5, d, dtype=torch.float64), torch.randn(2, 6, d, dtype=torch.float64),
               torch.randn(2, 6, 3, dtype=torch.float64))
    out = ops.attention(q, k, v, backend=backend, scale=1.0)
    torch.testing.assert_close(out, ref_attention(q, k, v, 1.0), **F64)
    assert (out - ref_attention(q, k, v, 1 / math.sqrt(d))).abs().max() > 1e-2
    out_default = ops.attention(q, k, v, backend=backend)
    torch.testing.assert_close(out_default, out, **F64)
    torch.testing.assert_close(ops.attention(q, k, v, backend=backend, scale=0.3), ref_attention(q, k, v, 0.3), **F64)


# =============================================================================================== edge cases
def test_a2k_content_smaller_than_one_block_is_all_remainder():
    """Official 'zeros' semantics taken literally: with no whole content block the whole map is remainder strip."""
    torch.manual_seed(40)
    m = make_a2k(4, 4, heads=2)
    fc, fs = feats(1, 4, 3, 6), feats(1, 4, 8, 8)
    with torch.no_grad():
        out = m(fc, fs)
    expect = (m.fusion1.bias + m.fusion2.bias).view(1, -1, 1, 1) + fc
    assert torch.equal(out, expect)


def test_a2k_single_style_block():
    """n_s = 1: DA softmax over one key is 1 (DA = V̂ everywhere), PA matches every content block to it."""
    torch.manual_seed(41)
    m = make_a2k(4, 4, heads=2)
    fc, fs = feats(1, 4, 8, 12), feats(1, 4, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(m(fc, fs), ref_a2k_forward(m, fc, fs, 4, 2), **F64)


def test_a2k_non_contiguous_inputs():
    torch.manual_seed(42)
    m = make_a2k(8, 4, heads=2)
    fc, fs = feats(2, 8, 12, 8), feats(2, 8, 8, 12)
    fc_nc = fc.transpose(2, 3).contiguous().transpose(2, 3)        # same values, transposed strides
    fs_cl = fs.contiguous(memory_format=torch.channels_last)
    assert not fc_nc.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(m(fc_nc, fs_cl), m(fc, fs), **F64)
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64).transpose(2, 3)
    assert torch.equal(ops.to_blocks(x, 4), ref_to_blocks(x, 4))


def test_a2k_float32_close_to_float64_reference():
    torch.manual_seed(43)
    m = make_a2k(16, 4)
    fc, fs = feats(1, 16, 8, 8), feats(1, 16, 8, 8)
    with torch.no_grad():
        ref = official_style_a2k_forward(m, fc, fs, 4)
        out = m.float()(fc.float(), fs.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)


def test_a2k_gradients_equal_official_style_reference():
    """Backward through the module equals autograd through the official-style reference (inputs and parameters)."""
    torch.manual_seed(44)
    m = make_a2k(16, 4).train()
    fc = feats(1, 16, 8, 8).requires_grad_()
    fs = feats(1, 16, 8, 8).requires_grad_()
    w = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    params = [fc, fs, *m.parameters()]
    g_impl = torch.autograd.grad((m(fc, fs) * w).sum(), params)
    g_ref = torch.autograd.grad((official_style_a2k_forward(m, fc, fs, 4) * w).sum(), params)
    for (name, _), a, b in zip([("fc", 0), ("fs", 0), *m.named_parameters()], g_impl, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10, msg=lambda s, n=name: f"{n}: {s}")


def test_a2k_reflect_mixed_sides_replicates_per_axis():
    """When only ONE axis is too small to reflect (style 2×10 at p=4: H needs pad 2 ≥ 2, W pad 2 < 10), that axis
    is replicated and the other still reflected; the reference's `prep` implements this per-axis rule."""
    torch.manual_seed(45)
    m = make_a2k(4, 4, heads=2, remainder="reflect")
    fc, fs = feats(1, 4, 9, 3), feats(1, 4, 2, 10)
    with torch.no_grad():
        torch.testing.assert_close(m(fc, fs), ref_a2k_forward(m, fc, fs, 4, 2, remainder="reflect"), **F64)


def test_a2k_zeros_mode_rejects_style_without_a_whole_block():
    torch.manual_seed(46)
    m = make_a2k(4, 4, heads=2)
    with pytest.raises(ValueError):
        m(feats(1, 4, 8, 8), feats(1, 4, 3, 9))


@pytest.mark.parametrize("backend,max_el", [("naive", None), ("sdpa", None), ("chunked", 3)])
def test_attention_large_logits_are_stable(backend, max_el):
    """Logits in the thousands (no 1/√d scale makes this realistic): softmax must stay finite and exact."""
    torch.manual_seed(47)
    q = torch.randn(2, 6, 8, dtype=torch.float64) * 30
    k = torch.randn(2, 5, 8, dtype=torch.float64) * 30
    v = torch.randn(2, 5, 3, dtype=torch.float64)
    kw = {} if max_el is None else dict(max_score_elements=max_el)
    out = ops.attention(q, k, v, backend=backend, **kw)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref_attention(q, k, v), **F64)
