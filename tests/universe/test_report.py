"""The signal report against direct pandas computations on hand-made cases; cache hits on re-run; files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.universe.calendar import align_universe
from kronos_strategies.universe.report import (
    _quantile_returns,
    cross_sectional_ic,
    forward_returns,
    ic_summary,
)
from kronos_strategies.universe.runner import run_universe_backtest

from .conftest import universe_config


def test_ic_equals_pandas_on_a_hand_made_case():
    idx = pd.date_range("2020-01-01", periods=4, freq="D")
    signal = pd.DataFrame(
        {
            "a": [0.1, 0.3, np.nan, 0.2],
            "b": [0.2, 0.1, 0.5, 0.4],
            "c": [0.3, 0.2, 0.1, 0.0],
            "d": [0.0, 0.4, 0.3, 0.1],
        },
        index=idx,
    )
    forward = pd.DataFrame(
        {"a": [0.01, -0.02, 0.03, 0.0], "b": [0.02, 0.01, 0.0, 0.05], "c": [0.05, 0.0, -0.01, -0.02], "d": [-0.01, 0.03, 0.02, np.nan]},
        index=idx,
    )  # fmt: skip
    ic = cross_sectional_ic(signal, forward)
    ric = cross_sectional_ic(signal, forward, rank=True)
    for t in idx:
        assert ic[t] == pytest.approx(signal.loc[t].corr(forward.loc[t]))
        assert ric[t] == pytest.approx(signal.loc[t].corr(forward.loc[t], method="spearman"))
    # by hand: day 1 ranks (2,3,4,1) vs (2,3,4,1); day 3 (a missing) b,c,d ranks (3,1,2) vs (2,1,3): 1 - 6*2/24
    assert ric.iloc[0] == pytest.approx(1.0) and ric.iloc[2] == pytest.approx(0.5)
    # quantile portfolios by hand, day 1: ranks d<a<b<c -> q1 = {d, a}, q2 = {b, c}
    qret, _ = _quantile_returns(signal, forward, 2)
    assert qret.iloc[0]["q1"] == pytest.approx((-0.01 + 0.01) / 2)
    assert qret.iloc[0]["q2"] == pytest.approx((0.02 + 0.05) / 2)
    s = ic_summary(ic)
    assert s["mean"] == pytest.approx(ic.mean()) and s["std"] == pytest.approx(ic.std())
    assert s["t_stat"] == pytest.approx(ic.mean() / ic.std() * np.sqrt(4))


def test_forward_returns_use_each_assets_own_bars():
    idx = pd.date_range("2020-01-01", periods=6, freq="D")
    a = pd.DataFrame(
        {"open": 1.0, "high": 2.0, "low": 0.5, "close": [1, 2, 3, 4, 5, 6.0], "volume": 1.0, "amount": 1.0},
        index=idx,
    )
    b = a.drop(idx[2])  # no bar on day 3: the 1-step return of day 2 runs to day 4
    uni = align_universe({"a": a, "b": b}, start=None, end=None, lookback=2)
    fwd = forward_returns(uni, 1)
    assert fwd.loc[idx[1], "b"] == pytest.approx(4 / 2 - 1)
    assert np.isnan(fwd.loc[idx[2], "b"])
    assert fwd.loc[idx[1], "a"] == pytest.approx(3 / 2 - 1)
    assert np.isnan(fwd.loc[idx[-1], "a"])


def test_cache_hits_on_rerun_and_reports(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path, k=2, n_drop=1)
    cfg["output"].update(tearsheet=True, chart=True)
    cfg["output"]["tearsheet"] = False
    first = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    cfg["output"]["tearsheet"] = True
    computed = counting_predictor.windows_computed
    assert computed == first.forecast_stats.windows > 0
    cfg["strategy"]["params"]["k"] = 3  # a strategy change: every forecast comes from the cache
    second = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, out_dir=tmp_path / "b")
    assert counting_predictor.windows_computed == computed
    assert second.forecast_stats.cache_hits == second.forecast_stats.windows == first.forecast_stats.windows
    assert np.array_equal(first.table.signal, second.table.signal, equal_nan=True)
    metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert metrics["forecasts"]["computed"] == 0
    for key in (
        "ic",
        "rank_ic",
        "ic_by_horizon",
        "quantiles",
        "signal_autocorrelation",
        "top_quantile_turnover",
    ):
        assert key in metrics["signal"]
    assert set(metrics["signal"]["ic_by_horizon"]) == {"1", "2", "3", "4"}
    for name in (
        "tearsheet.html",
        "universe.png",
        "weights.csv",
        "trades.csv",
        "signals.csv",
        "manifest.json",
    ):
        assert (tmp_path / "b" / name).stat().st_size > 0
    trades = pd.read_csv(tmp_path / "b" / "trades.csv")
    assert {"asset", "note"} <= set(trades.columns)
