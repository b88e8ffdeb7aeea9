"""GPU inference checks (run with `pytest -m gpu` on a CUDA machine; skipped elsewhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_model import Kronos, KronosPredictor, KronosTokenizer

from ..conftest import FIXTURES

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _spy_window():
    df = pd.read_csv(FIXTURES / "predict" / "greedy_ctx512_input_0.csv", parse_dates=["timestamp"])
    out = pd.read_csv(FIXTURES / "predict" / "greedy_ctx512_output_0.csv", parse_dates=["timestamp"])
    return df.drop(columns=["timestamp"]), df["timestamp"], out["timestamp"], out.drop(columns=["timestamp"])


def _tiny(device, dtype=None):
    return KronosPredictor(
        Kronos.from_pretrained(FIXTURES / "predictor"),
        KronosTokenizer.from_pretrained(FIXTURES / "tokenizer"),
        device=device,
        dtype=dtype,
    )


@pytest.mark.parametrize("use_cache", [True, False])
def test_cuda_greedy_matches_reference(use_cache):
    df, x, y, expected = _spy_window()
    out = _tiny("cuda").predict(df, x, y, pred_len=12, top_k=1, verbose=False, use_cache=use_cache)
    np.testing.assert_allclose(out.to_numpy(), expected.to_numpy(), rtol=1e-4)


def test_cuda_cached_equals_recompute_mini_shape():
    torch.manual_seed(0)
    tok = KronosTokenizer(group_size=5)
    model = Kronos(n_layers=4, d_model=256, n_heads=4, ff_dim=512)
    with torch.no_grad():
        model.head.proj_s1.weight.mul_(10)
        model.head.proj_s2.weight.mul_(10)
    predictor = KronosPredictor(model, tok, device="cuda", max_context=64)
    df, x, _, _ = _spy_window()
    fast = predictor.forecast(df, 12, x_timestamp=x, sample_count=4, top_k=1, seed=0)
    slow = predictor.forecast(df, 12, x_timestamp=x, sample_count=4, top_k=1, seed=0, use_cache=False)
    np.testing.assert_allclose(fast.samples, slow.samples, rtol=1e-4)


def test_cuda_matches_cpu_greedy():
    df, x, y, _ = _spy_window()
    a = _tiny("cuda").predict(df, x, y, pred_len=12, top_k=1, verbose=False)
    b = _tiny("cpu").predict(df, x, y, pred_len=12, top_k=1, verbose=False)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_runs(dtype):
    df, x, _, _ = _spy_window()
    fc = _tiny("cuda", dtype).forecast(df, 8, x_timestamp=x, sample_count=16, seed=1)
    assert fc.samples.shape == (16, 8, 6) and fc.samples.dtype == np.float32
    assert np.isfinite(fc.samples).all()


def _mini_on_cuda(dtype=None, cuda_graph=True):
    torch.manual_seed(0)
    tok = KronosTokenizer(group_size=5)
    model = Kronos(n_layers=4, d_model=256, n_heads=4, ff_dim=512)
    with torch.no_grad():  # sharp heads: a wrong buffer or position changes the sampled ids
        model.head.proj_s1.weight.mul_(10)
        model.head.proj_s2.weight.mul_(10)
    return KronosPredictor(model, tok, device="cuda", dtype=dtype, max_context=512, cuda_graph=cuda_graph)


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])
def test_cuda_graph_replays_the_eager_numbers(dtype):
    """Recorded decode == eager decode on ragged windows, and a replay with new inputs of the same shapes."""
    df, x, _, _ = _spy_window()
    df.index = pd.DatetimeIndex(x)
    graph, eager = _mini_on_cuda(dtype, True), _mini_on_cuda(dtype, False)
    for shift in (0, 9):  # the second round replays the recorded graph with other windows
        frames = [df.iloc[shift + i * 7 : 80 + shift] for i in range(4)]
        a = graph.forecast_batch(frames, 12, sample_count=5, seed=3)
        b = eager.forecast_batch(frames, 12, sample_count=5, seed=3)
        for fa, fb in zip(a, b):
            np.testing.assert_array_equal(fa.samples, fb.samples)
    assert len(graph.model.__dict__["_recorded_calls"]) == 1


def test_compiled_blocks_with_cuda_graph_match_eager_greedy():
    df, x, _, _ = _spy_window()
    df.index = pd.DatetimeIndex(x)
    fused, eager = _mini_on_cuda(None, True), _mini_on_cuda(None, False)
    from kronos_model.fused import fuse_elementwise

    fuse_elementwise(fused.model, fused.tokenizer)
    frames = [df.iloc[i * 7 : 80] for i in range(3)]
    a = fused.forecast_batch(frames, 12, sample_count=2, top_k=1, seed=0)
    b = eager.forecast_batch(frames, 12, sample_count=2, top_k=1, seed=0)
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fa.samples, fb.samples, rtol=1e-3, atol=1e-3)
