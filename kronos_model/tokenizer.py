"""Kronos tokenizer: a causal transformer auto-encoder with binary spherical quantisation (BSQ).

Each bar becomes K = s1_bits + s2_bits sign bits; the low s1_bits form the coarse token s1 and the
rest the fine token s2 (both little-endian: channel k is bit 2^k within its half).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import KronosTokenizerConfig
from .hub import HubMixin
from .kv_cache import KVCache
from .layers import TransformerBlock


def _big_endian_powers(n: int) -> torch.Tensor:
    return 2 ** torch.arange(n - 1, -1, -1, dtype=torch.long)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -p * torch.log(p + 1e-8)


class BSQuantizer(nn.Module):
    """Sign quantiser on the unit sphere with the reference's commitment and entropy losses."""

    def __init__(
        self,
        s1_bits: int,
        s2_bits: int,
        beta: float,
        gamma0: float,
        gamma: float,
        zeta: float,
        group_size: int,
    ):
        super().__init__()
        self.codebook_dim = s1_bits + s2_bits
        self.beta, self.gamma0, self.gamma, self.zeta = beta, gamma0, gamma, zeta
        # Training-time metric buffers kept for checkpoint compatibility; ids never use them.
        self.register_buffer("basis", _big_endian_powers(self.codebook_dim))
        self.register_buffer("group_basis", _big_endian_powers(group_size))
        codes = torch.arange(2**group_size)[:, None].bitwise_and(_big_endian_powers(group_size)).ne(0)
        self.register_buffer("group_codebook", codes.float() * 2 - 1, persistent=False)

    def quantize(self, u: torch.Tensor) -> torch.Tensor:
        """Unit vectors [..., K] -> +-1/sqrt(K) with a straight-through gradient (0 maps to -1)."""
        hard = torch.where(u > 0, 1.0, -1.0).to(u.dtype) / math.sqrt(self.codebook_dim)
        return u + (hard - u).detach()

    def loss(self, u: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """commit + zeta * (gamma0 * per-sample entropy - gamma * codebook entropy), as in the reference."""
        commit = self.beta * ((q.detach() - u) ** 2).sum(-1).mean()
        p = torch.sigmoid(-4 * u / math.sqrt(self.codebook_dim))
        per_sample = (_entropy(p) + _entropy(1 - p)).sum(-1).mean()
        p_bar = p.reshape(-1, self.codebook_dim).mean(0)
        codebook = (_entropy(p_bar) + _entropy(1 - p_bar)).sum()
        return commit + self.zeta * (self.gamma0 * per_sample - self.gamma * codebook)


class _BSQHolder(nn.Module):
    """Keeps the reference's state-dict path ``tokenizer.bsq.*``."""

    def __init__(self, bsq: BSQuantizer):
        super().__init__()
        self.bsq = bsq


class KronosTokenizer(HubMixin, nn.Module):
    """Encode normalised OHLCV [B, T, d_in] into (s1, s2) ids [B, T] and decode them back."""

    config_class = KronosTokenizerConfig

    def __init__(
        self,
        d_in: int = 6,
        d_model: int = 256,
        n_heads: int = 4,
        ff_dim: int = 512,
        n_enc_layers: int = 4,
        n_dec_layers: int = 4,
        ffn_dropout_p: float = 0.0,
        attn_dropout_p: float = 0.0,
        resid_dropout_p: float = 0.0,
        s1_bits: int = 10,
        s2_bits: int = 10,
        beta: float = 0.05,
        gamma0: float = 1.0,
        gamma: float = 1.1,
        zeta: float = 0.05,
        group_size: int = 4,
    ):
        super().__init__()
        cfg = KronosTokenizerConfig(
            d_in,
            d_model,
            n_heads,
            ff_dim,
            n_enc_layers,
            n_dec_layers,
            ffn_dropout_p,
            attn_dropout_p,
            resid_dropout_p,
            s1_bits,
            s2_bits,
            beta,
            gamma0,
            gamma,
            zeta,
            group_size,
        )
        self.config = cfg
        self.s1_bits, self.s2_bits = s1_bits, s2_bits
        self.codebook_dim = s1_bits + s2_bits

        def block() -> TransformerBlock:
            return TransformerBlock(d_model, n_heads, ff_dim, ffn_dropout_p, attn_dropout_p, resid_dropout_p)

        self.embed = nn.Linear(d_in, d_model)
        self.head = nn.Linear(d_model, d_in)
        self.encoder = nn.ModuleList(block() for _ in range(n_enc_layers - 1))
        self.decoder = nn.ModuleList(block() for _ in range(n_dec_layers - 1))
        self.quant_embed = nn.Linear(d_model, self.codebook_dim)
        self.post_quant_embed_pre = nn.Linear(s1_bits, d_model)
        self.post_quant_embed = nn.Linear(self.codebook_dim, d_model)
        self.tokenizer = _BSQHolder(BSQuantizer(s1_bits, s2_bits, beta, gamma0, gamma, zeta, group_size))

    @property
    def quantizer(self) -> BSQuantizer:
        return self.tokenizer.bsq

    # -- encoder / decoder stacks -------------------------------------------------------------
    def _encode_unit(self, x: torch.Tensor, positions=None, key_mask=None) -> torch.Tensor:
        """[B, T, d_in] -> L2-normalised pre-quantisation vectors [B, T, K]."""
        h = self.embed(x)
        for blk in self.encoder:
            h = blk(h, positions, key_mask)
        return F.normalize(self.quant_embed(h), dim=-1)

    def _decode_stack(self, h: torch.Tensor, positions=None, key_mask=None, cache=None) -> torch.Tensor:
        for i, blk in enumerate(self.decoder):
            h = blk(h, positions, key_mask, None if cache is None else cache.layers[i])
        return self.head(h)

    def new_decoder_cache(self, capacity: int) -> KVCache:
        """KV cache for the decoder stack, so a shared history prefix is decoded once for all sample paths."""
        return KVCache(len(self.decoder), capacity)

    # -- ids <-> bits ---------------------------------------------------------------------------
    @staticmethod
    def _bits_to_ids(bits: torch.Tensor) -> torch.Tensor:
        weights = 2 ** torch.arange(bits.shape[-1], device=bits.device, dtype=torch.long)
        return (bits.long() * weights).sum(-1)

    @staticmethod
    def _ids_to_bits(ids: torch.Tensor, n_bits: int) -> torch.Tensor:
        weights = 2 ** torch.arange(n_bits, device=ids.device, dtype=torch.long)
        return ids.long()[..., None].bitwise_and(weights).ne(0)

    def encode(self, x: torch.Tensor, half: bool = False, positions=None, key_mask=None):
        """Normalised bars [B, T, d_in] -> ids: ``(s1, s2)`` each [B, T] if ``half`` else composite [B, T].

        ``positions``/``key_mask`` (optional, [B, T]) support left-padded batches of unequal lengths.
        """
        bits = self._encode_unit(x, positions, key_mask) > 0
        if half:
            return self._bits_to_ids(bits[..., : self.s1_bits]), self._bits_to_ids(bits[..., self.s1_bits :])
        return self._bits_to_ids(bits)

    def indices_to_code(self, ids, half: bool = False) -> torch.Tensor:
        """Ids -> quantised code vectors +-1/sqrt(K) [B, T, K] (halves expanded to K/2 bits each)."""
        if half:
            s1, s2 = ids
            n = self.codebook_dim // 2
            bits = torch.cat((self._ids_to_bits(s1, n), self._ids_to_bits(s2, n)), dim=-1)
        else:
            bits = self._ids_to_bits(ids, self.codebook_dim)
        return (bits.float() * 2 - 1) / math.sqrt(self.codebook_dim)

    def decode(
        self, x, half: bool = False, positions=None, key_mask=None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """Ids (``(s1, s2)`` if ``half``) -> reconstructed normalised bars [B, T, d_in].

        With a ``cache`` only the new ids are given; earlier ones are read from (and these appended to) it.
        """
        code = self.indices_to_code(x, half).to(self.post_quant_embed.weight.dtype)
        return self._decode_stack(self.post_quant_embed(code), positions, key_mask, cache)

    def forward(self, x: torch.Tensor):
        """Training pass: ``((z_pre, z), bsq_loss, quantized, z_indices)``.

        ``z_pre`` is reconstructed from the s1 bits alone, ``z`` from all bits; ``z_indices`` are composite ids.
        """
        u = self._encode_unit(x)
        quantized = self.quantizer.quantize(u)
        bsq_loss = self.quantizer.loss(u, quantized)
        z_indices = self._bits_to_ids(quantized > 0).detach()
        z_pre = self._decode_stack(self.post_quant_embed_pre(quantized[..., : self.s1_bits]))
        z = self._decode_stack(self.post_quant_embed(quantized))
        return (z_pre, z), bsq_loss, quantized, z_indices
