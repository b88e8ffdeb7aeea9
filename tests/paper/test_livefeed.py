"""CcxtLiveFeed: closed candles only, each exactly once, through faults; the cached historical download."""

from __future__ import annotations

import backtrader as bt
import numpy as np

from kronos_strategies.emulator import FaultPlan, load_candles
from kronos_strategies.exchange import bar_ms, download_history
from kronos_strategies.paper.livefeed import CcxtLiveFeed

from .helpers import TF_MS, exchange_client


class _Recorder(bt.Strategy):
    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def next(self) -> None:
        d = self.data
        now = self.env.emulator.engine.clock.now_ms()
        self.rows.append((bar_ms(d), d.open[0], d.high[0], d.low[0], d.close[0], d.volume[0], now))


def test_live_feed_delivers_every_closed_bar_once_through_faults(emulator, candles_csv):
    csv = load_candles(candles_csv)
    emu = emulator(start_index=100, bar_seconds=0.02)
    client = exchange_client(emu.url, sleep=lambda s: None)
    emu.set_faults(
        FaultPlan(seed=11, disconnect=0.08, error=0.05, rate_limit=0.05, retry_after=0.01, drop=0.03)
    )
    first, last = int(csv.index[90]), int(csv.index[150])
    feed = CcxtLiveFeed(client=client, interval="1m", since=first, poll=0.01, until=last)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed)
    cerebro.addstrategy(_Recorder)
    cerebro.emulator = emu
    strat = cerebro.run()[0]
    assert feed.islive() and sum(emu.fault_counts.values()) > 5
    stamps = [r[0] for r in strat.rows]
    assert stamps == list(csv.index[90:151])  # no hole, no duplicate, UTC open times
    values = np.array([r[1:6] for r in strat.rows])
    np.testing.assert_allclose(
        values, csv[["open", "high", "low", "close", "volume"]].iloc[90:151].to_numpy(), rtol=1e-9
    )
    assert all(now >= ts + TF_MS for ts, *_, now in strat.rows)  # never the forming candle


def test_history_download_reuses_its_cache(emulator, candles_csv, tmp_path):
    csv = load_candles(candles_csv)
    emu = emulator(start_index=300, bar_seconds=60.0)
    client = exchange_client(emu.url)
    start, end = int(csv.index[10]), int(csv.index[250])
    first = download_history(client, "1m", start, end, cache_dir=tmp_path)
    before = emu.requests
    again = download_history(client, "1m", start, end, cache_dir=tmp_path)
    assert emu.requests - before == 0  # every bar came from the cache: not even the server time is asked
    assert len(first) == 240 and str(first.index[0]) == "2024-01-01 00:10:00"
    assert first.equals(again)
    np.testing.assert_allclose(first["close"].to_numpy(), csv["close"].iloc[10:250].to_numpy(), rtol=1e-9)
