"""A ``source: ccxt`` universe downloaded by the real ccxt client from two loopback exchange emulators."""

from __future__ import annotations

import pytest

from kronos_strategies.emulator import (
    ExchangeEmulator,
    MarketRules,
    MatchingEngine,
    ReplayClock,
    load_candles,
)
from kronos_strategies.universe.runner import run_universe_backtest
from tests.paper.helpers import API_KEY, SECRET, TF_MS, write_candles

from .conftest import universe_config


def _emulator(csv, base: str) -> ExchangeEmulator:
    """An emulator listing ``base``/USDT with every candle of ``csv`` already closed."""
    candles = load_candles(csv)
    clock = ReplayClock(
        int(candles.index[-1]) + TF_MS, 1e-6
    )  # the replay barely moves: all history is closed
    engine = MatchingEngine(candles, TF_MS, clock, MarketRules(base=base), {"USDT": 10_000.0, base: 0.0})
    return ExchangeEmulator(engine, api_key=API_KEY, secret=SECRET, interval="1m").start()


@pytest.mark.slow
def test_ccxt_universe_from_the_emulator(tmp_path, counting_predictor):
    emus = [
        _emulator(write_candles(tmp_path / f"{b}.csv", n=160, seed=i), b)
        for i, b in enumerate(("BTC", "ETH"))
    ]
    try:
        cfg = universe_config(tmp_path, k=1, n_drop=1)
        cfg["universe"] = {"assets": [
            {"source": "ccxt", "symbol": f"{b}/USDT", "timeframe": "1m", "url": e.url, "cache_dir": str(tmp_path / "ohlcv")}
            for b, e in zip(("BTC", "ETH"), emus)
        ], "quantiles": 2}  # fmt: skip
        cfg["dates"] = {"start": "2024-01-01 00:40", "end": "2024-01-01 02:30"}
        res = run_universe_backtest(cfg, predictor=counting_predictor, write_reports=False)
    finally:
        for e in emus:
            e.stop()
    assert res.universe.names == ["BTC/USDT", "ETH/USDT"]
    assert len(res.universe.index) == 111 + 31  # trading bars plus the lookback warm-up
    assert res.forecast_stats.windows == 2 * 111
    assert len(res.fills) > 0
