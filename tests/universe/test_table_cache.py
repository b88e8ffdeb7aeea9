"""The whole-table cache of a vectorised universe run: a re-run with another k reads one file, with the same
numbers; any change of the bars (or the model) misses it and falls back to the per-window cache."""

from __future__ import annotations

import numpy as np

from kronos_strategies.cache import ForecastCache
from kronos_strategies.universe.runner import run_universe_backtest

from .conftest import universe_config


def _tables(cache) -> list:
    return sorted((cache / "tables").glob("*/*.npz"))


def test_rerun_with_other_k_reads_the_table_and_a_changed_bar_does_not(tmp_path, assets, counting_predictor):
    cfg = universe_config(tmp_path, k=1, n_drop=1)
    first = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    windows = first.forecast_stats.windows
    assert counting_predictor.windows_computed == windows > 0
    assert len(_tables(tmp_path / "cache")) == 1
    per_window = ForecastCache(tmp_path / "cache")
    assert len(per_window) == windows  # every window is still cached on its own

    cfg = universe_config(tmp_path, k=2, n_drop=1)
    second = run_universe_backtest(cfg, predictor=counting_predictor, frames=assets, write_reports=False)
    assert counting_predictor.windows_computed == windows  # nothing reached the model
    assert (second.forecast_stats.cache_hits, second.forecast_stats.computed) == (windows, 0)
    for name in ("signal", "prob_up", "expected"):
        np.testing.assert_array_equal(getattr(second.table, name), getattr(first.table, name))
    assert second.metrics != first.metrics  # k changed the trades, not the signals

    # one asset's last close moves: another table, built from the per-window cache plus the changed windows
    moved = dict(assets)
    frame = moved["B"].copy()
    frame.iloc[-1, frame.columns.get_loc("close")] *= 1.01
    frame["high"] = frame[["open", "high", "low", "close"]].max(axis=1)
    moved["B"] = frame
    third = run_universe_backtest(cfg, predictor=counting_predictor, frames=moved, write_reports=False)
    assert counting_predictor.windows_computed == windows + 1  # only B's last window is new
    assert len(_tables(tmp_path / "cache")) == 2
    col = third.table.names.index("B")
    unchanged = np.ones(third.table.signal.shape, bool)
    unchanged[-1, col] = False
    same = np.isclose(third.table.signal, first.table.signal, equal_nan=True, rtol=0, atol=0)
    assert same[unchanged].all() and not same[-1, col]
