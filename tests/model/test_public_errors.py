"""Public objects raise the project's errors (still the builtin classes they raised before)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_model import ArgumentError, Forecast, KronosError, UnknownNameError
from kronos_model.metrics import central_interval


@pytest.fixture
def forecast() -> Forecast:
    rng = np.random.default_rng(0)
    samples = (100 + rng.normal(0, 1, (8, 3, 6))).astype(np.float32)
    return Forecast(samples, pd.date_range("2024-01-01", periods=3, freq="D"), last_close=100.0)


def test_forecast_names_and_ranges(forecast):
    with pytest.raises(UnknownNameError, match="unknown column 'vwap'") as err:
        forecast.paths("vwap")
    assert isinstance(err.value, KeyError) and isinstance(err.value, KronosError)
    assert str(err.value).startswith("unknown column")  # the message, not a quoted repr
    with pytest.raises(ArgumentError, match=r"horizon must be in \[1, 3\]") as err:
        forecast.prob_up(4)
    assert isinstance(err.value, ValueError)
    with pytest.raises(ArgumentError, match="quantile levels"):
        forecast.quantile([1.5])


def test_metrics_level_is_an_argument_error():
    with pytest.raises(ArgumentError, match="level"):
        central_interval(np.zeros((2, 4, 3)), level=1.2)
