"""The one forecast path: ForecastSpec keys and cached_forecasts (cache first, misses in batches, stored)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kronos_model.errors import ConfigError
from kronos_strategies.cache import ForecastCache, forecast_key
from kronos_strategies.forecasting import Forecaster, ForecastSpec, cached_forecasts

SPEC = ForecastSpec(pred_len=4, sample_count=4, T=1.0, top_k=0, top_p=0.9, seed=0)
CHANGED = {"pred_len": 5, "sample_count": 3, "T": 0.7, "top_k": 2, "top_p": 0.5, "seed": 1}


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
    first, computed = cached_forecasts(
        counting_predictor, windows[:7], SPEC, cache, batch_size=3, on_batch=batches.append
    )
    assert computed == 7 and batches == [3, 3, 1] and counting_predictor.windows_computed == 7
    again, computed = cached_forecasts(counting_predictor, windows, SPEC, cache, batch_size=3)
    assert computed == 5 and counting_predictor.windows_computed == 12
    direct = counting_predictor.forecast_batch(windows, 4, sample_count=4, T=1.0, top_k=0, top_p=0.9, seed=0)
    for got, want in zip(again, direct, strict=True):
        np.testing.assert_array_equal(got.samples, want.samples)
        assert got.timestamps.equals(want.timestamps)
    for got, want in zip(first, again[:7], strict=True):
        np.testing.assert_array_equal(got.samples, want.samples)
