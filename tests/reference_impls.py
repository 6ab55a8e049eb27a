"""Slow, deliberately naive reference implementations of the StyA2K attention maths.

Written from the specification (`styA2K-spec.md` §1, §3, §4.1, §9, §10.1), NOT from ``methods/``.
Everything loops explicitly over samples, heads, blocks (and positions where it is cheap), so each function
reads like the equations it implements. Use tiny tensors only.

Notation (spec §3/§4.1): p = block side, r = p² points per block, n = number of blocks; block x runs row-major
over the block grid (x = by·gw + bx); position y inside a block runs row-major (y = dy·p + dx). Head k owns the
contiguous channels [k·d, (k+1)·d). No 1/√d scaling anywhere.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-5


# --------------------------------------------------------------------------------------------- §1 statistics
def ref_mean_std(x: Tensor, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Per (sample, channel): mean over H·W, unbiased variance (/(N−1)), std = sqrt(var + eps)."""
    B, C, H, W = x.shape
    n = H * W
    mean = torch.empty(B, C, 1, 1, dtype=x.dtype)
    std = torch.empty(B, C, 1, 1, dtype=x.dtype)
    for b in range(B):
        for c in range(C):
            vals = x[b, c].reshape(-1)
            m = vals.sum() / n
            var = ((vals - m) ** 2).sum() / (n - 1)
            mean[b, c, 0, 0] = m
            std[b, c, 0, 0] = torch.sqrt(var + eps)
    return mean, std


def ref_mvn(x: Tensor) -> Tensor:
    mean, std = ref_mean_std(x)
    return (x - mean) / std


# --------------------------------------------------------------------------------------------- §3 blocking
def ref_to_blocks(x: Tensor, p: int) -> Tensor:
    """Blk_p(X)[b, c, by·gw + bx, dy·p + dx] = X[b, c, by·p + dy, bx·p + dx]; floor tiling (remainder ignored)."""
    B, C, H, W = x.shape
    gh, gw = H // p, W // p
    out = torch.empty(B, C, gh * gw, p * p, dtype=x.dtype)
    for by in range(gh):
        for bx in range(gw):
            for dy in range(p):
                for dx in range(p):
                    out[:, :, by * gw + bx, dy * p + dx] = x[:, :, by * p + dy, bx * p + dx]
    return out


def ref_from_blocks(blocks: Tensor, p: int, grid: tuple[int, int], size: tuple[int, int] | None = None) -> Tensor:
    """Scatter blocks back; positions not covered by a whole block (bottom/right strip) are 0."""
    B, C, n, r = blocks.shape
    gh, gw = grid
    H, W = size if size is not None else (gh * p, gw * p)
    out = torch.zeros(B, C, H, W, dtype=blocks.dtype)
    for by in range(gh):
        for bx in range(gw):
            for dy in range(p):
                for dx in range(p):
                    out[:, :, by * p + dy, bx * p + dx] = blocks[:, :, by * gw + bx, dy * p + dx]
    return out


def block_pixels(x: Tensor, p: int, by: int, bx: int) -> Tensor:
    """The (..., C, r) content of block (by, bx) of a (..., C, H, W) map, positions row-major inside the block."""
    return x[..., by * p:(by + 1) * p, bx * p:(bx + 1) * p].reshape(*x.shape[:-2], p * p)


# --------------------------------------------------------------------------------------------- §4.1 DA
def ref_aggregate_one_block(K: Tensor, V: Tensor, alpha: float, beta: float, denom: float) -> tuple[Tensor, Tensor]:
    """DA step 1 for ONE style block of ONE head. K (dk, r), V (dv, r) → K̂ (dk,), V̂ (dv,)."""
    r = K.shape[1]
    muK = sum(K[:, y] for y in range(r)) / r
    muV = sum(V[:, y] for y in range(r)) / r
    Khat = muK.clone()
    Vhat = muV.clone()
    for y in range(r):
        s = torch.dot(muK, K[:, y])                   # plain dot product with the block-centre key
        w = 1.0 / (1.0 + torch.exp(-(beta + alpha * s)))  # sigmoid(β + α·s)
        Khat = Khat + w * K[:, y]
        Vhat = Vhat + w * V[:, y]                     # the KEY similarity weights the values
    return Khat / denom, Vhat / denom


def da_denominator(normaliser: str, r: int) -> float:
    p = math.isqrt(r)
    return {"r+1": r + 1, "n": r, "p": p}[normaliser]


