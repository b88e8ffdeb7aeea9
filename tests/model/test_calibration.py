"""Online conformal calibration: no future outcome is read, coverage reaches the target, bad input is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_model import CalibrationSpec, ConfigError, DataError, Forecast, OnlineCalibrator
from kronos_model.calibration import calibrate_forecasts, calibrate_paths

SIGMA = 0.01


def _series(n: int, seed: int) -> np.ndarray:
    """Closes of a random walk with iid Gaussian log returns of std SIGMA."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, SIGMA, n)))


def _narrow_paths(close: np.ndarray, bars: np.ndarray, horizon: int, samples: int, width: float, seed: int):
    """Close paths of a forecaster whose step std is ``width * SIGMA`` (0.5: twice too narrow)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, width * SIGMA, (len(bars), samples, horizon))
    return close[bars][:, None, None] * np.exp(np.cumsum(steps, axis=2))


def _band_coverage(paths: np.ndarray, realised: np.ndarray) -> np.ndarray:
    lo, hi = np.quantile(paths, [0.1, 0.9], axis=1)
    return ((lo <= realised) & (realised <= hi)).mean(axis=0)


@pytest.mark.parametrize("width", [0.5, 2.0])
def test_calibrated_band_converges_to_target_coverage(width: float) -> None:
    horizon, n = 3, 2500
    close = _series(n, seed=1)
    bars = np.arange(5, n - horizon)
    paths = _narrow_paths(close, bars, horizon, 32, width, seed=2)
    realised = np.stack([close[b + 1 : b + 1 + horizon] for b in bars])
    out, scales = calibrate_paths(paths, close[bars], bars, close, CalibrationSpec(target=0.8))
    raw = _band_coverage(paths, realised)
    late = slice(len(bars) // 2, None)  # after ACI has settled
    calibrated = _band_coverage(out[late], realised[late])
    if width < 1:
        assert (raw < 0.55).all()  # a Gaussian band of half the true std covers about 0.47
        assert (np.nanmean(scales[late], axis=0) > 1.6).all()
    else:
        assert (raw > 0.93).all()  # twice too wide: about 0.99 with exact quantiles
        assert (np.nanmean(scales[late], axis=0) < 0.65).all()
    np.testing.assert_allclose(calibrated, 0.8, atol=0.03)


def test_forecasts_issued_up_to_t_ignore_every_later_outcome() -> None:
    horizon, n, t = 4, 400, 251  # t is a forecast bar
    close = _series(n, seed=3)
    bars = np.arange(3, n - horizon, 2)
    paths = _narrow_paths(close, bars, horizon, 16, 0.7, seed=4)
    spec = CalibrationSpec(warmup=5, window=10)  # a short window: every score moves the quantile
    base, base_k = calibrate_paths(paths, close[bars], bars, close, spec)
    changed = close.copy()
    changed[t + 1 :] *= np.exp(np.random.default_rng(5).normal(0.0, 0.2, n - t - 1))  # every bar after t
    later = bars > t
    moved = paths.copy()
    moved[later] *= 1.3  # forecasts issued after t change too
    out, out_k = calibrate_paths(moved, close[bars], bars, changed, spec)
    early = bars <= t
    np.testing.assert_array_equal(out[early], base[early])
    np.testing.assert_array_equal(out_k[early], base_k[early])
    assert not np.array_equal(out_k[later], base_k[later])  # the perturbation does reach later forecasts


def test_a_one_step_outcome_is_used_only_from_the_bar_it_happens() -> None:
    """Hand-computed: samples -1 %, 0, +1 % give a raw 80 % band of +-0.8 %; a +1.6 % outcome scores 2."""
    cal = OnlineCalibrator(target=0.8, warmup=1, window=10, shift=False)
    returns = np.array([[-0.01], [0.0], [0.01]])
    cal.observe(100.0)
    first = cal.apply_paths(100.0 * (1 + returns), 100.0)
    np.testing.assert_allclose(first[:, 0], 100.0 * (1 + returns[:, 0]))  # warm-up: raw
    assert np.isnan(cal.last_scales).all()
    cal.observe(101.6)  # the step ends on this bar: its score (2.0) is known from now on
    second = cal.apply_paths(101.6 * (1 + returns), 101.6)
    assert cal.last_scales[0] == pytest.approx(2.0)
    np.testing.assert_allclose(np.quantile(second[:, 0] / 101.6 - 1, [0.1, 0.9]), [-0.016, 0.016])
    assert cal.coverage()["raw"] == [0.0]


def test_a_biased_forecaster_is_recentred_by_its_median_residual() -> None:
    """Forecasts 1 % too low at every step: after the warm-up the median moves up by that 1 %."""
    cal = OnlineCalibrator(target=0.8, warmup=5, window=20)
    spread = np.linspace(-0.02, 0.02, 9)[:, None]  # symmetric samples about the median
    close = 100.0
    for _ in range(12):
        cal.observe(close)
        cal.apply_paths(close * 0.99 * (1 + spread), close)  # median return -1 %
        close *= 1.0  # the price does not move: every residual is +1 %
    cal.observe(close)
    out = cal.apply_paths(close * 0.99 * (1 + spread), close)
    np.testing.assert_allclose(cal.last_shifts, [0.01], atol=1e-12)
    np.testing.assert_allclose(np.median(out[:, 0]) / close - 1, 0.0, atol=1e-12)


def test_calibrate_forecasts_matches_the_clocked_calibrator_and_keeps_warm_up_raw() -> None:
    horizon, n = 2, 120
    close = _series(n, seed=6)
    stamps = pd.date_range("2020-01-01", periods=n, freq="D")
    bars = np.arange(10, n - horizon)
    paths = _narrow_paths(close, bars, horizon, 8, 0.5, seed=7).astype(np.float32)
    forecasts = []
    for b, p in zip(bars, paths):
        samples = np.repeat(p[:, :, None], 6, axis=2)  # every price column = the close path
        future = pd.date_range(stamps[b] + pd.Timedelta(days=1), periods=horizon, freq="D")
        forecasts.append(Forecast(samples, future, float(close[b]), stamps[b]))
    spec = CalibrationSpec(warmup=15)
    out = calibrate_forecasts(forecasts, pd.Series(close, index=stamps), spec)
    expected, _ = calibrate_paths(paths.astype(np.float64), close[bars], bars, close, spec)
    assert out[0] is forecasts[0]  # warm-up: the raw forecast itself
    np.testing.assert_allclose(np.stack([f.paths("close") for f in out]), expected, rtol=1e-5)
    np.testing.assert_allclose(
        out[-1].paths("high"), out[-1].paths("close")
    )  # same map on every price column


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"target": 1.5}, "'calibration.target' must be a coverage in (0, 1)"),
        ({"method": "cqr"}, "'calibration.method' must be one of ['aci']"),
        ({"gamma": 0}, "'calibration.gamma' must be in (0, 0.5]"),
        ({"warmup": 600}, "'calibration.warmup' must be in [1, window=500]"),
        ({"targte": 0.8}, "unknown key 'calibration.targte'"),
        ("aci", "'calibration' must be a mapping"),
    ],
)
def test_bad_settings_name_the_key(value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        CalibrationSpec.coerce(value)
    assert message in str(err.value)


def test_bad_series_and_order_are_refused() -> None:
    cal = OnlineCalibrator()
    with pytest.raises(DataError, match="positive closes"):
        cal.observe(-1.0)
    close = _series(30, seed=8)
    paths = _narrow_paths(close, np.array([5, 3]), 2, 4, 1.0, seed=9)
    with pytest.raises(DataError, match="non-decreasing"):
        calibrate_paths(paths, close[[5, 3]], [5, 3], close)
    assert CalibrationSpec.coerce(None) is None
    assert CalibrationSpec.coerce({"method": "aci"}, target=0.6).target == 0.6


def test_a_forecaster_whose_median_is_noise_is_pulled_to_the_average_outcome() -> None:
    """Medians drawn independently of the outcome: the fitted slope is ~0, so the centre stops following them."""
    horizon, n = 1, 1500
    close = _series(n, seed=10)
    bars = np.arange(5, n - horizon)
    rng = np.random.default_rng(11)
    noise = rng.normal(0.0, SIGMA, len(bars))[:, None, None]  # a median offset unrelated to what happens
    paths = _narrow_paths(close, bars, horizon, 32, 1.0, seed=12) * np.exp(noise)
    out, _ = calibrate_paths(paths, close[bars], bars, close, CalibrationSpec())
    late = slice(len(bars) // 2, None)
    raw_centre = np.median(paths[late, :, 0], axis=1) / close[bars][late] - 1
    cal_centre = np.median(out[late, :, 0], axis=1) / close[bars][late] - 1
    assert raw_centre.std() > 0.9 * SIGMA and cal_centre.std() < 0.25 * SIGMA
    realised = np.stack([close[b + 1 : b + 1 + horizon] for b in bars])
    np.testing.assert_allclose(_band_coverage(out[late], realised[late]), 0.8, atol=0.04)
    unshifted, _ = calibrate_paths(paths, close[bars], bars, close, CalibrationSpec(shift=False))
    np.testing.assert_allclose(
        np.median(unshifted[late, :, 0], axis=1), np.median(paths[late, :, 0], axis=1), rtol=1e-12
    )
