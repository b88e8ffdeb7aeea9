"""Reporting helpers: annualisation from the bar interval, metric definitions, no string benchmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.errors import ConfigError
from kronos_strategies.reporting import performance_metrics, periods_per_year, write_tearsheet

_US_HOLIDAYS = ["2015-01-19", "2015-02-16", "2015-04-03", "2015-05-25", "2015-07-03", "2015-09-07",
                "2015-11-26", "2015-12-25", "2016-01-01", "2016-01-18", "2016-02-15"]  # fmt: skip


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (pd.bdate_range("2015-01-01", periods=300, freq="C", holidays=_US_HOLIDAYS), 252.0),  # stock days
        (pd.bdate_range("2015-01-01", periods=300), 261.0),  # FX days: every weekday
        (pd.date_range("2015-01-01", periods=300, freq="D"), 365.0),  # crypto days
        (pd.date_range("2021-01-01", periods=500, freq="h", tz="UTC"), 365.25 * 24),  # crypto hours
        (pd.date_range("2015-01-02", periods=100, freq="W-FRI"), 365.25 / 7),
    ],
)
def test_periods_per_year_follows_the_bar_interval(index, expected):
    assert periods_per_year(index) == pytest.approx(expected)


def test_exchange_hours_intraday_counts_bars_per_session():
    days = pd.bdate_range("2024-06-03", periods=20)
    index = pd.DatetimeIndex([d + pd.Timedelta(hours=9, minutes=35) + k * pd.Timedelta(minutes=5)
                              for d in days for k in range(48)])  # fmt: skip
    assert periods_per_year(index) == pytest.approx(48 * 252)


def test_metrics_definitions():
    index = pd.bdate_range("2020-01-01", periods=252)
    returns = pd.Series(np.where(np.arange(252) % 2, 0.01, -0.005), index=index)
    equity = 1000 * (1 + returns).cumprod()
    fills = [{"value": 500.0}, {"value": 700.0}]
    exposure = pd.Series(np.where(np.arange(252) < 63, 0.0, 0.9), index=index)
    m = performance_metrics(returns, periods=252, exposure=exposure, fills=fills, trade_pnls=[5.0, -1.0, 2.0],
                            equity=equity)  # fmt: skip
    assert m["total_return"] == pytest.approx(np.prod(1 + returns.to_numpy()) - 1)
    assert m["cagr"] == pytest.approx(m["total_return"])  # exactly one year of bars
    assert m["exposure"] == pytest.approx(189 / 252)
    assert m["turnover"] == pytest.approx(1200 / equity.mean())
    assert m["hit_rate"] == pytest.approx(2 / 3) and m["trades"] == 3
    growth = np.cumprod(1 + returns.to_numpy())
    assert m["max_drawdown"] == pytest.approx(np.min(growth / np.maximum.accumulate(growth) - 1))


def test_string_benchmark_is_refused(tmp_path):
    returns = pd.Series(0.001, index=pd.bdate_range("2020-01-01", periods=30))
    with pytest.raises(ConfigError, match="benchmark must be a returns Series"):
        write_tearsheet(returns, benchmark="SPY", output=tmp_path / "t.html")
    assert not (tmp_path / "t.html").exists()
