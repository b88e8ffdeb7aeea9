"""Step-one diagnostics and anchoring: the statistics on a hand-made case, the anchoring identity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_model.step_one import last_bar_reconstruction, step_one_report, step_one_stats


def test_step_one_stats_hand_made_case():
    # offsets +1 %, -1 %, 0 %; P(up) 1, 0.5, 0 -> two of three windows are certain about the first step
    stats = step_one_stats(
        np.array([101.0, 99.0, 50.0]), np.array([100.0, 100.0, 50.0]), np.array([1.0, 0.5, 0.0]), 0.01
    )
    assert stats["step1_bias"] == pytest.approx(0.0, abs=1e-12)
    assert stats["step1_abs_offset"] == pytest.approx(0.02 / 3)
    assert stats["offset_ratio"] == pytest.approx(2 / 3)
    assert stats["p_up_extreme_share"] == pytest.approx(2 / 3)


def _constant_frame(n: int = 64) -> pd.DataFrame:
    index = pd.date_range("2020-01-01", periods=n, freq="D", name="timestamp")
    return pd.DataFrame(
        {"open": 100.0, "high": 100.0, "low": 100.0, "close": 100.0, "volume": 1000.0}, index=index
    )


def test_anchored_step_zero_reconstructs_the_last_bar_on_a_constant_series(tiny_predictor):
    from kronos_model.series import PreparedSeries

    window = PreparedSeries.from_frame(_constant_frame()).window(64, 64, 2, tiny_predictor.clip)
    _, recon = last_bar_reconstruction(tiny_predictor.tokenizer, window.x[None].astype(np.float32))
    assert np.abs(recon[0] - window.x[-1]).max() > 1e-3  # the raw decoder misses the last bar
    args = dict(pred_len=2, sample_count=3, T=1.0, top_k=0, top_p=0.9, seed=7, generator=None, use_cache=True)
    raw = tiny_predictor._run([window], anchor=False, **args)
    anchored = tiny_predictor._run([window], anchor=True, **args)
    shift = anchored - raw  # the same for every sample and step: what moves recon onto the last bar
    np.testing.assert_allclose(recon[0] + shift[0, 0, 0], window.x[-1], atol=1e-5)
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0, 0, 0], shift.shape), atol=1e-5)


def test_anchored_forecast_moves_by_the_last_bar_error_in_price(tiny_predictor, sp500):
    frame = sp500.loc["2010-01-01":"2010-12-31"]
    raw = tiny_predictor.forecast(frame, 3, sample_count=4, seed=1)
    anchored = tiny_predictor.forecast(frame, 3, sample_count=4, seed=1, anchor=True)
    from kronos_model.series import PreparedSeries

    window = PreparedSeries.from_frame(frame).window(len(frame), len(frame), 3, tiny_predictor.clip)
    _, recon = last_bar_reconstruction(tiny_predictor.tokenizer, window.x[None].astype(np.float32))
    close = 3  # open, high, low, close, volume, amount
    expected = (window.x[-1, close] - recon[0, close]) * (window.std[close] + 1e-5)
    np.testing.assert_allclose(anchored.paths() - raw.paths(), expected, rtol=1e-3, atol=1e-3)


def test_step_one_report_on_real_windows(tiny_predictor, sp500):
    row = step_one_report(
        tiny_predictor, sp500, name="sp500", lookback=64, start="2016-01-01", end="2016-03-31", stride=10
    )
    assert row["windows"] == 7  # 61 trading days in Q1 2016, every 10th
    assert row["first_origin"].startswith("2016-01-04")
    assert row["recon_mse_last"] > 0 and row["median_abs_return"] > 0
    for key in ("offset_ratio", "offset_ratio_anchored", "p_up_extreme_share", "p_up_extreme_share_anchored"):
        assert np.isfinite(row[key])


def test_tokenizer_position_weights_stress_the_tail():
    from kronos_model.train_default import tokenizer_position_weights

    w = tokenizer_position_weights(8, 2, tail=2, weight=4.0)
    assert w.mean() == pytest.approx(1.0)
    # 6 bars at 1, the last 2 lookback bars and 2 horizon bars at 4: mean 22 / 10
    np.testing.assert_allclose(w, np.array([1] * 6 + [4] * 4) / 2.2)


def test_weighted_tokenizer_loss_is_the_weighted_mean_of_squared_errors(tiny_predictor):
    import torch

    from kronos_model.training.loop import tokenizer_loss

    tok = tiny_predictor.tokenizer.eval()
    x = torch.randn(2, 12, 6, generator=torch.Generator().manual_seed(0))
    plain, metric = tokenizer_loss(tok, x)
    ones, _ = tokenizer_loss(tok, x, torch.ones(12))
    assert ones.item() == pytest.approx(plain.item(), rel=1e-6)
    last = torch.zeros(12)
    last[-1] = 12.0  # all weight on the last bar (mean 1)
    weighted, metric_w = tokenizer_loss(tok, x, last)
    (z_pre, z), bsq, _, _ = tok(x)
    by_hand = (((z_pre - x)[:, -1] ** 2).mean() + ((z - x)[:, -1] ** 2).mean() + bsq) / 2
    assert weighted.item() == pytest.approx(by_hand.item(), rel=1e-5)
    assert metric_w.item() == pytest.approx(metric.item())  # the validation metric stays the plain MSE


def test_card_verdict_counts_test_series_meeting_the_targets():
    from kronos_model.train_default import _step_one_verdict

    def row(ratio, ratio_a, share, share_a):
        return {
            "offset_ratio": ratio,
            "offset_ratio_anchored": ratio_a,
            "p_up_extreme_share": share,
            "p_up_extreme_share_anchored": share_a,
        }

    rows = {
        "validation": [row(1.0, 0.5, 0.4, 0.1), row(0.8, 0.3, 0.2, 0.0)],
        "test": [row(1.0, 0.2, 0.3, 0.05), row(1.0, 0.26, 0.3, 0.06), row(1.0, 0.25, 0.0, 0.0)],
    }
    text = _step_one_verdict(rows)
    assert "from 0.90 to 0.40" in text and "from 30% to 5%" in text
    assert "<= 0.25 on 2 of 3" in text and "<= 5 % on 2 of 3" in text
