"""The prompt's keys/values are cached once per window and read by all its sample rows (no copy per sample)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kronos_model.kv_cache import KVCache, LayerCache
from kronos_model.layers import causal_mask, prefix_attention


def _dense(q, kp, vp, k, v, group, key_mask, causal):
    """Plain SDPA over the prefix copied to every row and concatenated with the row's own keys."""
    keys = torch.cat([kp.repeat_interleave(group, 0), k], dim=2)
    values = torch.cat([vp.repeat_interleave(group, 0), v], dim=2)
    n, k_len = q.shape[2], keys.shape[2]
    if key_mask is None:
        key_mask = torch.ones(q.shape[0], k_len, dtype=torch.bool)
    mask = causal_mask(key_mask, n, k_len) if causal else key_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)


@pytest.mark.parametrize(
    "n, causal, padded", [(1, True, False), (1, False, True), (4, True, True), (3, True, False)]
)
def test_prefix_attention_equals_attention_over_copied_prefix(n, causal, padded):
    torch.manual_seed(0)
    windows, group, heads, hd, lp, own = 3, 5, 2, 8, 11, 4
    rows = windows * group
    q = torch.randn(rows, heads, n, hd)
    kp, vp = torch.randn(windows, heads, lp, hd), torch.randn(windows, heads, lp, hd)
    k, v = torch.randn(rows, heads, own, hd), torch.randn(rows, heads, own, hd)
    key_mask = None
    if padded:  # window 1 has 3 padded prompt positions on the left
        key_mask = torch.ones(rows, lp + own, dtype=torch.bool)
        key_mask[group : 2 * group, :3] = False
    got = prefix_attention(q, (kp, vp), k, v, group, key_mask, causal=causal)
    want = _dense(q, kp, vp, k, v, group, key_mask, causal)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_shared_cache_stores_the_prompt_once_per_window():
    cache = LayerCache(capacity=14)
    cache.append(torch.randn(2, 4, 10, 8), torch.randn(2, 4, 10, 8))
    cache.share(5)
    assert cache.prefix[0].shape == (2, 4, 10, 8) and cache.group == 5
    assert cache.keys.shape == (10, 4, 4, 8)  # 10 sample rows x the 4 tokens they will generate
    k, _ = cache.append(torch.randn(10, 4, 1, 8), torch.randn(10, 4, 1, 8))
    assert k.shape == (10, 4, 1, 8) and cache.length == 11 and cache.read()[0].shape == (10, 4, 1, 8)
    with pytest.raises(RuntimeError, match="overflow"):
        cache.append(torch.randn(10, 4, 4, 8), torch.randn(10, 4, 4, 8))


@pytest.mark.parametrize("anchor", [False, True])
def test_shared_prompt_forecasts_equal_copied_prompt(tiny_predictor, sp500, monkeypatch, anchor):
    """Ragged windows, several samples, seeded: sharing the prompt changes no forecast."""
    frames = [sp500.iloc[:40], sp500.iloc[100:160], sp500.iloc[300:333]]
    kwargs = dict(sample_count=4, seed=[1, 2, 3], anchor=anchor)
    shared = tiny_predictor.forecast_batch(frames, 5, **kwargs)
    monkeypatch.setattr(KVCache, "share", KVCache.repeat_interleave)  # the copy-per-sample cache
    copied = tiny_predictor.forecast_batch(frames, 5, **kwargs)
    for a, b in zip(shared, copied, strict=True):
        np.testing.assert_allclose(a.samples, b.samples, rtol=1e-5)


def test_batch_chunks_count_the_prompt_once(tiny_predictor, sp500):
    """max_batch_bytes holds (prompt + samples x generated tokens) keys and values per window."""
    windows = [tiny_predictor._window(sp500.iloc[:64], None, None, 8, "df")] * 10
    cfg = tiny_predictor.model.config
    per_window = (64 + 20 * 8) * 2 * cfg.d_model * (cfg.n_layers + 1) * 4  # float32
    old = tiny_predictor.max_batch_bytes
    try:
        tiny_predictor.max_batch_bytes = 3 * per_window
        assert tiny_predictor._windows_per_chunk(windows, 8, 20) == 3
        tiny_predictor.max_batch_bytes = 3 * per_window - 1
        assert tiny_predictor._windows_per_chunk(windows, 8, 20) == 2
    finally:
        tiny_predictor.max_batch_bytes = old
