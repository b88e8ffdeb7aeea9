"""Forecast cache: keys change with everything a forecast depends on; entries round-trip exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_model.forecast import Forecast
from kronos_strategies.cache import ForecastCache, forecast_key

SAMPLING = {"pred_len": 4, "sample_count": 8, "T": 1.0, "top_k": 0, "top_p": 0.9}


def _window(n: int = 16) -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(0)
    return rng.uniform(1, 2, (n, 6)), pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")


def test_key_is_stable_and_sensitive_to_every_input():
    values, stamps = _window()
    base = forecast_key("model-a", values, stamps, SAMPLING, 0)
    assert base == forecast_key("model-a", values.copy(), stamps.copy(), dict(SAMPLING), 0)
    changed_value = values.copy()
    changed_value[3, 4] += 1e-9  # one volume, slightly
    variants = [
        forecast_key("model-b", values, stamps, SAMPLING, 0),
        forecast_key("model-a", changed_value, stamps, SAMPLING, 0),
        forecast_key("model-a", values, stamps + pd.Timedelta(minutes=1), SAMPLING, 0),
        forecast_key("model-a", values, stamps.tz_convert("Asia/Tokyo").tz_localize(None), SAMPLING, 0),
        forecast_key("model-a", values, stamps, {**SAMPLING, "sample_count": 9}, 0),
        forecast_key("model-a", values, stamps, {**SAMPLING, "top_p": 0.8}, 0),
        forecast_key("model-a", values, stamps, SAMPLING, 1),
        forecast_key("model-a", values[1:], stamps[1:], SAMPLING, 0),
    ]
    assert len({base, *variants}) == len(variants) + 1


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_round_trip_is_exact(tmp_path, tz):
    rng = np.random.default_rng(1)
    stamps = pd.date_range("2024-03-08", periods=5, freq="D", tz=tz)
    forecast = Forecast(samples=rng.normal(100, 1, (8, 5, 6)).astype(np.float32), timestamps=stamps,
                        last_close=101.25, history_end=stamps[0] - pd.Timedelta(days=1))  # fmt: skip
    cache = ForecastCache(tmp_path)
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, forecast)
    back = cache.get("ab" * 32)
    assert np.array_equal(back.samples, forecast.samples) and back.samples.dtype == np.float32
    assert back.timestamps.equals(forecast.timestamps)
    assert back.last_close == forecast.last_close
    assert back.history_end == forecast.history_end
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic write left no temporary file


def test_torn_entry_is_a_miss(tmp_path):
    cache = ForecastCache(tmp_path)
    path = cache.path("cd" * 32)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npy file")
    assert cache.get("cd" * 32) is None
