"""Fixtures for the backtrader-side tests: tiny model, a short S&P 500 slice, a counting predictor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import torch

from kronos_model import Kronos, KronosPredictor, KronosTokenizer
from kronos_strategies.feeds import load_dataset, make_feed, read_ohlcv
from kronos_strategies.indicator import KronosSignal

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny"

# Small enough for seconds-long tests, large enough to be a real forecast.
FAST = dict(lookback=32, pred_len=4, horizon=4, sample_count=4, seed=0, batch_size=64)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine extra threads mostly spin; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class CountingPredictor(KronosPredictor):
    """The real tiny predictor, counting how many windows reach the model."""

    def __init__(self, max_context: int = 512) -> None:
        super().__init__(Kronos.from_pretrained(TINY / "predictor"), KronosTokenizer.from_pretrained(TINY / "tokenizer"),
                         device="cpu", max_context=max_context)  # fmt: skip
        self.windows_computed = 0

    def forecast_batch(self, df_list, pred_len, **kwargs):  # noqa: ANN001, ANN003 - same signature as the parent
        self.windows_computed += len(df_list)
        return super().forecast_batch(df_list, pred_len, **kwargs)

    def forecast_series(self, series, ends, pred_len, **kwargs):  # noqa: ANN001, ANN003 - as the parent
        self.windows_computed += len(ends)
        return super().forecast_series(series, ends, pred_len, **kwargs)


@pytest.fixture
def counting_predictor() -> CountingPredictor:
    return CountingPredictor()


@pytest.fixture(scope="session")
def sp500_bars() -> pd.DataFrame:
    """Validated S&P 500 daily bars (arch package), 1999-2018."""
    return read_ohlcv(load_dataset("sp500"), name="sp500")


@pytest.fixture
def short_bars(sp500_bars: pd.DataFrame) -> pd.DataFrame:
    """60 daily bars: 32 of warm-up and 29 forecast windows with the FAST settings."""
    return sp500_bars.loc["2015-01-01":].iloc[:60].copy()


def run_signal(
    frame: pd.DataFrame,
    *,
    runonce: bool = True,
    preload: bool = True,
    indicator: type = KronosSignal,
    **params: Any,
) -> tuple[dict[str, np.ndarray], KronosSignal]:
    """Run ``indicator`` on ``frame`` in backtrader and return every line as an array over all bars."""
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce, preload=preload)
    cerebro.adddata(make_feed(frame))
    holder: dict[str, KronosSignal] = {}

    class Hold(bt.Strategy):
        def __init__(self) -> None:
            holder["ind"] = indicator(self.data, **params)

    cerebro.addstrategy(Hold)
    cerebro.run()
    ind = holder["ind"]
    lines = {name: np.asarray(getattr(ind.lines, name).array, dtype=float)[: len(frame)]
             for name in ind.lines.getlinealiases()}  # fmt: skip
    return lines, ind


def tiny_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A fast backtest config on the tiny model; keyword arguments replace whole sections."""
    cfg: dict[str, Any] = {
        "name": "tiny",
        "data": {"dataset": "sp500", "name": "S&P 500"},
        "dates": {"start": "2015-01-01", "end": "2015-05-31"},
        "model": {"predictor": str(TINY / "predictor"), "tokenizer": str(TINY / "tokenizer")},
        "indicator": {**{k: v for k, v in FAST.items()}, "cache_dir": str(tmp_path / "cache")},
        "strategy": {"name": "threshold", "params": {"enter": 0.1, "allow_short": True}},
        "broker": {"cash": 100000, "commission": 0.0005, "slippage": 0.0002},
        "output": {"dir": str(tmp_path / "run")},
        "engine": {"mode": "vectorised", "progress": False},
    }
    cfg.update(sections)
    return cfg
