"""All-to-all attention: the StyA2K paper's ablation baseline (spec §10.1).

Same layers (relu3_1, relu4_1, relu5_1), transform, decoder and residual as StyA2K; each A2K module is replaced by
full multi-head attention over every style position::

    Q = q(N(Fc)), K = k(N(Fs)), V = v(Fs);  F_cs = fusion1(softmax(Q Kᵀ) V) + Fc     (8 heads, no 1/√d)

It is a fair baseline: the attention runs through the same memory-lean kernels as StyA2K
(:func:`methods.ops.attention`), so no HW×HW matrix is ever built at large sizes.
"""
from __future__ import annotations

from torch import Tensor, nn

from .ops import attention, mean_variance_norm, merge_heads, per_style, split_heads
from .stya2k import AttentionTransferNet, a2k_star_target


def all_to_all_attention(q: Tensor, k: Tensor, v: Tensor, heads: int, backend: str = "sdpa") -> Tensor:
    """q (B, Cq, Hc, Wc), k (B, Cq, Hs, Ws), v (B, Cv, Hs, Ws) → (B, Cv, Hc, Wc): every content position attends to
    every style position, per head (contiguous channel groups), softmax without scaling."""
    b, _, hc, wc = q.shape
    tokens = lambda x: split_heads(x, heads).flatten(3).transpose(-1, -2)  # noqa: E731  (B, h, L, d)
    out = attention(tokens(q), tokens(k), tokens(v), backend=backend)  # (B, h, Lc, dv)
    return merge_heads(out.transpose(-1, -2)).reshape(b, v.shape[1], hc, wc)


class AllToAllAttention(nn.Module):
    """Drop-in replacement for :class:`methods.a2k.A2KAttention`: parameters ``q``, ``k``, ``v``, ``fusion1``."""

    def __init__(self, channels: int, heads: int = 8, backend: str = "sdpa") -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels cannot be split into {heads} heads")
        self.channels, self.heads, self.backend = channels, heads, backend
        self.q, self.k, self.v, self.fusion1 = (nn.Conv2d(channels, channels, kernel_size=1) for _ in range(4))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, heads={self.heads}"

    def style_state(self, fs: Tensor) -> dict[str, Tensor]:
        """The style-only half of :meth:`forward`, once per style: fs (S, C, Hs, Ws) → ``keys`` k(N(Fs)) and
        ``values`` v(Fs), each (S, C, Hs, Ws)."""
        return {"keys": self.k(mean_variance_norm(fs)), "values": self.v(fs)}

    def forward(self, fc: Tensor | None, fs: Tensor,
                style_state: dict[str, Tensor] | None = None) -> Tensor | dict[str, Tensor]:
        """fc (B, C, Hc, Wc), fs (B, C, Hs, Ws) → (B, C, Hc, Wc); ``style_state``: :meth:`style_state` of ``fs``
        computed earlier (else it is computed here). ``fc=None``: only the style half, returning :meth:`style_state`
        (through the module call, so hooks and the FLOP counter count it as the attention's)."""
        if fc is None:
            return self.style_state(fs)
        state = per_style(self.style_state, fs) if style_state is None else style_state
        q = self.q(mean_variance_norm(fc))
        return self.fusion1(all_to_all_attention(q, state["keys"], state["values"], self.heads, self.backend)) + fc


def build_all2all(
    *, heads: int = 8, merge_relu: bool = False, attention_backend: str = "sdpa", loss: str = "all2all",
    loss_shallow_keys: bool = True,
) -> AttentionTransferNet:
    """The all-to-all network; ``merge_relu`` mirrors StyA2K's paper variant (ReLU after the merge conv).

    ``loss``: ``"all2all"`` (default) trains against the all-to-all analogue of the A2K* target,
    ``T_i = softmax(Kc_i Ks_iᵀ) V_i + φ_i(c)`` with shallow-layer keys and 8 heads on relu2_1..relu5_1 (query-chunked:
    the relu2_1 term alone would need GBs as one matrix); ``"a2k"`` keeps StyA2K's A2K* target (spec §10.1)."""
    if loss == "all2all":
        target = lambda kc, ks, v, _side: all_to_all_attention(kc, ks, v, heads, attention_backend)  # noqa: E731
    elif loss == "a2k":
        target = a2k_star_target(heads=heads, backend=attention_backend)
    else:
        raise ValueError(f"unknown all2all loss {loss!r}; choose 'all2all' or 'a2k'")
    return AttentionTransferNet(lambda channels, _side: AllToAllAttention(channels, heads, attention_backend),
                                merge_relu=merge_relu, loss_target=target, loss_shallow_keys=loss_shallow_keys)


from .recipes import ALL2ALL_RECIPE  # noqa: E402
from ._registry import register_method  # noqa: E402

register_method(
    "all2all",
    paper="All-to-all attention ablation of Zhu et al., ICCV 2023 (Table 2); design: spec §10.1",
    summary="full softmax(QKᵀ)V attention, 8 heads, in StyA2K's layers, decoder and residual (no official weights)",
    encoder_layers=("relu3_1", "relu4_1", "relu5_1"),
    default_size=512,
    licence="harness-trained weights only",
    recipe=ALL2ALL_RECIPE,
)(build_all2all)
