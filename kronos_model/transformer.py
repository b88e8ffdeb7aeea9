"""The Kronos predictor: a decoder-only transformer over hierarchical (s1, s2) tokens.

Per step it predicts the next coarse token s1 from the context, then the fine token s2 conditioned on
that s1 through a 4-head "dependency-aware" cross-attention layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import KronosConfig
from .hub import HubMixin
from .kv_cache import KVCache, LayerCache
from .layers import (
    AttentionProjections,
    RMSNorm,
    TransformerBlock,
    _merge_heads,
    _split_heads,
    prefix_attention,
)

DEP_HEADS = 4  # the dependency layer always has 4 heads, whatever n_heads is
CALENDAR_SIZES = (("minute", 60), ("hour", 24), ("weekday", 7), ("day", 32), ("month", 13))


class HierarchicalEmbedding(nn.Module):
    """fusion_proj(concat(emb_s1[s1] * sqrt(D), emb_s2[s2] * sqrt(D)))."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.emb_s1 = nn.Embedding(2**s1_bits, d_model)
        self.emb_s2 = nn.Embedding(2**s2_bits, d_model)
        self.fusion_proj = nn.Linear(2 * d_model, d_model)

    def forward(self, s1_ids: torch.Tensor, s2_ids: torch.Tensor) -> torch.Tensor:
        scale = math.sqrt(self.d_model)
        return self.fusion_proj(torch.cat((self.emb_s1(s1_ids) * scale, self.emb_s2(s2_ids) * scale), -1))


