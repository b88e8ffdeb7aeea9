"""Building blocks shared by the tokenizer and the predictor: RMSNorm, RoPE, attention, SwiGLU, blocks.

Shapes: B batch, L sequence, D model width, H heads, hd = D / H head width.
Positions and padding: every attention call takes optional per-row ``positions`` [B, L] (RoPE positions,
so a left-padded row starts at 0 at its first real token) and ``key_mask`` [B, Lk] (True = a real key).
Without them the math is exactly the reference's (causal SDPA, positions 0..L-1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kv_cache import LayerCache


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """weight * x / sqrt(mean(x^2) + eps), normalised in float32 then cast back to x's dtype."""
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return normed.type_as(x) * weight


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE of x [B, H, L, hd] with cos/sin [L, hd] or [B, L, hd] (broadcast over heads)."""
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def swiglu(x: torch.Tensor, w1: torch.Tensor, w3: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """w2(silu(w1 x) * w3 x) with bias-free weights."""
    return F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)


class RMSNorm(nn.Module):
    """y = weight * x / sqrt(mean(x^2) + eps), normalised in float32 then cast back."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    norm_fn = staticmethod(rms_norm)  # swapped by kronos_model.fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_fn(x, self.weight, self.eps)


class RotaryEmbedding(nn.Module):
    """Rotate-half (NeoX) rotary position embedding, base 10000; ``inv_freq`` is a persistent buffer."""

    def __init__(self, head_dim: int):
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def _apply(self, fn, recurse=True):
        # the table stays float32 when the model is cast to bf16/fp16: half-precision positions and
        # frequencies would put tokens past position 256 at the wrong angle
        inv_freq = self.inv_freq
        super()._apply(fn, recurse)
        self.inv_freq = inv_freq.to(self.inv_freq.device)
        return self

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for integer positions [..., L] -> [..., L, hd]."""
        angles = positions.float()[..., None] * self.inv_freq
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()

    rope_fn = staticmethod(apply_rope)  # swapped by kronos_model.fused

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Apply the rotation to x [B, H, L, hd] at positions [L] or [B, L]."""
        return self.rope_fn(x, *self.cos_sin(positions))


def _split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, n_heads, d // n_heads).transpose(1, 2)  # (B, H, L, hd)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, n, hd = x.shape
    return x.transpose(1, 2).reshape(b, n, h * hd)


def causal_mask(key_mask: torch.Tensor | None, q_len: int, k_len: int) -> torch.Tensor | None:
    """Boolean attention mask [B, 1, Lq, Lk] (True = attend): causal AND real key; None when no padding.

    A padded query row may see only itself, so no row is all-masked (its output is ignored anyway).
    """
    if key_mask is None:
        return None
    device = key_mask.device
    q_idx = torch.arange(k_len - q_len, k_len, device=device)[:, None]
    k_idx = torch.arange(k_len, device=device)[None, :]
    allowed = (k_idx <= q_idx)[None] & key_mask[:, None, :]
    allowed = allowed | (k_idx == q_idx)[None]
    return allowed[:, None]


def prefix_attention(
    q: torch.Tensor,
    prefix: tuple[torch.Tensor, torch.Tensor],
    k: torch.Tensor,
    v: torch.Tensor,
    group: int,
    key_mask: torch.Tensor | None = None,
    *,
    causal: bool = True,
) -> torch.Tensor:
    """Attention of q [N, H, n, hd] to a prefix [N / group, H, Lp, hd] shared by ``group`` rows plus own k/v.

    The prefix is read once per window (queries of its ``group`` rows are stacked against it), never
    copied per row. ``key_mask`` [N, Lp + Lk] marks real keys; ``causal`` lets the n queries (the last n
    positions) see only keys up to their own. Same result as softmax attention over the concatenated keys.
    """
    kp, vp = prefix
    rows, heads, n, hd = q.shape
    windows, lp = kp.shape[0], kp.shape[2]
    scale = hd**-0.5

    def stack(t: torch.Tensor) -> torch.Tensor:  # [N, H, n, X] -> [B, H, group * n, X]
        return t.reshape(windows, group, heads, n, -1).transpose(1, 2).reshape(windows, heads, group * n, -1)

    def unstack(t: torch.Tensor) -> torch.Tensor:  # inverse of stack
        return t.reshape(windows, heads, group, n, -1).transpose(1, 2).reshape(rows, heads, n, -1)

    scores = (
        torch.cat(
            [unstack(torch.matmul(stack(q), kp.transpose(-1, -2))), torch.matmul(q, k.transpose(-1, -2))],
            dim=-1,
        )
        * scale
    )
    k_len = scores.shape[-1]
    if key_mask is not None or (causal and n > 1):
        if key_mask is None:
            key_mask = torch.ones(rows, k_len, dtype=torch.bool, device=q.device)
        allowed = causal_mask(key_mask, n, k_len) if causal else key_mask[:, None, None, :]
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    w_prefix, w_own = weights.split([lp, k_len - lp], dim=-1)
    return unstack(torch.matmul(stack(w_prefix), vp)) + torch.matmul(w_own, v)


