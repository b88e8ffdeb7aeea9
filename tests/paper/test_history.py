"""Backtests on exchange candles (``data: {source: ccxt}``) through the emulator, cached for re-runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kronos_strategies.config import load_config
from kronos_strategies.emulator import load_candles
from kronos_strategies.errors import ConfigError
from kronos_strategies.runner import run_backtest

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny"


def ccxt_config(tmp_path: Path, url: str, **data: object) -> dict:
    """A small backtest of the tiny model on the emulator's 1m candles."""
    return {
        "name": "ccxt",
        "data": {
            "source": "ccxt",
            "symbol": "BTC/USDT",
            "timeframe": "1m",
            "url": url,
            "cache_dir": str(tmp_path / "ohlcv"),
            **data,
        },  # fmt: skip
        "dates": {"start": "2024-01-01T01:00", "end": "2024-01-01T02:00"},
        "model": {"predictor": str(TINY / "predictor"), "tokenizer": str(TINY / "tokenizer")},
        "indicator": {"lookback": 16, "pred_len": 2, "horizon": 2, "sample_count": 2, "cache_dir": None},
        "strategy": {"name": "threshold", "params": {"enter": 0.0}},
        "output": {"dir": str(tmp_path / "run"), "tearsheet": False, "chart": False},
        "engine": {"mode": "vectorised", "progress": False},
    }


def test_ccxt_backtest_downloads_once(emulator, candles_csv, tmp_path):
    emu = emulator(start_index=300, bar_seconds=60.0)  # 300 closed candles, the clock barely moves
    csv = load_candles(candles_csv)
    cfg = ccxt_config(tmp_path, emu.url)
    first = run_backtest(cfg)
    assert emu.requests > 0
    stamps = pd.to_datetime(csv.index.to_numpy(dtype="int64"), unit="ms")
    period = (stamps >= pd.Timestamp("2024-01-01 01:00")) & (stamps <= pd.Timestamp("2024-01-01 02:00"))
    assert list(first.close.index) == list(stamps[period])  # the trading period, bar for bar
    np.testing.assert_allclose(first.close.to_numpy(), csv["close"].to_numpy()[period], rtol=1e-9)
    assert (tmp_path / "run" / "metrics.json").is_file()

    before = emu.requests
    again = run_backtest(cfg)
    assert emu.requests == before  # every bar came from the disk cache
    pd.testing.assert_series_equal(first.equity, again.equity)
    assert first.data_fingerprint == again.data_fingerprint


@pytest.mark.parametrize(
    ("data", "dates", "key"),
    [
        ({"symbol": None}, None, "data.symbol"),
        ({"symbol": "BTCUSDT"}, None, "data.symbol"),
        ({"path": "bars.csv"}, None, "data.path"),
        ({"source": "kraken"}, None, "data.source"),
        ({"url": "127.0.0.1:9"}, None, "data.url"),
        ({"since": "yesterday"}, None, "data.since"),
        ({}, {"end": "2024-01-01T02:00"}, "data.since"),
        ({"timeframe": 5}, None, "data.timeframe"),
    ],
)
def test_ccxt_source_errors_name_the_key(tmp_path, data, dates, key):
    cfg = ccxt_config(tmp_path, "http://127.0.0.1:9")
    cfg["data"].update(data)
    if dates is not None:
        cfg["dates"] = dates
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(cfg)


def test_ccxt_unknown_symbol_is_one_line_error(emulator, tmp_path):
    emu = emulator(start_index=300, bar_seconds=60.0)
    with pytest.raises(ConfigError, match="ETH/USDT"):
        run_backtest(ccxt_config(tmp_path, emu.url, symbol="ETH/USDT"), write_reports=False)