class FixedEmbedding(nn.Module):
    """Frozen table (``learn_te=False``); the reference overwrites its sinusoid at init, a checkpoint wins."""

    def __init__(self, rows: int, d_model: int):
        super().__init__()
        self.emb = nn.Embedding(rows, d_model)
        self.emb.weight.requires_grad_(False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.emb(idx).detach()


class TemporalEmbedding(nn.Module):
    """Sum of minute, hour, weekday, day and month embeddings of the input bar's timestamp."""

    def __init__(self, d_model: int, learn_te: bool):
        super().__init__()
        for name, rows in CALENDAR_SIZES:
            table = nn.Embedding(rows, d_model) if learn_te else FixedEmbedding(rows, d_model)
            setattr(self, f"{name}_embed", table)

    def forward(self, stamp: torch.Tensor) -> torch.Tensor:
        """stamp [B, T, 5] (minute, hour, weekday, day, month) -> [B, T, D]."""
        idx = stamp.long()
        # summed in the reference's order: hour + weekday + day + month + minute
        return (
            self.hour_embed(idx[..., 1])
            + self.weekday_embed(idx[..., 2])
            + self.day_embed(idx[..., 3])
            + self.month_embed(idx[..., 4])
            + self.minute_embed(idx[..., 0])
        )


class CrossAttention(AttentionProjections):
    """4-head attention from sibling queries to context keys/values, reproducing the reference exactly.

    Query length T (training): RoPE at 0..T-1 on both sides, causal in training mode only.
    Query length 1 (inference): the single RoPE row is the identity, and the query sees every key.
    """

    def __init__(self, d_model: int, n_heads: int = DEP_HEADS):
        super().__init__(d_model, n_heads)

    def project_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _split_heads(self.k_proj(context), self.n_heads), _split_heads(
            self.v_proj(context), self.n_heads
        )

    def forward(
        self,
        query: torch.Tensor,
        context: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        q = _split_heads(self.q_proj(query), self.n_heads)
        if cache is not None and cache.prefix is not None:
            k, v = cache.read()
            out = prefix_attention(q, cache.prefix, k, v, cache.group, key_mask, causal=False)
            return self.out_proj(_merge_heads(out))
        if cache is not None:
            k, v = cache.keys[:, :, : cache.length], cache.values[:, :, : cache.length]
        else:
            k, v = self.project_kv(context)
        q_len, k_len = q.shape[2], k.shape[2]
        if q_len > 1:
            if q_len != k_len:
                raise ValueError(
                    f"dependency layer: query length {q_len} must be 1 or equal the context {k_len}"
                )
            pos = torch.arange(q_len, device=q.device)
            q, k = self.rotary.rotate(q, pos), self.rotary.rotate(k, pos)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        causal = self.training and mask is None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.out_proj(_merge_heads(out))


class DependencyAwareLayer(nn.Module):
    """norm(context + CrossAttn(emb_s1[s1] (unscaled), context)): conditions s2 on the chosen s1."""

    def __init__(self, d_model: int):
        super().__init__()
        self.cross_attn = CrossAttention(d_model)
        self.norm = RMSNorm(d_model)

    def forward(
        self, sibling: torch.Tensor, context: torch.Tensor, key_mask=None, cache=None
    ) -> torch.Tensor:
        return self.norm(context + self.cross_attn(sibling, context, key_mask, cache))


class DualHead(nn.Module):
    """Linear heads for s1 and s2 logits and their cross-entropy loss."""

    def __init__(self, s1_bits: int, s2_bits: int, d_model: int):
        super().__init__()
        self.proj_s1 = nn.Linear(d_model, 2**s1_bits)
        self.proj_s2 = nn.Linear(d_model, 2**s2_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_s1(x)

    def cond_forward(self, x2: torch.Tensor) -> torch.Tensor:
        return self.proj_s2(x2)

    def compute_loss(self, s1_logits, s2_logits, s1_targets, s2_targets, padding_mask=None):
        """(ce, ce_s1, ce_s2), ce = mean of both; with ``padding_mask`` positions where it is 0 are kept."""
        if padding_mask is not None:
            keep = padding_mask == 0
            s1_logits, s2_logits = s1_logits[keep], s2_logits[keep]
            s1_targets, s2_targets = s1_targets[keep], s2_targets[keep]
        ce_s1 = F.cross_entropy(s1_logits.reshape(-1, s1_logits.shape[-1]), s1_targets.reshape(-1))
        ce_s2 = F.cross_entropy(s2_logits.reshape(-1, s2_logits.shape[-1]), s2_targets.reshape(-1))
        return (ce_s1 + ce_s2) / 2, ce_s1, ce_s2


class Kronos(HubMixin, nn.Module):
    """Autoregressive predictor over tokenizer ids; ``forward`` returns (s1_logits, s2_logits)."""

    config_class = KronosConfig

    def __init__(
        self,
        s1_bits: int = 10,
        s2_bits: int = 10,
        n_layers: int = 8,
        d_model: int = 512,
        n_heads: int = 8,
        ff_dim: int = 1024,
        ffn_dropout_p: float = 0.0,
        attn_dropout_p: float = 0.0,
        resid_dropout_p: float = 0.0,
        token_dropout_p: float = 0.0,
        learn_te: bool = True,
    ):
        super().__init__()
        self.config = KronosConfig(
            s1_bits,
            s2_bits,
            n_layers,
            d_model,
            n_heads,
            ff_dim,
            ffn_dropout_p,
            attn_dropout_p,
            resid_dropout_p,
            token_dropout_p,
            learn_te,
        )
        self.s1_bits, self.s2_bits, self.d_model = s1_bits, s2_bits, d_model
        self.embedding = HierarchicalEmbedding(s1_bits, s2_bits, d_model)
        self.time_emb = TemporalEmbedding(d_model, learn_te)
        self.token_drop = nn.Dropout(token_dropout_p)
        self.transformer = nn.ModuleList(
            TransformerBlock(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p)
            for _ in range(n_layers)
        )
        self.norm = RMSNorm(d_model)
        self.dep_layer = DependencyAwareLayer(d_model)
        self.head = DualHead(s1_bits, s2_bits, d_model)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """From-scratch init: Xavier-normal Linear with zero bias, N(0, D^-0.5) embeddings."""
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=self.d_model**-0.5)

    def new_cache(self, capacity: int) -> KVCache:
        """An empty KV cache sized for ``capacity`` tokens."""
        return KVCache(len(self.transformer), capacity)

    def backbone(
        self, s1_ids, s2_ids, stamp=None, positions=None, key_mask=None, cache: KVCache | None = None
    ):
        """Embeddings + blocks + final norm -> context [B, T, D]; with a cache only the new tokens are given."""
        x = self.embedding(s1_ids, s2_ids)
        if stamp is not None:
            x = x + self.time_emb(stamp)
        x = self.token_drop(x)
        for i, blk in enumerate(self.transformer):
            x = blk(x, positions, key_mask, None if cache is None else cache.layers[i])
        return self.norm(x)

    def decode_s1(self, s1_ids, s2_ids, stamp=None, padding_mask=None):
        """(s1_logits [B, T, V1], context [B, T, D]) for the given token window."""
        key_mask = (
            None if padding_mask is None else padding_mask.bool()
        )  # True = attend (reference semantics)
        context = self.backbone(s1_ids, s2_ids, stamp, None, key_mask)
        return self.head(context), context

    def decode_s2(self, context, s1_ids, padding_mask=None):
        """s2 logits conditioned on ``s1_ids``: [B, T, V2] (with [B, 1] ids the query attends to all keys)."""
        key_mask = None if padding_mask is None else padding_mask.bool()
        sibling = self.embedding.emb_s1(s1_ids)
        return self.head.cond_forward(self.dep_layer(sibling, context, key_mask))

    def forward(
        self, s1_ids, s2_ids, stamp=None, padding_mask=None, use_teacher_forcing=False, s1_targets=None
    ):
        """Training/teacher-forced pass -> (s1_logits [B, T, V1], s2_logits [B, T, V2]).

        s2 at position t is conditioned on the true next s1 (teacher forcing) or, as in the reference
        default, on an s1 drawn from softmax(s1_logits).
        """
        s1_logits, context = self.decode_s1(s1_ids, s2_ids, stamp, padding_mask)
        if use_teacher_forcing:
            if s1_targets is None:
                raise ValueError("use_teacher_forcing=True needs s1_targets")
            cond = s1_targets
        else:
            probs = F.softmax(s1_logits.detach(), dim=-1)
            cond = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(s1_ids.shape)
        sibling = self.embedding.emb_s1(cond)
        s2_logits = self.head.cond_forward(self.dep_layer(sibling, context))
        return s1_logits, s2_logits
