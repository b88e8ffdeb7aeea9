"""Anchoring as a forecast setting: it changes cache keys, YAML validates it, every entry point carries it."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.cache import forecast_key
from kronos_strategies.config import load_config
from kronos_strategies.errors import ConfigError
from kronos_strategies.forecasting import ANCHOR_DEFAULT, ForecastSpec


def _window() -> tuple[np.ndarray, pd.DatetimeIndex]:
    rng = np.random.default_rng(3)
    return rng.uniform(1, 2, (16, 6)), pd.date_range("2024-01-01", periods=16, freq="D")


def test_anchor_changes_the_key_and_unanchored_keys_stay_as_before():
    values, stamps = _window()
    raw = ForecastSpec(pred_len=4, sample_count=8, anchor=False)
    anchored = ForecastSpec(pred_len=4, sample_count=8, anchor=True)
    # the key layout written before anchoring existed (cache version 2)
    old = forecast_key(
        "m", values, stamps, {"pred_len": 4, "sample_count": 8, "T": 1.0, "top_k": 0, "top_p": 0.9}, 0
    )
    assert raw.key_arrays("m", values, stamps) == old
    assert anchored.key_arrays("m", values, stamps) != old
    assert anchored.predictor_kwargs()["anchor"] is True
    assert "anchor" not in raw.predictor_kwargs()  # stand-in forecasters need not know the argument


def test_yaml_anchor_is_read_and_validated():
    base = {"data": {"dataset": "sp500"}}
    assert load_config(base).indicator.anchor is ANCHOR_DEFAULT
    assert load_config({**base, "indicator": {"anchor": False}}).indicator.anchor is False
    with pytest.raises(ConfigError, match=r"'indicator.anchor' must be of type bool"):
        load_config({**base, "indicator": {"anchor": "yes"}})


def test_indicator_and_walk_forward_specs_carry_anchor():
    from kronos_strategies.runner import indicator_params
    from kronos_strategies.walkforward.config import SignalSpec

    cfg = load_config({"data": {"dataset": "sp500"}, "indicator": {"anchor": False}})
    assert indicator_params(cfg, None)["anchor"] is False
    assert SignalSpec.from_config(cfg).forecast_spec().anchor is False
    assert SignalSpec().forecast_spec().anchor is ANCHOR_DEFAULT


def test_indicator_rejects_a_non_boolean_anchor(sp500):
    import backtrader as bt

    from kronos_strategies.indicator import KronosSignal

    class Probe(bt.Strategy):
        def __init__(self):
            KronosSignal(self.data, predictor=object(), anchor="no", lookback=8)

    cerebro = bt.Cerebro()
    cerebro.adddata(bt.feeds.PandasData(dataname=sp500.iloc[:40]))
    cerebro.addstrategy(Probe)
    with pytest.raises(ConfigError, match="anchor must be true or false"):
        cerebro.run()


@pytest.mark.parametrize("command", ["forecast", "evaluate"])
def test_cli_anchor_flag_defaults_and_turns_off(command):
    from kronos_strategies.cli import build_parser

    parser: argparse.ArgumentParser = build_parser()
    src = ["x.csv"] if command == "forecast" else ["--csv", "x.csv"]
    assert parser.parse_args([command, *src]).anchor is ANCHOR_DEFAULT
    assert parser.parse_args([command, *src, "--no-anchor"]).anchor is False
