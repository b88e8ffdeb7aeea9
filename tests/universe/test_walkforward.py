"""Walk-forward on a universe: each fold's model is fine-tuned on every asset's bars strictly before the fold,
so changing one asset's bars from a fold's first traded bar on leaves that fold's (and earlier folds')
training bars and model unchanged, and changes the later folds'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.universe.runner import run_universe_backtest
from kronos_strategies.walkforward.universe import fold_training_frames, universe_schedule

from .conftest import make_assets, universe_config

START = 120  # bars of history before the first traded bar
EVERY = 30  # a refit every 30 traded bars: folds at bars 120, 150, 180
BARS = 200


@pytest.fixture
def history(sp500_bars) -> dict[str, pd.DataFrame]:
    """Four assets of 200 daily bars, one of them (D) starting 50 bars late."""
    frames = make_assets(sp500_bars, n=4, bars=BARS)
    frames["D"] = frames["D"].iloc[50:]
    return frames


def _raw(tmp_path, frames: dict[str, pd.DataFrame]) -> dict:
    raw = universe_config(tmp_path, k=2, n_drop=1)
    raw["dates"] = {"start": str(frames["A"].index[START].date())}
    raw["finetune"] = {"every": EVERY, "window": 100, "steps": 2, "batch_size": 8, "val_bars": 40,
                       "max_val_windows": 4, "compare_base": False, "progress": False}  # fmt: skip
    return raw


def test_fold_training_bars_end_before_the_fold_for_every_asset(tmp_path, history):
    cfg = load_config(_raw(tmp_path, history))
    start = history["A"].index[START]
    times, folds = universe_schedule(history, start, history["A"].index[-1], cfg.finetune)
    assert [f.trade_from for f in folds] == [history["A"].index[i] for i in (120, 150, 180)]
    for fold in folds:
        train = fold_training_frames(history, times, fold, min_bars=37)
        assert set(train) == {"A", "B", "C", "D"}  # every asset with enough bars before the fold
        for name, frame in train.items():
            assert (
                frame.index[-1] < fold.trade_from
                and frame.index[-1] == history[name].index[history[name].index < fold.trade_from][-1]
            )
            assert frame.index[0] >= times[fold.train_start]


def test_perturbing_one_asset_after_a_fold_start_leaves_that_fold_unchanged(
    tmp_path, history, counting_predictor
):
    """The real run twice: B's bars change from fold 1's first traded bar on; folds 0-1 are the same models."""
    raw = _raw(tmp_path, history)
    first = run_universe_backtest(raw, predictor=counting_predictor, frames=history, write_reports=False)
    folds = first.walkforward
    assert len(folds) == 3 and all(f["trained"] for f in folds)
    assert all(f["assets"] == ["A", "B", "C", "D"] for f in folds)
    assert all(pd.Timestamp(f["train_to"]) < pd.Timestamp(f["trade_from"]) for f in folds)

    moved = dict(history)
    frame = moved["B"].copy()
    cut = frame.index >= pd.Timestamp(folds[1]["trade_from"])
    for col in ("open", "high", "low", "close"):
        frame.loc[cut, col] = frame.loc[cut, col] * 1.05
    moved["B"] = frame
    second = run_universe_backtest(raw, predictor=counting_predictor, frames=moved, write_reports=False)
    again = second.walkforward
    # folds 0 and 1 train on bars before B's change: the same keys, loaded from the store, not trained again
    assert [f["key"] for f in again[:2]] == [f["key"] for f in folds[:2]]
    assert [f["trained"] for f in again] == [False, False, True]
    assert again[2]["key"] != folds[2]["key"]  # fold 2 saw B's changed bars: a different model
    # every asset's signals before fold 1 are bit-identical; the other assets' stay so up to fold 2
    t1 = first.table.index.searchsorted(pd.Timestamp(folds[1]["trade_from"]))
    t2 = first.table.index.searchsorted(pd.Timestamp(folds[2]["trade_from"]))
    np.testing.assert_array_equal(second.table.signal[:t1], first.table.signal[:t1])
    others = [first.table.names.index(n) for n in ("A", "C", "D")]
    np.testing.assert_array_equal(second.table.signal[:t2, others], first.table.signal[:t2, others])
    b = first.table.names.index("B")
    assert not np.array_equal(second.table.signal[t1:t2, b], first.table.signal[t1:t2, b])


@pytest.mark.slow  # the perturbation test above is the fast representative of fold-model serving
def test_fold_models_forecast_their_folds(tmp_path, history, counting_predictor):
    """With fine-tuning the traded signals differ from the base model's; the base's bars before stay equal."""
    raw = _raw(tmp_path, history)
    tuned = run_universe_backtest(raw, predictor=counting_predictor, frames=history, write_reports=False)
    base_raw = {k: v for k, v in raw.items() if k != "finetune"}
    base = run_universe_backtest(base_raw, predictor=counting_predictor, frames=history, write_reports=False)
    first = tuned.table.index.searchsorted(pd.Timestamp(tuned.walkforward[0]["trade_from"]))
    assert first == tuned.table.index.searchsorted(tuned.universe.start)
    traded = np.isfinite(base.table.signal[first:])
    assert traded.sum() > 100
    assert not np.array_equal(tuned.table.signal[first:][traded], base.table.signal[first:][traded])


def test_event_mode_walkforward_is_refused(tmp_path, history, counting_predictor):
    raw = _raw(tmp_path, history)
    raw["engine"]["mode"] = "event"
    with pytest.raises(ConfigError, match="walk-forward on a universe .* runs in vectorised mode"):
        run_universe_backtest(raw, predictor=counting_predictor, frames=history, write_reports=False)


def test_walkforward_universe_sweep_trains_each_fold_once_before_the_backtests(tmp_path, history):
    """A sweep over k with a finetune: block: one precompute trains the folds, the backtests only read."""
    from kronos_strategies.sweep import run_sweep

    folder = tmp_path / "csv"
    folder.mkdir()
    for name, frame in history.items():
        frame.to_csv(folder / f"{name}.csv", index_label="timestamp")
    raw = _raw(tmp_path, history)
    raw["universe"] = {"data_dir": str(folder)}
    raw["sweep"] = {"params": {"strategy.params.k": [1, 2]}, "objective": "rank_ic", "top_n": 0}
    result = run_sweep(raw, scheduler="sequential", out=tmp_path / "out")
    s = result.summary
    assert not s["errors"] and len(result.table) == 2
    assert s["folds_trained"] == 3 and s["backtest_forecasts_computed"] == 0
    assert s["forecasts_computed"] > 0 and result.table["rank_ic"].notna().all()