def ref_aggregate_blocks(keys: Tensor, values: Tensor, alpha: float, beta: float, normaliser: str = "r+1"):
    """keys (B, h, dk, n, r), values (B, h, dv, n, r) → K̂ (B, h, dk, n), V̂ (B, h, dv, n)."""
    B, h, dk, n, r = keys.shape
    dv = values.shape[2]
    denom = da_denominator(normaliser, r)
    Khat = torch.empty(B, h, dk, n, dtype=keys.dtype)
    Vhat = torch.empty(B, h, dv, n, dtype=keys.dtype)
    for b in range(B):
        for hh in range(h):
            for z in range(n):
                kz, vz = ref_aggregate_one_block(keys[b, hh, :, z, :], values[b, hh, :, z, :], alpha, beta, denom)
                Khat[b, hh, :, z] = kz
                Vhat[b, hh, :, z] = vz
    return Khat, Vhat


def _softmax(v: Tensor) -> Tensor:
    e = torch.exp(v - v.max())
    return e / e.sum()


def ref_distributed_attention(q, k, v, p, heads, alpha=1.0, beta=0.0, normaliser="r+1"):
    """DA on maps, official 'zeros' remainder. q (B,Cq,Hc,Wc), k (B,Cq,Hs,Ws), v (B,Cv,Hs,Ws) → (B,Cv,Hc,Wc).

    Every content position inside a whole content block attends (softmax over z) to the n_s aggregated style
    blocks; positions in the bottom/right remainder strip are 0.
    """
    B, Cq, Hc, Wc = q.shape
    Cv = v.shape[1]
    dq, dv = Cq // heads, Cv // heads
    ghc, gwc = Hc // p, Wc // p
    ghs, gws = k.shape[2] // p, k.shape[3] // p
    r = p * p
    denom = da_denominator(normaliser, r)
    out = torch.zeros(B, Cv, Hc, Wc, dtype=q.dtype)
    for b in range(B):
        for hh in range(heads):
            cq = slice(hh * dq, (hh + 1) * dq)
            cv = slice(hh * dv, (hh + 1) * dv)
            agg = [ref_aggregate_one_block(block_pixels(k[b, cq], p, zy, zx), block_pixels(v[b, cv], p, zy, zx),
                                           alpha, beta, denom)
                   for zy in range(ghs) for zx in range(gws)]
            for i in range(ghc * p):          # only positions inside whole content blocks
                for j in range(gwc * p):
                    qv = q[b, cq, i, j]
                    logits = torch.stack([torch.dot(qv, Kz) for Kz, _ in agg])
                    a = _softmax(logits)
                    out[b, cv, i, j] = sum(a[z] * agg[z][1] for z in range(len(agg)))
    return out


# --------------------------------------------------------------------------------------------- §4.1 PA
def ref_block_scores(Qb: Tensor, Kb: Tensor) -> Tensor:
    """Qb (d, n_c, r), Kb (d, n_s, r) → S (n_c, n_s), S[x, z] = Σ_{d,y} Q[d,x,y]·K[d,z,y] (positions aligned)."""
    n_c, n_s = Qb.shape[1], Kb.shape[1]
    S = torch.empty(n_c, n_s, dtype=Qb.dtype)
    for x in range(n_c):
        for z in range(n_s):
            S[x, z] = (Qb[:, x, :] * Kb[:, z, :]).sum()
    return S


def first_argmax(row: Tensor) -> int:
    best = 0
    for z in range(1, row.numel()):
        if row[z] > row[best]:  # strict: ties keep the first index
            best = z
    return best


