"""Calendar policy through the real backtrader engine: missing bars, late (IPO) and early (delisted) assets."""

from __future__ import annotations

import numpy as np
import pytest

from kronos_model.errors import DataError, InsufficientHistoryError
from kronos_strategies.errors import ConfigError
from kronos_strategies.forecasting import ANCHOR_DEFAULT
from kronos_strategies.universe.runner import run_universe_backtest

from .conftest import FAST, universe_config

LB = FAST["lookback"]


@pytest.fixture
def ragged(assets):
    """C misses one bar, D starts 10 bars late, E stops 15 bars early (delisted)."""
    assets = dict(assets)
    gap = assets["C"].index[45]
    assets["C"] = assets["C"].drop(gap)
    assets["D"] = assets["D"].iloc[10:]
    assets["E"] = assets["E"].iloc[:55]
    return assets, gap


def test_missing_bar_late_start_and_delisting(tmp_path, ragged, counting_predictor):
    assets, gap = ragged
    cfg = universe_config(tmp_path, k=5, n_drop=None, cash_buffer=0.05)
    res = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    table, uni = res.table, res.universe
    assert list(uni.index) == sorted(set().union(*(f.index for f in assets.values())))
    col = {n: j for j, n in enumerate(table.names)}
    t_gap = uni.index.get_loc(gap)
    # no bar at t: no forecast and no trade at t for C; the others are forecast as usual
    assert np.isnan(table.signal[t_gap, col["C"]])
    assert np.isfinite(table.signal[t_gap, col["A"]])
    assert not (res.fills["asset"].eq("C") & res.fills["executed"].eq(gap)).any()
    # C's next window is cut from its own bars: it skips the gap instead of filling it
    c = assets["C"]
    nxt = c.index.get_loc(uni.index[t_gap + 1])
    window = c.iloc[nxt - LB + 1 : nxt + 1]
    assert gap not in window.index and len(window) == LB
    direct = counting_predictor.forecast_batch(  # anchored like the run (indicator.anchor's default)
        [window], FAST["pred_len"], sample_count=FAST["sample_count"], seed=0, anchor=ANCHOR_DEFAULT
    )[0]
    assert table.signal[t_gap + 1, col["C"]] == direct.expected_return(FAST["horizon"])
    # IPO: D is ranked from its LB-th own bar on, never before
    d_first = uni.index.get_loc(assets["D"].index[LB - 1])
    assert np.isnan(table.signal[:d_first, col["D"]]).all()
    assert np.isfinite(table.signal[d_first, col["D"]])
    # delisting: the position is closed at the last close, said in the trades, and not held afterwards
    last = assets["E"].index[-1]
    closes = res.fills[res.fills["asset"].eq("E") & res.fills["note"].eq("delisted")]
    assert len(closes) == 1
    assert closes["executed"].iloc[0] == last
    assert closes["price"].iloc[0] == pytest.approx(assets["E"]["close"].iloc[-1])
    assert (res.weights.loc[res.weights.index > uni.index[uni.index.get_loc(last) + 1], "E"] == 0).all()
    assert uni.delisted == ["E"]


def test_min_history_delays_ranking(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path, k=2)
    cfg["universe"]["min_history"] = LB + 5
    res = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    first = res.universe.index[LB + 4]
    assert res.universe.start == first
    assert np.isnan(res.table.signal[: LB + 4]).all()


def test_too_short_asset_is_named(tmp_path, assets, counting_predictor):
    assets = dict(assets)
    assets["D"] = assets["D"].iloc[:20]
    with pytest.raises(InsufficientHistoryError, match="universe asset 'D'"):
        run_universe_backtest(universe_config(tmp_path), predictor=counting_predictor, frames=assets)


def test_validation_names_the_asset(tmp_path):
    cfg = universe_config(tmp_path)
    cfg["universe"]["assets"][2] = {"name": "C", "source": "ccxt", "symbol": "BTCUSDT"}
    with pytest.raises(ConfigError, match=r"universe.assets\[2\] \('C'\).*symbol"):
        run_universe_backtest(cfg)
    cfg = universe_config(tmp_path)
    cfg["universe"]["assets"][3] = {"name": "A", "dataset": "sp500"}
    with pytest.raises(ConfigError, match="'A' is used twice"):
        run_universe_backtest(cfg)
    cfg = universe_config(tmp_path, strategy="threshold")
    with pytest.raises(ConfigError, match="not a UniverseStrategy"):
        run_universe_backtest(cfg)
    cfg = universe_config(tmp_path)
    cfg["data"] = {"dataset": "sp500"}
    with pytest.raises(ConfigError, match="replaces 'data:'"):
        run_universe_backtest(cfg)


def test_missing_file_is_named(tmp_path):
    cfg = universe_config(tmp_path)
    cfg["universe"]["assets"][1] = {"name": "B", "path": str(tmp_path / "nope.csv")}
    with pytest.raises(ConfigError, match="nope.csv"):
        run_universe_backtest(cfg)


def test_naive_and_aware_timestamps_are_refused(tmp_path, assets, counting_predictor):
    mixed = {n: f if n == "B" else f.tz_localize("America/New_York") for n, f in assets.items()}
    with pytest.raises(DataError, match="universe asset 'B' has naive timestamps"):
        run_universe_backtest(universe_config(tmp_path), predictor=counting_predictor, frames=mixed)