class AttentionProjections(nn.Module):
    """The q/k/v/out Linear(D, D) layers (with bias) and the RoPE table shared by every attention here."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.rotary = RotaryEmbedding(d_model // n_heads)


class SelfAttention(AttentionProjections):
    """Multi-head causal self-attention with RoPE and biased projections; optional KV cache."""

    def __init__(self, d_model: int, n_heads: int, attn_dropout_p: float = 0.0, resid_dropout_p: float = 0.0):
        super().__init__(d_model, n_heads)
        self.attn_dropout_p = attn_dropout_p
        self.resid_dropout = nn.Dropout(resid_dropout_p)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        """x [B, L, D] -> [B, L, D]. With a cache, x holds only the new tokens; keys are appended to it."""
        length = x.shape[1]
        if positions is None:
            positions = torch.arange(length, device=x.device)
        cos, sin = self.rotary.cos_sin(positions)  # once for q and k
        q = self.rotary.rope_fn(_split_heads(self.q_proj(x), self.n_heads), cos, sin)
        k = self.rotary.rope_fn(_split_heads(self.k_proj(x), self.n_heads), cos, sin)
        v = _split_heads(self.v_proj(x), self.n_heads)
        dropout = self.attn_dropout_p if self.training else 0.0
        if cache is not None:
            k, v = cache.append(k, v)
            if cache.prefix is not None:
                out = prefix_attention(q, cache.prefix, k, v, cache.group, key_mask, causal=True)
                return self.resid_dropout(self.out_proj(_merge_heads(out)))
        k_len = k.shape[2]
        if key_mask is None and k_len == length:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        elif key_mask is None and length == 1:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:
            if key_mask is None:
                key_mask = torch.ones(x.shape[0], k_len, dtype=torch.bool, device=x.device)
            mask = causal_mask(key_mask, length, k_len)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.resid_dropout(self.out_proj(_merge_heads(out)))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x), no biases, dropout on the output."""

    def __init__(self, d_model: int, ff_dim: int, dropout_p: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, ff_dim, bias=False)
        self.w3 = nn.Linear(d_model, ff_dim, bias=False)
        self.w2 = nn.Linear(ff_dim, d_model, bias=False)
        self.dropout = nn.Dropout(dropout_p)

    ffn_fn = staticmethod(swiglu)  # swapped by kronos_model.fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.ffn_fn(x, self.w1.weight, self.w3.weight, self.w2.weight))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm1(x)), then x + ffn(norm2(x))."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ff_dim: int,
        ffn_dropout_p: float = 0.0,
        attn_dropout_p: float = 0.0,
        resid_dropout_p: float = 0.0,
    ):
        super().__init__()
        self.norm1 = RMSNorm(d_model)
        self.self_attn = SelfAttention(d_model, n_heads, attn_dropout_p, resid_dropout_p)
        self.norm2 = RMSNorm(d_model)
        self.ffn = FeedForward(d_model, ff_dim, ffn_dropout_p)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.norm1(x), positions, key_mask, cache)
        return x + self.ffn(self.norm2(x))


def left_pad_positions(lengths: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Positions [B, width] (0 at each row's first real token) and key mask for left-padded rows.

    Returns ``(positions, None)`` when no row is padded, so the exact unpadded kernels are used.
    """
    pad = width - lengths
    idx = torch.arange(width, device=lengths.device)[None, :]
    positions = (idx - pad[:, None]).clamp(min=0)
    if bool((pad == 0).all()):
        return positions, None
    return positions, idx >= pad[:, None]
