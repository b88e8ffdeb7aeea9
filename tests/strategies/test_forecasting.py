"""The one forecast path: ForecastSpec keys and cached_forecasts (cache first, misses in batches, stored)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kronos_model.errors import ConfigError
from kronos_model.series import PreparedSeries
from kronos_strategies.cache import ForecastCache, forecast_key
from kronos_strategies.forecasting import (
    Forecaster,
    ForecastSpec,
    FrameWindows,
    SeriesWindows,
    cached_forecasts,
)

SPEC = ForecastSpec(pred_len=4, sample_count=4, T=1.0, top_k=0, top_p=0.9, seed=0, anchor=False)
CHANGED = {"pred_len": 5, "sample_count": 3, "T": 0.7, "top_k": 2, "top_p": 0.5, "seed": 1, "anchor": True}


def test_every_field_of_the_spec_changes_the_key(short_bars):
    window = short_bars.iloc[:32]
    assert set(CHANGED) == {f.name for f in dataclasses.fields(ForecastSpec)}, "a new field needs a case here"
    base = SPEC.key("model-a", window)
    for name, value in CHANGED.items():
        assert dataclasses.replace(SPEC, **{name: value}).key("model-a", window) != base, name
    assert SPEC.key("model-b", window) != base
    assert SPEC.key("model-a", short_bars.iloc[1:33]) != base
    assert SPEC.key("model-a", window.copy()) == base


def test_spec_keys_are_the_cache_version_2_keys(short_bars):
    """Keys written before the spec existed still hit (the key layout did not change)."""
    window = short_bars.iloc[:32]
    sampling = {"pred_len": 4, "sample_count": 4, "T": 1.0, "top_k": 0, "top_p": 0.9}
    assert SPEC.key("fp", window) == forecast_key("fp", window.to_numpy(), window.index, sampling, 0)
    assert dataclasses.replace(SPEC, seed=None).key("fp", window) is None


@pytest.mark.parametrize("field,value", [("pred_len", 0), ("sample_count", 0)])
def test_spec_rejects_empty_forecasts(field, value):
    with pytest.raises(ConfigError, match=field):
        dataclasses.replace(SPEC, **{field: value})


def test_cached_forecasts_computes_misses_once_and_equals_direct_calls(
    counting_predictor, short_bars, tmp_path
):
    assert isinstance(counting_predictor, Forecaster)
    windows = [short_bars.iloc[i : i + 32] for i in range(0, 12)]
    cache = ForecastCache(tmp_path)
    batches: list[int] = []
    first, served = cached_forecasts(
        counting_predictor, windows[:7], SPEC, cache, batch_size=3, on_batch=batches.append
    )
    assert served.computed == 7 and served.batches == 3 and batches == [3, 3, 1]
    assert counting_predictor.windows_computed == 7
    again, served = cached_forecasts(counting_predictor, windows, SPEC, cache, batch_size=3)
    assert served.computed == 5 and counting_predictor.windows_computed == 12
    direct = counting_predictor.forecast_batch(windows, 4, sample_count=4, T=1.0, top_k=0, top_p=0.9, seed=0)
    for got, want in zip(again, direct, strict=True):
        np.testing.assert_array_equal(got.samples, want.samples)
        assert got.timestamps.equals(want.timestamps)
    for got, want in zip(first, again[:7], strict=True):
        np.testing.assert_array_equal(got.samples, want.samples)


def test_series_windows_and_frames_share_keys_and_forecasts(counting_predictor, short_bars, tmp_path):
    """The indicator's path (slices of a prepared series) and the DataFrame path (walk-forward, universe event
    mode) key and forecast the same window identically, so they share one cache."""
    series = PreparedSeries.from_frame(short_bars, name="sp500")
    ends = [32, 40, 60]
    frames = [series.frame(end - 32, end) for end in ends]
    by_series = SeriesWindows(series, ends, lookback=32)
    for j in range(len(ends)):
        assert (
            by_series.key(SPEC, "fp", j)
            == FrameWindows(frames).key(SPEC, "fp", j)
            == SPEC.key("fp", frames[j])
        )
    cache = ForecastCache(tmp_path)
    from_series, served = cached_forecasts(counting_predictor, by_series, SPEC, cache)
    assert served.computed == 3
    from_frames, served = cached_forecasts(counting_predictor, frames, SPEC, cache)
    assert served.computed == 0  # every window was found under the series path's keys
    for a, b in zip(from_series, from_frames, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)


def test_walkforward_and_indicator_make_the_same_spec():
    from kronos_strategies.config import load_config
    from kronos_strategies.walkforward import SignalSpec

    cfg = load_config("backtests/sp500_threshold.yaml")
    ind = cfg.indicator
    indicator_spec = ForecastSpec(pred_len=ind.pred_len, sample_count=ind.sample_count, T=ind.T, top_k=ind.top_k,
                                  top_p=ind.top_p, seed=ind.seed)  # fmt: skip
    assert SignalSpec.from_config(cfg).forecast_spec() == indicator_spec
