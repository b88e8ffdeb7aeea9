"""KV-cached generation equals the reference recompute path; batching, seeds and Forecast semantics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from kronos_model import Kronos, KronosPredictor, KronosTokenizer
from kronos_model.errors import TimestampError
from kronos_model.generation import SamplingArgs, generate


@pytest.fixture(scope="module")
def mini_shaped():
    """Random weights in the released Kronos-mini shape (predictor 4x256, Tokenizer-2k-like)."""
    torch.manual_seed(0)
    tok = KronosTokenizer(
        d_model=256,
        n_heads=4,
        ff_dim=512,
        n_enc_layers=4,
        n_dec_layers=4,
        s1_bits=10,
        s2_bits=10,
        group_size=5,
    ).eval()
    model = Kronos(n_layers=4, d_model=256, n_heads=4, ff_dim=512).eval()
    with torch.no_grad():  # peaky heads give clear greedy margins, as in the reference fixtures
        model.head.proj_s1.weight.mul_(10)
        model.head.proj_s2.weight.mul_(10)
    return tok, model


def _windows(sp500, lengths, pred_len, end=400):
    frames, ys = [], []
    for i, n in enumerate(lengths):
        stop = end + 37 * i
        frames.append(sp500.iloc[stop - n : stop])
        ys.append(sp500.index[stop : stop + pred_len])
    return frames, ys


@pytest.mark.parametrize(
    "max_context",
    [pytest.param(512, marks=pytest.mark.slow), 40],  # the sliding case is the harder one: it stays fast
    ids=["no-slide", "slides-past-context"],
)
def test_cached_equals_recompute_greedy(mini_shaped, sp500, max_context):
    tok, model = mini_shaped
    predictor = KronosPredictor(model, tok, device="cpu", max_context=max_context)
    frames, ys = _windows(sp500, [36], 10)
    fast = predictor.predict(frames[0], frames[0].index, ys[0], pred_len=10, top_k=1, verbose=False)
    slow = predictor.predict(
        frames[0], frames[0].index, ys[0], pred_len=10, top_k=1, verbose=False, use_cache=False
    )
    np.testing.assert_allclose(fast.to_numpy(), slow.to_numpy(), rtol=1e-5)


@pytest.mark.slow  # cached == recompute stays in the default tier above (greedy, sliding past max_context)
def test_cached_tokens_identical_to_recompute(mini_shaped, sp500):
    tok, model = mini_shaped
    predictor = KronosPredictor(model, tok, device="cpu", max_context=44)
    frames, ys = _windows(sp500, [40, 30], 8)
    windows = [predictor._window(f, None, y, 8, "df") for f, y in zip(frames, ys)]
    records = []
    for use_cache in (True, False):
        rec = {}
        width = max(len(w.x) for w in windows)
        x = torch.zeros(2, width, 6)
        stamps = torch.zeros(2, width + 8, 5)
        for i, w in enumerate(windows):
            x[i, width - len(w.x) :] = torch.from_numpy(w.x)
            stamps[i, width - len(w.x) :] = torch.from_numpy(w.stamps)
        generate(
            tok,
            model,
            x,
            torch.tensor([40, 30]),
            stamps,
            8,
            44,
            3,
            SamplingArgs(top_k=1),
            use_cache=use_cache,
            record=rec,
        )
        records.append(rec)
    assert torch.equal(records[0]["gen_s1"], records[1]["gen_s1"])
    assert torch.equal(records[0]["gen_s2"], records[1]["gen_s2"])


def test_ragged_batch_equals_one_by_one(mini_shaped, sp500):
    tok, model = mini_shaped
    predictor = KronosPredictor(model, tok, device="cpu", max_context=512)
    frames, ys = _windows(sp500, [50, 23, 37], 6)
    batched = predictor.forecast_batch(frames, 6, y_timestamp_list=ys, sample_count=3, top_k=1, seed=1)
    for frame, y, fc in zip(frames, ys, batched):
        single = predictor.forecast(frame, 6, y_timestamp=y, sample_count=3, top_k=1, seed=1)
        np.testing.assert_allclose(fc.samples, single.samples, rtol=1e-5)
    ragged = predictor.predict_batch(
        frames, [f.index for f in frames], ys, pred_len=6, top_k=1, verbose=False
    )
    for frame, y, out in zip(frames, ys, ragged):
        one = predictor.predict(frame, frame.index, y, pred_len=6, top_k=1, verbose=False)
        np.testing.assert_allclose(out.to_numpy(), one.to_numpy(), rtol=1e-5)


def test_seeded_sampling_is_reproducible_and_batch_independent(tiny_predictor, sp500):
    frames, _ = _windows(sp500, [60, 60, 60], 5)
    a = tiny_predictor.forecast_batch(frames, 5, sample_count=8, seed=42)
    b = tiny_predictor.forecast_batch(frames[::-1], 5, sample_count=8, seed=42, batch_size=1)[::-1]
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.samples, fb.samples)
    c = tiny_predictor.forecast_batch(frames, 5, sample_count=8, seed=43)
    assert not np.array_equal(a[0].samples, c[0].samples)
    assert len({tuple(p) for p in a[0].paths().round(4)}) > 1, "sample paths should differ from each other"


def test_generator_argument_gives_determinism(tiny_predictor, sp500):
    frame = sp500.iloc[:80]
    outs = [
        tiny_predictor.forecast(frame, 4, sample_count=4, generator=torch.Generator().manual_seed(5)).samples
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*outs)


def test_forecast_statistics(tiny_predictor, sp500):
    fc = tiny_predictor.forecast(sp500.iloc[:120], 6, sample_count=32, seed=3)
    assert fc.samples.shape == (32, 6, 6) and fc.samples.dtype == np.float32
    np.testing.assert_allclose(fc.mean, fc.samples.mean(axis=0), rtol=1e-6)
    qs = fc.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
    assert (np.diff(qs, axis=0) >= 0).all()
    for h in range(1, 7):
        direct = np.mean(fc.samples[:, h - 1, 3] > fc.last_close)
        assert fc.prob_up(h) == pytest.approx(direct)
        assert 0.0 <= fc.prob_up(h) <= 1.0
    assert fc.last_close == sp500["close"].iloc[119]
    frame = fc.to_frame()
    assert list(frame.columns[:6]) == ["open", "high", "low", "close", "volume", "amount"]
    assert {"close_q0.1", "close_q0.9", "prob_up"} <= set(frame.columns)


def test_mean_of_samples_matches_predict(tiny_predictor, sp500):
    """predict's mean path (averaged in normalised space) equals the Forecast mean up to rounding."""
    frame = sp500.iloc[:90]
    y = sp500.index[90:94]
    fc = tiny_predictor.forecast(frame, 4, y_timestamp=y, sample_count=6, seed=11)
    mean = tiny_predictor.predict(frame, frame.index, y, pred_len=4, sample_count=6, verbose=False, seed=11)
    np.testing.assert_allclose(mean.to_numpy(), fc.mean, rtol=1e-5)