def ref_match_blocks(queries: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
    """queries (B,h,d,n_c,r), keys (B,h,d,n_s,r) → (index (B,h,n_c) long, scores (B,h,n_c,n_s))."""
    B, h, d, n_c, r = queries.shape
    n_s = keys.shape[3]
    idx = torch.empty(B, h, n_c, dtype=torch.long)
    scores = torch.empty(B, h, n_c, n_s, dtype=queries.dtype)
    for b in range(B):
        for hh in range(h):
            S = ref_block_scores(queries[b, hh], keys[b, hh])
            scores[b, hh] = S
            for x in range(n_c):
                idx[b, hh, x] = first_argmax(S[x])
    return idx, scores


def ref_same_location_index(content_grid, style_grid) -> Tensor:
    """Content block (i, j) → style block (floor(i·gh_s/gh_c), floor(j·gw_s/gw_c)), flattened row-major."""
    ghc, gwc = content_grid
    ghs, gws = style_grid
    out = []
    for i in range(ghc):
        for j in range(gwc):
            out.append((i * ghs // ghc) * gws + (j * gws // gwc))
    return torch.tensor(out, dtype=torch.long)


def ref_progressive_attention(q, k, v, p, heads, step1=True, return_margin=False):
    """PA on maps, official 'zeros' remainder. Step 1: per sample/head/content block, hard argmax over style blocks of
    the aligned block score (or the same-location block when step1=False); step 2: each content position attends
    (softmax over the r positions) inside the matched style block."""
    B, Cq, Hc, Wc = q.shape
    Cv = v.shape[1]
    dq, dv = Cq // heads, Cv // heads
    ghc, gwc = Hc // p, Wc // p
    ghs, gws = k.shape[2] // p, k.shape[3] // p
    out = torch.zeros(B, Cv, Hc, Wc, dtype=q.dtype)
    min_margin = math.inf
    same_loc = ref_same_location_index((ghc, gwc), (ghs, gws))
    for b in range(B):
        for hh in range(heads):
            cq = slice(hh * dq, (hh + 1) * dq)
            cv = slice(hh * dv, (hh + 1) * dv)
            Kbl = [block_pixels(k[b, cq], p, zy, zx) for zy in range(ghs) for zx in range(gws)]  # (dq, r) each
            Vbl = [block_pixels(v[b, cv], p, zy, zx) for zy in range(ghs) for zx in range(gws)]  # (dv, r) each
            for by in range(ghc):
                for bx in range(gwc):
                    x = by * gwc + bx
                    Qx = block_pixels(q[b, cq], p, by, bx)  # (dq, r)
                    if step1:
                        S = torch.stack([(Qx * Kz).sum() for Kz in Kbl])
                        m = first_argmax(S)
                        if len(Kbl) > 1:
                            top2 = torch.topk(S, 2).values
                            min_margin = min(min_margin, float(top2[0] - top2[1]))
                    else:
                        m = int(same_loc[x])
                    for y in range(p * p):
                        dy, dx = divmod(y, p)
                        logits = torch.stack([torch.dot(Qx[:, y], Kbl[m][:, y2]) for y2 in range(p * p)])
                        a = _softmax(logits)
                        out[b, cv, by * p + dy, bx * p + dx] = Vbl[m] @ a
    return (out, min_margin) if return_margin else out


# --------------------------------------------------------------------------------------------- §4.1 module
def conv1x1(conv: torch.nn.Conv2d, x: Tensor) -> Tensor:
    """1×1 conv written out: out[b, o, i, j] = Σ_c W[o, c]·x[b, c, i, j] + bias[o]."""
    Wm = conv.weight[:, :, 0, 0]
    return torch.einsum("oc,bchw->bohw", Wm, x) + conv.bias.view(1, -1, 1, 1)


def ref_a2k_forward(mod, fc, fs, p, heads, use_da=True, use_pa=True, pa_step1=True, normaliser="r+1",
                    remainder="zeros"):
    """General (any sizes) module reference built from the loop references above (spec §4.1 / §9 / §3.1)."""
    nc, ns = ref_mvn(fc), ref_mvn(fs)
    Hc, Wc = fc.shape[-2:]

    def prep(x):
        if remainder == "zeros":
            return x
        H, W = x.shape[-2:]
        ph, pw = (-H) % p, (-W) % p
        x = F.pad(x, (0, 0, 0, ph), mode="reflect" if ph < H else "replicate")  # per axis
        return F.pad(x, (0, pw, 0, 0), mode="reflect" if pw < W else "replicate")

    branch_sum = None
    if use_da:
        da = ref_distributed_attention(prep(conv1x1(mod.q, nc)), prep(conv1x1(mod.k, ns)), prep(conv1x1(mod.v, fs)),
                                       p, heads, mod.sim_alpha.item(), mod.sim_beta.item(), normaliser)
        branch_sum = conv1x1(mod.fusion1, da[..., :Hc, :Wc])
    if use_pa:
        pa = ref_progressive_attention(prep(conv1x1(mod.q2, nc)), prep(conv1x1(mod.k2, ns)),
                                       prep(conv1x1(mod.v2, fs)), p, heads, step1=pa_step1)
        t = conv1x1(mod.fusion2, pa[..., :Hc, :Wc])
        branch_sum = t if branch_sum is None else branch_sum + t
    return branch_sum + fc


def official_style_a2k_forward(mod, content, style, region, head=8):
    """Vectorised re-statement in the style of the official code (F.unfold / F.fold, einsum, gather).

    Only valid where the official code is: square, equal-size content and style, sides multiples of ``region``.
    """
    b, c, h, w = content.shape
    n = (h // region) * (w // region)
    r = region * region
    d = c // head
    Nc, Ns = ref_mvn(content), ref_mvn(style)

    def blk(x):  # (b, c, h, w) -> (b, head, d, n, r)
        u = F.unfold(x, kernel_size=region, stride=region)          # (b, c*r, n), channel-major then kernel pos
        return u.view(b, c, r, n).permute(0, 1, 3, 2).reshape(b, head, d, n, r)

    def unblk(x):  # (b, head, d, n, r) -> (b, c, h, w)
        u = x.reshape(b, c, n, r).permute(0, 1, 3, 2).reshape(b, c * r, n)
        return F.fold(u, output_size=(h, h), kernel_size=region, stride=region)  # official: square only

    # ---- DA
    Q, K, V = blk(mod.q(Nc)), blk(mod.k(Ns)), blk(mod.v(style))
    muK, muV = K.mean(-1, keepdim=True), V.mean(-1, keepdim=True)                 # (b, head, d, n, 1)
    sim = torch.einsum("bhdnr,bhdnr->bhnr", muK.expand_as(K), K)                 # ⟨μK, K_y⟩
    wgt = torch.sigmoid(mod.sim_beta + mod.sim_alpha * sim).unsqueeze(2)        # (b, head, 1, n, r)
    Khat = ((wgt * K).sum(-1) + muK.squeeze(-1)) / (r + 1)                       # (b, head, d, n)
    Vhat = ((wgt * V).sum(-1) + muV.squeeze(-1)) / (r + 1)
    logits = torch.einsum("bhdxy,bhdz->bhxyz", Q, Khat)
    A = torch.softmax(logits, dim=-1)
    DA = torch.einsum("bhxyz,bhdz->bhdxy", A, Vhat)
    # ---- PA
    Q2, K2, V2 = blk(mod.q2(Nc)), blk(mod.k2(Ns)), blk(mod.v2(style))
    S = torch.einsum("bhdxy,bhdzy->bhxz", Q2, K2)
    m = S.argmax(-1)                                                              # (b, head, n)
    idx = m[:, :, None, :, None].expand(-1, -1, d, -1, r)
    K2g, V2g = torch.gather(K2, 3, idx), torch.gather(V2, 3, idx)
    A2 = torch.softmax(torch.einsum("bhdxy,bhdxk->bhxyk", Q2, K2g), dim=-1)
    PA = torch.einsum("bhxyk,bhdxk->bhdxy", A2, V2g)
    return mod.fusion1(unblk(DA)) + mod.fusion2(unblk(PA)) + content


# --------------------------------------------------------------------------------------------- §10.1 all-to-all
def ref_all_to_all(q, k, v, heads):
    """Per sample, head and content position: softmax over ALL style positions of ⟨q, k⟩ (no scale), times v."""
    B, Cq, Hc, Wc = q.shape
    Cv = v.shape[1]
    dq, dv = Cq // heads, Cv // heads
    out = torch.empty(B, Cv, Hc, Wc, dtype=q.dtype)
    for b in range(B):
        for hh in range(heads):
            Kt = k[b, hh * dq:(hh + 1) * dq].reshape(dq, -1)   # (dq, Ns)
            Vt = v[b, hh * dv:(hh + 1) * dv].reshape(dv, -1)   # (dv, Ns)
            for i in range(Hc):
                for j in range(Wc):
                    a = _softmax(q[b, hh * dq:(hh + 1) * dq, i, j] @ Kt)
                    out[b, hh * dv:(hh + 1) * dv, i, j] = Vt @ a
    return out


def ref_all_to_all_module(mod, fc, fs, heads):
    att = ref_all_to_all(conv1x1(mod.q, ref_mvn(fc)), conv1x1(mod.k, ref_mvn(fs)), conv1x1(mod.v, fs), heads)
    return conv1x1(mod.fusion1, att) + fc


# --------------------------------------------------------------------------------------------- attention()
def ref_attention(q, k, v, scale=1.0):
    """softmax(scale·q kᵀ) v over the last two dims, looping over every batch index and every query."""
    batch = q.shape[:-2]
    L, S, e = q.shape[-2], k.shape[-2], v.shape[-1]
    qf, kf, vf = q.reshape(-1, L, q.shape[-1]), k.reshape(-1, S, k.shape[-1]), v.reshape(-1, S, e)
    out = torch.empty(qf.shape[0], L, e, dtype=q.dtype)
    for bi in range(qf.shape[0]):
        for l in range(L):
            a = _softmax(scale * (kf[bi] @ qf[bi, l]))
            out[bi, l] = a @ vf[bi]
    return out.reshape(*batch, L, e)
