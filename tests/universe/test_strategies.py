"""Ranking strategies through the real backtrader engine: top-k-dropout turnover, weights and cash, long-short."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.errors import ConfigError
from kronos_strategies.universe.runner import run_universe_backtest
from kronos_strategies.universe.strategy import UniverseStrategy

from .conftest import universe_config


def _held(weights: pd.DataFrame) -> list[set[str]]:
    w = weights.drop(columns="cash")
    return [set(w.columns[row > 1e-6]) for row in w.to_numpy()]


@pytest.mark.parametrize("n_drop", [pytest.param(0, marks=pytest.mark.slow), 1])
def test_topk_dropout_bounds_turnover(tmp_path, assets, counting_predictor, n_drop):
    cfg = universe_config(tmp_path, k=3, n_drop=n_drop, cash_buffer=0.02)
    res = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    held = _held(res.weights)
    assert max(len(h) for h in held) <= 3
    full = [i for i, h in enumerate(held) if len(h) == 3]
    assert full, "the book never filled its 3 slots"
    for a, b in zip(held[full[0] :], held[full[0] + 1 :]):
        assert len(a - b) <= n_drop  # names replaced per rebalance (rebalance every bar)
    if n_drop == 0:
        assert len(set.union(*held[full[0] :])) == 3  # nothing is ever replaced


def test_weights_sum_and_cash(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path, k=2, cash_buffer=0.1, rebalance=3)
    cfg["universe"]["benchmark_asset"] = "C"
    res = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    c = assets["C"]["close"].loc[res.returns.index]
    hold = res.signal_metrics["benchmark_assets"]["C"]["total_return"]
    assert hold == pytest.approx(c.iloc[-1] / c.iloc[0] - 1)
    w = res.weights
    assert np.allclose(w.sum(axis=1), 1.0)
    assets_w = w.drop(columns="cash")
    assert (assets_w >= -1e-12).all().all()  # long only
    invested = assets_w.sum(axis=1)[assets_w.sum(axis=1) > 0]
    assert invested.max() < 0.95 and invested.min() > 0.8  # 10 % cash buffer, drift only
    assert (w["cash"] > 0).all()
    # orders only at rebalance bars (every 3rd bar from the start), filled at the next bar
    created = pd.DatetimeIndex(res.fills["created"].unique())
    assert set(created) <= set(res.rebalances)
    assert np.all(np.diff([res.universe.index.get_loc(t) for t in res.rebalances]) == 3)


def test_equal_weight_benchmark_by_hand(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path, k=2, rebalance=1)
    res = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    close = pd.DataFrame({n: f["close"] for n, f in assets.items()})
    expected = close.pct_change().mean(axis=1).loc[res.benchmark.index[1:]]
    assert np.allclose(res.benchmark.iloc[1:].to_numpy(), expected.to_numpy())


def test_long_short_is_dollar_neutral(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path, strategy="long_short", quantile=0.4, gross=1.0)
    with pytest.raises(ConfigError, match="universe.shorting: true"):
        run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    cfg["universe"]["shorting"] = True
    res = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    w = res.weights.drop(columns="cash").iloc[2:]
    assert (w.abs().sum(axis=1) > 0.9).all()
    assert w.sum(axis=1).abs().max() < 0.03  # net exposure: only a day's drift
    assert ((w > 1e-6).sum(axis=1) == 2).all() and ((w < -1e-6).sum(axis=1) == 2).all()


class Fixed(UniverseStrategy):
    """A user strategy: one hook, fixed weights on whichever of A and B are tradable."""

    def rank(self, signals):
        return pd.Series({n: 0.3 for n in ("A", "B") if n in signals.index})


def test_user_rank_hook(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path)
    cfg["strategy"] = {"name": f"{__name__}:Fixed", "params": {}}
    res = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    w = res.weights.iloc[2:]
    assert np.allclose(w[["A", "B"]].to_numpy(), 0.3, atol=0.02)
    assert (w[["C", "D", "E"]] == 0).all().all()