def test_future_timestamps_inferred(tiny_predictor, sp500):
    fc = tiny_predictor.forecast(sp500.iloc[:100], 5, sample_count=2, seed=0)
    last = sp500.index[99]
    assert fc.timestamps[0] > last and len(fc.timestamps) == 5
    assert (fc.timestamps.day_of_week < 5).all()  # business days for daily stock bars
    hourly = sp500.iloc[:50].copy()
    hourly.index = pd.date_range("2024-01-01", periods=50, freq="h")
    fc_h = tiny_predictor.forecast(hourly, 3, sample_count=2, seed=0)
    assert list(fc_h.timestamps) == list(pd.date_range(hourly.index[-1], periods=4, freq="h")[1:])


def test_frequency_that_cannot_be_inferred(tiny_predictor, sp500):
    frame = sp500.iloc[:3].copy()
    frame.index = pd.DatetimeIndex(["2024-01-01", "2024-01-03", "2024-01-10"])
    with pytest.raises(TimestampError, match="cannot infer the bar frequency"):
        tiny_predictor.forecast(frame, 3, sample_count=2)


def test_per_window_seeds(tiny_predictor, sp500):
    frames, _ = _windows(sp500, [60, 60], 4)
    both = tiny_predictor.forecast_batch(frames, 4, sample_count=6, seed=[1, 2])
    one = tiny_predictor.forecast_batch(frames[1:], 4, sample_count=6, seed=2)[0]
    np.testing.assert_array_equal(both[1].samples, one.samples)
    with pytest.raises(Exception, match="got 1 seeds for 2 windows"):
        tiny_predictor.forecast_batch(frames, 4, sample_count=2, seed=[1])


def test_anchor_shifts_every_path_by_one_constant(tiny_predictor, sp500):
    """anchor=True moves all paths of a window by the same per-column offset (the last-bar reconstruction error)."""
    frame = sp500.iloc[:100]
    raw = tiny_predictor.forecast(frame, 5, sample_count=4, seed=2)
    anchored = tiny_predictor.forecast(frame, 5, sample_count=4, seed=2, anchor=True)
    shift = anchored.samples - raw.samples
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1, :1], shift.shape), rtol=1e-3, atol=1e-3)
    assert np.abs(shift[0, 0, :4]).max() > 0
